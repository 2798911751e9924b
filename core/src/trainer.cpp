#include "encore/core/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <sstream>

#include <fmt/format.h>

#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "encore/core/ops.h"
#include "encore/core/sealed_file.h"

namespace encore::core {

void MetricSums::add(const std::string& name, double value, double weight) {
  auto& [sum, total] = sums_[name];
  sum += value * weight;
  total += weight;
}

Json MetricSums::to_json() const {
  Json out = Json::object();
  for (const auto& [name, pair] : sums_) out[name] = {pair.first, pair.second};
  return out;
}

MetricSums MetricSums::from_json(const Json& json) {
  // JSON has no NaN or infinity: to_json wrote them as null, and they come back as NaN.
  const auto number = [](const Json& value) { return value.is_null() ? std::numeric_limits<double>::quiet_NaN() : value.get<double>(); };
  MetricSums out;
  for (const auto& [name, pair] : json.items()) out.sums_[name] = {number(pair.at(0)), number(pair.at(1))};
  return out;
}

void MetricSums::merge(const MetricSums& other) {
  for (const auto& [name, pair] : other.sums_) {
    auto& [sum, total] = sums_[name];
    sum += pair.first;
    total += pair.second;
  }
}

Metrics MetricSums::averages(const std::string& prefix) const {
  Metrics out;
  for (const auto& [name, pair] : sums_) out[prefix + name] = pair.second > 0 ? pair.first / pair.second : 0.0;
  return out;
}

std::vector<torch::Tensor> TrainTask::trainable_parameters() {
  std::vector<torch::Tensor> out;
  for (auto& p : module().parameters()) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

TrainConfig parse_train_config(JsonReader r, const OptimizerRegistry& optimizers, const TrainConfig& defaults) {
  TrainConfig c = defaults;
  c.epochs = static_cast<int>(r.get<std::int64_t>("epochs", c.epochs, at_least(std::int64_t{0})));
  c.batch_size = r.get<std::int64_t>("batch_size", c.batch_size, at_least(std::int64_t{1}));
  if (auto o = r.optional_object("optimizer")) {
    c.optimizer = parse_optimizer(*o, optimizers, defaults.optimizer.type.empty() ? "adam" : defaults.optimizer.type);
  } else if (c.optimizer.type.empty()) {
    Json empty = Json::object();
    c.optimizer = parse_optimizer(JsonReader(empty, r.path_of("optimizer")), optimizers);
  }
  if (auto s = r.optional_object("schedule")) c.schedule = parse_schedule(*s);
  c.grad_clip_norm = r.get<double>("grad_clip_norm", c.grad_clip_norm, at_least(0.0));
  if (auto e = r.optional_object("early_stopping")) {
    EarlyStoppingConfig es;
    es.monitor = e->get<std::string>("monitor", es.monitor);
    es.mode = e->choice("mode", {"min", "max"}, es.mode);
    es.patience = static_cast<int>(e->get<std::int64_t>("patience", es.patience, at_least(std::int64_t{1})));
    es.min_delta = e->get<double>("min_delta", es.min_delta, at_least(0.0));
    es.restore_best = e->get<bool>("restore_best", es.restore_best);
    e->finish();
    c.early_stopping = es;
  }
  r.finish();
  return c;
}

Json to_json(const TrainConfig& c) {
  Json out{{"epochs", c.epochs}, {"batch_size", c.batch_size}, {"optimizer", c.optimizer.options},
           {"schedule", to_json(c.schedule)}, {"grad_clip_norm", c.grad_clip_norm}};
  if (c.early_stopping) {
    const auto& e = *c.early_stopping;
    out["early_stopping"] = Json{{"monitor", e.monitor}, {"mode", e.mode}, {"patience", e.patience},
                                 {"min_delta", e.min_delta}, {"restore_best", e.restore_best}};
  } else {
    out["early_stopping"] = nullptr;
  }
  return out;
}

Trainer::Trainer(TrainTask& task, TrainConfig config, std::string stage, const OptimizerRegistry& optimizers, torch::Device device)
    : task_(task), config_(std::move(config)), device_(device) {
  state_.stage = std::move(stage);
  auto groups = task_.parameter_groups();
  groups.erase(std::remove_if(groups.begin(), groups.end(), [](const ParameterGroup& g) { return g.parameters.empty(); }), groups.end());
  TORCH_CHECK(!groups.empty(), "stage ", state_.stage, " has no trainable parameters");
  // The configured learning rate applies at scale 1; each group is scaled from it.
  parameters_ = groups.front().parameters;
  optimizer_ = make_optimizer(config_.optimizer, optimizers, groups.front().parameters);
  auto& first = optimizer_->param_groups().front().options();
  first.set_lr(optimizer_->defaults().get_lr() * groups.front().lr_scale);
  base_lrs_.push_back(first.get_lr());
  for (std::size_t g = 1; g < groups.size(); ++g) add_parameter_group(std::move(groups[g].parameters), groups[g].lr_scale);
  group_ = process_group();
  if (group_) {
    // Every rank starts from rank 0's weights, as DistributedDataParallel does.
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> state;
    for (const auto& p : task_.module().parameters()) state.push_back(p.detach());
    for (const auto& b : task_.module().buffers()) state.push_back(b.detach());
    group_->broadcast(state);
    averager_ = std::make_unique<GradientAverager>(*group_, parameters_);
  }
}

void Trainer::add_callback(std::shared_ptr<Callback> callback) { callbacks_.push_back(std::move(callback)); }

void Trainer::add_parameter_group(std::vector<torch::Tensor> parameters, double lr_scale) {
  auto options = optimizer_->defaults().clone();
  const double lr = options->get_lr() * lr_scale;
  options->set_lr(lr);
  parameters_.insert(parameters_.end(), parameters.begin(), parameters.end());
  optimizer_->add_param_group(torch::optim::OptimizerParamGroup(std::move(parameters), std::move(options)));
  base_lrs_.push_back(lr);
  if (averager_) {
    // The old reducer's hooks go before the new one's come.
    averager_.reset();
    averager_ = std::make_unique<GradientAverager>(*group_, parameters_);
  }
}

void Trainer::request_stop(std::string reason) {
  stop_requested_ = true;
  stop_reason_ = std::move(reason);
}

void Trainer::set_train_mode() {
  task_.module().train();
  task_.after_train_mode();
}

namespace {

// The first parameter (by name) holding a non-finite value, or "".
std::string first_non_finite_parameter(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (const auto& item : module.named_parameters()) {
    if (!torch::isfinite(item.value()).all().item<bool>()) return item.key();
  }
  return "";
}

bool all_finite(const torch::Tensor& t) { return torch::isfinite(t).all().item<bool>(); }

}  // namespace

std::string Trainer::describe_non_finite(const Batch& batch, double loss) {
  // Runs only on the failure path: find the first culprit among inputs and parameters.
  std::string culprit = "the loss itself (inputs and parameters are finite)";
  if (!all_finite(batch.inputs)) {
    culprit = "the input batch";
  } else if (const auto name = first_non_finite_parameter(task_.module()); !name.empty()) {
    culprit = "parameter " + name;
  }
  return fmt::format("non-finite training loss ({}) in stage {}, epoch {}, step {} (batch {} of the epoch): first non-finite tensor: {}",
                     loss, state_.stage, state_.epoch + 1, state_.step + 1, state_.position + 1, culprit);
}

std::string Trainer::first_non_finite_gradient() {
  // Only the gradients this step updates from: a frozen parameter may keep an old one (in a
  // data-parallel run, a view into an earlier stage's all-reduce bucket). Names are looked up only
  // for the message.
  for (const auto& p : parameters_) {
    if (!p.grad().defined() || all_finite(p.grad())) continue;
    for (const auto& item : task_.module().named_parameters()) {
      if (item.value().is_same(p)) return item.key();
    }
    return "an unnamed parameter";
  }
  return "";
}

namespace {

// This process's part of batch `position`: all of it when running alone, else the rank's contiguous
// share of the rows, where that share starts in the batch, and the factor that makes the ranks'
// averaged gradients the mean gradient of the whole batch (shares differ by a row at most).
struct Shard {
  Batch batch;
  std::int64_t first_row = 0;
  double loss_scale = 1.0;
  /// The rank has no row of this batch (a last batch smaller than the number of ranks).
  bool empty = false;
};

Shard shard_of(const BatchSource& source, const torch::Tensor& order, std::int64_t position, const ProcessGroup* group,
               torch::Device device) {
  Shard out;
  if (!group) {
    out.batch = source.batch(order, position);
  } else {
    const auto start = position * source.batch_size();
    TORCH_CHECK(start < source.size(), "batch position ", position, " is past the end of the epoch");
    const auto rows = std::min(source.batch_size(), source.size() - start);
    auto [begin, end] = shard_bounds(rows, group->rank(), group->world_size());
    out.empty = begin == end;
    if (out.empty) {
      // Still one row, weighted zero: the rank must take part in the gradient all-reduce.
      end = begin + 1;
      out.loss_scale = 0.0;
    } else {
      out.loss_scale = static_cast<double>((end - begin) * group->world_size()) / static_cast<double>(rows);
    }
    out.first_row = begin;
    out.batch = source.rows(order.narrow(0, start + begin, end - begin));
  }
  if (device != torch::kCPU) {
    out.batch.inputs = out.batch.inputs.to(device);
    if (out.batch.labels.defined()) out.batch.labels = out.batch.labels.to(device);
  }
  return out;
}

}  // namespace

MetricSums Trainer::across_ranks(const MetricSums& sums) const {
  if (!group_) return sums;
  MetricSums total;
  for (const auto& text : group_->all_gather(sums.to_json().dump())) total.merge(MetricSums::from_json(Json::parse(text)));
  return total;
}

void Trainer::backward_across_ranks(const torch::Tensor& loss) {
  if (!averager_) {
    loss.backward();
    return;
  }
  averager_->begin_step();
  try {
    loss.backward();
  } catch (const std::exception& e) {
    // The all-reduces start inside backward: a failure there is most often a lost rank.
    group_->fail(e.what());
  }
  averager_->finish_step();
}

void Trainer::train_epoch(const BatchSource& train) {
  const auto order = train.epoch_order(state_.epoch);
  MetricSums discarded;
  while (state_.position < batches_per_epoch_) {
    Shard shard = shard_of(train, order, state_.position, group_.get(), device_);
    const Batch& batch = shard.batch;
    MetricSums& sums = shard.empty ? discarded : epoch_sums_;
    // Dropping the gradients (rather than zeroing them) lets backward write fresh ones in place of a
    // memset plus an accumulate.
    for (auto& group : optimizer_->param_groups()) {
      for (auto& p : group.params()) p.mutable_grad().reset();
    }
    torch::Tensor loss;
    {
      BatchRowOffset row_offset(shard.first_row);
      loss = task_.training_loss(batch, sums);
    }
    const double value = loss.item<double>();
    if (shard.loss_scale != 1.0) loss = loss * shard.loss_scale;
    bool skip = false;
    if (!std::isfinite(value)) {
      if (on_non_finite_ == NonFinitePolicy::kError) throw NonFiniteError(describe_non_finite(batch, value));
      skip = true;
      // The other ranks' all-reduce waits for this rank's gradients: sending non-finite ones makes
      // every rank see the step as non-finite and skip it alike.
      if (averager_) backward_across_ranks(loss * std::numeric_limits<double>::quiet_NaN());
    } else {
      backward_across_ranks(loss);
      if (on_non_finite_ == NonFinitePolicy::kSkipStep) {
        // Checked before the update so that a skipped step leaves every weight as it was.
        skip = !first_non_finite_gradient().empty();
      }
    }
    if (!skip) {
      if (config_.grad_clip_norm > 0) torch::nn::utils::clip_grad_norm_(parameters_, config_.grad_clip_norm);
      optimizer_->step();
      sums.add("loss", value, static_cast<double>(batch.size()));
    }
    // Only the skip policy can skip; its metric is the fraction of steps skipped (counted by rank 0
    // alone: every rank skips alike).
    if (on_non_finite_ == NonFinitePolicy::kSkipStep && is_main_process()) epoch_sums_.add("skipped_steps", skip ? 1.0 : 0.0, 1.0);
    ++state_.step;
    ++state_.position;
    for (auto& callback : callbacks_) callback->on_batch_end(*this, value, batch.size());
  }
  state_.position = 0;
}

Metrics Trainer::evaluate(const BatchSource& source, const std::string& prefix) {
  torch::NoGradGuard no_grad;
  task_.module().eval();
  MetricSums sums;
  const auto order = source.epoch_order(0);
  for (std::int64_t b = 0; b < source.batches_per_epoch(); ++b) {
    const Shard shard = shard_of(source, order, b, group_.get(), device_);
    if (shard.empty) continue;
    const double value = task_.validation_loss(shard.batch, sums).item<double>();
    sums.add("loss", value, static_cast<double>(shard.batch.size()));
  }
  return across_ranks(sums).averages(prefix);
}

Metrics Trainer::fit(const BatchSource& train, const BatchSource* validation) {
  batches_per_epoch_ = train.batches_per_epoch();
  stop_requested_ = false;
  if (group_) {
    // Ranks fed different data or state would pair up the wrong collectives: stop them here, named.
    std::int64_t parameters = 0;
    for (const auto& p : parameters_) parameters += p.numel();
    const auto mine = Json{{"stage", state_.stage}, {"epoch", state_.epoch}, {"step", state_.step}, {"examples", train.size()},
                           {"batch_size", train.batch_size()}, {"trained_parameters", parameters}}.dump();
    const auto all = group_->all_gather(mine);
    for (std::size_t r = 1; r < all.size(); ++r) {
      if (all[r] != all[0]) throw DistributedError(fmt::format("ranks disagree on what to train: rank 0 has {}, rank {} has {}", all[0], r, all[r]));
    }
  }
  for (auto& callback : callbacks_) callback->on_fit_start(*this);
  Metrics metrics;
  while (!state_.finished && state_.epoch < config_.epochs && !stop_requested_) {
    auto& groups = optimizer_->param_groups();
    for (std::size_t g = 0; g < groups.size(); ++g) {
      groups[g].options().set_lr(scheduled_lr(config_.schedule, base_lrs_.at(g), static_cast<int>(state_.epoch), config_.epochs));
    }
    const double lr = groups.front().options().get_lr();
    const auto started = std::chrono::steady_clock::now();
    set_train_mode();
    // A run resumed mid-epoch keeps the sums of the batches before the checkpoint.
    if (state_.position == 0) epoch_sums_ = MetricSums();
    const auto first_position = state_.position;
    train_epoch(train);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    metrics = across_ranks(epoch_sums_).averages("train/");
    if (validation) {
      for (const auto& [name, value] : evaluate(*validation, "val/")) metrics[name] = value;
    }
    metrics["lr"] = lr;
    metrics["epoch_seconds"] = seconds;
    const auto trained = std::min(train.size(), (batches_per_epoch_ - first_position) * train.batch_size());
    metrics["train/samples_per_second"] = seconds > 0 ? static_cast<double>(trained) / seconds : 0.0;
    epoch_sums_ = MetricSums();
    ++state_.epoch;
    for (auto& callback : callbacks_) callback->on_epoch_end(*this, metrics);
  }
  state_.finished = true;
  for (auto& callback : callbacks_) callback->on_fit_end(*this);
  return metrics;
}

namespace {

torch::Tensor cpu_rng_state() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_cpu_rng_state(const torch::Tensor& state) {
  // ENCORE_FAULT_SKIP_RNG_RESTORE exists for the resume test to prove it detects a lost RNG state.
  if (std::getenv("ENCORE_FAULT_SKIP_RNG_RESTORE")) return;
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

}  // namespace

namespace {

// Optimizer state by group and parameter position. LibTorch's own Optimizer::save keys it by tensor
// addresses, which differ from process to process: two identical runs would write different bytes.
std::string optimizer_key(std::size_t group, std::size_t index, const char* field) {
  return fmt::format("optimizer/{}/{}/{}", group, index, field);
}

template <class State>
void save_adam_state(const State& s, torch::serialize::OutputArchive& archive, std::size_t g, std::size_t i) {
  archive.write(optimizer_key(g, i, "step"), c10::IValue(s.step()));
  archive.write(optimizer_key(g, i, "exp_avg"), s.exp_avg(), true);
  archive.write(optimizer_key(g, i, "exp_avg_sq"), s.exp_avg_sq(), true);
  if (s.max_exp_avg_sq().defined()) archive.write(optimizer_key(g, i, "max_exp_avg_sq"), s.max_exp_avg_sq(), true);
}

template <class State>
std::unique_ptr<State> load_adam_state(torch::serialize::InputArchive& archive, std::size_t g, std::size_t i) {
  auto s = std::make_unique<State>();
  c10::IValue step;
  archive.read(optimizer_key(g, i, "step"), step);
  s->step(step.toInt());
  torch::Tensor t;
  archive.read(optimizer_key(g, i, "exp_avg"), t, true);
  s->exp_avg(t.clone());
  archive.read(optimizer_key(g, i, "exp_avg_sq"), t, true);
  s->exp_avg_sq(t.clone());
  if (archive.try_read(optimizer_key(g, i, "max_exp_avg_sq"), t, true)) s->max_exp_avg_sq(t.clone());
  return s;
}

}  // namespace

void save_optimizer_state(const torch::optim::Optimizer& optimizer, torch::serialize::OutputArchive& archive) {
  const auto& groups = optimizer.param_groups();
  archive.write("optimizer/groups", c10::IValue(static_cast<std::int64_t>(groups.size())));
  for (std::size_t g = 0; g < groups.size(); ++g) {
    archive.write(fmt::format("optimizer/{}/lr", g), c10::IValue(groups[g].options().get_lr()));
    const auto& params = groups[g].params();
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto found = optimizer.state().find(c10::guts::to_string(params[i].unsafeGetTensorImpl()));
      if (found == optimizer.state().end()) continue;
      const auto* state = found->second.get();
      if (const auto* adam = dynamic_cast<const torch::optim::AdamParamState*>(state)) {
        archive.write(optimizer_key(g, i, "kind"), c10::IValue(std::string("adam")));
        save_adam_state(*adam, archive, g, i);
      } else if (const auto* adamw = dynamic_cast<const torch::optim::AdamWParamState*>(state)) {
        archive.write(optimizer_key(g, i, "kind"), c10::IValue(std::string("adamw")));
        save_adam_state(*adamw, archive, g, i);
      } else if (const auto* sgd = dynamic_cast<const torch::optim::SGDParamState*>(state)) {
        archive.write(optimizer_key(g, i, "kind"), c10::IValue(std::string("sgd")));
        if (sgd->momentum_buffer().defined()) archive.write(optimizer_key(g, i, "momentum_buffer"), sgd->momentum_buffer(), true);
      } else {
        TORCH_CHECK(false, "cannot checkpoint the state of this optimizer type");
      }
    }
  }
}

void load_optimizer_state(torch::optim::Optimizer& optimizer, torch::serialize::InputArchive& archive, const std::string& file) {
  auto& groups = optimizer.param_groups();
  c10::IValue value;
  archive.read("optimizer/groups", value);
  if (value.toInt() != static_cast<std::int64_t>(groups.size())) {
    throw DataError(fmt::format("{}: the checkpoint's optimizer has {} parameter groups, this stage's has {}", file, value.toInt(),
                                groups.size()));
  }
  for (std::size_t g = 0; g < groups.size(); ++g) {
    archive.read(fmt::format("optimizer/{}/lr", g), value);
    groups[g].options().set_lr(value.toDouble());
    const auto& params = groups[g].params();
    for (std::size_t i = 0; i < params.size(); ++i) {
      c10::IValue kind;
      if (!archive.try_read(optimizer_key(g, i, "kind"), kind)) continue;
      const auto key = c10::guts::to_string(params[i].unsafeGetTensorImpl());
      if (kind.toStringRef() == "adam") {
        optimizer.state()[key] = load_adam_state<torch::optim::AdamParamState>(archive, g, i);
      } else if (kind.toStringRef() == "adamw") {
        optimizer.state()[key] = load_adam_state<torch::optim::AdamWParamState>(archive, g, i);
      } else {
        auto s = std::make_unique<torch::optim::SGDParamState>();
        torch::Tensor buffer;
        if (archive.try_read(optimizer_key(g, i, "momentum_buffer"), buffer, true)) s->momentum_buffer(buffer.clone());
        optimizer.state()[key] = std::move(s);
      }
    }
  }
}

namespace {

std::string rank_rng_key(int rank) { return rank == 0 ? "rng/cpu" : fmt::format("rng/cpu/rank{}", rank); }

}  // namespace

void Trainer::save_checkpoint(const std::string& file) {
  if (const auto name = first_non_finite_parameter(task_.module()); !name.empty()) {
    throw NonFiniteError(fmt::format("parameter {} holds a non-finite value in stage {}, epoch {}, step {}; no checkpoint written",
                                     name, state_.stage, state_.epoch + 1, state_.step));
  }
  std::vector<torch::Tensor> rng_states{cpu_rng_state()};
  if (group_) {
    // Rank 0 writes every rank's generator state and the sums of the part-done epoch of all ranks;
    // from here on the others count from zero, so the epoch's total stays the sum over ranks.
    const auto rng = rng_states.front();
    const std::vector<std::uint8_t> rng_bytes(rng.data_ptr<std::uint8_t>(), rng.data_ptr<std::uint8_t>() + rng.numel());
    const auto gathered = group_->all_gather(Json{{"sums", epoch_sums_.to_json()}, {"rng", rng_bytes}}.dump());
    if (group_->rank() != 0) {
      epoch_sums_ = MetricSums();
      return;
    }
    epoch_sums_ = MetricSums();
    for (std::size_t r = 0; r < gathered.size(); ++r) {
      const auto part = Json::parse(gathered[r]);
      epoch_sums_.merge(MetricSums::from_json(part.at("sums")));
      if (r > 0) rng_states.push_back(torch::tensor(part.at("rng").get<std::vector<std::uint8_t>>(), torch::kUInt8));
    }
  }
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  task_.module().save(model_archive);
  archive.write("model", model_archive);
  save_optimizer_state(*optimizer_, archive);
  archive.write("trainer/stage", c10::IValue(state_.stage));
  archive.write("trainer/epoch", c10::IValue(state_.epoch));
  archive.write("trainer/step", c10::IValue(state_.step));
  archive.write("trainer/position", c10::IValue(state_.position));
  archive.write("trainer/finished", c10::IValue(state_.finished));
  archive.write("trainer/epoch_sums", c10::IValue(epoch_sums_.to_json().dump()));
  archive.write("trainer/world_size", c10::IValue(static_cast<std::int64_t>(rng_states.size())));
  for (std::size_t r = 0; r < rng_states.size(); ++r) archive.write(rank_rng_key(static_cast<int>(r)), rng_states[r]);
  for (const auto& callback : callbacks_) {
    if (callback->state_key().empty()) continue;
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
  auto& archive = *archive_;
  auto& out = state_;
  c10::IValue value;
  try {
    archive.read("trainer/stage", value);
    out.stage = value.toStringRef();
    archive.read("trainer/epoch", value);
    out.epoch = value.toInt();
    archive.read("trainer/step", value);
    out.step = value.toInt();
    archive.read("trainer/position", value);
    out.position = value.toInt();
    archive.read("trainer/finished", value);
    out.finished = value.toBool();
  } catch (const c10::Error& e) {
    throw DataError(fmt::format("{}: not a training checkpoint: {}", name, e.what_without_backtrace()));
  }
  if (archive.try_read("trainer/world_size", value)) world_size_ = value.toInt();
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
  set_cpu_rng_state(rng);
}

void Checkpoint::load_module(torch::nn::Module& module, bool with_rng_state) const {
  torch::serialize::InputArchive model_archive;
  archive_->read("model", model_archive);
  module.load(model_archive);
  if (with_rng_state) restore_rng_state();
}

void Checkpoint::load_callback(Callback& callback) const {
  torch::serialize::InputArchive callback_archive;
  if (archive_->try_read("callbacks/" + callback.state_key(), callback_archive)) callback.load(callback_archive);
}

ResumePlan::ResumePlan(Checkpoint checkpoint) : checkpoint_(std::move(checkpoint)) {}

ResumePlan::Step ResumePlan::step_for(const std::string& stage) {
  if (reached_) return Step::kRun;
  if (stage != summary().stage) return Step::kSkip;
  reached_ = true;
  return summary().finished ? Step::kRestoreAndSkip : Step::kContinue;
}

void Trainer::load_checkpoint(const std::string& file) { load_checkpoint(Checkpoint(file)); }

void Trainer::load_checkpoint(const Checkpoint& checkpoint) {
  const auto file = checkpoint.file().string();
  const auto& saved = checkpoint.state();
  if (saved.stage != state_.stage) {
    throw DataError(fmt::format("{}: checkpoint is of stage \"{}\", expected \"{}\"", file, saved.stage, state_.stage));
  }
  checkpoint.load_module(task_.module(), /*with_rng_state=*/true);
  auto& archive = *checkpoint.archive_;
  load_optimizer_state(*optimizer_, archive, file);
  state_ = saved;
  c10::IValue value;
  archive.read("trainer/epoch_sums", value);
  // The sums of all ranks were gathered into rank 0's (save_checkpoint).
  epoch_sums_ = is_main_process() ? MetricSums::from_json(parse_json_text(value.toStringRef(), file + ":trainer/epoch_sums")) : MetricSums();
  for (auto& callback : callbacks_) {
    if (callback->state_key().empty()) continue;
    torch::serialize::InputArchive callback_archive;
    archive.read("callbacks/" + callback->state_key(), callback_archive);
    callback->load(callback_archive);
  }
}

}  // namespace encore::core
