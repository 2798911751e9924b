#include "encore/finetune/experiment.h"

#include <torch/torch.h>

#include <cstdlib>
#include <sstream>

#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "support/support.h"

using namespace encore;
using encore::testing::toy_experiment_config;

namespace {

// A run that writes into `run_dir` and logs to `log`.
finetune::RunOptions run_options(const std::filesystem::path& run_dir, std::ostream& log) {
  finetune::RunOptions options;
  options.run_dir = run_dir;
  options.log = &log;
  return options;
}

}  // namespace

TEST(Experiment, RunLeavesTheRunDirectory) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  const auto config = finetune::parse_experiment(toy_experiment_config(dir), components);
  std::ostringstream log;
  auto options = run_options(dir / "run", log);
  const auto summary = finetune::run_experiment(config, components, options);
  for (const auto* file : {"config.json", "split.json", "metrics.jsonl", "pretrained.pt", "summary.json", "checkpoints/latest.pt"}) {
    EXPECT_TRUE(std::filesystem::exists(options.run_dir / file)) << file;
  }
  // 10 validation inputs above their reconstructions: 8x8 tiles, 1 px gaps, drawn 3x.
  EXPECT_EQ(encore::testing::png_size(options.run_dir / "reconstructions.png"), std::make_pair(3 * (10 * 9 + 1), 3 * (2 * 9 + 1)));
  // 16 first-layer units as a 4x4 grid of 8x8 tiles, drawn 8x (tiles under 10 pixels are enlarged).
  EXPECT_EQ(encore::testing::png_size(options.run_dir / "filters.png"), std::make_pair(8 * (4 * 9 + 1), 8 * (4 * 9 + 1)));
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
  auto options = run_options(dir / "written", log);
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

TEST(Experiment, AConvolutionalAutoencoderPretrainsEndToEndFineTunesBlockByBlockAndIsSavedAndPredicted) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  auto json = toy_experiment_config(dir);
  json["model"] = {{"type", "convolutional_autoencoder"}, {"channels", {4, 6}}, {"pooling", {2}}, {"batch_norm", true}};
  json["pretrain"] = {{"mode", "end_to_end"}, {"end_to_end", {{"epochs", 2}, {"batch_size", 8}}}};
  json["finetune"] = {{"head", {{"type", "softmax"}}},
                      {"phases",
                       {{{"name", "top"}, {"trainable", {"encoder.block1", "head"}}, {"epochs", 2}, {"batch_size", 8}},
                        {{"name", "all"}, {"trainable", {"encoder", "head"}}, {"epochs", 1}, {"batch_size", 8}}}}};
  auto config = finetune::parse_experiment(json, components);
  std::ostringstream log;
  auto options = run_options(dir / "run", log);
  auto summary = finetune::run_experiment(config, components, options);
  EXPECT_TRUE(summary["pretrain"]["test"]["reconstruction_mse"].is_number());
  // 10 validation images above their reconstructions (8x8 tiles drawn 3x); 4 filters of 3x3 drawn 8x.
  EXPECT_EQ(encore::testing::png_size(options.run_dir / "reconstructions.png"), std::make_pair(3 * (10 * 9 + 1), 3 * (2 * 9 + 1)));
  EXPECT_EQ(encore::testing::png_size(options.run_dir / "filters.png"), std::make_pair(8 * (2 * 4 + 1), 8 * (2 * 4 + 1)));
  auto loaded = finetune::load_trained_model(options.run_dir / finetune::RunDirectory::kModel, components);
  const auto test = core::load_data(config.data).test;
  const auto [scores, predictions] = finetune::predict(loaded, test->features.reshape({test->size(), -1}));
  EXPECT_DOUBLE_EQ(predictions.eq(test->labels).to(torch::kFloat64).mean().item<double>(), summary["test"]["accuracy"].get<double>());

  // A phase that trains block 1 alone leaves block 0 (weights and batch statistics) as pretrained.
  json["finetune"]["phases"].erase(1);
  config = finetune::parse_experiment(json, components);
  options.run_dir = dir / "top_only";
  finetune::run_experiment(config, components, options);
  auto pretrained = finetune::load_trained_model(options.run_dir / finetune::RunDirectory::kPretrained, components);
  auto tuned = finetune::load_trained_model(options.run_dir / finetune::RunDirectory::kModel, components);
  const auto before = pretrained.autoencoder->module().named_parameters(), after = tuned.autoencoder->module().named_parameters();
  const auto before_buffers = pretrained.autoencoder->module().named_buffers(), after_buffers = tuned.autoencoder->module().named_buffers();
  EXPECT_TRUE(torch::equal(before["encoder0.conv.weight"], after["encoder0.conv.weight"]));
  EXPECT_TRUE(torch::equal(before_buffers["encoder0.norm.running_mean"], after_buffers["encoder0.norm.running_mean"]));
  EXPECT_FALSE(torch::equal(before["encoder1.conv.weight"], after["encoder1.conv.weight"]));

  // Greedy pretraining trains block by block (its stages are in the summary); a block name that
  // does not exist lists those that do.
  json["pretrain"]["mode"] = "greedy";
  json["pretrain"]["greedy"] = {{"epochs", 1}, {"batch_size", 8}};
  options.run_dir = dir / "greedy";
  summary = finetune::run_experiment(finetune::parse_experiment(json, components), components, options);
  EXPECT_TRUE(summary["stages"].contains("pretrain/block0") && summary["stages"].contains("pretrain/block1")) << summary["stages"].dump();
  EXPECT_FALSE(summary["stages"].contains("pretrain/end_to_end"));
  // A semi-supervised phase keeps every block's denoising cost on the rows without labels.
  json["finetune"]["phases"] = {{{"name", "semi"},
                                 {"trainable", {"encoder", "head"}},
                                 {"epochs", 1},
                                 {"batch_size", 8},
                                 {"semi_supervised", {{"layer_weights", {1, 0.1}}, {"unlabelled_batch_size", 16}, {"loss", "bce"}}}}};
  options.run_dir = dir / "semi";
  summary = finetune::run_experiment(finetune::parse_experiment(json, components), components, options);
  EXPECT_GT(summary["stages"]["finetune/semi"]["train/unlabelled_cost"].get<double>(), 0) << summary.dump();
  json["finetune"]["phases"][0]["semi_supervised"]["layer_weights"] = {1, 1, 1};
  options.run_dir = dir / "three_weights";
  EXPECT_THROW_WITH(finetune::run_experiment(finetune::parse_experiment(json, components), components, options), core::ConfigError,
                    "config error at /finetune/phases/0/semi_supervised/layer_weights: has 3 weights, but the model scores 2 levels of "
                    "denoising");
  json["finetune"]["phases"][0].erase("semi_supervised");
  json["pretrain"]["mode"] = "end_to_end";
  json["finetune"]["phases"][0]["trainable"] = {"encoder.block2", "head"};
  options.run_dir = dir / "no_block2";
  EXPECT_THROW_WITH(finetune::run_experiment(finetune::parse_experiment(json, components), components, options), core::ConfigError,
                    "encoder.block0, encoder.block1, head");
}

TEST(Experiment, ALadderNetworkTrainsInASemiSupervisedPhaseAndIsSavedAndPredictedLikeTheOthers) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  auto json = toy_experiment_config(dir);
  json["model"] = {{"type", "ladder_network"}, {"hidden_dims", {16, 8}}};
  json["pretrain"] = {{"mode", "none"}};
  json["finetune"] = {{"head", {{"type", "softmax"}}},
                      {"phases",
                       {{{"name", "semi"},
                         {"trainable", {"encoder", "head"}},
                         {"epochs", 2},
                         {"batch_size", 8},
                         {"semi_supervised", {{"layer_weights", {10, 0.1, 0.1}}, {"unlabelled_batch_size", 16}}}}}}};
  const auto config = finetune::parse_experiment(json, components);
  std::ostringstream log;
  auto options = run_options(dir / "run", log);
  const auto summary = finetune::run_experiment(config, components, options);
  EXPECT_GT(summary["stages"]["finetune/semi"]["train/unlabelled_cost"].get<double>(), 0) << summary.dump();
  // Saved and predicted as the others: the file predicts what the run evaluated (the clean path).
  auto loaded = finetune::load_trained_model(options.run_dir / finetune::RunDirectory::kModel, components);
  const auto test = core::load_data(config.data).test;
  const auto [scores, predictions] = finetune::predict(loaded, test->features.reshape({test->size(), -1}));
  const double accuracy = predictions.eq(test->labels).to(torch::kFloat64).mean().item<double>();
  EXPECT_DOUBLE_EQ(accuracy, summary["test"]["accuracy"].get<double>());

  // Its unlabelled rows train it in fine-tuning; a pretraining is refused rather than run on the input level alone.
  json["pretrain"]["mode"] = "end_to_end";
  options.run_dir = dir / "pretrained";
  EXPECT_THROW_WITH(finetune::run_experiment(finetune::parse_experiment(json, components), components, options), core::ConfigError,
                    "config error at /pretrain/mode: \"end_to_end\": this model learns from rows without labels in semi-supervised "
                    "fine-tuning phases");
  json["pretrain"]["mode"] = "none";
  json["finetune"]["phases"][0]["semi_supervised"]["layer_weights"] = {1, 1};
  options.run_dir = dir / "two_weights";
  EXPECT_THROW_WITH(finetune::run_experiment(finetune::parse_experiment(json, components), components, options), core::ConfigError,
                    "config error at /finetune/phases/0/semi_supervised/layer_weights: has 2 weights, but the model scores 3 levels of "
                    "denoising");
}

TEST(Experiment, AColourImageFolderTrainsAConvolutionalModelOfItsShapeWithMovedMirroredAndCutOutImagesAndListsTheFilesItLeftOut) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  encore::testing::write_toy_image_folder(dir / "train", 3, 12, 8, 3);
  encore::testing::write_toy_image_folder(dir / "test", 3, 4, 8, 3);
  encore::testing::write_text(dir / "train" / "class2" / "fake.png", "text, not an image\n");
  auto json = toy_experiment_config(dir);
  json["data"] = {{"format", "image_folder"},
                  {"train_folder", (dir / "train").string()},
                  {"test_folder", (dir / "test").string()},
                  {"height", 8},
                  {"width", 8},
                  {"unreadable_images", "skip"},
                  {"cache_dir", (dir / "cache").string()}};
  // No image shape in the model: it takes the data's 3 x 8 x 8.
  json["model"] = {{"type", "convolutional_autoencoder"}, {"channels", {4}}, {"pooling", {2}}};
  json["pretrain"] = {{"mode", "end_to_end"}, {"end_to_end", {{"epochs", 2}, {"batch_size", 8}}}};
  json["finetune"] = {{"head", {{"type", "softmax"}}},
                      {"phases", {{{"name", "all"}, {"epochs", 2}, {"batch_size", 8}}}},
                      {"augment", {{"shift", 1}, {"flip", true}, {"cutout", 3}}}};
  const auto config = finetune::parse_experiment(json, components);
  std::ostringstream log;
  auto options = run_options(dir / "run", log);
  const auto summary = finetune::run_experiment(config, components, options);
  EXPECT_EQ(summary["data"]["example_shape"], core::Json({3, 8, 8}));
  EXPECT_EQ(core::read_file(options.run_dir / "skipped_images.txt"),
            (dir / "train" / "class2" / "fake.png").string() + ": not a PNG, JPEG or BMP image (it starts with \"text, no\")\n");
  EXPECT_NE(log.str().find("left out 1 unreadable image file(s), listed in skipped_images.txt"), std::string::npos) << log.str();
  // Colour pictures: the 3 validation images above their reconstructions, 4 colour 3x3 filters.
  EXPECT_EQ(encore::testing::png_size(options.run_dir / "reconstructions.png"), std::make_pair(3 * (3 * 9 + 1), 3 * (2 * 9 + 1)));
  EXPECT_EQ(encore::testing::png_size(options.run_dir / "filters.png"), std::make_pair(8 * (2 * 4 + 1), 8 * (2 * 4 + 1)));
  auto loaded = finetune::load_trained_model(options.run_dir / finetune::RunDirectory::kModel, components);
  EXPECT_EQ(loaded.example_shape, (std::vector<std::int64_t>{3, 8, 8}));
  const auto test = core::load_data(config.data).test;
  const auto [scores, predictions] = finetune::predict(loaded, test->features.reshape({test->size(), -1}));
  EXPECT_DOUBLE_EQ(predictions.eq(test->labels).to(torch::kFloat64).mean().item<double>(), summary["test"]["accuracy"].get<double>());

  // A shift as large as the images is refused before anything is written.
  json["finetune"]["augment"]["shift"] = 8;
  options.run_dir = dir / "shifted_out";
  EXPECT_THROW_WITH(finetune::run_experiment(finetune::parse_experiment(json, components), components, options), core::ConfigError,
                    "config error at /finetune/augment/shift: must be smaller than the images' shorter side (8 pixels), got 8");
  EXPECT_FALSE(std::filesystem::exists(options.run_dir));

  // The decoded shape is required, and checked where it is read.
  json["data"].erase("height");
  EXPECT_THROW_WITH(finetune::parse_experiment(json, components), core::ConfigError, "/data/height");
  json["data"]["height"] = 8;
  json["data"]["channels"] = 2;
  EXPECT_THROW_WITH(finetune::parse_experiment(json, components), core::ConfigError,
                    "config error at /data/channels: must be 1 or 3, got 2");
  json["data"]["channels"] = 3;
  json["data"]["train_folder"] = (dir / "nowhere").string();
  core::write_file_atomically(dir / "nowhere.json", json.dump());
  EXPECT_THROW_WITH(finetune::load_experiment((dir / "nowhere.json").string(), {}, components), core::ConfigError,
                    "config error at /data/train_folder: \"" + (dir / "nowhere").string() + "\" does not exist");
}
