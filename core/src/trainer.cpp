#include "encore/core/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <mutex>

#include <fmt/format.h>

#include "encore/core/errors.h"
#include "encore/core/files.h"

namespace encore::core {

void MetricSums::add(const std::string& name, double value, double weight) {
  auto& [sum, total] = sums_[name];
  sum += value * weight;
  total += weight;
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
}

void Trainer::add_callback(std::shared_ptr<Callback> callback) { callbacks_.push_back(std::move(callback)); }

void Trainer::add_parameter_group(std::vector<torch::Tensor> parameters, double lr_scale) {
  auto options = optimizer_->defaults().clone();
  const double lr = options->get_lr() * lr_scale;
  options->set_lr(lr);
  parameters_.insert(parameters_.end(), parameters.begin(), parameters.end());
  optimizer_->add_param_group(torch::optim::OptimizerParamGroup(std::move(parameters), std::move(options)));
  base_lrs_.push_back(lr);
}

void Trainer::request_stop(std::string reason) {
  stop_requested_ = true;
  stop_reason_ = std::move(reason);
}

void Trainer::set_train_mode() {
  task_.module().train();
  task_.after_train_mode();
}

void Trainer::train_epoch(const BatchSource& train, MetricSums& sums) {
  const auto order = train.epoch_order(state_.epoch);
  for (; state_.position < batches_per_epoch_; ++state_.position) {
    Batch batch = train.batch(order, state_.position);
    if (device_ != torch::kCPU) {
      batch.inputs = batch.inputs.to(device_);
      if (batch.labels.defined()) batch.labels = batch.labels.to(device_);
    }
    // Dropping the gradients (rather than zeroing them) lets backward write fresh ones in place of a
    // memset plus an accumulate.
    for (auto& group : optimizer_->param_groups()) {
      for (auto& p : group.params()) p.mutable_grad().reset();
    }
    const torch::Tensor loss = task_.training_loss(batch, sums);
    const double value = loss.item<double>();
    if (!std::isfinite(value)) {
      throw NonFiniteError(fmt::format("non-finite training loss ({}) in stage {}, epoch {}, step {} (batch {} of the epoch)",
                                       value, state_.stage, state_.epoch + 1, state_.step + 1, state_.position + 1));
    }
    loss.backward();
    if (config_.grad_clip_norm > 0) torch::nn::utils::clip_grad_norm_(parameters_, config_.grad_clip_norm);
    optimizer_->step();
    ++state_.step;
    sums.add("loss", value, static_cast<double>(batch.size()));
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
    Batch batch = source.batch(order, b);
    if (device_ != torch::kCPU) {
      batch.inputs = batch.inputs.to(device_);
      if (batch.labels.defined()) batch.labels = batch.labels.to(device_);
    }
    const double value = task_.validation_loss(batch, sums).item<double>();
    sums.add("loss", value, static_cast<double>(batch.size()));
  }
  return sums.averages(prefix);
}

Metrics Trainer::fit(const BatchSource& train, const BatchSource* validation) {
  batches_per_epoch_ = train.batches_per_epoch();
  stop_requested_ = false;
  for (auto& callback : callbacks_) callback->on_fit_start(*this);
  Metrics metrics;
  while (state_.epoch < config_.epochs && !stop_requested_) {
    auto& groups = optimizer_->param_groups();
    for (std::size_t g = 0; g < groups.size(); ++g) {
      groups[g].options().set_lr(scheduled_lr(config_.schedule, base_lrs_.at(g), static_cast<int>(state_.epoch), config_.epochs));
    }
    const double lr = groups.front().options().get_lr();
    const auto started = std::chrono::steady_clock::now();
    set_train_mode();
    MetricSums sums;
    train_epoch(train, sums);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    metrics = sums.averages("train/");
    if (validation) {
      for (const auto& [name, value] : evaluate(*validation, "val/")) metrics[name] = value;
    }
    metrics["lr"] = lr;
    metrics["epoch_seconds"] = seconds;
    metrics["train/samples_per_second"] = seconds > 0 ? static_cast<double>(train.size()) / seconds : 0.0;
    ++state_.epoch;
    for (auto& callback : callbacks_) callback->on_epoch_end(*this, metrics);
  }
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
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

}  // namespace

void Trainer::save_checkpoint(const std::string& file) const {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  task_.module().save(model_archive);
  archive.write("model", model_archive);
  torch::serialize::OutputArchive optimizer_archive;
  optimizer_->save(optimizer_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("trainer/stage", c10::IValue(state_.stage));
  archive.write("trainer/epoch", c10::IValue(state_.epoch));
  archive.write("trainer/step", c10::IValue(state_.step));
  archive.write("trainer/position", c10::IValue(state_.position));
  archive.write("rng/cpu", cpu_rng_state());
  for (const auto& callback : callbacks_) {
    if (callback->state_key().empty()) continue;
    torch::serialize::OutputArchive callback_archive;
    callback->save(callback_archive);
    archive.write("callbacks/" + callback->state_key(), callback_archive);
  }
  write_file_atomically(file, [&](const std::filesystem::path& temporary) { archive.save_to(temporary.string()); });
}

void Trainer::load_checkpoint(const std::string& file) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file);
  } catch (const c10::Error& e) {
    throw DataError(fmt::format("{}: not a readable checkpoint: {}", file, e.what_without_backtrace()));
  }
  c10::IValue stage;
  archive.read("trainer/stage", stage);
  if (stage.toStringRef() != state_.stage) {
    throw DataError(fmt::format("{}: checkpoint is of stage \"{}\", expected \"{}\"", file, stage.toStringRef(), state_.stage));
  }
  torch::serialize::InputArchive model_archive;
  archive.read("model", model_archive);
  task_.module().load(model_archive);
  torch::serialize::InputArchive optimizer_archive;
  archive.read("optimizer", optimizer_archive);
  optimizer_->load(optimizer_archive);
  c10::IValue value;
  archive.read("trainer/epoch", value);
  state_.epoch = value.toInt();
  archive.read("trainer/step", value);
  state_.step = value.toInt();
  archive.read("trainer/position", value);
  state_.position = value.toInt();
  torch::Tensor rng;
  archive.read("rng/cpu", rng);
  set_cpu_rng_state(rng);
  for (auto& callback : callbacks_) {
    if (callback->state_key().empty()) continue;
    torch::serialize::InputArchive callback_archive;
    archive.read("callbacks/" + callback->state_key(), callback_archive);
    callback->load(callback_archive);
  }
}

}  // namespace encore::core
