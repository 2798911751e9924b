#pragma once
/// Unsupervised pretraining of a StackedAutoencoder as TrainTasks on the core Trainer: greedy
/// layer-wise, end to end, or greedy then end to end.

#include <functional>
#include <string>
#include <vector>

#include "encore/core/config.h"
#include "encore/core/dataset.h"
#include "encore/core/stage.h"
#include "encore/core/train_section.h"
#include "encore/core/trainer.h"
#include "encore/models/autoencoder.h"
#include "encore/models/model.h"

namespace encore::models {

/// The `pretrain` section.
struct PretrainConfig {
  /// "greedy", "end_to_end", "greedy_then_end_to_end", or "none" (no pretraining: the from-scratch
  /// twin of an experiment).
  std::string mode = "greedy";
  /// How reconstructions are scored.
  ReconstructionLoss loss = ReconstructionLoss::kMse;
  /// Greedy training settings shared by every layer. This and end_to_end are kept (read and
  /// written back) whatever the mode, so that a --set of the mode alone switches between them.
  core::TrainConfig greedy;
  /// Per-layer settings when `greedy.layers` is given: one per layer, each `greedy` overridden by
  /// that layer's keys. Empty when every layer uses `greedy`.
  std::vector<core::TrainConfig> greedy_layers;
  /// The per-layer objects as written (only the keys that differ from `greedy`), kept for the
  /// resolved config so that `--set` on the shared settings still reaches every layer.
  std::vector<core::Json> greedy_layer_overrides;
  /// End-to-end training settings.
  core::TrainConfig end_to_end;

  /// Whether greedy layer-wise training runs.
  bool runs_greedy() const { return mode == "greedy" || mode == "greedy_then_end_to_end"; }
  /// Whether end-to-end training runs.
  bool runs_end_to_end() const { return mode == "end_to_end" || mode == "greedy_then_end_to_end"; }
  /// Whether any pretraining runs.
  bool runs() const { return mode != "none"; }
  /// The settings of greedy layer k.
  const core::TrainConfig& greedy_layer(std::size_t k) const { return greedy_layers.empty() ? greedy : greedy_layers.at(k); }
};

/// Reads the `pretrain` section.
PretrainConfig parse_pretrain_config(core::JsonReader reader, const core::OptimizerRegistry& optimizers);
/// The resolved `pretrain` section.
core::Json to_json(const PretrainConfig& config, const core::OptimizerRegistry& optimizers);

/// Checks the config against the model it will train: greedy modes need greedy layers, per-layer
/// settings must match their number, and a model that scores its own denoising (a ladder network)
/// is not pretrained. Throws ConfigError at /pretrain/...
void check_pretrain_fits_model(const PretrainConfig& config, AutoencoderModel& model);

/// The reconstruction loss greedy layer k is scored with: `configured` (the pretraining's `loss`)
/// where what it reconstructs lies in [0, 1] (the first layer's inputs, sigmoid codes), else MSE.
ReconstructionLoss greedy_layer_loss(const AutoencoderLayerImpl& layer, bool first_layer, ReconstructionLoss configured);

/// Every layer's greedy objective at once, on a batch and through the layers as they are now:
/// sum_k weights[k] * layer k's loss (AutoencoderLayerImpl::loss, its own corruption in training
/// mode and its penalties) of the codes of layers < k (x itself for k = 0), which carry gradients to
/// the layers below. Layers weighted 0 add no term. One weight per layer; not all 0.
torch::Tensor layerwise_denoising_cost(std::vector<AutoencoderLayer> layers, const torch::Tensor& x, const std::vector<double>& weights,
                                       ReconstructionLoss loss);

/// Trains greedy layer k of a model to reconstruct its inputs, which are the codes of the frozen
/// layers below (cached once as a dataset). Only layer k's parameters are optimised.
class GreedyLayerTask : public core::TrainTask {
 public:
  /// Trains layer `layer` of `model` with reconstruction loss `loss`.
  GreedyLayerTask(std::shared_ptr<AutoencoderModel> model, int layer, ReconstructionLoss loss);
  torch::nn::Module& module() override { return model_->module(); }
  std::vector<torch::Tensor> trainable_parameters() override;
  torch::Tensor training_loss(const core::Batch& batch, core::MetricSums& metrics) override;
  torch::Tensor validation_loss(const core::Batch& batch, core::MetricSums& metrics) override;

 private:
  torch::Tensor layer_loss(const core::Batch& batch, core::MetricSums& metrics, bool code_statistics);
  std::shared_ptr<AutoencoderModel> model_;
  AutoencoderLayer layer_ = nullptr;
  bool first_layer_;
  ReconstructionLoss loss_;
};

/// Trains greedy block k of a model (AutoencoderModel::greedy_blocks) to reconstruct its input, the
/// output of the frozen blocks below, which the model computes on every batch. Only block k's
/// parameters are optimised.
class GreedyBlockTask : public core::TrainTask {
 public:
  /// Trains block `block` of `model`, scoring the reconstruction of the model's inputs with `loss`.
  GreedyBlockTask(std::shared_ptr<AutoencoderModel> model, int block, ReconstructionLoss loss);
  torch::nn::Module& module() override { return model_->module(); }
  std::vector<torch::Tensor> trainable_parameters() override { return model_->greedy_block_parameters(block_); }
  torch::Tensor training_loss(const core::Batch& batch, core::MetricSums& metrics) override;

 private:
  std::shared_ptr<AutoencoderModel> model_;
  int block_;
  ReconstructionLoss loss_;
};

/// Trains the whole model to reconstruct its input.
class EndToEndTask : public core::TrainTask {
 public:
  /// Trains `model` end to end with reconstruction loss `loss`.
  EndToEndTask(std::shared_ptr<AutoencoderModel> model, ReconstructionLoss loss);
  torch::nn::Module& module() override { return model_->module(); }
  torch::Tensor training_loss(const core::Batch& batch, core::MetricSums& metrics) override;

 private:
  std::shared_ptr<AutoencoderModel> model_;
  ReconstructionLoss loss_;
};

/// Maps model inputs to codes.
using Encoder = std::function<torch::Tensor(const torch::Tensor&)>;

/// The codes of every row of a source (in its index order) as a float dataset with the source's
/// labels, computed without gradients in batches on `device`.
core::Dataset encode_dataset(const Encoder& encoder, const core::BatchSource& source, torch::Device device = torch::kCPU);

/// The units greedy pretraining trains one at a time: the model's greedy layers, or else its greedy blocks.
std::size_t greedy_depth(AutoencoderModel& model);

/// Names of the stages pretrain() runs for this config and model, in order.
std::vector<std::string> pretrain_stage_names(const PretrainConfig& config, AutoencoderModel& model);

/// Runs every configured stage on `train` (validated on `validation`; null: no validation). Returns
/// each stage's final metrics, keyed by stage name ("pretrain/layer0", ..., "pretrain/end_to_end").
std::map<std::string, core::Metrics> pretrain(const std::shared_ptr<AutoencoderModel>& model, const PretrainConfig& config,
                                              const core::BatchSource& train, const core::BatchSource* validation,
                                              const core::StageContext& context);

}  // namespace encore::models
