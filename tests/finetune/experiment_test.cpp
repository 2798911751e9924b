#include "encore/finetune/experiment.h"

#include <torch/torch.h>

#include <cstdlib>
#include <sstream>

#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "support/support.h"

using namespace encore;
using encore::testing::toy_experiment_config;

TEST(Experiment, RunLeavesTheRunDirectory) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  const auto config = finetune::parse_experiment(toy_experiment_config(dir), components);
  std::ostringstream log;
  finetune::RunOptions options;
  options.run_dir = dir / "run";
  options.log = &log;
  const auto summary = finetune::run_experiment(config, components, options);
  for (const auto* file : {"config.json", "split.json", "metrics.jsonl", "pretrained.pt", "summary.json", "checkpoints/latest.pt"}) {
    EXPECT_TRUE(std::filesystem::exists(options.run_dir / file)) << file;
  }
  // 10 validation inputs above their reconstructions: 8x8 tiles, 1 px gaps, drawn 3x.
  EXPECT_EQ(encore::testing::png_size(options.run_dir / "reconstructions.png"), std::make_pair(3 * (10 * 9 + 1), 3 * (2 * 9 + 1)));
  // 16 first-layer units as a 4x4 grid of 8x8 tiles.
  EXPECT_EQ(encore::testing::png_size(options.run_dir / "filters.png"), std::make_pair(4 * 9 + 1, 4 * 9 + 1));
  const auto written = core::load_json_file((options.run_dir / "config.json").string());
  EXPECT_EQ(finetune::to_json(finetune::parse_experiment(written, components), components), written);
  EXPECT_TRUE(summary["pretrain"]["test"]["reconstruction_mse"].is_number());
  const auto split = core::load_json_file((options.run_dir / "split.json").string());
  EXPECT_EQ(split["sizes"]["validation"], 12);
  // A second run into the same directory is refused rather than mixing two runs.
  EXPECT_THROW_WITH(finetune::run_experiment(config, components, options), std::runtime_error, "is not empty");
}

TEST(Experiment, AnInMemoryRunWritesNothingAndReturnsTheResultsOfTheRunThatWritesFiles) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  auto json = toy_experiment_config(dir);
  json["finetune"] = {{"phases", {{{"name", "all"}, {"epochs", 2}, {"batch_size", 8}}}}};
  const auto config = finetune::parse_experiment(json, components);
  std::ostringstream log;
  finetune::RunOptions options;
  options.log = &log;
  options.run_dir = dir / "written";
  const auto written = finetune::run_experiment(config, components, options);
  const auto before = encore::testing::list_tree(dir.path());
  options.run_dir = dir / "in_memory";
  options.write_files = false;
  const auto in_memory = finetune::run_experiment(config, components, options);
  EXPECT_EQ(encore::testing::list_tree(dir.path()), before);
  EXPECT_EQ(in_memory["test"], written["test"]);
  EXPECT_EQ(in_memory["validation"], written["validation"]);
  EXPECT_EQ(in_memory["pretrain"], written["pretrain"]);
  options.resume = true;
  EXPECT_THROW_WITH(finetune::run_experiment(config, components, options), core::UsageError, "cannot be an in-memory run");
}
