#include "encore/core/trainer.h"

#include <torch/torch.h>

#include <cmath>
#include <csignal>
#include <limits>
#include <optional>

#include <fmt/format.h>

#include "encore/core/checkpoint.h"
#include "encore/core/errors.h"
#include "encore/core/libtorch.h"
#include "encore/core/ops.h"
#include "encore/core/random.h"
#include "encore/core/runtime.h"

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

void check_train_config(const TrainConfig& config) {
  check_options(config);
  check_options(config.schedule);
  if (config.early_stopping) check_options(*config.early_stopping);
  if (!config.optimizer) throw OptionError("optimizer", "is missing (null)");
}

Trainer::Trainer(TrainTask& task, TrainConfig config, std::string stage, torch::Device device)
    : task_(task), config_(std::move(config)), device_(device) {
  check_train_config(config_);
  state_.stage = std::move(stage);
  auto groups = task_.parameter_groups();
  groups.erase(std::remove_if(groups.begin(), groups.end(), [](const ParameterGroup& g) { return g.parameters.empty(); }), groups.end());
  if (groups.empty()) throw std::invalid_argument("stage " + state_.stage + " has no trainable parameters");
  // The configured learning rate applies at scale 1; each group is scaled from it.
  parameters_ = groups.front().parameters;
  optimizer_ = config_.optimizer->build(groups.front().parameters);
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
// averaged gradients the mean gradient of the whole batch (shares differ by a row at most). A
// semi-supervised source's labelled rows of the step (`step`) are whole on every rank (they are few;
// the gradients of their loss are then each rank's alike), beside the rank's share of the unlabelled ones.
struct Shard {
  Batch batch;
  std::int64_t first_row = 0;
  double loss_scale = 1.0;
  /// The rank has no row of this batch (a last batch smaller than the number of ranks).
  bool empty = false;
};

Shard shard_of(const BatchSource& source, const torch::Tensor& order, std::int64_t position, std::int64_t step, const ProcessGroup* group,
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
  if (source.semi_supervised()) {
    Batch labelled = source.labelled_rows(step);
    labelled.unlabelled = std::move(out.batch.inputs);
    labelled.unlabelled_scale = out.loss_scale;
    out.batch = std::move(labelled);
    out.loss_scale = 1.0;
    out.empty = false;
  }
  out.batch = to_device(std::move(out.batch), device);
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
    if (const int signal_number = interrupt_signal()) {
      throw Interrupted(signal_number, fmt::format("{} in stage {}, epoch {}, step {}", signal_number == SIGINT ? "SIGINT" : "SIGTERM",
                                                   state_.stage, state_.epoch + 1, state_.step));
    }
    Shard shard = shard_of(train, order, state_.position, state_.epoch * batches_per_epoch_ + state_.position, group_.get(), device_);
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
      std::optional<libtorch::AutocastGuard> autocast;
      if (mixed_precision_ == MixedPrecision::kBf16) autocast.emplace(device_.type(), torch::kBFloat16);
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
    const Shard shard = shard_of(source, order, b, b, group_.get(), device_);
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
    const auto mine = Json{
        {"stage", state_.stage},
        {"epoch", state_.epoch},
        {"step", state_.step},
        {"examples", train.size()},
        {"batch_size", train.batch_size()},
        {"trained_parameters",
         parameters}}.dump();
    const auto all = group_->all_gather(mine);
    for (std::size_t r = 1; r < all.size(); ++r) {
      if (all[r] != all[0])
        throw DistributedError(fmt::format("ranks disagree on what to train: rank 0 has {}, rank {} has {}", all[0], r, all[r]));
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

void Trainer::save_checkpoint(const std::string& file) {
  if (const auto name = first_non_finite_parameter(task_.module()); !name.empty()) {
    throw NonFiniteError(fmt::format("parameter {} holds a non-finite value in stage {}, epoch {}, step {}; no checkpoint written", name,
                                     state_.stage, state_.epoch + 1, state_.step));
  }
  std::vector<torch::Tensor> rng_states{default_generator_state()};
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
  CheckpointContents contents;
  contents.module = &task_.module();
  contents.optimizer = optimizer_.get();
  contents.state = state_;
  contents.epoch_sums = epoch_sums_.to_json();
  contents.rng_states = std::move(rng_states);
  for (const auto& callback : callbacks_) {
    if (!callback->state_key().empty()) contents.callbacks.push_back(callback.get());
  }
  write_checkpoint(file, contents);
}

void Trainer::load_checkpoint(const std::string& file) { load_checkpoint(Checkpoint(file)); }

void Trainer::load_checkpoint(const Checkpoint& checkpoint) {
  const auto& saved = checkpoint.state();
  if (saved.stage != state_.stage) {
    throw DataError(
        fmt::format("{}: checkpoint is of stage \"{}\", expected \"{}\"", checkpoint.file().string(), saved.stage, state_.stage));
  }
  checkpoint.load_module(task_.module(), /*with_rng_state=*/true);
  checkpoint.load_optimizer(*optimizer_);
  state_ = saved;
  // The sums of all ranks were gathered into rank 0's (save_checkpoint).
  epoch_sums_ = is_main_process() ? checkpoint.epoch_sums() : MetricSums();
  for (auto& callback : callbacks_) {
    if (!callback->state_key().empty()) checkpoint.load_callback(*callback);
  }
}

}  // namespace encore::core
