#pragma once
/// Unsupervised pretraining of a StackedAutoencoder as TrainTasks on the core Trainer: greedy
/// layer-wise, end to end, or greedy then end to end.

#include <functional>
#include <string>
#include <vector>

#include "encore/core/config.h"
#include "encore/core/dataset.h"
#include "encore/core/trainer.h"
#include "encore/models/autoencoder.h"

namespace encore::models {

/// The `pretrain` section.
struct PretrainConfig {
  /// "greedy", "end_to_end" or "greedy_then_end_to_end".
  std::string mode = "greedy";
  ReconstructionLoss loss = ReconstructionLoss::kMse;
  /// Greedy training of each layer; `greedy_layers[k]` is layer k's config.
  core::TrainConfig greedy;
  std::vector<core::TrainConfig> greedy_layers;
  /// Per-layer settings as written (only the keys that differ from `greedy`), kept for the
  /// resolved config so that `--set` on the shared settings still reaches every layer.
  std::vector<core::Json> greedy_layer_overrides;
  core::TrainConfig end_to_end;

  bool runs_greedy() const { return mode != "end_to_end"; }
  bool runs_end_to_end() const { return mode != "greedy"; }
};

/// Reads the section for a stack of `depth` layers.
PretrainConfig parse_pretrain_config(core::JsonReader reader, const core::OptimizerRegistry& optimizers, int depth);
core::Json to_json(const PretrainConfig& config);

/// Trains layer k of a stack to reconstruct its input codes (the codes of the frozen layers below,
/// cached once as a dataset). Only layer k's parameters are optimised.
class GreedyLayerTask : public core::TrainTask {
 public:
  GreedyLayerTask(StackedAutoencoder stack, int layer, ReconstructionLoss loss);
  torch::nn::Module& module() override { return *stack_; }
  std::vector<torch::Tensor> trainable_parameters() override;
  torch::Tensor training_loss(const core::Batch& batch, core::MetricSums& metrics) override;
  torch::Tensor validation_loss(const core::Batch& batch, core::MetricSums& metrics) override;

 private:
  torch::Tensor layer_loss(const core::Batch& batch, core::MetricSums& metrics);
  StackedAutoencoder stack_;
  int layer_;
  ReconstructionLoss loss_;
};

/// Trains the whole stack to reconstruct its input.
class EndToEndTask : public core::TrainTask {
 public:
  EndToEndTask(StackedAutoencoder stack, ReconstructionLoss loss);
  torch::nn::Module& module() override { return *stack_; }
  torch::Tensor training_loss(const core::Batch& batch, core::MetricSums& metrics) override;

 private:
  StackedAutoencoder stack_;
  ReconstructionLoss loss_;
};

/// The codes of the first `depth` layers for every row of a source, as a float dataset with the
/// source's labels (rows in the source's index order).
core::Dataset encode_dataset(StackedAutoencoder& stack, const core::BatchSource& source, int depth);

/// What a pretraining run needs from its caller: optimizers, device, seed, and a hook that attaches
/// callbacks (metrics, progress, checkpoints) to each stage's Trainer.
struct PretrainContext {
  const core::OptimizerRegistry* optimizers = nullptr;
  torch::Device device = torch::kCPU;
  std::uint64_t seed = 1;
  std::function<void(core::Trainer&)> attach_callbacks;
};

/// Runs every configured stage on `train` (validated on `validation`). Returns each stage's final
/// metrics, keyed by stage name ("pretrain/layer0", ..., "pretrain/end_to_end").
std::map<std::string, core::Metrics> pretrain(StackedAutoencoder& stack, const PretrainConfig& config,
                                              const core::BatchSource& train, const core::BatchSource& validation,
                                              const PretrainContext& context);

}  // namespace encore::models
