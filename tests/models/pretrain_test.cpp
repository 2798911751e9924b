#include "encore/models/pretrain.h"

#include <torch/torch.h>

#include "encore/models/convolutional.h"
#include "encore/models/registry.h"
#include "support/support.h"

using namespace encore;

namespace {

core::Dataset image_data() {
  torch::manual_seed(8);
  core::Dataset d;
  d.labels = torch::arange(200, torch::kInt64).remainder(4);
  const auto pattern = torch::rand({4, 36});
  d.features = (pattern.index_select(0, d.labels) * 200 + torch::rand({200, 36}) * 55).to(torch::kUInt8);
  d.class_names = {"0", "1", "2", "3"};
  return d;
}

struct StageLosses : core::Callback {
  void on_epoch_end(core::Trainer& trainer, const core::Metrics& metrics) override {
    losses[trainer.state().stage].push_back(metrics.at("val/loss"));
  }
  std::map<std::string, std::vector<double>> losses;
};

}  // namespace

// 160 training and 40 validation rows of image_data().
class Pretrain : public ::testing::Test {
 protected:
  const core::Dataset data = image_data();
  const core::OptimizerRegistry registry = encore::testing::builtin_optimizers();
  const core::Scaler scaler = core::Scaler::fit(core::Scaling::kUnit, data, torch::arange(200));
  core::BatchSource train{data, torch::arange(160), scaler, 32, true, 1};
  core::BatchSource validation{data, torch::arange(160, 200), scaler, 40, false, 1};
};

TEST_F(Pretrain, GreedyTrainingOfALayerLeavesLowerLayersBitwiseUnchanged) {
  torch::manual_seed(1);
  models::StackedAutoencoder stack(models::StackedAutoencoderOptions(36, {16, 8}));
  std::map<std::string, torch::Tensor> layer0_before;
  for (const auto& item : stack->layer(0)->named_parameters()) layer0_before[item.key()] = item.value().detach().clone();
  const auto codes = models::encode_dataset([&](const torch::Tensor& x) { return stack->encode(x, 1); }, train);
  const auto identity = core::Scaler::fit(core::Scaling::kNone, codes, torch::arange(1));
  core::BatchSource coded(codes, torch::arange(codes.size()), identity, 32, true, 1);
  models::GreedyLayerTask task(stack.ptr(), 1, models::ReconstructionLoss::kMse);
  core::Json j = {{"epochs", 3}};
  core::Trainer trainer(task, core::parse_train_config(core::JsonReader(j), registry, core::TrainConfig{}), "layer1");
  const auto layer1_before = stack->layer(1)->encoder_weight.detach().clone();
  trainer.fit(coded, nullptr);
  for (const auto& item : stack->layer(0)->named_parameters()) {
    EXPECT_TRUE(encore::testing::bitwise_equal(item.value(), layer0_before.at(item.key()))) << item.key();
  }
  EXPECT_FALSE(encore::testing::bitwise_equal(stack->layer(1)->encoder_weight, layer1_before));
}

TEST_F(Pretrain, GreedyThenEndToEndRunsEveryStageAndReconstructionImproves) {
  core::Json j = {{"mode", "greedy_then_end_to_end"},
                  {"greedy", {{"epochs", 4}, {"optimizer", {{"lr", 0.01}}}, {"layers", {core::Json::object(), {{"epochs", 6}}}}}},
                  {"end_to_end", {{"epochs", 4}, {"optimizer", {{"lr", 0.003}}}}}};
  const auto config = models::parse_pretrain_config(core::JsonReader(j, "/pretrain"), registry);
  EXPECT_EQ(config.greedy_layer(1).epochs, 6);
  EXPECT_EQ(config.greedy_layer(0).epochs, 4);
  torch::manual_seed(1);
  models::StackedAutoencoder stack(models::StackedAutoencoderOptions(36, {16, 8}));
  auto recorder = std::make_shared<StageLosses>();
  core::StageContext context;
  context.attach_callbacks = [&](core::Trainer& t) { t.add_callback(recorder); };
  const auto results = models::pretrain(stack.ptr(), config, train, &validation, context);
  EXPECT_EQ(results.size(), 3u);
  for (const auto& stage : {"pretrain/layer0", "pretrain/layer1", "pretrain/end_to_end"}) {
    const auto& losses = recorder->losses.at(stage);
    EXPECT_LT(losses.back(), losses.front()) << stage;
  }
  EXPECT_EQ(recorder->losses.at("pretrain/layer1").size(), 6u);
}

TEST_F(Pretrain, GreedyTrainingOfAConvolutionalBlockLeavesTheBlocksBelowBitwiseUnchanged) {
  torch::manual_seed(1);
  models::ConvolutionalAutoencoder model(models::ConvolutionalAutoencoderOptions(36, {4, 6})
                                             .pooling({2, 1})
                                             .batch_norm(true)
                                             .code_dim(3)
                                             .corruption(models::Corruption::kMasking)
                                             .corruption_level(0.2));
  ASSERT_EQ(model->greedy_blocks(), 3);
  const auto named = [&] {
    std::map<std::string, torch::Tensor> state;
    for (const auto& item : model->named_parameters()) state[item.key()] = item.value().detach().clone();
    for (const auto& item : model->named_buffers()) state[item.key()] = item.value().clone();
    return state;
  };
  const auto before = named();
  models::GreedyBlockTask task(model.ptr(), 1, models::ReconstructionLoss::kMse);
  core::Json j = {{"epochs", 2}};
  core::Trainer trainer(task, core::parse_train_config(core::JsonReader(j), registry, core::TrainConfig{}), "block1");
  trainer.fit(train, nullptr);
  for (const auto& [name, value] : named()) {
    // Block 1 is encoder1 and decoder1 (their batch statistics move with them); nothing else moves.
    const bool trained = name.rfind("encoder1.", 0) == 0 || name.rfind("decoder1.", 0) == 0;
    EXPECT_NE(encore::testing::bitwise_equal(value, before.at(name)), trained) << name;
  }
}

TEST_F(Pretrain, GreedyConvolutionalBlocksThenEndToEndRunEveryStageAndEachReconstructionImproves) {
  core::Json j = {{"mode", "greedy_then_end_to_end"},
                  {"loss", "bce"},
                  {"greedy", {{"epochs", 6}, {"optimizer", {{"lr", 0.01}}}}},
                  {"end_to_end", {{"epochs", 4}, {"optimizer", {{"lr", 0.003}}}}}};
  const auto config = models::parse_pretrain_config(core::JsonReader(j, "/pretrain"), registry);
  for (const bool variational : {false, true}) {
    torch::manual_seed(1);
    models::ConvolutionalAutoencoder model(
        models::ConvolutionalAutoencoderOptions(36, {4, 6}).pooling({2, 1}).code_dim(3).variational(variational));
    EXPECT_EQ(models::pretrain_stage_names(config, *model),
              (std::vector<std::string>{"pretrain/block0", "pretrain/block1", "pretrain/block2", "pretrain/end_to_end"}));
    auto recorder = std::make_shared<StageLosses>();
    core::StageContext context;
    context.attach_callbacks = [&](core::Trainer& t) { t.add_callback(recorder); };
    const auto results = models::pretrain(model.ptr(), config, train, &validation, context);
    EXPECT_EQ(results.size(), 4u);
    for (const auto& [stage, losses] : recorder->losses)
      EXPECT_LT(losses.back(), losses.front()) << stage << " variational " << variational;
    // The variational code layer's greedy objective is an ELBO over the top maps: it has a KL term.
    EXPECT_EQ(results.at("pretrain/block2").count("val/kl"), variational ? 1u : 0u);
  }
}

TEST_F(Pretrain, AMaskedConvolutionalEncoderEndsWithTheBatchStatisticsOfTheCleanRows) {
  core::Json j = {{"mode", "end_to_end"}, {"end_to_end", {{"epochs", 2}, {"batch_size", 32}, {"optimizer", {{"lr", 0.003}}}}}};
  const auto config = models::parse_pretrain_config(core::JsonReader(j, "/pretrain"), registry);
  torch::manual_seed(1);
  models::ConvolutionalAutoencoder model(
      models::ConvolutionalAutoencoderOptions(36, {4}).batch_norm(true).corruption(models::Corruption::kMasking).corruption_level(0.5));
  models::pretrain(model.ptr(), config, train, &validation, core::StageContext{});
  // The 160 training rows in their own order, in the stage's batches of 32 (of equal size, so the
  // average of the batches' means is the rows' mean).
  torch::NoGradGuard no_grad;
  const auto maps =
      model->named_modules()["encoder0.conv"]->as<torch::nn::Conv2dImpl>()->forward(train.rows(train.indices()).inputs.view({-1, 1, 6, 6}));
  EXPECT_TRUE(torch::allclose(model->named_buffers()["encoder0.norm.running_mean"], maps.mean({0, 2, 3}), 1e-4, 1e-6));
}

TEST_F(Pretrain, PerLayerSettingsMustMatchTheDepth) {
  core::Json j = {{"greedy", {{"layers", {core::Json::object()}}}}};
  const auto config = models::parse_pretrain_config(core::JsonReader(j, "/pretrain"), registry);
  models::StackedAutoencoder stack(models::StackedAutoencoderOptions(10, {6, 4, 2}));
  EXPECT_THROW_WITH(models::check_pretrain_fits_model(config, *stack), core::ConfigError,
                    "config error at /pretrain/greedy/layers: has 1 entries, but the model has 3 greedy layers");
  models::ConvolutionalAutoencoder blocks(models::ConvolutionalAutoencoderOptions(36, {4, 4}).code_dim(2));
  EXPECT_THROW_WITH(models::check_pretrain_fits_model(config, *blocks), core::ConfigError,
                    "config error at /pretrain/greedy/layers: has 1 entries, but the model has 3 greedy blocks");
}

TEST(ModelRegistry, BuildsByTypeNameAndRejectsBadOptions) {
  models::ModelRegistry registry("model");
  models::register_builtin_models(registry);
  core::Json j = {{"type", "stacked_autoencoder"}, {"hidden_dims", {5, 3}}, {"activation", "relu"}, {"tied", true}};
  const auto config = models::parse_model_config(core::JsonReader(j, "/model"), registry);
  auto model = models::build_model(config, registry, {10});
  EXPECT_EQ(model->greedy_layers().size(), 2u);
  EXPECT_EQ(model->encode(torch::rand({2, 10})).size(1), 3);
  core::Json bad = {{"hidden_dims", {5}}, {"activation", "relu"}, {"sparsity", "kl"}};
  EXPECT_THROW_WITH(models::parse_model_config(core::JsonReader(bad, "/model"), registry), core::ConfigError,
                    "/model/sparsity: \"kl\" needs sigmoid codes");
  core::Json unknown = {{"type", "stacked_autoencodr"}, {"hidden_dims", {5}}};
  EXPECT_THROW_WITH(models::parse_model_config(core::JsonReader(unknown, "/model"), registry), core::ConfigError,
                    "(did you mean \"stacked_autoencoder\"?)");
}
