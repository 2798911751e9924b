#include "encore/finetune/trained_model.h"

#include <torch/torch.h>

#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "support/support.h"

using namespace encore;

TEST(TrainedModel, ReadBackItPredictsWhatTheClassifierItWasWrittenFromPredicts) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  auto json = encore::testing::toy_experiment_config(dir);
  json["finetune"] = {{"head", {{"type", "one_vs_all"}, {"abstain_threshold", 0.2}}}};
  const auto config = finetune::parse_experiment(json, components);
  const auto data = core::load_data(config.data);
  const auto scaler = core::Scaler::fit(config.data.scaling, data.train, torch::arange(data.train.size()));
  torch::manual_seed(4);
  auto model = models::build_model(config.model, components.models, data.train.feature_dim());
  auto classifier = finetune::build_classifier(*config.finetune, model, components.heads, data.train.num_classes());
  const auto file = dir / "model.pt";
  core::write_file_atomically(file, finetune::trained_model_bytes(*classifier, config, components, scaler, data.train));
  // Self-contained: the training files it was made from are not needed to use it.
  for (const auto& data_file : {config.data.train_images, config.data.train_labels, config.data.test_images}) {
    std::filesystem::rename(data_file, data_file + ".moved");
  }

  auto loaded = finetune::load_trained_model(file, components);
  EXPECT_EQ(loaded.class_names, data.train.class_names);
  EXPECT_EQ(loaded.example_shape, data.train.example_shape());
  EXPECT_EQ(finetune::to_json(loaded.config, components), finetune::to_json(config, components));
  EXPECT_TRUE(loaded.feature_names.empty());
  const auto raw = data.test->features.reshape({data.test->size(), -1});
  const auto [scores, predictions] = finetune::predict(loaded, raw);
  torch::NoGradGuard no_grad;
  const auto [expected_scores, expected_predictions] = classifier->classify(scaler.apply(raw));
  EXPECT_TRUE(encore::testing::bitwise_equal(scores, expected_scores));
  EXPECT_TRUE(encore::testing::bitwise_equal(predictions, expected_predictions));

  encore::testing::write_text(dir / "junk.pt", "not an archive, but long enough to be searched for a ZIP end record");
  EXPECT_THROW_WITH(finetune::load_trained_model(dir / "junk.pt", components), core::DataError,
                    "junk.pt: damaged archive at offset 67: no end-of-central-directory record");
}

TEST(TrainedModel, OneFlippedBitInAWeightIsRefusedNamingTheFileAndTheEntry) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  auto json = encore::testing::toy_experiment_config(dir);
  json["finetune"] = core::Json::object();
  const auto config = finetune::parse_experiment(json, components);
  const auto data = core::load_data(config.data);
  const auto scaler = core::Scaler::fit(config.data.scaling, data.train, torch::arange(data.train.size()));
  auto model = models::build_model(config.model, components.models, data.train.feature_dim());
  auto classifier = finetune::build_classifier(*config.finetune, model, components.heads, data.train.num_classes());
  auto bytes = finetune::trained_model_bytes(*classifier, config, components, scaler, data.train);
  // A bit in the first tensor's data.
  const auto tensor_data = encore::testing::zip_entry_data_offset(bytes, "/data/0");
  bytes[tensor_data + 4] ^= 0x10;
  core::write_file_atomically(dir / "model.pt", bytes);
  EXPECT_THROW_WITH(finetune::load_trained_model(dir / "model.pt", components), core::DataError,
                    "model.pt: damaged archive at offset " + std::to_string(tensor_data) + ": checksum mismatch in entry \"");
}
