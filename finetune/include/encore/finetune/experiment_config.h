#pragma once
/// One experiment = one JSON file: data, model, pretraining, fine-tuning, run settings. Parsing,
/// resolving with `--set` overrides, and writing the resolved form back.

#include <optional>
#include <string>
#include <vector>

#include "encore/core/config.h"
#include "encore/core/data_config.h"
#include "encore/core/runtime.h"
#include "encore/finetune/components.h"
#include "encore/finetune/finetune.h"
#include "encore/models/pretrain.h"

namespace encore::finetune {

/// A whole experiment, typed: what a config file holds.
struct ExperimentConfig {
  /// Names the run directory.
  std::string name = "experiment";
  /// Threads, device, seed and failure policies.
  core::RuntimeConfig runtime;
  /// The data section.
  core::DataConfig data;
  /// The model section.
  models::ModelConfig model;
  /// The pretrain section.
  models::PretrainConfig pretrain;
  /// Absent: the experiment only pretrains.
  std::optional<FinetuneConfig> finetune;
};

/// Reads a config (JSON already parsed); a mistake is a ConfigError at its path.
ExperimentConfig parse_experiment(const core::Json& json, const Components& components);
/// The resolved config: every setting spelled out; parses back to the same config.
core::Json to_json(const ExperimentConfig& config, const Components& components);

/// Reads a config file, resolves it, applies `--set` overrides to the resolved form and validates
/// the result. Throws ConfigError naming the file or JSON path.
ExperimentConfig load_experiment(const std::string& file, const std::vector<std::string>& overrides, const Components& components);

/// JSON pointers whose values differ between two resolved configs (keys in either one), sorted.
std::vector<std::string> config_differences(const core::Json& before, const core::Json& after);

}  // namespace encore::finetune
