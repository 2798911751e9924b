#pragma once
/// The label-budget curve (`encore curve`): test accuracy against labels per class, over seeds, for
/// variants of one config side by side, each cell a run directory that a rerun reuses.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "encore/core/json.h"
#include "encore/finetune/components.h"

namespace encore::finetune {

/// A labelled-set size: labels per class, or every label (nullopt).
using LabelBudget = std::optional<std::int64_t>;

/// Reads "1,5,10,all": positive integers or "all", each once. Throws core::UsageError naming the bad entry.
std::vector<LabelBudget> parse_label_budgets(const std::string& text);

/// One line of the curve: a config changed by `overrides` (--set syntax).
struct CurveVariant {
  /// The legend's name ("fine-tuned").
  std::string name;
  /// Its directory under the output directory ("fine_tuned").
  std::string directory;
  /// The config file it starts from.
  std::string config_file;
  /// How it differs from that config.
  std::vector<std::string> overrides;
  /// Whether it fine-tunes the seed's pretraining of its config (`encore finetune --from`).
  bool uses_pretraining = false;
};

/// The variants of the resolved config read from `config_file` (one with a finetune section): its
/// own line, named "fine-tuned" where it pretrains, "semi-supervised" where a phase is, else "from
/// scratch"; and where it pretrains, "from scratch" (pretrain.mode "none") and "frozen-encoder
/// probe" (one phase training the head, and the hidden layer where there is one, with the first
/// phase's settings, the encoder frozen).
std::vector<CurveVariant> curve_variants(const std::string& config_file, const core::Json& resolved);

/// What `encore curve` is asked for.
struct CurveOptions {
  /// Further configs, each one more line named by its `name` (their own variants are not added).
  std::vector<std::string> more_configs;
  /// Budgets, in the order given.
  std::vector<LabelBudget> budgets;
  /// Seeds 1..seeds.
  int seeds = 3;
  /// Holds pretrain/HASH/, LINE/labels-N/seed-S/, logs/, curve.json, curve.csv and curve.png.
  std::filesystem::path output_dir;
  /// Progress: a line per cell with the time left.
  std::ostream* log = nullptr;
};

/// Runs every cell not finished in the output directory (resuming an interrupted one; a finished
/// cell whose config differs is a core::UsageError naming it), then writes curve.json, curve.csv
/// and curve.png. Pretraining sees no labels: each seed's pretraining runs once and serves every
/// budget and variant that fine-tunes it, and every config whose pretraining is the same (the
/// pretraining cells hold the config without its finetune section and labelled subset, and are
/// named by a hash of it). A config without a finetune section, or data without a test set, is a
/// core::ConfigError. `overrides` apply to every config. Returns curve.json's contents.
core::Json run_curve(const std::string& config_file, const std::vector<std::string>& overrides, const Components& components,
                     const CurveOptions& options);

/// Draws curve.json's contents: accuracy (%) against labels per class on a log axis, one line per
/// variant with a band of +- one standard deviation (an error bar for a line of one budget),
/// labelled axes and a legend.
void write_curve_png(const std::filesystem::path& file, const core::Json& curve);

}  // namespace encore::finetune
