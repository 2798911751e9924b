#pragma once
/// One experiment = one JSON file: data, model, pretraining (fine-tuning joins here). Parsing,
/// resolving with `--set` overrides, and running it into a run directory.

#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "encore/core/config.h"
#include "encore/core/data_config.h"
#include "encore/core/optim.h"
#include "encore/core/runtime.h"
#include "encore/finetune/classifier.h"
#include "encore/finetune/evaluation.h"
#include "encore/finetune/finetune.h"
#include "encore/finetune/heads.h"
#include "encore/models/pretrain.h"
#include "encore/models/registry.h"

namespace encore::finetune {

/// Everything that can be looked up by name: filled by builtin_components(), extended by users.
struct Components {
  core::OptimizerRegistry optimizers{"optimizer"};
  models::ModelRegistry models{"model"};
  HeadRegistry heads{"head"};
};

/// Components with every built-in entry registered.
Components builtin_components();

/// Name and one-line description of each callback the experiment attaches.
std::vector<std::pair<std::string, std::string>> builtin_callbacks();

struct ExperimentConfig {
  std::string name = "experiment";
  core::RuntimeConfig runtime;
  core::DataConfig data;
  models::ModelConfig model;
  models::PretrainConfig pretrain;
  /// Absent: the experiment only pretrains.
  std::optional<FinetuneConfig> finetune;
};

ExperimentConfig parse_experiment(const core::Json& json, const Components& components);
core::Json to_json(const ExperimentConfig& config);

/// Reads a config file, resolves it, applies `--set` overrides to the resolved form and validates
/// the result. Throws ConfigError naming the file or JSON path.
ExperimentConfig load_experiment(const std::string& file, const std::vector<std::string>& overrides, const Components& components);

/// Where and how a run reports, and which stages it runs.
struct RunOptions {
  std::filesystem::path run_dir;
  std::ostream* log = nullptr;
  /// Progress as a redrawn bar (terminal) instead of one line per epoch.
  bool interactive = false;
  /// Stop after pretraining (`encore pretrain`).
  bool pretrain_only = false;
  /// Fine-tune this pretrained encoder instead of pretraining (`encore finetune --from`).
  std::optional<std::filesystem::path> pretrained_file;
  /// Continue the interrupted run in `run_dir` from its newest valid checkpoint (from the start when
  /// it has none). The caller has compared configs (config_differences()).
  bool resume = false;
};

/// JSON pointers whose values differ between two resolved configs (keys in either one), sorted.
std::vector<std::string> config_differences(const core::Json& before, const core::Json& after);

/// Runs an experiment: loads and splits the data, pretrains, fine-tunes, evaluates, and leaves
/// config.json, split.json, metrics.jsonl, pretrained.pt, load_report.json, model.pt,
/// summary.json, checkpoints/ and the pictures in the run directory. Data, model and config are
/// checked before the directory is created, so bad input leaves nothing behind. Returns the summary.
core::Json run_experiment(const ExperimentConfig& config, const Components& components, const RunOptions& options);

/// A trained classifier with what it needs to be used on new data.
struct TrainedModel {
  ExperimentConfig config;
  Classifier classifier = nullptr;
  core::Scaler scaler;
  std::vector<std::string> class_names;
  std::vector<std::int64_t> example_shape;
};

/// Writes model.pt: the classifier's weights (a LibTorch module archive) plus the resolved config,
/// scaler and class names under "encore_*" keys.
void save_trained_model(const std::filesystem::path& file, ClassifierImpl& classifier, const ExperimentConfig& config,
                        const core::Scaler& scaler, const std::vector<std::string>& class_names,
                        const std::vector<std::int64_t>& example_shape);

/// Reads model.pt back, rebuilding the classifier from its config.
TrainedModel load_trained_model(const std::filesystem::path& file, const Components& components);

/// Scores [N, K] and predictions [N] of raw feature rows, in batches, in eval mode.
std::pair<torch::Tensor, torch::Tensor> predict(TrainedModel& model, const torch::Tensor& raw_features);

}  // namespace encore::finetune
