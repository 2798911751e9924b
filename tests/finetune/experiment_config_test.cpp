#include "encore/finetune/experiment_config.h"

#include <torch/torch.h>

#include <cstdlib>
#include <sstream>

#include "encore/core/files.h"
#include "support/support.h"

using namespace encore;
using encore::testing::toy_experiment_config;

TEST(ExperimentConfig, ResolvedConfigParsesBackToItself) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  const auto config = finetune::parse_experiment(toy_experiment_config(dir), components);
  const auto resolved = finetune::to_json(config, components);
  EXPECT_EQ(finetune::to_json(finetune::parse_experiment(resolved, components), components), resolved);
  // Defaults are spelled out in the resolved form.
  EXPECT_EQ(resolved["pretrain"]["greedy"]["optimizer"]["type"], "adam");
  EXPECT_EQ(resolved["data"]["validation_fraction"], 0.1);
}

TEST(ExperimentConfig, OverridesReachSharedSettingsAndRejectUnknownPaths) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  core::write_text_atomically(dir / "c.json", toy_experiment_config(dir).dump());
  const auto config = finetune::load_experiment((dir / "c.json").string(), {"/pretrain/greedy/epochs=7", "/model/tied=true"}, components);
  EXPECT_EQ(config.pretrain.greedy_layer(1).epochs, 7);
  EXPECT_EQ(config.model.options["tied"], true);
  EXPECT_THROW_WITH(finetune::load_experiment((dir / "c.json").string(), {"/pretrain/greedy/epoch=7"}, components), core::ConfigError,
                    "/pretrain/greedy/epoch: --set path does not exist");
  EXPECT_THROW_WITH(finetune::load_experiment((dir / "c.json").string(), {"/seed=1.5"}, components), core::ConfigError,
                    "config error at /seed: must be an integer, got 1.5");
}

TEST(ExperimentConfig, MissingDataFileIsAConfigErrorAtItsPath) {
  encore::testing::TempDir dir;
  auto j = toy_experiment_config(dir);
  j["data"]["train_labels"] = (dir / "nope.gz").string();
  EXPECT_THROW_WITH(finetune::parse_experiment(j, finetune::builtin_components()), core::ConfigError,
                    "config error at /data/train_labels: file \"" + (dir / "nope.gz").string() + "\" does not exist");
}

TEST(ExperimentConfig, ThreadsBeyondTheLimitAndBlocksListedTwiceAreConfigErrors) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  auto j = toy_experiment_config(dir);
  j["threads"] = 10000;
  EXPECT_THROW_WITH(finetune::parse_experiment(j, components), core::ConfigError, "config error at /threads: must be at most 256");
  j = toy_experiment_config(dir);
  j["finetune"] = {{"phases", {{{"name", "all"}, {"trainable", {"head", "encoder", "head"}}}}}};
  EXPECT_THROW_WITH(finetune::parse_experiment(j, components), core::ConfigError,
                    "config error at /finetune/phases/0/trainable/2: block \"head\" is listed twice");
}

// Every shipped config parses as it is, and with one --set of the pretraining mode (the from-scratch
// twin of a config is one edit away).
TEST(ShippedConfigs, EveryConfigParsesAsItIsAndWithEachPretrainingMode) {
  const char* source = std::getenv("ENCORE_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "ctest sets ENCORE_SOURCE_DIR";
  const auto components = finetune::builtin_components();
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(source) / "configs")) {
    if (entry.path().extension() != ".json") continue;
    EXPECT_NO_THROW(finetune::load_experiment(entry.path().string(), {}, components)) << entry.path();
    for (const char* mode : {"none", "greedy", "end_to_end", "greedy_then_end_to_end"}) {
      const auto config = finetune::load_experiment(entry.path().string(), {std::string("/pretrain/mode=\"") + mode + "\""}, components);
      EXPECT_EQ(config.pretrain.mode, mode) << entry.path();
    }
    ++count;
  }
  EXPECT_GE(count, 2);
}
