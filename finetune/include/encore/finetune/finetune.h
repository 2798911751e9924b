#pragma once
/// Fine-tuning a classifier in phases: each phase has its own epochs, trainable blocks, optimizer
/// and learning rate, and builds a fresh optimizer over its trainable parameters only.

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "encore/core/config.h"
#include "encore/core/stage.h"
#include "encore/core/train_section.h"
#include "encore/core/trainer.h"
#include "encore/finetune/augment.h"
#include "encore/finetune/classifier.h"
#include "encore/finetune/heads.h"
#include "encore/models/pretrain.h"

namespace encore::core {
class WeightAverage;
}  // namespace encore::core

namespace encore::finetune {

/// What makes a phase semi-supervised (its `semi_supervised` object): beside the head's loss on
/// labelled rows, each step adds unsupervised costs on rows without labels, through the same
/// encoder: the encoder layers' denoising reconstruction costs (models::layerwise_denoising_cost:
/// each layer's own corruption and pretraining objective; for a model that scores its own denoising,
/// a ladder network, its per-level costs: AutoencoderModel::denoising_cost), and the head's denoising cost (the
/// ladder network's top-level cost, its "Gamma model"): the squared distance between the head's
/// probabilities for the rows with Gaussian noise added to the input and to every encoder layer's
/// code, and for the clean rows (a fixed target). An epoch is then one pass over the unlabelled
/// rows, in batches of `unlabelled_batch_size`; each step also takes the phase's `batch_size`
/// labelled rows, cycled through the labelled set (core::BatchSource::with_labelled).
struct SemiSupervisedConfig {
  /// What the head's denoising cost holds the changed rows' scores to.
  enum class ConsistencyTarget {
    /// The clean rows' probabilities, by squared distance (the Pi model; the ladder's top cost).
    kProbabilities,
    /// The clean rows' most probable class, by the head's own loss, for the rows whose
    /// probability of it reaches consistency_threshold (pseudo-labels, as FixMatch draws them);
    /// averaged over every row without a label, so the cost grows as the head grows sure of more.
    kConfidentClass,
  };
  /// The names of the targets in a config: "probabilities", "confident_class".
  static const core::Choices<ConsistencyTarget>& consistency_target_choices();

  /// Rows without labels per step.
  std::int64_t unlabelled_batch_size = 128;
  /// Weight of each encoder layer's cost, from the input up: one per layer used, or one for all
  /// (for a ladder network: one per level, the input first).
  std::vector<double> layer_weights{1.0};
  /// How the first layer scores its reconstruction of the inputs (inner layers as greedy
  /// pretraining scores them: models::greedy_layer_loss).
  models::ReconstructionLoss loss = models::ReconstructionLoss::kMse;
  /// Weight of the head's denoising cost (0: none).
  double consistency_weight = 0.0;
  /// Deviation of the Gaussian noise of the head's denoising cost, added to the input and to every
  /// encoder layer's code.
  double consistency_noise = 0.3;
  /// The head's denoising cost compares the probabilities of the rows without labels changed as
  /// `finetune.augment` says (and noised as consistency_noise says) with those of the rows as they
  /// are.
  bool consistency_augmented = false;
  /// What the changed rows' scores are held to.
  ConsistencyTarget consistency_target = ConsistencyTarget::kProbabilities;
  /// The probability a clean row's most probable class must reach to be its pseudo-label
  /// (consistency_target "confident_class").
  double consistency_threshold = 0.95;
  /// Decay of an exponential moving average of the weights (core::WeightAverage) whose head gives
  /// the clean rows' targets and whose weights the classifier takes when the phase ends (Mean
  /// Teacher); 0: the weights being trained give the targets and are kept.
  double teacher_decay = 0.0;

  /// The fields of a phase's `semi_supervised` object (core/options.h).
  template <class Fields>
  void fields(Fields& f) {
    f("unlabelled_batch_size", unlabelled_batch_size, "rows without labels per step", core::at_least(std::int64_t{1}));
    f("layer_weights", layer_weights,
      "weight of each encoder layer's denoising cost, from the input up (one per layer, or one for all; a ladder_network: one per "
      "level, the input first)",
      core::at_least(0.0));
    f("loss", loss,
      "how the first layer scores its reconstruction of the inputs (bce for inputs in [0, 1]; unused by a ladder_network, whose costs are "
      "squared distances)",
      models::reconstruction_loss_choices());
    f("consistency_weight", consistency_weight, "weight of the head's denoising cost: its probabilities with noise against without",
      core::at_least(0.0));
    f("consistency_noise", consistency_noise, "deviation of the Gaussian noise on the input and every code for the head's denoising cost",
      core::at_least(0.0));
    f("consistency_augmented", consistency_augmented,
      "the head's denoising cost changes the rows without labels as /finetune/augment says");
    f("consistency_target", consistency_target,
      "what the changed rows' scores are held to: the clean rows' probabilities (squared distance), or the clean rows' most probable "
      "class where its probability reaches consistency_threshold (the head's own loss; pseudo-labels)",
      consistency_target_choices());
    f("consistency_threshold", consistency_threshold,
      "probability a clean row's most probable class must reach to become its pseudo-label (consistency_target confident_class)",
      core::Rule<double>{[](const double& v) { return v > 0 && v <= 1; }, "in (0, 1]"});
    f("teacher_decay", teacher_decay,
      "decay of a moving average of the weights that gives the clean rows' targets and, when the phase ends, the classifier's weights "
      "(Mean Teacher; 0: the weights being trained give the targets)",
      core::Rule<double>{[](const double& v) { return v >= 0 && v < 1; }, "in [0, 1)"});
  }
  /// One layer weight or one per layer, some cost weighted above 0, and consistency_augmented and
  /// teacher_decay only with a consistency_weight. Throws core::OptionError.
  void check() const;
  /// Whether some layer's reconstruction cost is weighted above 0.
  bool reconstructs() const;
  /// The weight of each of `layers` encoder layers.
  std::vector<double> weights_for(int layers) const;
};

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
  /// Fine-tuning batches are smaller than pretraining's: labelled sets are small. In a
  /// semi-supervised phase, `batch_size` is the labelled rows of a step and an epoch is one pass over
  /// the unlabelled rows.
  core::TrainConfig train{10, 64};
  /// Absent: supervised only.
  std::optional<SemiSupervisedConfig> semi_supervised;
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
  /// Moves and mirrors of the labelled training images in every phase; absent: none.
  std::optional<AugmentConfig> augment;
};

/// Reads the `finetune` section.
FinetuneConfig parse_finetune_config(core::JsonReader reader, const core::OptimizerRegistry& optimizers, const HeadRegistry& heads);
/// The resolved `finetune` section.
core::Json to_json(const FinetuneConfig& config, const core::OptimizerRegistry& optimizers);

/// The classifier a config describes, around an autoencoder.
Classifier build_classifier(const FinetuneConfig& config, std::shared_ptr<models::AutoencoderModel> autoencoder, const HeadRegistry& heads,
                            std::int64_t classes);

/// Checks every phase's block names against the classifier (ConfigError at
/// /finetune/phases/N/trainable listing the available blocks), and that semi-supervised phases have
/// encoder layers to reconstruct, as many as their layer weights (/finetune/phases/N/semi_supervised).
void check_phases_fit_classifier(const FinetuneConfig& config, const ClassifierImpl& classifier);

/// One phase's training step: the head's loss on labelled batches, plus in a semi-supervised phase
/// the layers' denoising costs on the batch's unlabelled rows ("train/supervised_loss",
/// "train/unlabelled_cost"); validation adds "accuracy".
class ClassificationTask : public core::TrainTask {
 public:
  /// Trains `classifier` as `phase` says, its labelled images (of `image_shape`) augmented as
  /// `augment` says where given.
  ClassificationTask(Classifier classifier, const PhaseConfig& phase, std::optional<AugmentConfig> augment = std::nullopt,
                     std::vector<std::int64_t> image_shape = {});
  torch::nn::Module& module() override { return *classifier_; }
  std::vector<core::ParameterGroup> parameter_groups() override;
  torch::Tensor training_loss(const core::Batch& batch, core::MetricSums& metrics) override;
  torch::Tensor validation_loss(const core::Batch& batch, core::MetricSums& metrics) override;
  void after_train_mode() override;

  /// Makes one more block trainable; returns its parameter groups for the optimizer.
  std::vector<core::ParameterGroup> unfreeze(const std::string& block);
  /// Blocks trained now.
  const std::set<std::string>& trainable() const { return trainable_; }
  /// The moving average of the weights that gives the consistency targets (semi_supervised.teacher_decay);
  /// null without one. The trainer must run it as a callback.
  std::shared_ptr<core::WeightAverage> teacher() const { return teacher_; }

 private:
  std::vector<core::ParameterGroup> groups_of(const std::set<std::string>& blocks) const;
  // The head's probabilities of `rows` as the classifier gives them now, without gradients.
  torch::Tensor clean_probabilities(const torch::Tensor& rows);
  // The labelled rows of `batch`, augmented where the fine-tuning says so.
  torch::Tensor labelled_inputs(const core::Batch& batch) const;

  Classifier classifier_;
  std::optional<SemiSupervisedConfig> semi_supervised_;
  std::optional<AugmentConfig> augment_;
  std::vector<std::int64_t> image_shape_;
  double lr_decay_per_depth_;
  std::set<std::string> trainable_;
  std::shared_ptr<core::WeightAverage> teacher_;
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

/// Runs every phase on labelled `train` data, validated on `validation` (null: no validation);
/// semi-supervised phases also train on the rows of `unlabelled` (their labels unused; null: a
/// semi-supervised phase is an error). Returns each phase's last metrics keyed by stage name ("finetune/<phase>").
std::map<std::string, core::Metrics> finetune(Classifier& classifier, const FinetuneConfig& config, const core::BatchSource& train,
                                              const core::BatchSource* validation, const core::StageContext& context,
                                              const core::BatchSource* unlabelled = nullptr);

}  // namespace encore::finetune
