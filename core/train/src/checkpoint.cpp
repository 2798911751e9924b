#include "encore/core/checkpoint.h"

#include <torch/torch.h>

#include <sstream>

#include <fmt/format.h>

#include "encore/core/errors.h"
#include "encore/core/libtorch.h"
#include "encore/core/random.h"
#include "encore/core/sealed_file.h"

namespace encore::core {

namespace {

// The key that stands for parameter i of group g where LibTorch's format has a tensor's address: a
// number, since LibTorch 2.x reads these keys back as numbers (1.13 matches them as text).
std::string position_key(std::size_t group, std::size_t index) {
  return std::to_string((static_cast<std::uint64_t>(group) << 32) | static_cast<std::uint64_t>(index));
}

std::string rank_rng_key(int rank) { return rank == 0 ? "rng/cpu" : fmt::format("rng/cpu/rank{}", rank); }

}  // namespace

void save_optimizer_state(const torch::optim::Optimizer& optimizer, torch::serialize::OutputArchive& archive) {
  // LibTorch's own layout (what Optimizer::load reads: "state" by key, each group's parameter keys
  // and options), with position keys in place of addresses.
  archive.write("pytorch_version", c10::IValue("1.5.0"));
  torch::serialize::OutputArchive states(archive.compilation_unit());
  torch::serialize::OutputArchive groups_archive(archive.compilation_unit());
  const auto& groups = optimizer.param_groups();
  groups_archive.write("param_groups/size", torch::tensor(static_cast<std::int64_t>(groups.size())));
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const auto& params = groups[g].params();
    torch::serialize::OutputArchive group_archive(archive.compilation_unit());
    group_archive.write("params/size", torch::tensor(static_cast<std::int64_t>(params.size())));
    for (std::size_t i = 0; i < params.size(); ++i) {
      group_archive.write(fmt::format("params/{}", i), c10::IValue(position_key(g, i)));
      const auto found = optimizer.state().find(libtorch::optimizer_state_key(params[i]));
      if (found == optimizer.state().end()) continue;
      torch::serialize::OutputArchive state_archive(archive.compilation_unit());
      found->second->serialize(state_archive);
      states.write(position_key(g, i), state_archive);
    }
    torch::serialize::OutputArchive options_archive(archive.compilation_unit());
    groups[g].options().serialize(options_archive);
    group_archive.write("options", options_archive);
    groups_archive.write(fmt::format("param_groups/{}", g), group_archive);
    // Optimizer::load leaves the options as they are: the group's rate is restored separately.
    archive.write(fmt::format("lr/{}", g), c10::IValue(groups[g].options().get_lr()));
  }
  archive.write("state", states);
  archive.write("param_groups", groups_archive);
}

void load_optimizer_state(torch::optim::Optimizer& optimizer, torch::serialize::InputArchive& archive, const std::string& file) {
  try {
    optimizer.load(archive);
    auto& groups = optimizer.param_groups();
    for (std::size_t g = 0; g < groups.size(); ++g) {
      c10::IValue lr;
      archive.read(fmt::format("lr/{}", g), lr);
      groups[g].options().set_lr(lr.toDouble());
    }
  } catch (const c10::Error& e) {
    throw DataError(fmt::format("{}: the optimizer state does not fit this stage's optimizer: {}", file, e.what_without_backtrace()));
  } catch (const std::logic_error& e) {
    // LibTorch 2.x parses the parameter keys as numbers with std::stoull.
    throw DataError(
        fmt::format("{}: the optimizer state's parameter keys are not numbers ({}): a checkpoint of an older encore, "
                    "which this LibTorch cannot read",
                    file, e.what()));
  }
}

void write_checkpoint(const std::filesystem::path& file, const CheckpointContents& contents) {
  TORCH_CHECK(contents.module && contents.optimizer, "a checkpoint needs a module and an optimizer");
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  contents.module->save(model_archive);
  archive.write("model", model_archive);
  torch::serialize::OutputArchive optimizer_archive;
  save_optimizer_state(*contents.optimizer, optimizer_archive);
  archive.write("optimizer", optimizer_archive);
  const auto& state = contents.state;
  archive.write("trainer/stage", c10::IValue(state.stage));
  archive.write("trainer/epoch", c10::IValue(state.epoch));
  archive.write("trainer/step", c10::IValue(state.step));
  archive.write("trainer/position", c10::IValue(state.position));
  archive.write("trainer/finished", c10::IValue(state.finished));
  archive.write("trainer/epoch_sums", c10::IValue(contents.epoch_sums.dump()));
  archive.write("trainer/world_size", c10::IValue(static_cast<std::int64_t>(contents.rng_states.size())));
  for (std::size_t r = 0; r < contents.rng_states.size(); ++r) archive.write(rank_rng_key(static_cast<int>(r)), contents.rng_states[r]);
  for (const auto* callback : contents.callbacks) {
    torch::serialize::OutputArchive callback_archive;
    callback->save(callback_archive);
    archive.write("callbacks/" + callback->state_key(), callback_archive);
  }
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_sealed_file(file, bytes.str());
}

Checkpoint::Checkpoint(std::filesystem::path file) : file_(std::move(file)), archive_(std::make_shared<torch::serialize::InputArchive>()) {
  const auto name = file_.string();
  const auto payload = read_sealed_file(name);
  try {
    archive_->load_from(payload.data(), payload.size());
  } catch (const c10::Error& e) {
    throw DataError(fmt::format("{}: checksum is right but the archive does not load: {}", name, e.what_without_backtrace()));
  }
  c10::IValue value;
  try {
    archive_->read("trainer/stage", value);
    state_.stage = value.toStringRef();
    archive_->read("trainer/epoch", value);
    state_.epoch = value.toInt();
    archive_->read("trainer/step", value);
    state_.step = value.toInt();
    archive_->read("trainer/position", value);
    state_.position = value.toInt();
    archive_->read("trainer/finished", value);
    state_.finished = value.toBool();
  } catch (const c10::Error& e) {
    throw DataError(fmt::format("{}: not a training checkpoint: {}", name, e.what_without_backtrace()));
  }
  if (archive_->try_read("trainer/world_size", value)) world_size_ = value.toInt();
}

void Checkpoint::check_world_size() const {
  const auto& group = process_group();
  const int world_size = group ? group->world_size() : 1;
  if (world_size_ != world_size) {
    throw DataError(fmt::format("{}: written by a run of {} process{}, this run has {}; resume it with as many (encore run --nproc {})",
                                file_.string(), world_size_, world_size_ == 1 ? "" : "es", world_size, world_size_));
  }
}

void Checkpoint::restore_rng_state() const {
  check_world_size();
  const auto& group = process_group();
  torch::Tensor rng;
  archive_->read(rank_rng_key(group ? group->rank() : 0), rng);
  set_default_generator_state(rng);
}

void Checkpoint::load_module(torch::nn::Module& module, bool with_rng_state) const {
  torch::serialize::InputArchive model_archive;
  archive_->read("model", model_archive);
  module.load(model_archive);
  if (with_rng_state) restore_rng_state();
}

void Checkpoint::load_optimizer(torch::optim::Optimizer& optimizer) const {
  torch::serialize::InputArchive optimizer_archive;
  archive_->read("optimizer", optimizer_archive);
  load_optimizer_state(optimizer, optimizer_archive, file_.string());
}

MetricSums Checkpoint::epoch_sums() const {
  c10::IValue value;
  archive_->read("trainer/epoch_sums", value);
  try {
    return MetricSums::from_json(Json::parse(value.toStringRef()));
  } catch (const Json::exception& e) {
    throw DataError(fmt::format("{}: trainer/epoch_sums is not readable: {}", file_.string(), e.what()));
  }
}

void Checkpoint::load_callback(Callback& callback) const {
  torch::serialize::InputArchive callback_archive;
  if (!archive_->try_read("callbacks/" + callback.state_key(), callback_archive)) {
    throw DataError(fmt::format("{}: has no state for the \"{}\" callback this run has", file_.string(), callback.state_key()));
  }
  try {
    callback.load(callback_archive);
  } catch (const std::exception& e) {
    throw DataError(fmt::format("{}: the \"{}\" callback's state is not readable: {}", file_.string(), callback.state_key(), e.what()));
  }
}

}  // namespace encore::core
