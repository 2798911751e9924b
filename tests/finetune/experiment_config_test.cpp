#include "encore/finetune/experiment_config.h"

#include <sys/stat.h>

#include <torch/torch.h>

#include <cstdlib>
#include <sstream>

#include "encore/core/data_section.h"
#include "encore/core/files.h"
#include "encore/core/runtime_section.h"
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
  core::write_file_atomically(dir / "c.json", toy_experiment_config(dir).dump());
  const auto config = finetune::load_experiment((dir / "c.json").string(), {"/pretrain/greedy/epochs=7", "/model/tied=true"}, components);
  EXPECT_EQ(config.pretrain.greedy_layer(1).epochs, 7);
  EXPECT_EQ(config.model.options["tied"], true);
  EXPECT_THROW_WITH(finetune::load_experiment((dir / "c.json").string(), {"/pretrain/greedy/epoch=7"}, components), core::ConfigError,
                    "/pretrain/greedy/epoch: --set path does not exist");
  EXPECT_THROW_WITH(finetune::load_experiment((dir / "c.json").string(), {"/seed=1.5"}, components), core::ConfigError,
                    "config error at /seed: must be an integer, got 1.5");
}

TEST(ExperimentConfig, RelativeDataPathsResolveAgainstTheConfigFilesDirectoryAndSetOnesAgainstTheCurrentOne) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  auto j = toy_experiment_config(dir);
  const std::string images = j["data"]["train_images"];
  std::filesystem::create_directories(dir / "configs");
  j["data"]["train_images"] = std::filesystem::relative(images, dir / "configs").string();
  const auto file = (dir / "configs" / "c.json").string();
  encore::testing::write_text(file, j.dump());
  EXPECT_EQ(finetune::load_experiment(file, {}, components).data.train_images, images);
  // A --set value is a path typed in the shell: relative to where encore runs.
  const auto from_here = std::filesystem::relative(images, std::filesystem::current_path()).string();
  EXPECT_EQ(finetune::load_experiment(file, {"/data/train_images=\"" + from_here + "\""}, components).data.train_images, images);
}

TEST(ExperimentConfig, DataFilesThatAreMissingOrNotRegularFilesAreConfigErrorsSayingWhatTheyAre) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  auto j = toy_experiment_config(dir);
  const auto file = (dir / "c.json").string();
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  const std::vector<std::pair<std::string, std::string>> cases{
      {"nope.gz", "does not exist"}, {".", "is a directory"}, {"fifo", "is a FIFO (named pipe)"}};
  for (const auto& [name, kind] : cases) {
    j["data"]["train_labels"] = name;
    encore::testing::write_text(file, j.dump());
    EXPECT_THROW_WITH(finetune::load_experiment(file, {}, components), core::ConfigError,
                      "config error at /data/train_labels: \"" + (dir / name).lexically_normal().string() + "\" " + kind);
    // Parsing alone does not look at the files: a model's embedded config names files it was trained on.
    EXPECT_NO_THROW(finetune::parse_experiment(j, components));
  }
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

// One default per field: a default-constructed struct writes the same JSON as a section read from
// JSON that leaves the field out.
TEST(Defaults, DefaultConstructedSectionsEqualTheJsonDefaults) {
  const auto components = finetune::builtin_components();
  const auto& optimizers = components.optimizers;
  const core::Json empty = core::Json::object();

  core::RuntimeConfig runtime;
  core::Json runtime_cpp, runtime_json;
  core::add_runtime_json(runtime_cpp, runtime);
  core::JsonReader runtime_reader(empty);
  core::add_runtime_json(runtime_json, core::parse_runtime(runtime_reader));
  EXPECT_EQ(runtime_cpp, runtime_json);

  // Data: the two file names a section must give, and nothing else.
  core::DataConfig data;
  data.train_images = "images";
  data.train_labels = "labels";
  EXPECT_EQ(core::to_json(data),
            core::to_json(core::parse_data_config(core::JsonReader(core::Json{{"train_images", "images"}, {"train_labels", "labels"}}))));

  EXPECT_EQ(core::to_json(core::TrainConfig{}, optimizers),
            core::to_json(core::parse_train_config(core::JsonReader(empty), optimizers, {}), optimizers));
  // Each optimizer's typed options against an object that names only its type.
  const std::vector<std::shared_ptr<const core::OptimizerOptions>> typed{
      std::make_shared<core::SgdOptions>(), std::make_shared<core::AdamOptions>(), std::make_shared<core::AdamWOptions>()};
  for (const auto& options : typed) {
    const core::Json only_type{{"type", options->type()}};
    EXPECT_EQ(core::to_json(*options, optimizers),
              core::to_json(*core::parse_optimizer(core::JsonReader(only_type), optimizers), optimizers))
        << options->type();
  }
  EXPECT_EQ(models::to_json(models::PretrainConfig{}, optimizers),
            models::to_json(models::parse_pretrain_config(core::JsonReader(empty), optimizers), optimizers));

  // Fine-tuning: a phase, and the hidden layer, as the JSON leaves them.
  const auto finetune = finetune::parse_finetune_config(core::JsonReader(core::Json{{"hidden", empty}}), optimizers, components.heads);
  const finetune::PhaseConfig phase;
  ASSERT_EQ(finetune.phases.size(), 1u);
  EXPECT_EQ(finetune.phases[0].trainable, phase.trainable);
  EXPECT_EQ(finetune.phases[0].lr_decay_per_depth, phase.lr_decay_per_depth);
  EXPECT_EQ(finetune.phases[0].unfreeze_every_epochs, phase.unfreeze_every_epochs);
  EXPECT_EQ(core::to_json(finetune.phases[0].train, optimizers), core::to_json(phase.train, optimizers));
  ASSERT_TRUE(finetune.hidden.has_value());
  EXPECT_EQ(core::options_json(*finetune.hidden), core::options_json(finetune::HiddenLayerConfig{}));
  EXPECT_EQ(finetune.allow_partial_load, finetune::FinetuneConfig{}.allow_partial_load);

  // Models and heads: typed options against the section that gives only what is required.
  const core::Json stack_json{{"type", "stacked_autoencoder"}, {"hidden_dims", {8, 4}}};
  EXPECT_EQ(models::parse_model_config(core::JsonReader(stack_json), components.models).options,
            models::model_config("stacked_autoencoder", models::StackedAutoencoderOptions(0, {8, 4})).options);
  EXPECT_EQ(finetune.head, finetune::head_config("one_vs_all", finetune::OneVsAllHeadOptions()));
  const auto softmax =
      finetune::parse_finetune_config(core::JsonReader(core::Json{{"head", {{"type", "softmax"}}}}), optimizers, components.heads);
  EXPECT_EQ(softmax.head, finetune::head_config("softmax", finetune::SoftmaxHeadOptions()));
}

// A registered model's options set from C++ are checked like the JSON ones; a check that needs the
// input width fails at the JSON path when the model is built from a config.
TEST(ModelRegistry, OptionsFailWithTheOptionFromCppAndAtThePathFromJson) {
  const auto components = finetune::builtin_components();
  EXPECT_THROW_WITH(models::model_config("stacked_autoencoder", models::StackedAutoencoderOptions(0, {8}).sparsity_target(2)),
                    core::OptionError, "option sparsity_target: must be in (0, 1), got 2");
  const core::Json huge{{"type", "stacked_autoencoder"}, {"hidden_dims", {1000000}}};
  const auto config = models::parse_model_config(core::JsonReader(huge, "/model"), components.models);
  EXPECT_THROW_WITH(models::build_model(config, components.models, {1000000}), core::ConfigError,
                    "config error at /model/hidden_dims: 2e+12 parameters for 1000000 inputs need");
}

TEST(ExperimentConfig, EncoderDepthBeyondTheModelsLayersIsAConfigErrorAtItsPath) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  auto j = toy_experiment_config(dir);
  j["finetune"] = {{"encoder_depth", 3}};
  const auto config = finetune::parse_experiment(j, components);
  auto model = models::build_model(config.model, components.models, {64});
  EXPECT_THROW_WITH(finetune::build_classifier(*config.finetune, model, components.heads, 4), core::ConfigError,
                    "config error at /finetune/encoder_depth: must be at most 2, the model's layers, got 3");
}

TEST(ExperimentConfig, SemiSupervisedPhasesAreCheckedAtTheirPaths) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  auto with_semi_supervised = [&](const core::Json& semi) {
    auto j = toy_experiment_config(dir);
    j["finetune"] = {{"phases", {{{"name", "semi"}, {"trainable", {"encoder", "decoder", "head"}}, {"semi_supervised", semi}}}}};
    return j;
  };
  EXPECT_THROW_WITH(
      finetune::parse_experiment(with_semi_supervised({{"layer_weights", {0, 0}}}), components), core::ConfigError,
      "config error at /finetune/phases/0/semi_supervised/layer_weights: must have a weight > 0 when consistency_weight is 0");
  // The head's denoising cost alone is a semi-supervised phase too.
  EXPECT_NO_THROW(finetune::parse_experiment(with_semi_supervised({{"layer_weights", {0}}, {"consistency_weight", 1}}), components));
  EXPECT_THROW_WITH(finetune::parse_experiment(with_semi_supervised({{"consistency_augmented", true}}), components), core::ConfigError,
                    "config error at /finetune/phases/0/semi_supervised/consistency_augmented: needs a consistency_weight > 0");
  EXPECT_THROW_WITH(finetune::parse_experiment(with_semi_supervised({{"teacher_decay", 0.99}}), components), core::ConfigError,
                    "config error at /finetune/phases/0/semi_supervised/teacher_decay: needs a consistency_weight > 0");
  EXPECT_THROW_WITH(finetune::parse_experiment(with_semi_supervised({{"consistency_weight", 1}, {"teacher_decay", 1}}), components),
                    core::ConfigError, "config error at /finetune/phases/0/semi_supervised/teacher_decay: must be in [0, 1), got 1");
  EXPECT_THROW_WITH(
      finetune::parse_experiment(with_semi_supervised({{"consistency_weight", 1}, {"consistency_augmented", true}}), components),
      core::ConfigError, "config error at /finetune/phases/0/semi_supervised/consistency_augmented: needs /finetune/augment");
  EXPECT_THROW_WITH(finetune::parse_experiment(with_semi_supervised({{"unlabelled_batch_size", 0}}), components), core::ConfigError,
                    "config error at /finetune/phases/0/semi_supervised/unlabelled_batch_size: must be >= 1");
  EXPECT_THROW_WITH(finetune::parse_experiment(with_semi_supervised({{"loss", "l2"}}), components), core::ConfigError,
                    "config error at /finetune/phases/0/semi_supervised/loss");
  EXPECT_THROW_WITH(
      finetune::parse_experiment(with_semi_supervised({{"consistency_weight", 1}, {"consistency_target", "pseudo_labels"}}), components),
      core::ConfigError,
      "config error at /finetune/phases/0/semi_supervised/consistency_target: must be one of probabilities, confident_class");
  EXPECT_THROW_WITH(
      finetune::parse_experiment(with_semi_supervised({{"consistency_weight", 1}, {"consistency_threshold", 1.5}}), components),
      core::ConfigError, "config error at /finetune/phases/0/semi_supervised/consistency_threshold: must be in (0, 1]");
  const auto config = finetune::parse_experiment(with_semi_supervised({{"layer_weights", {1, 0.1, 0.1}}, {"loss", "bce"}}), components);
  const auto resolved = finetune::to_json(config, components);
  EXPECT_EQ(resolved["finetune"]["phases"][0]["semi_supervised"], (core::Json{{"unlabelled_batch_size", 128},
                                                                              {"layer_weights", {1, 0.1, 0.1}},
                                                                              {"loss", "bce"},
                                                                              {"consistency_weight", 0.0},
                                                                              {"consistency_noise", 0.3},
                                                                              {"consistency_augmented", false},
                                                                              {"consistency_target", "probabilities"},
                                                                              {"consistency_threshold", 0.95},
                                                                              {"teacher_decay", 0.0}}));
  EXPECT_EQ(finetune::to_json(finetune::parse_experiment(resolved, components), components), resolved);
  auto model = models::build_model(config.model, components.models, {64});
  const auto classifier = finetune::build_classifier(*config.finetune, model, components.heads, 4);
  EXPECT_THROW_WITH(finetune::check_phases_fit_classifier(*config.finetune, *classifier), core::ConfigError,
                    "config error at /finetune/phases/0/semi_supervised/layer_weights: has 3 weights, but the encoder has 2 layers");
}
