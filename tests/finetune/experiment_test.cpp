#include "encore/finetune/experiment.h"

#include <torch/torch.h>

#include <cstdlib>
#include <sstream>

#include "encore/core/files.h"
#include "support/support.h"

using namespace encore;

namespace {

core::Json toy_config(const encore::testing::TempDir& dir) {
  auto [train_images, train_labels] = encore::testing::write_toy_idx(dir.path(), "train", 4, 30, 8, true);
  auto [test_images, test_labels] = encore::testing::write_toy_idx(dir.path(), "test", 4, 5, 8, false);
  return core::Json{{"name", "toy"},
                    {"seed", 3},
                    {"threads", 1},
                    {"data",
                     {{"format", "idx"},
                      {"train_images", train_images.string()},
                      {"train_labels", train_labels.string()},
                      {"test_images", test_images.string()},
                      {"test_labels", test_labels.string()}}},
                    {"model", {{"hidden_dims", {16, 4}}, {"corruption", "masking"}, {"corruption_levels", {0.1, 0.2}}}},
                    {"pretrain", {{"mode", "greedy_then_end_to_end"}, {"greedy", {{"epochs", 2}}}, {"end_to_end", {{"epochs", 2}}}}}};
}

}  // namespace

TEST(Experiment, ResolvedConfigParsesBackToItself) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  const auto config = finetune::parse_experiment(toy_config(dir), components);
  const auto resolved = finetune::to_json(config, components);
  EXPECT_EQ(finetune::to_json(finetune::parse_experiment(resolved, components), components), resolved);
  // Defaults are spelled out in the resolved form.
  EXPECT_EQ(resolved["pretrain"]["greedy"]["optimizer"]["type"], "adam");
  EXPECT_EQ(resolved["data"]["validation_fraction"], 0.1);
}

TEST(Experiment, OverridesReachSharedSettingsAndRejectUnknownPaths) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  core::write_text_atomically(dir / "c.json", toy_config(dir).dump());
  const auto config = finetune::load_experiment((dir / "c.json").string(), {"/pretrain/greedy/epochs=7", "/model/tied=true"}, components);
  EXPECT_EQ(config.pretrain.greedy_layer(1).epochs, 7);
  EXPECT_EQ(config.model.options["tied"], true);
  EXPECT_THROW_WITH(finetune::load_experiment((dir / "c.json").string(), {"/pretrain/greedy/epoch=7"}, components), core::ConfigError,
                    "/pretrain/greedy/epoch: --set path does not exist");
  EXPECT_THROW_WITH(finetune::load_experiment((dir / "c.json").string(), {"/seed=1.5"}, components), core::ConfigError,
                    "config error at /seed: must be an integer, got 1.5");
}

TEST(Experiment, MissingDataFileIsAConfigErrorAtItsPath) {
  encore::testing::TempDir dir;
  auto j = toy_config(dir);
  j["data"]["train_labels"] = (dir / "nope.gz").string();
  EXPECT_THROW_WITH(finetune::parse_experiment(j, finetune::builtin_components()), core::ConfigError,
                    "config error at /data/train_labels: file \"" + (dir / "nope.gz").string() + "\" does not exist");
}

TEST(Experiment, RunLeavesTheRunDirectory) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  const auto config = finetune::parse_experiment(toy_config(dir), components);
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

TEST(ShippedConfigs, EveryConfigParses) {
  const char* source = std::getenv("ENCORE_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "ctest sets ENCORE_SOURCE_DIR";
  const auto components = finetune::builtin_components();
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(source) / "configs")) {
    if (entry.path().extension() != ".json") continue;
    EXPECT_NO_THROW(finetune::load_experiment(entry.path().string(), {}, components)) << entry.path();
    ++count;
  }
  EXPECT_GE(count, 2);
}
