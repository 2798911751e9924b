#include "encore/finetune/trained_model.h"

#include <torch/script.h>
#include <torch/torch.h>

#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "support/support.h"

using namespace encore;

namespace {

// An untrained classifier over the toy data of an experiment config, with what saving it needs.
struct ToyClassifier {
  finetune::ExperimentConfig config;
  core::LoadedData data;
  core::Scaler scaler;
  std::shared_ptr<models::AutoencoderModel> model;
  finetune::Classifier classifier = nullptr;

  ToyClassifier(const core::Json& json, const finetune::Components& components, std::uint64_t seed)
      : config(finetune::parse_experiment(json, components)), data(core::load_data(config.data)) {
    scaler = core::Scaler::fit(config.data.scaling, data.train, torch::arange(data.train.size()));
    torch::manual_seed(seed);
    model = models::build_model(config.model, components.models, data.train.example_shape());
    classifier = finetune::build_classifier(*config.finetune, model, components.heads, data.train.num_classes());
  }
};

}  // namespace

TEST(TrainedModel, ReadBackItPredictsWhatTheClassifierItWasWrittenFromPredicts) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  auto json = encore::testing::toy_experiment_config(dir);
  json["finetune"] = {{"head", {{"type", "one_vs_all"}, {"abstain_threshold", 0.2}}}};
  ToyClassifier toy(json, components, 4);
  auto& [config, data, scaler, model, classifier] = toy;
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
  ToyClassifier toy(json, components, 4);
  auto& [config, data, scaler, model, classifier] = toy;
  auto bytes = finetune::trained_model_bytes(*classifier, config, components, scaler, data.train);
  // A bit in the first tensor's data.
  const auto tensor_data = encore::testing::zip_entry_data_offset(bytes, "/data/0");
  bytes[tensor_data + 4] ^= 0x10;
  core::write_file_atomically(dir / "model.pt", bytes);
  EXPECT_THROW_WITH(finetune::load_trained_model(dir / "model.pt", components), core::DataError,
                    "model.pt: damaged archive at offset " + std::to_string(tensor_data) + ": checksum mismatch in entry \"");
}

namespace {

// Raw test images through a TorchScript method of a saved file.
torch::Tensor run_method(torch::jit::Module& module, const std::string& method, const torch::Tensor& raw) {
  return module.get_method(method)({raw}).toTensor();
}

}  // namespace

TEST(TrainedModel, TheFilesAreTorchScriptModulesComputingWhatEncoreComputesFromRawExamples) {
  encore::testing::TempDir dir;
  const auto components = finetune::builtin_components();
  const auto base = encore::testing::toy_experiment_config(dir);
  const std::vector<std::pair<std::string, core::Json>> variants = {
      {"one_vs_all abstaining, tied, encoder depth 1",
       {{"model", {{"hidden_dims", {16, 4}}, {"tied", true}, {"activation", "tanh"}}},
        {"finetune", {{"encoder_depth", 1}, {"head", {{"type", "one_vs_all"}, {"abstain_threshold", 0.6}}}}}}},
      {"softmax over a relu hidden layer, standardised inputs",
       {{"model", {{"hidden_dims", {16, 4}}, {"activation", "relu"}, {"output_activation", "linear"}}},
        {"data", {{"scaling", "standardize"}}},
        {"finetune", {{"hidden", {{"units", 5}, {"activation", "sigmoid"}}}, {"head", {{"type", "softmax"}}}}}}},
      {"convolutional: strided transposed decoder, pooling, batch norm, dense code",
       {{"model",
         {{"type", "convolutional_autoencoder"},
          {"hidden_dims", nullptr},
          {"corruption_levels", nullptr},
          {"channels", {3, 4}},
          {"strides", {2, 1}},
          {"pooling", {1, 2}},
          {"batch_norm", true},
          {"code_dim", 3},
          {"code_activation", "tanh"}}},
        {"pretrain", {{"mode", "end_to_end"}}},
        {"finetune", {{"head", {{"type", "softmax"}}}}}}},
      {"convolutional: upsampling decoder, global average code",
       {{"model",
         {{"type", "convolutional_autoencoder"},
          {"hidden_dims", nullptr},
          {"corruption_levels", nullptr},
          {"channels", {3, 5}},
          {"strides", {2}},
          {"decoder", "upsample"},
          {"code_pooling", "global_average"}}},
        {"pretrain", {{"mode", "end_to_end"}}},
        {"finetune", {{"head", {{"type", "one_vs_all"}}}}}}},
      {"variational, dense: the posterior mean",
       {{"model",
         {{"type", "variational_autoencoder"},
          {"hidden_dims", {12, 6}},
          {"latent_dim", 3},
          {"corruption_levels", nullptr},
          {"corruption", nullptr}}},
        {"pretrain", {{"mode", "end_to_end"}}},
        {"finetune", {{"head", {{"type", "softmax"}}}}}}},
      {"variational, convolutional",
       {{"model",
         {{"type", "convolutional_autoencoder"},
          {"hidden_dims", nullptr},
          {"corruption_levels", nullptr},
          {"channels", {3}},
          {"pooling", {2}},
          {"code_dim", 2},
          {"variational", true}}},
        {"pretrain", {{"mode", "end_to_end"}}},
        {"finetune", {{"head", {{"type", "softmax"}}}}}}},
      {"ladder network: the clean path with the running statistics",
       {{"model", {{"type", "ladder_network"}, {"hidden_dims", {6, 4}}, {"corruption", nullptr}, {"corruption_levels", nullptr}}},
        {"pretrain", {{"mode", "none"}}},
        {"finetune", {{"head", {{"type", "softmax"}}}}}}},
  };
  for (const auto& [name, patch] : variants) {
    SCOPED_TRACE(name);
    auto json = base;
    json.merge_patch(patch);
    ToyClassifier toy(json, components, 5);
    auto& [config, data, scaler, model, classifier] = toy;
    // Weights away from their initial values, so that every bias matters.
    for (auto& p : classifier->parameters()) p.data().add_(torch::randn_like(p) * 0.3);
    // Running statistics away from 0 and 1 (the variances stay positive), so that they matter too.
    for (auto& b : classifier->buffers()) {
      if (b.is_floating_point()) b.add_(torch::rand_like(b) * 0.3);
    }
    core::write_file_atomically(dir / "model.pt", finetune::trained_model_bytes(*classifier, config, components, scaler, data.train));
    core::write_file_atomically(dir / "pretrained.pt", finetune::pretrained_model_bytes(*model, config, components, scaler, data.train));

    const auto raw = data.test->features;  // [N, 8, 8] uint8, as the training examples
    model->module().eval();
    torch::NoGradGuard no_grad;
    auto file = torch::jit::load((dir / "model.pt").string());
    const auto [probabilities, classes] = classifier->classify(scaler.apply(raw));
    EXPECT_TRUE(torch::allclose(run_method(file, "forward", raw), probabilities, 1e-5, 1e-6));
    EXPECT_TRUE(torch::equal(run_method(file, "predict", raw), classes));
    auto loaded = finetune::load_trained_model(dir / "model.pt", components);
    EXPECT_TRUE(torch::allclose(run_method(file, "encode", raw), finetune::encode(loaded, raw, std::nullopt), 1e-5, 1e-6));
    EXPECT_EQ(file.attr("encore_class_names").toStringRef(), core::Json(data.train.class_names).dump());
    EXPECT_EQ(file.attr("encore_example_shape").toStringRef(), "[8,8]");

    auto pretrained = torch::jit::load((dir / "pretrained.pt").string());
    const auto scaled = scaler.apply(raw);
    EXPECT_TRUE(torch::allclose(run_method(pretrained, "encode", raw), model->encode(scaled), 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(run_method(pretrained, "forward", raw), model->forward(scaled), 1e-5, 1e-6));
    // pretrained.pt loads back as an autoencoder, its weights by their names.
    auto autoencoder = finetune::load_trained_model(dir / "pretrained.pt", components);
    EXPECT_FALSE(autoencoder.classifier);
    EXPECT_TRUE(torch::allclose(finetune::encode(autoencoder, raw, std::nullopt), model->encode(scaled), 1e-5, 1e-6));
    EXPECT_EQ(finetune::load_by_name(model->module(), (dir / "pretrained.pt").string()).unexpected, std::vector<std::string>{});
  }
}
