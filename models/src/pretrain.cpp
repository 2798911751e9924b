#include "encore/models/pretrain.h"

#include <torch/torch.h>

#include <optional>

#include <fmt/format.h>

namespace encore::models {

namespace {

/// Pretraining defaults: 10 epochs of batches of 128.
const core::TrainConfig kDefaultStage{10, 128};

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

PretrainConfig parse_pretrain_config(core::JsonReader r, const core::OptimizerRegistry& optimizers) {
  PretrainConfig c;
  c.mode = r.choice("mode", {"greedy", "end_to_end", "greedy_then_end_to_end", "none"}, c.mode);
  c.loss = parse_reconstruction_loss(r.choice("loss", {"mse", "bce"}, reconstruction_loss_name(c.loss)));
  const core::Json empty = core::Json::object();
  if (c.runs_greedy()) {
    auto greedy = r.has("greedy") ? r.object("greedy") : core::JsonReader(empty, r.path_of("greedy"));
    std::vector<core::JsonReader> layers;
    if (greedy.has("layers")) layers = greedy.array("layers");
    c.greedy = core::parse_train_config(greedy, optimizers, kDefaultStage);
    for (auto& layer : layers) {
      c.greedy_layers.push_back(core::parse_train_config(layer, optimizers, c.greedy));
      c.greedy_layer_overrides.push_back(layer.json());
    }
  }
  if (c.runs_end_to_end()) {
    auto e2e = r.has("end_to_end") ? r.object("end_to_end") : core::JsonReader(empty, r.path_of("end_to_end"));
    c.end_to_end = core::parse_train_config(e2e, optimizers, kDefaultStage);
  }
  r.finish();
  return c;
}

core::Json to_json(const PretrainConfig& c) {
  core::Json out{{"mode", c.mode}, {"loss", reconstruction_loss_name(c.loss)}};
  if (c.runs_greedy()) {
    out["greedy"] = core::to_json(c.greedy);
    if (!c.greedy_layer_overrides.empty()) out["greedy"]["layers"] = c.greedy_layer_overrides;
  }
  if (c.runs_end_to_end()) out["end_to_end"] = core::to_json(c.end_to_end);
  return out;
}

void check_pretrain_fits_model(const PretrainConfig& c, AutoencoderModel& model) {
  if (!c.runs_greedy()) return;
  const auto depth = model.greedy_layers().size();
  if (depth == 0) {
    throw core::ConfigError("/pretrain/mode", fmt::format("\"{}\" needs a model with greedy layers; this model trains only \"end_to_end\"", c.mode));
  }
  if (!c.greedy_layers.empty() && c.greedy_layers.size() != depth) {
    throw core::ConfigError("/pretrain/greedy/layers", fmt::format("has {} entries, but the model has {} layers", c.greedy_layers.size(), depth));
  }
}

GreedyLayerTask::GreedyLayerTask(std::shared_ptr<AutoencoderModel> model, int layer, ReconstructionLoss loss)
    : model_(std::move(model)), loss_(loss) {
  const auto layers = model_->greedy_layers();
  TORCH_CHECK(layer >= 0 && layer < static_cast<int>(layers.size()), "layer ", layer, " is not one of the model's ", layers.size(), " greedy layers");
  layer_ = layers[static_cast<std::size_t>(layer)];
  first_layer_ = layer == 0;
}

std::vector<torch::Tensor> GreedyLayerTask::trainable_parameters() { return layer_->parameters(); }

torch::Tensor GreedyLayerTask::layer_loss(const core::Batch& batch, core::MetricSums& metrics, bool code_statistics) {
  // Inner layers reconstruct codes in their activation's range; BCE only fits codes in [0, 1].
  const bool codes_in_unit_range = first_layer_ || layer_->options.activation() == Activation::kSigmoid;
  const auto kind = codes_in_unit_range ? loss_ : ReconstructionLoss::kMse;
  const auto loss = layer_->loss(batch.inputs, kind);
  const double weight = static_cast<double>(batch.size());
  if (code_statistics) add_code_statistics(*layer_, loss.code, weight, metrics);
  metrics.add("reconstruction", loss.reconstruction.item<double>(), weight);
  return loss.total;
}

torch::Tensor GreedyLayerTask::training_loss(const core::Batch& batch, core::MetricSums& metrics) {
  return layer_loss(batch, metrics, false);
}
torch::Tensor GreedyLayerTask::validation_loss(const core::Batch& batch, core::MetricSums& metrics) {
  return layer_loss(batch, metrics, true);
}

EndToEndTask::EndToEndTask(std::shared_ptr<AutoencoderModel> model, ReconstructionLoss loss) : model_(std::move(model)), loss_(loss) {}

torch::Tensor EndToEndTask::training_loss(const core::Batch& batch, core::MetricSums& metrics) {
  const auto loss = reconstruction_loss(loss_, model_->forward(batch.inputs), batch.inputs);
  if (!torch::GradMode::is_enabled()) metrics.add("reconstruction", loss.item<double>(), static_cast<double>(batch.size()));
  return loss;
}

core::Dataset encode_dataset(const Encoder& encoder, const core::BatchSource& source, torch::Device device) {
  torch::NoGradGuard no_grad;
  const auto order = source.indices();
  // Chunks larger than a training batch: without gradients only the product's efficiency matters.
  constexpr std::int64_t kChunk = 1024;
  core::Dataset out;
  // At least one chunk, empty for an empty source: the codes' shape comes from the encoder.
  for (std::int64_t start = 0; start == 0 || start < order.size(0); start += kChunk) {
    const auto rows = order.narrow(0, start, std::min(kChunk, order.size(0) - start));
    const auto codes = encoder(source.rows(rows).inputs.to(device)).to(torch::kCPU);
    // Written into their rows as they come: a list of chunks joined at the end would hold the
    // codes twice at the peak.
    if (start == 0) {
      auto sizes = codes.sizes().vec();
      sizes[0] = order.size(0);
      out.features = torch::empty(sizes, codes.options());
    }
    out.features.narrow(0, start, rows.size(0)).copy_(codes);
  }
  out.labels = source.data().labels.defined() ? source.data().labels.index_select(0, order) : torch::Tensor();
  out.class_names = source.data().class_names;
  return out;
}

core::ResumePlan::Step resume_step(const StageContext& context, const std::string& stage, torch::nn::Module& module) {
  if (!context.resume) return core::ResumePlan::Step::kRun;
  const auto step = context.resume->step_for(stage);
  // The checkpoint's weights first: the stages after it, and a greedy stage's input codes, build on them.
  if (step == core::ResumePlan::Step::kRestoreAndSkip || step == core::ResumePlan::Step::kContinue) {
    // A continued stage's Trainer restores the generator with the rest of its state.
    context.resume->checkpoint().load_module(module, step == core::ResumePlan::Step::kRestoreAndSkip);
  }
  return step;
}

std::map<std::string, core::Metrics> pretrain(const std::shared_ptr<AutoencoderModel>& model, const PretrainConfig& config,
                                              const core::BatchSource& train, const core::BatchSource& validation,
                                              const StageContext& context) {
  TORCH_CHECK(context.optimizers, "pretraining needs an optimizer registry");
  check_pretrain_fits_model(config, *model);
  std::map<std::string, core::Metrics> results;
  auto& module = model->module();
  if (config.runs_greedy()) {
    auto layers = model->greedy_layers();
    for (std::size_t k = 0; k < layers.size(); ++k) {
      const std::string stage = fmt::format("pretrain/layer{}", k);
      const auto step = resume_step(context, stage, module);
      if (step == core::ResumePlan::Step::kSkip || step == core::ResumePlan::Step::kRestoreAndSkip) continue;
      const auto& stage_config = config.greedy_layer(k);
      std::optional<core::BatchSource> stage_train, stage_validation;
      core::Dataset train_codes, validation_codes;
      if (k == 0) {
        // The first layer learns from the data themselves.
        stage_train.emplace(train.data(), train.indices(), train.scaler(), stage_config.batch_size, true, context.seed);
        stage_validation.emplace(validation.data(), validation.indices(), validation.scaler(), validation.batch_size(), false,
                                 context.seed);
      } else {
        // Layer k learns from the codes of the layers below, computed once: they are frozen now.
        const Encoder below = [&](const torch::Tensor& x) {
          auto h = x;
          for (std::size_t i = 0; i < k; ++i) h = layers[i]->encode(h);
          return h;
        };
        const bool was_training = module.is_training();
        module.eval();
        train_codes = encode_dataset(below, train, context.device);
        validation_codes = encode_dataset(below, validation, context.device);
        module.train(was_training);
        const auto identity = core::Scaler::fit(core::Scaling::kNone, train_codes, torch::arange(1));
        stage_train.emplace(train_codes, torch::arange(train_codes.size()), identity, stage_config.batch_size, true, context.seed + k);
        stage_validation.emplace(validation_codes, torch::arange(validation_codes.size()), identity, validation.batch_size(), false,
                                 context.seed);
      }
      GreedyLayerTask task(model, static_cast<int>(k), config.loss);
      core::Trainer trainer(task, stage_config, stage, *context.optimizers, context.device);
      if (context.attach_callbacks) context.attach_callbacks(trainer);
      if (step == core::ResumePlan::Step::kContinue) trainer.load_checkpoint(context.resume->checkpoint());
      results[stage] = trainer.fit(*stage_train, &*stage_validation);
    }
  }
  const auto end_to_end_step = config.runs_end_to_end() ? resume_step(context, "pretrain/end_to_end", module) : core::ResumePlan::Step::kSkip;
  if (end_to_end_step == core::ResumePlan::Step::kRun || end_to_end_step == core::ResumePlan::Step::kContinue) {
    EndToEndTask task(model, config.loss);
    core::BatchSource e2e_train(train.data(), train.indices(), train.scaler(), config.end_to_end.batch_size, true, context.seed + 100);
    core::Trainer trainer(task, config.end_to_end, "pretrain/end_to_end", *context.optimizers, context.device);
    if (context.attach_callbacks) context.attach_callbacks(trainer);
    if (end_to_end_step == core::ResumePlan::Step::kContinue) trainer.load_checkpoint(context.resume->checkpoint());
    results["pretrain/end_to_end"] = trainer.fit(e2e_train, &validation);
  }
  return results;
}

}  // namespace encore::models
