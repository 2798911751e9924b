#include "encore/models/convolutional.h"

#include <torch/torch.h>

#include "encore/core/image.h"
#include "encore/models/pictures.h"
#include "support/support.h"

using namespace encore;
using models::ConvolutionalAutoencoderOptions;

TEST(ConvolutionalAutoencoder, ReconstructsTheInputsExactShapeWhateverTheStridesPoolingAndDecoder) {
  // 9 x 7 images: odd sides, which strides and pooling round down, and the decoder must restore.
  for (const auto decoder : {models::ConvolutionalDecoder::kTransposed, models::ConvolutionalDecoder::kUpsample}) {
    for (const std::int64_t image_channels : {1, 3}) {
      const auto options = ConvolutionalAutoencoderOptions(image_channels * 9 * 7, {4, 6})
                               .image_channels(image_channels)
                               .height(9)
                               .width(7)
                               .strides({2, 1})
                               .pooling({1, 2})
                               .batch_norm(true)
                               .decoder(decoder);
      models::ConvolutionalAutoencoder model(options);
      const auto x = torch::rand({5, image_channels * 63});
      // Block 0: 9x7 -> stride 2 -> 5x4; block 1: stride 1, pooling 2 -> 2x2 maps of 6 channels.
      EXPECT_EQ(model->feature_maps(x).sizes(), (std::vector<std::int64_t>{5, 6, 2, 2}));
      EXPECT_EQ(model->forward(x).sizes(), x.sizes());
      EXPECT_EQ(model->encode(x).sizes(), (std::vector<std::int64_t>{5, 24}));
      EXPECT_EQ(model->code_dim(), 24);
      models::ConvolutionalAutoencoder pooled(ConvolutionalAutoencoderOptions(options).code_pooling(models::CodePooling::kGlobalAverage));
      EXPECT_EQ(pooled->encode(x).sizes(), (std::vector<std::int64_t>{5, 6}));
      EXPECT_EQ(pooled->forward(x).sizes(), x.sizes());
      models::ConvolutionalAutoencoder coded(ConvolutionalAutoencoderOptions(options).code_dim(3));
      EXPECT_EQ(coded->encode(x).sizes(), (std::vector<std::int64_t>{5, 3}));
      EXPECT_EQ(coded->forward(x).sizes(), x.sizes());
    }
  }
  // Square grey images need no shape: 784 numbers are 28 x 28.
  models::ConvolutionalAutoencoder square(ConvolutionalAutoencoderOptions(784, {2}).pooling({2}));
  EXPECT_EQ(square->feature_maps(torch::rand({1, 784})).sizes(), (std::vector<std::int64_t>{1, 2, 14, 14}));
}

TEST(ConvolutionalAutoencoder, OptionsThatDoNotFitTheImagesAreErrorsNamingTheOption) {
  using models::ConvolutionalAutoencoder;
  EXPECT_THROW_WITH(ConvolutionalAutoencoder(ConvolutionalAutoencoderOptions(784, {4}).image_channels(3)), core::OptionError,
                    "784 numbers per row are not 3 channel(s) of a square image, but the data's rows have 784");
  EXPECT_THROW_WITH(ConvolutionalAutoencoder(ConvolutionalAutoencoderOptions(784, {4}).height(28).width(27)), core::OptionError,
                    "1 x 28 x 27 images have 756 numbers, but the data's rows have 784");
  EXPECT_THROW_WITH(ConvolutionalAutoencoder(ConvolutionalAutoencoderOptions(784, {4}).height(28)), core::OptionError,
                    "give both height and width, or neither");
  EXPECT_THROW_WITH(ConvolutionalAutoencoder(ConvolutionalAutoencoderOptions(784, {4}).kernel_sizes({4})), core::OptionError,
                    "must be odd");
  EXPECT_THROW_WITH(ConvolutionalAutoencoder(ConvolutionalAutoencoderOptions(784, {4, 8, 8}).strides({1, 2})), core::OptionError,
                    "needs one value per block (3) or one for all, got 2");
  EXPECT_THROW_WITH(ConvolutionalAutoencoder(ConvolutionalAutoencoderOptions(784, {4, 4, 4, 4, 4}).pooling({2})), core::OptionError,
                    "block 4 shrinks the 28 x 28 images to nothing");
}

TEST(ConvolutionalAutoencoder, TrainingEndToEndLowersTheReconstructionErrorAndCorruptsOnlyInTraining) {
  torch::manual_seed(2);
  models::ConvolutionalAutoencoder model(
      ConvolutionalAutoencoderOptions(64, {8, 8}).pooling({2}).code_dim(4).corruption(models::Corruption::kMasking).corruption_level(0.2));
  const auto x = encore::testing::square_images(32);
  model->eval();
  const double before = torch::mse_loss(model->forward(x), x).item<double>();
  EXPECT_TRUE(torch::equal(model->forward(x), model->forward(x))) << "no corruption in eval mode";
  model->train();
  EXPECT_FALSE(torch::equal(model->forward(x), model->forward(x))) << "masking noise in training mode";
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(0.01));
  for (int step = 0; step < 150; ++step) {
    optimizer.zero_grad();
    torch::mse_loss(model->forward(x), x).backward();
    optimizer.step();
  }
  model->eval();
  const double after = torch::mse_loss(model->forward(x), x).item<double>();
  EXPECT_LT(after, before / 4) << before << " -> " << after;
}

namespace {

// The per-channel mean and (unbiased) variance of block 0's convolution of `rows` [B, 64] (8 x 8
// grey images), averaged over the batches `rows` is cut into: what batch normalisation without
// a momentum keeps.
std::pair<torch::Tensor, torch::Tensor> first_convolution_statistics(models::ConvolutionalAutoencoder& model,
                                                                     const std::vector<torch::Tensor>& batches) {
  torch::NoGradGuard no_grad;
  auto& conv = *model->named_modules()["encoder0.conv"]->as<torch::nn::Conv2dImpl>();
  torch::Tensor mean = torch::zeros({conv.options.out_channels()}), variance = torch::zeros_like(mean);
  for (const auto& rows : batches) {
    const auto maps = conv.forward(rows.view({-1, 1, 8, 8}));
    mean += maps.mean({0, 2, 3}) / static_cast<double>(batches.size());
    variance += maps.var({0, 2, 3}, /*unbiased=*/true) / static_cast<double>(batches.size());
  }
  return {mean, variance};
}

}  // namespace

TEST(ConvolutionalAutoencoder, ReestimatedEncoderStatisticsAreThoseOfTheCleanRowsAndTheDecoderKeepsItsOwn) {
  torch::manual_seed(3);
  const auto x = encore::testing::square_images(32);
  for (const double masking : {0.5, 0.0}) {
    models::ConvolutionalAutoencoder model(ConvolutionalAutoencoderOptions(64, {3, 5})
                                               .pooling({2})
                                               .batch_norm(true)
                                               .corruption(models::Corruption::kMasking)
                                               .corruption_level(masking));
    {
      // Running statistics of masked images, as end-to-end training leaves them.
      torch::NoGradGuard no_grad;
      for (int step = 0; step < 5; ++step) model->forward(x);
    }
    model->eval();
    std::map<std::string, torch::Tensor> trained;
    for (const auto& item : model->named_buffers()) trained[item.key()] = item.value().clone();
    const auto halves = x.chunk(2);
    std::size_t fed = 0;
    model->reestimate_encoder_statistics([&] { return fed < halves.size() ? halves[fed++] : torch::Tensor(); });
    EXPECT_FALSE(model->is_training());
    auto buffers = model->named_buffers();
    if (masking == 0) {
      // Trained on clean images already: nothing to re-estimate.
      for (const auto& [name, value] : trained) EXPECT_TRUE(encore::testing::bitwise_equal(buffers[name], value)) << name;
      continue;
    }
    const auto [mean, variance] = first_convolution_statistics(model, halves);
    EXPECT_TRUE(torch::allclose(buffers["encoder0.norm.running_mean"], mean, 1e-4, 1e-6));
    EXPECT_TRUE(torch::allclose(buffers["encoder0.norm.running_var"], variance, 1e-4, 1e-6));
    EXPECT_FALSE(torch::allclose(trained["encoder0.norm.running_mean"], mean, 1e-2, 1e-4)) << "the masked images' statistics differ";
    EXPECT_FALSE(encore::testing::bitwise_equal(buffers["encoder1.norm.running_var"], trained["encoder1.norm.running_var"]));
    for (const auto& name : {"decoder1.norm.running_mean", "decoder1.norm.running_var"})
      EXPECT_TRUE(encore::testing::bitwise_equal(buffers[name], trained[name])) << name;
    // Training goes on with the momentum it had.
    EXPECT_EQ(model->named_modules()["encoder0.norm"]->as<torch::nn::BatchNorm2dImpl>()->options.momentum(), 0.1);
  }
}

TEST(ConvolutionalAutoencoder, EncoderPartsAreTheBlocksAndTheCodeAndFiltersAreDrawnInTheImagesColours) {
  models::ConvolutionalAutoencoder model(ConvolutionalAutoencoderOptions(3 * 8 * 8, {5, 6}).image_channels(3).code_dim(2));
  const auto parts = model->encoder_parts();
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].name, "block0");
  EXPECT_EQ(parts[2].name, "code");
  EXPECT_TRUE(parts[0].parameters[0].is_same(model->named_parameters()["encoder0.conv.weight"]));
  EXPECT_EQ(model->input_filters({3, 8, 8}).sizes(), (std::vector<std::int64_t>{5, 3, 3, 3}));
  encore::testing::TempDir dir;
  ASSERT_TRUE(models::write_filters_png(dir / "filters.png", *model, {3, 8, 8}));
  // 5 filters in 3 columns and 2 rows of 3x3 tiles with 1 px gaps, drawn 8x.
  EXPECT_EQ(encore::testing::png_size(dir / "filters.png"), std::make_pair(8 * (3 * 4 + 1), 8 * (2 * 4 + 1)));
  EXPECT_EQ(core::image_grid(torch::rand({5, 3, 3, 3}), 3, 1, true).sizes(), (std::vector<std::int64_t>{9, 13, 3}));
}

TEST(ConvolutionalAutoencoder, TheDenoisingCostWeighsEachBlocksObjectiveAndTrainsTheBlocksBelowThroughTheirMaps) {
  torch::manual_seed(3);
  models::ConvolutionalAutoencoder model(ConvolutionalAutoencoderOptions(64, {4, 6}).pooling({2}).code_dim(3));
  const auto x = encore::testing::square_images(8);
  const auto bce = models::ReconstructionLoss::kBinaryCrossEntropy;
  ASSERT_EQ(model->denoising_levels(), 3);
  // In eval mode nothing is corrupted: each level's cost is its greedy objective, weighted.
  model->eval();
  for (int level = 0; level < 3; ++level) {
    std::vector<double> weights(3, 0.0);
    weights[static_cast<std::size_t>(level)] = 2.0;
    EXPECT_NEAR(model->denoising_cost(x, weights, bce).item<double>(),
                2.0 * model->greedy_block_objective(x, level, bce).total.item<double>(), 1e-5)
        << level;
  }
  // Block 1's cost reaches block 0 through its input maps (unlike greedy training), not decoder0 or the code layer.
  model->train();
  model->zero_grad();
  model->denoising_cost(x, {0.0, 1.0, 0.0}, bce).backward();
  const auto grads = model->named_parameters();
  for (const auto& name : {"encoder0.conv.weight", "encoder1.conv.weight", "decoder1.conv.weight"}) {
    ASSERT_TRUE(grads[name].grad().defined()) << name;
    EXPECT_GT(grads[name].grad().abs().sum().item<double>(), 0) << name;
  }
  for (const auto& name : {"decoder0.conv.weight", "code.weight", "uncode.weight"}) EXPECT_FALSE(grads[name].grad().defined()) << name;
  EXPECT_THROW_WITH(model->denoising_cost(x, {1.0, 1.0}, bce), c10::Error, "2 weights for 3 levels");
}
