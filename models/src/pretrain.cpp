#include "encore/models/pretrain.h"

#include <torch/torch.h>

#include <fmt/format.h>

namespace encore::models {

namespace {

core::TrainConfig default_stage_config() {
  core::TrainConfig c;
  c.epochs = 10;
  c.batch_size = 128;
  return c;
}

// Per-batch code statistics: mean activation, and the fractions of units that are dead (never
// active in the batch) or saturated (sigmoid/tanh stuck near the top on average).
void add_code_statistics(const AutoencoderLayerImpl& layer, const torch::Tensor& code, double weight, core::MetricSums& metrics) {
  torch::NoGradGuard no_grad;
  const auto unit_mean = code.mean(0);
  const auto unit_peak = code.abs().amax(0);
  metrics.add("mean_activation", unit_mean.mean().item<double>(), weight);
  metrics.add("dead_fraction", (unit_peak < 1e-6).to(torch::kFloat32).mean().item<double>(), weight);
  if (layer.options.activation() == Activation::kSigmoid || layer.options.activation() == Activation::kTanh) {
    metrics.add("saturated_fraction", (unit_mean.abs() > 0.99).to(torch::kFloat32).mean().item<double>(), weight);
  }
}

}  // namespace

PretrainConfig parse_pretrain_config(core::JsonReader r, const core::OptimizerRegistry& optimizers, int depth) {
  PretrainConfig c;
  c.mode = r.choice("mode", {"greedy", "end_to_end", "greedy_then_end_to_end"}, c.mode);
  c.loss = parse_reconstruction_loss(r.choice("loss", {"mse", "bce"}, reconstruction_loss_name(c.loss)));
  const core::Json empty = core::Json::object();
  if (c.runs_greedy()) {
    auto greedy = r.has("greedy") ? r.object("greedy") : core::JsonReader(empty, r.path_of("greedy"));
    std::vector<core::JsonReader> layers;
    if (greedy.has("layers")) {
      layers = greedy.array("layers");
      if (static_cast<int>(layers.size()) != depth) {
        greedy.fail("layers", fmt::format("has {} entries, but the model has {} layers", layers.size(), depth));
      }
    }
    c.greedy = core::parse_train_config(greedy, optimizers, default_stage_config());
    for (int k = 0; k < depth; ++k) {
      if (layers.empty()) {
        c.greedy_layers.push_back(c.greedy);
        c.greedy_layer_overrides.push_back(core::Json::object());
      } else {
        c.greedy_layers.push_back(core::parse_train_config(layers[k], optimizers, c.greedy));
        c.greedy_layer_overrides.push_back(layers[k].json());
      }
    }
  }
  if (c.runs_end_to_end()) {
    auto e2e = r.has("end_to_end") ? r.object("end_to_end") : core::JsonReader(empty, r.path_of("end_to_end"));
    c.end_to_end = core::parse_train_config(e2e, optimizers, default_stage_config());
  }
  r.finish();
  return c;
}

core::Json to_json(const PretrainConfig& c) {
  core::Json out{{"mode", c.mode}, {"loss", reconstruction_loss_name(c.loss)}};
  if (c.runs_greedy()) {
    out["greedy"] = core::to_json(c.greedy);
    const bool any_override = std::any_of(c.greedy_layer_overrides.begin(), c.greedy_layer_overrides.end(),
                                          [](const core::Json& j) { return !j.empty(); });
    if (any_override) out["greedy"]["layers"] = c.greedy_layer_overrides;
  }
  if (c.runs_end_to_end()) out["end_to_end"] = core::to_json(c.end_to_end);
  return out;
}

GreedyLayerTask::GreedyLayerTask(StackedAutoencoder stack, int layer, ReconstructionLoss loss)
    : stack_(std::move(stack)), layer_(layer), loss_(loss) {
  TORCH_CHECK(layer_ >= 0 && layer_ < stack_->depth(), "layer ", layer_, " is not in a stack of ", stack_->depth());
}

std::vector<torch::Tensor> GreedyLayerTask::trainable_parameters() { return stack_->layer(layer_)->parameters(); }

torch::Tensor GreedyLayerTask::layer_loss(const core::Batch& batch, core::MetricSums& metrics) {
  auto& layer = *stack_->layer(layer_);
  // Inner layers reconstruct codes in their activation's range; BCE only fits codes in [0, 1].
  const auto kind = layer_ == 0 || layer.options.activation() == Activation::kSigmoid ? loss_ : ReconstructionLoss::kMse;
  const auto loss = layer.loss(batch.inputs, kind);
  const double weight = static_cast<double>(batch.size());
  add_code_statistics(layer, loss.code, weight, metrics);
  metrics.add("reconstruction", loss.reconstruction.item<double>(), weight);
  return loss.total;
}

torch::Tensor GreedyLayerTask::training_loss(const core::Batch& batch, core::MetricSums& metrics) { return layer_loss(batch, metrics); }
torch::Tensor GreedyLayerTask::validation_loss(const core::Batch& batch, core::MetricSums& metrics) { return layer_loss(batch, metrics); }

EndToEndTask::EndToEndTask(StackedAutoencoder stack, ReconstructionLoss loss) : stack_(std::move(stack)), loss_(loss) {}

torch::Tensor EndToEndTask::training_loss(const core::Batch& batch, core::MetricSums& metrics) {
  const auto loss = reconstruction_loss(loss_, stack_->forward(batch.inputs), batch.inputs);
  if (!torch::GradMode::is_enabled()) metrics.add("reconstruction", loss.item<double>(), static_cast<double>(batch.size()));
  return loss;
}

core::Dataset encode_dataset(StackedAutoencoder& stack, const core::BatchSource& source, int depth) {
  torch::NoGradGuard no_grad;
  const bool was_training = stack->is_training();
  stack->eval();
  const auto order = source.indices();
  std::vector<torch::Tensor> codes;
  for (std::int64_t b = 0; b < source.batches_per_epoch(); ++b) {
    const auto batch = source.batch(order, b);
    codes.push_back(stack->encode(batch.inputs.to(stack->layer(0)->encoder_weight.device()), depth).to(torch::kCPU));
  }
  stack->train(was_training);
  core::Dataset out;
  out.features = torch::cat(codes);
  out.labels = source.data().labels.defined() ? source.data().labels.index_select(0, order) : torch::Tensor();
  out.class_names = source.data().class_names;
  return out;
}

std::map<std::string, core::Metrics> pretrain(StackedAutoencoder& stack, const PretrainConfig& config,
                                              const core::BatchSource& train, const core::BatchSource& validation,
                                              const PretrainContext& context) {
  TORCH_CHECK(context.optimizers, "pretraining needs an optimizer registry");
  std::map<std::string, core::Metrics> results;
  if (config.runs_greedy()) {
    for (int k = 0; k < stack->depth(); ++k) {
      const auto& stage_config = config.greedy_layers.at(static_cast<std::size_t>(k));
      // Layer k learns from the codes of the layers below, computed once: they are frozen now.
      core::Dataset train_codes, validation_codes;
      const core::BatchSource* train_source = &train;
      const core::BatchSource* validation_source = &validation;
      std::optional<core::BatchSource> coded_train, coded_validation;
      if (k > 0) {
        train_codes = encode_dataset(stack, train, k);
        validation_codes = encode_dataset(stack, validation, k);
        const auto identity = core::Scaler::fit(core::Scaling::kNone, train_codes, torch::arange(1));
        coded_train.emplace(train_codes, torch::arange(train_codes.size()), identity, stage_config.batch_size, true, context.seed + k);
        coded_validation.emplace(validation_codes, torch::arange(validation_codes.size()), identity, stage_config.batch_size, false, context.seed);
        train_source = &*coded_train;
        validation_source = &*coded_validation;
      } else {
        coded_train.emplace(train.data(), train.indices(), train.scaler(), stage_config.batch_size, true, context.seed);
        train_source = &*coded_train;
      }
      GreedyLayerTask task(stack, k, config.loss);
      const std::string stage = fmt::format("pretrain/layer{}", k);
      core::Trainer trainer(task, stage_config, stage, *context.optimizers, context.device);
      if (context.attach_callbacks) context.attach_callbacks(trainer);
      results[stage] = trainer.fit(*train_source, validation_source);
    }
  }
  if (config.runs_end_to_end()) {
    EndToEndTask task(stack, config.loss);
    core::BatchSource e2e_train(train.data(), train.indices(), train.scaler(), config.end_to_end.batch_size, true, context.seed + 100);
    core::Trainer trainer(task, config.end_to_end, "pretrain/end_to_end", *context.optimizers, context.device);
    if (context.attach_callbacks) context.attach_callbacks(trainer);
    results["pretrain/end_to_end"] = trainer.fit(e2e_train, &validation);
  }
  return results;
}

}  // namespace encore::models
