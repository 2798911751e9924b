#pragma once
/// Fine-tuning a classifier in phases: each phase has its own epochs, trainable blocks, optimizer
/// and learning rate, and builds a fresh optimizer over its trainable parameters only.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "encore/core/config.h"
#include "encore/core/stage.h"
#include "encore/core/train_section.h"
#include "encore/core/trainer.h"
#include "encore/finetune/classifier.h"
#include "encore/finetune/heads.h"
#include "encore/models/pretrain.h"

namespace encore::finetune {

/// One fine-tuning phase.
struct PhaseConfig {
  /// Names the stage ("finetune/<name>").
  std::string name;
  /// Blocks trained in this phase ("encoder", "encoder.layer1", "hidden", "head"); the rest is frozen.
  std::vector<std::string> trainable{"encoder", "head"};
  /// Encoder layer k of D trains at lr * decay^(D-1-k): lower layers move less.
  double lr_decay_per_depth = 1.0;
  /// Gradual unfreezing: when > 0, the phase starts with only the last block of `trainable` and
  /// adds the one before it every this many epochs.
  int unfreeze_every_epochs = 0;
  /// Fine-tuning batches are smaller than pretraining's: labelled sets are small.
  core::TrainConfig train{10, 64};
};

/// The `finetune` section.
struct FinetuneConfig {
  /// Encoder layers used (all when absent).
  std::optional<int> encoder_depth;
  /// An extra layer between the encoder and the head; absent: none.
  std::optional<HiddenLayerConfig> hidden;
  /// Resolved head options, including "type".
  core::Json head;
  /// Fine-tune even when pretrained weights are missing or shaped differently (they keep their
  /// initial values; load_report.json says which).
  bool allow_partial_load = false;
  /// Phases run in order (one default phase when the config gives none).
  std::vector<PhaseConfig> phases;
};

/// Reads the `finetune` section.
FinetuneConfig parse_finetune_config(core::JsonReader reader, const core::OptimizerRegistry& optimizers, const HeadRegistry& heads);
/// The resolved `finetune` section.
core::Json to_json(const FinetuneConfig& config, const core::OptimizerRegistry& optimizers);

/// The classifier a config describes, around an autoencoder.
Classifier build_classifier(const FinetuneConfig& config, std::shared_ptr<models::AutoencoderModel> autoencoder, const HeadRegistry& heads,
                            std::int64_t classes);

/// Checks every phase's block names against the classifier; throws ConfigError at
/// /finetune/phases/N/trainable listing the available blocks.
void check_phases_fit_classifier(const FinetuneConfig& config, const ClassifierImpl& classifier);

/// One phase's training step: the head's loss on labelled batches; validation adds "accuracy".
class ClassificationTask : public core::TrainTask {
 public:
  /// Trains `classifier` as `phase` says.
  ClassificationTask(Classifier classifier, const PhaseConfig& phase);
  torch::nn::Module& module() override { return *classifier_; }
  std::vector<core::ParameterGroup> parameter_groups() override;
  torch::Tensor training_loss(const core::Batch& batch, core::MetricSums& metrics) override;
  torch::Tensor validation_loss(const core::Batch& batch, core::MetricSums& metrics) override;
  void after_train_mode() override;

  /// Makes one more block trainable; returns its parameter groups for the optimizer.
  std::vector<core::ParameterGroup> unfreeze(const std::string& block);
  /// Blocks trained now.
  const std::set<std::string>& trainable() const { return trainable_; }

 private:
  std::vector<core::ParameterGroup> groups_of(const std::set<std::string>& blocks) const;
  Classifier classifier_;
  double lr_decay_per_depth_;
  std::set<std::string> trainable_;
};

/// Unfreezes the next block (walking `trainable` backwards) every n epochs.
class GradualUnfreezing : public core::Callback {
 public:
  /// Unfreezes `pending` (walked from its end) one block every `every_epochs` epochs.
  GradualUnfreezing(ClassificationTask& task, std::vector<std::string> pending, int every_epochs);
  void on_epoch_end(core::Trainer& trainer, const core::Metrics& metrics) override;
  /// Unfreezes what the first `epochs_done` epochs did (resuming a phase mid-way).
  void catch_up(core::Trainer& trainer, std::int64_t epochs_done);

 private:
  void unfreeze_after(core::Trainer& trainer, std::int64_t epoch);
  ClassificationTask& task_;
  std::vector<std::string> pending_;
  int every_epochs_;
};

/// Runs every phase on labelled `train` data, validated on `validation` (null: no validation).
/// Returns each phase's last metrics keyed by stage name ("finetune/<phase>").
std::map<std::string, core::Metrics> finetune(Classifier& classifier, const FinetuneConfig& config, const core::BatchSource& train,
                                              const core::BatchSource* validation, const core::StageContext& context);

}  // namespace encore::finetune
