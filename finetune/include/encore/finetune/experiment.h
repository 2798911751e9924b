#pragma once
/// Running an experiment into a run directory: run policy, data, pretraining, fine-tuning,
/// evaluation. The parts it is made of have headers of their own: components.h (the registries),
/// experiment_config.h (the config), run_directory.h (the files), run_policy.h (the checks every
/// run makes), trained_model.h (model.pt).

#include <filesystem>
#include <optional>
#include <ostream>
#include <string>

#include "encore/core/json.h"
#include "encore/finetune/components.h"
#include "encore/finetune/experiment_config.h"
#include "encore/finetune/run_directory.h"
#include "encore/finetune/trained_model.h"

namespace encore::finetune {

/// Where and how a run reports, and which stages it runs.
struct RunOptions {
  /// The run directory (ignored when write_files is false).
  std::filesystem::path run_dir;
  /// Where progress and messages go; required.
  std::ostream* log = nullptr;
  /// Progress as a redrawn bar (terminal) instead of one line per epoch.
  bool interactive = false;
  /// Stop after pretraining (`encore pretrain`).
  bool pretrain_only = false;
  /// Fine-tune this pretrained encoder instead of pretraining (`encore finetune --from`).
  std::optional<std::filesystem::path> pretrained_file;
  /// Continue the interrupted run in `run_dir` from its newest valid checkpoint (from the start when
  /// it has none). Its config must be the one the run was started with, unless `allow_config_change`.
  bool resume = false;
  /// Resume even though the config differs from the run's (the differences are logged).
  bool allow_config_change = false;
  /// How messages name the config (the file it came from).
  std::string config_source = "the config";
  /// False: an in-memory run for use from C++: nothing is written (no run directory, checkpoints,
  /// metrics, models or pictures; `run_dir` is ignored), and the returned summary holds the results.
  bool write_files = true;
};

/// Runs an experiment: applies the run policy (run_policy.h), loads and splits the data, pretrains,
/// fine-tunes, evaluates, and leaves config.json, split.json, metrics.jsonl, pretrained.pt,
/// load_report.json, model.pt, summary.json, checkpoints/ and the pictures in the run directory.
/// Data, model and config are checked before the directory is created, so bad input leaves nothing
/// behind. In a data-parallel run every rank trains and rank 0 alone writes and evaluates. Returns
/// the summary.
core::Json run_experiment(const ExperimentConfig& config, const Components& components, const RunOptions& options);

/// Everything run_experiment checks before it creates the run directory, and nothing more: the run
/// policy, the data (files, labels, shapes, split), the models built and checked against the stage
/// settings (trainable blocks, sizes), an encoder given in `options.pretrained_file`. Writes nothing.
/// `encore check` runs it.
void check_experiment(const ExperimentConfig& config, const Components& components, const RunOptions& options);

}  // namespace encore::finetune
