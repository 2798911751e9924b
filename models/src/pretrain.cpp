#include "encore/models/pretrain.h"

#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <optional>

#include "encore/core/eval_mode.h"
#include "encore/core/random.h"

#include <fmt/format.h>

namespace encore::models {

namespace {

/// Pretraining defaults: 10 epochs of batches of 128.
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
  const auto& losses = reconstruction_loss_choices();
  c.loss = losses.value_of(r.choice("loss", losses.names(), losses.name_of(c.loss)));
  // Both sections are read (and written back) whatever the mode, so that one --set of the mode
  // switches between them; the mode says which run.
  const core::Json empty = core::Json::object();
  auto greedy = r.has("greedy") ? r.object("greedy") : core::JsonReader(empty, r.path_of("greedy"));
  std::vector<core::JsonReader> layers;
  if (greedy.has("layers")) layers = greedy.array("layers");
  c.greedy = core::parse_train_config(greedy, optimizers, c.greedy);
  for (auto& layer : layers) {
    c.greedy_layers.push_back(core::parse_train_config(layer, optimizers, c.greedy));
    c.greedy_layer_overrides.push_back(layer.json());
  }
  auto e2e = r.has("end_to_end") ? r.object("end_to_end") : core::JsonReader(empty, r.path_of("end_to_end"));
  c.end_to_end = core::parse_train_config(e2e, optimizers, c.end_to_end);
  r.finish();
  return c;
}

core::Json to_json(const PretrainConfig& c, const core::OptimizerRegistry& optimizers) {
  core::Json out{{"mode", c.mode}, {"loss", reconstruction_loss_name(c.loss)}, {"greedy", core::to_json(c.greedy, optimizers)}};
  if (!c.greedy_layer_overrides.empty()) out["greedy"]["layers"] = c.greedy_layer_overrides;
  out["end_to_end"] = core::to_json(c.end_to_end, optimizers);
  return out;
}

void check_pretrain_fits_model(const PretrainConfig& c, AutoencoderModel& model) {
  if (c.runs() && !model.pretrains()) {
    throw core::ConfigError("/pretrain/mode", fmt::format("\"{}\": this model learns from rows without labels in semi-supervised "
                                                          "fine-tuning phases (/finetune/phases/N/semi_supervised), with every "
                                                          "level's denoising cost; set it to \"none\"",
                                                          c.mode));
  }
  if (!c.runs_greedy()) return;
  const auto depth = greedy_depth(model);
  if (depth == 0) {
    throw core::ConfigError("/pretrain/mode", fmt::format("\"{}\" needs a model with greedy layers or blocks; this model trains only "
                                                          "\"end_to_end\"",
                                                          c.mode));
  }
  if (!c.greedy_layers.empty() && c.greedy_layers.size() != depth) {
    throw core::ConfigError("/pretrain/greedy/layers", fmt::format("has {} entries, but the model has {} greedy {}", c.greedy_layers.size(),
                                                                   depth, model.greedy_layers().empty() ? "blocks" : "layers"));
  }
}

std::size_t greedy_depth(AutoencoderModel& model) {
  const auto layers = model.greedy_layers().size();
  return layers > 0 ? layers : static_cast<std::size_t>(model.greedy_blocks());
}

ReconstructionLoss greedy_layer_loss(const AutoencoderLayerImpl& layer, bool first_layer, ReconstructionLoss configured) {
  // Inner layers reconstruct codes in their activation's range; BCE only fits codes in [0, 1].
  const bool codes_in_unit_range = first_layer || layer.options.activation() == Activation::kSigmoid;
  return codes_in_unit_range ? configured : ReconstructionLoss::kMse;
}

torch::Tensor layerwise_denoising_cost(std::vector<AutoencoderLayer> layers, const torch::Tensor& x, const std::vector<double>& weights,
                                       ReconstructionLoss loss) {
  TORCH_CHECK(weights.size() == layers.size(), "layerwise_denoising_cost: ", weights.size(), " weights for ", layers.size(), " layers");
  return weighted_level_costs(
      weights, x,
      [&](std::size_t k, const torch::Tensor& codes) { return layers[k]->loss(codes, greedy_layer_loss(*layers[k], k == 0, loss)).total; },
      [&](std::size_t k, const torch::Tensor& codes) { return layers[k]->encode(codes); });
}

torch::Tensor weighted_level_costs(const std::vector<double>& weights, const torch::Tensor& x,
                                   const std::function<torch::Tensor(std::size_t, const torch::Tensor&)>& cost,
                                   const std::function<torch::Tensor(std::size_t, const torch::Tensor&)>& next) {
  const auto last = std::find_if(weights.rbegin(), weights.rend(), [](double w) { return w > 0; });
  TORCH_CHECK(last != weights.rend(), "weighted_level_costs: every level's weight is 0");
  const auto used = static_cast<std::size_t>(weights.rend() - last);
  torch::Tensor total;
  torch::Tensor input = x;
  for (std::size_t k = 0; k < used; ++k) {
    if (weights[k] > 0) {
      const auto term = weights[k] * cost(k, input);
      total = total.defined() ? total + term : term;
    }
    if (k + 1 < used) input = next(k, input);
  }
  return total;
}

GreedyLayerTask::GreedyLayerTask(std::shared_ptr<AutoencoderModel> model, int layer, ReconstructionLoss loss)
    : model_(std::move(model)), loss_(loss) {
  const auto layers = model_->greedy_layers();
  TORCH_CHECK(layer >= 0 && layer < static_cast<int>(layers.size()), "layer ", layer, " is not one of the model's ", layers.size(),
              " greedy layers");
  layer_ = layers[static_cast<std::size_t>(layer)];
  first_layer_ = layer == 0;
}

std::vector<torch::Tensor> GreedyLayerTask::trainable_parameters() { return layer_->parameters(); }

torch::Tensor GreedyLayerTask::layer_loss(const core::Batch& batch, core::MetricSums& metrics, bool code_statistics) {
  const auto loss = layer_->loss(batch.inputs, greedy_layer_loss(*layer_, first_layer_, loss_));
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

namespace {

// An objective's total, its parts reported as metrics where they are not trained on (validation).
torch::Tensor loss_of(const EndToEndObjective& objective, const core::Batch& batch, core::MetricSums& metrics) {
  if (!torch::GradMode::is_enabled()) {
    for (const auto& [name, value] : objective.parts) metrics.add(name, value.item<double>(), static_cast<double>(batch.size()));
  }
  return objective.total;
}

}  // namespace

GreedyBlockTask::GreedyBlockTask(std::shared_ptr<AutoencoderModel> model, int block, ReconstructionLoss loss)
    : model_(std::move(model)), block_(block), loss_(loss) {
  TORCH_CHECK(block >= 0 && block < model_->greedy_blocks(), "block ", block, " is not one of the model's ", model_->greedy_blocks(),
              " greedy blocks");
}

torch::Tensor GreedyBlockTask::training_loss(const core::Batch& batch, core::MetricSums& metrics) {
  return loss_of(model_->greedy_block_objective(batch.inputs, block_, loss_), batch, metrics);
}

EndToEndTask::EndToEndTask(std::shared_ptr<AutoencoderModel> model, ReconstructionLoss loss) : model_(std::move(model)), loss_(loss) {}

EndToEndObjective AutoencoderModel::end_to_end_objective(const torch::Tensor& x, ReconstructionLoss loss) {
  const auto reconstruction = reconstruction_loss(loss, forward(x), x);
  return {reconstruction, {{"reconstruction", reconstruction}}};
}

torch::Tensor EndToEndTask::training_loss(const core::Batch& batch, core::MetricSums& metrics) {
  return loss_of(model_->end_to_end_objective(batch.inputs, loss_), batch, metrics);
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
    const auto codes = encoder(core::to_device(source.rows(rows), device).inputs).to(torch::kCPU);
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

namespace {

std::string greedy_stage_name(std::size_t layer) { return fmt::format("pretrain/layer{}", layer); }
// A model's greedy unit k: a dense layer, or else a block.
std::string greedy_stage_name(AutoencoderModel& model, std::size_t k) {
  return model.greedy_layers().empty() ? fmt::format("pretrain/block{}", k) : greedy_stage_name(k);
}
const char* const kEndToEndStage = "pretrain/end_to_end";

// The encoder's statistics of the clean rows of `train`, in batches of `batch_size`, in the rows'
// own order: every rank feeds all of them, so each ends with what one process computes, without a
// collective.
void reestimate_encoder_statistics(AutoencoderModel& model, const core::BatchSource& train, std::int64_t batch_size, torch::Device device) {
  const core::BatchSource in_order(train.data(), train.indices(), train.scaler(), batch_size, /*shuffle=*/false, 0);
  const auto order = in_order.epoch_order(0);
  std::int64_t position = 0;
  model.reestimate_encoder_statistics([&]() -> torch::Tensor {
    if (position == in_order.batches_per_epoch()) return {};
    return core::to_device(in_order.batch(order, position++), device).inputs;
  });
}

// Greedy layer k: learns to reconstruct the codes of the frozen layers below (the data itself for
// the first layer), computed once when the stage starts.
class GreedyLayerStage : public core::Stage {
 public:
  GreedyLayerStage(std::shared_ptr<AutoencoderModel> model, std::size_t layer, const PretrainConfig& config, const core::BatchSource& train,
                   const core::BatchSource* validation)
      : model_(std::move(model)), layer_(layer), config_(config), train_(train), validation_(validation) {}

  std::string name() const override { return greedy_stage_name(layer_); }
  const core::TrainConfig& config() const override { return config_.greedy_layer(layer_); }
  torch::nn::Module& module() override { return model_->module(); }
  core::TrainTask& task() override { return *task_; }
  const core::BatchSource& train() const override { return *stage_train_; }
  const core::BatchSource* validation() const override { return stage_validation_ ? &*stage_validation_ : nullptr; }

  void prepare(const core::StageContext& context) override {
    const auto seed = core::stream_seed(context.seed, core::RandomStream::kGreedyLayer, layer_);
    const auto batch_size = config().batch_size;
    if (layer_ == 0) {
      stage_train_.emplace(train_.data(), train_.indices(), train_.scaler(), batch_size, true, seed);
      if (validation_) {
        stage_validation_.emplace(validation_->data(), validation_->indices(), validation_->scaler(), validation_->batch_size(), false,
                                  seed);
      }
    } else {
      encode_inputs(context.device);
      const auto identity = core::Scaler::fit(core::Scaling::kNone, train_codes_, torch::arange(1));
      stage_train_.emplace(train_codes_, torch::arange(train_codes_.size()), identity, batch_size, true, seed);
      if (validation_) {
        stage_validation_.emplace(validation_codes_, torch::arange(validation_codes_.size()), identity, validation_->batch_size(), false,
                                  context.seed);
      }
    }
    task_.emplace(model_, static_cast<int>(layer_), config_.loss);
  }

  // The rows themselves, not the codes the layer trained on: the encoder starts from them.
  void finish(const core::StageContext& context) override {
    reestimate_encoder_statistics(*model_, train_, config().batch_size, context.device);
  }

 private:
  // The codes of the layers below, computed once: they are frozen now.
  void encode_inputs(torch::Device device) {
    auto layers = model_->greedy_layers();
    const Encoder below = [&](const torch::Tensor& x) {
      auto h = x;
      for (std::size_t i = 0; i < layer_; ++i) h = layers[i]->encode(h);
      return h;
    };
    const core::EvalModeGuard eval({&model_->module()});
    train_codes_ = encode_dataset(below, train_, device);
    if (validation_) validation_codes_ = encode_dataset(below, *validation_, device);
  }

  std::shared_ptr<AutoencoderModel> model_;
  std::size_t layer_;
  const PretrainConfig& config_;
  const core::BatchSource& train_;
  const core::BatchSource* validation_;
  core::Dataset train_codes_, validation_codes_;
  std::optional<core::BatchSource> stage_train_, stage_validation_;
  std::optional<GreedyLayerTask> task_;
};

// A stage that trains on the pretraining rows themselves, reshuffled every epoch from its own
// random stream: a greedy block (its task runs the frozen blocks below on every batch), or the
// whole model end to end.
class RowsStage : public core::Stage {
 public:
  RowsStage(std::string name, const core::TrainConfig& config, core::RandomStream stream, std::size_t stream_index,
            std::shared_ptr<AutoencoderModel> model, std::function<std::unique_ptr<core::TrainTask>()> make_task,
            const core::BatchSource& train, const core::BatchSource* validation)
      : name_(std::move(name)),
        config_(config),
        stream_(stream),
        stream_index_(stream_index),
        model_(std::move(model)),
        make_task_(std::move(make_task)),
        train_(train),
        validation_(validation) {}

  std::string name() const override { return name_; }
  const core::TrainConfig& config() const override { return config_; }
  torch::nn::Module& module() override { return model_->module(); }
  core::TrainTask& task() override { return *task_; }
  const core::BatchSource& train() const override { return *stage_train_; }
  const core::BatchSource* validation() const override { return validation_; }

  void prepare(const core::StageContext& context) override {
    stage_train_.emplace(train_.data(), train_.indices(), train_.scaler(), config_.batch_size, true,
                         core::stream_seed(context.seed, stream_, stream_index_));
    task_ = make_task_();
  }

  void finish(const core::StageContext& context) override {
    reestimate_encoder_statistics(*model_, train_, config_.batch_size, context.device);
  }

 private:
  std::string name_;
  const core::TrainConfig& config_;
  core::RandomStream stream_;
  std::size_t stream_index_;
  std::shared_ptr<AutoencoderModel> model_;
  std::function<std::unique_ptr<core::TrainTask>()> make_task_;
  const core::BatchSource& train_;
  const core::BatchSource* validation_;
  std::optional<core::BatchSource> stage_train_;
  std::unique_ptr<core::TrainTask> task_;
};

}  // namespace

std::vector<std::string> pretrain_stage_names(const PretrainConfig& config, AutoencoderModel& model) {
  std::vector<std::string> names;
  if (config.runs_greedy()) {
    for (std::size_t k = 0; k < greedy_depth(model); ++k) names.push_back(greedy_stage_name(model, k));
  }
  if (config.runs_end_to_end()) names.push_back(kEndToEndStage);
  return names;
}

std::map<std::string, core::Metrics> pretrain(const std::shared_ptr<AutoencoderModel>& model, const PretrainConfig& config,
                                              const core::BatchSource& train, const core::BatchSource* validation,
                                              const core::StageContext& context) {
  check_pretrain_fits_model(config, *model);
  std::vector<std::unique_ptr<core::Stage>> stages;
  if (config.runs_greedy()) {
    for (std::size_t k = 0; k < greedy_depth(*model); ++k) {
      if (model->greedy_layers().empty()) {
        const auto make_task = [model, k, loss = config.loss] {
          return std::make_unique<GreedyBlockTask>(model, static_cast<int>(k), loss);
        };
        stages.push_back(std::make_unique<RowsStage>(greedy_stage_name(*model, k), config.greedy_layer(k), core::RandomStream::kGreedyLayer,
                                                     k, model, make_task, train, validation));
      } else {
        stages.push_back(std::make_unique<GreedyLayerStage>(model, k, config, train, validation));
      }
    }
  }
  if (config.runs_end_to_end()) {
    const auto make_task = [model, loss = config.loss] { return std::make_unique<EndToEndTask>(model, loss); };
    stages.push_back(std::make_unique<RowsStage>(kEndToEndStage, config.end_to_end, core::RandomStream::kEndToEnd, 0, model, make_task,
                                                 train, validation));
  }
  std::map<std::string, core::Metrics> results;
  for (auto& stage : stages) {
    if (auto metrics = core::run_stage(*stage, context)) results[stage->name()] = *metrics;
  }
  return results;
}

}  // namespace encore::models
