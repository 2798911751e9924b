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
#include "encore/models/pretrain.h"
#include "encore/models/registry.h"

namespace encore::finetune {

/// Everything that can be looked up by name: filled by builtin_components(), extended by users.
struct Components {
  core::OptimizerRegistry optimizers{"optimizer"};
  models::ModelRegistry models{"model"};
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
};

ExperimentConfig parse_experiment(const core::Json& json, const Components& components);
core::Json to_json(const ExperimentConfig& config);

/// Reads a config file, resolves it, applies `--set` overrides to the resolved form and validates
/// the result. Throws ConfigError naming the file or JSON path.
ExperimentConfig load_experiment(const std::string& file, const std::vector<std::string>& overrides, const Components& components);

/// Where and how a run reports.
struct RunOptions {
  std::filesystem::path run_dir;
  std::ostream* log = nullptr;
  /// Progress as a redrawn bar (terminal) instead of one line per epoch.
  bool interactive = false;
};

/// Runs an experiment: loads and splits the data, pretrains, evaluates, and leaves config.json,
/// split.json, metrics.jsonl, pretrained.pt, checkpoints/ and summary.json in the run directory.
/// Data are loaded before the directory is created, so bad data leave nothing behind. Returns the
/// summary.
core::Json run_experiment(const ExperimentConfig& config, const Components& components, const RunOptions& options);

}  // namespace encore::finetune
