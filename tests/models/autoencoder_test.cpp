#include "encore/models/autoencoder.h"
#include "encore/models/model.h"

#include <torch/torch.h>

#include "support/support.h"

using namespace encore::models;

namespace {

/// Inputs in [0, 1] with low-dimensional structure, so that a small code can reconstruct them.
torch::Tensor structured_inputs(int n, int d) {
  torch::manual_seed(11);
  const auto factors = torch::rand({n, 3});
  const auto mixing = torch::rand({3, d});
  return torch::sigmoid((factors.mm(mixing) - 0.75) * 4);
}

double train_layer(AutoencoderLayer& layer, const torch::Tensor& x, int steps, ReconstructionLoss kind) {
  torch::optim::Adam optimizer(layer->parameters(), torch::optim::AdamOptions(0.01));
  layer->train();
  double last = 0;
  for (int s = 0; s < steps; ++s) {
    optimizer.zero_grad();
    auto loss = layer->loss(x, kind).total;
    loss.backward();
    optimizer.step();
    last = loss.item<double>();
  }
  return last;
}

}  // namespace

TEST(AutoencoderLayer, EveryVariantsLossFalls) {
  const auto x = structured_inputs(64, 20);
  struct Variant {
    std::string name;
    AutoencoderLayerOptions options;
    ReconstructionLoss loss;
  };
  const std::vector<Variant> variants = {
      {"plain sigmoid mse", AutoencoderLayerOptions(20, 8), ReconstructionLoss::kMse},
      {"relu bce", AutoencoderLayerOptions(20, 8).activation(Activation::kRelu), ReconstructionLoss::kBinaryCrossEntropy},
      {"tanh tied", AutoencoderLayerOptions(20, 8).activation(Activation::kTanh).tied(true), ReconstructionLoss::kMse},
      {"linear", AutoencoderLayerOptions(20, 8).activation(Activation::kLinear), ReconstructionLoss::kMse},
      {"masking", AutoencoderLayerOptions(20, 8).corruption(Corruption::kMasking).corruption_level(0.2), ReconstructionLoss::kMse},
      {"gaussian", AutoencoderLayerOptions(20, 8).corruption(Corruption::kGaussian).corruption_level(0.1), ReconstructionLoss::kMse},
      {"salt and pepper", AutoencoderLayerOptions(20, 8).corruption(Corruption::kSaltAndPepper).corruption_level(0.1),
       ReconstructionLoss::kMse},
      {"kl sparse", AutoencoderLayerOptions(20, 8).sparsity(Sparsity::kKl).sparsity_weight(0.1), ReconstructionLoss::kMse},
      {"l1 sparse", AutoencoderLayerOptions(20, 8).activation(Activation::kRelu).sparsity(Sparsity::kL1).sparsity_weight(0.001),
       ReconstructionLoss::kMse},
      {"contractive", AutoencoderLayerOptions(20, 8).contractive_weight(0.01), ReconstructionLoss::kMse},
  };
  for (const auto& v : variants) {
    torch::manual_seed(2);
    AutoencoderLayer layer(v.options);
    torch::Tensor before;
    {
      torch::NoGradGuard no_grad;
      layer->eval();
      before = layer->loss(x, v.loss).total;
    }
    train_layer(layer, x, 150, v.loss);
    torch::NoGradGuard no_grad;
    layer->eval();
    // BCE on targets in (0, 1) cannot go below their entropy; measure progress above that floor.
    const double floor = reconstruction_loss(v.loss, x, x).item<double>();
    EXPECT_LT(layer->loss(x, v.loss).total.item<double>() - floor, 0.7 * (before.item<double>() - floor)) << v.name;
  }
}

TEST(AutoencoderLayer, TiedDecoderIsTheEncoderWeightAndGetsBothGradients) {
  torch::manual_seed(3);
  AutoencoderLayer tied(AutoencoderLayerOptions(6, 4).tied(true));
  EXPECT_EQ(tied->parameters().size(), 3u);  // encoder weight, encoder bias, decoder bias
  EXPECT_EQ(tied->decoder_weight().data_ptr(), tied->encoder_weight.data_ptr());
  const auto x = torch::rand({5, 6});
  // The tied gradient is the sum of the encoder-path and decoder-path gradients.
  auto w = tied->encoder_weight.detach().clone().requires_grad_(true);
  auto w_dec = tied->encoder_weight.detach().clone().requires_grad_(true);
  const auto code = torch::sigmoid(torch::addmm(tied->encoder_bias.detach(), x, w.t()));
  const auto recon = torch::sigmoid(torch::addmm(tied->decoder_bias.detach(), code, w_dec));
  torch::mse_loss(recon, x).backward();
  tied->eval();
  reconstruction_loss(ReconstructionLoss::kMse, tied->forward(x), x).backward();
  EXPECT_TRUE(torch::allclose(tied->encoder_weight.grad(), w.grad() + w_dec.grad(), 1e-6, 1e-7));
  EXPECT_GT(w_dec.grad().abs().sum().item<double>(), 0.0);
}

TEST(AutoencoderLayer, CorruptionOnlyInTrainingMode) {
  torch::manual_seed(4);
  AutoencoderLayer layer(AutoencoderLayerOptions(10, 4).corruption(Corruption::kMasking).corruption_level(0.5));
  const auto x = torch::rand({8, 10});
  layer->eval();
  EXPECT_TRUE(torch::equal(layer->forward(x), layer->forward(x)));
  EXPECT_TRUE(torch::equal(layer->forward(x), layer->decode(layer->encode(x))));
  layer->train();
  EXPECT_FALSE(torch::equal(layer->forward(x), layer->forward(x)));
}

TEST(AutoencoderLayer, ContractivePenaltyMatchesAutogradJacobian) {
  for (auto activation : {Activation::kSigmoid, Activation::kTanh, Activation::kRelu}) {
    torch::manual_seed(5);
    const double weight = 0.3;
    AutoencoderLayer layer(AutoencoderLayerOptions(7, 5).activation(activation).contractive_weight(weight));
    const auto x = torch::randn({4, 7}).to(torch::kFloat64);
    layer->to(torch::kFloat64);
    const auto z = torch::addmm(layer->encoder_bias, x, layer->encoder_weight.t());
    const auto penalty = layer->penalty(encore::core::activate(activation, z)).item<double>();
    double frobenius = 0;
    for (int i = 0; i < 4; ++i) {
      auto xi = x[i].detach().clone().requires_grad_(true);
      const auto code = layer->encode(xi.unsqueeze(0)).squeeze(0);
      for (int j = 0; j < 5; ++j) {
        const auto row = torch::autograd::grad({code[j]}, {xi}, {}, /*retain_graph=*/true)[0];
        frobenius += row.pow(2).sum().item<double>();
      }
    }
    EXPECT_NEAR(penalty, weight * frobenius / 4, 1e-4) << activation_name(activation);
  }
}

TEST(AutoencoderLayer, SparsityPenaltyMovesMeanActivationTowardTarget) {
  const auto x = structured_inputs(128, 20);
  auto mean_activation = [&](double weight) {
    torch::manual_seed(6);
    AutoencoderLayer layer(AutoencoderLayerOptions(20, 16).sparsity(Sparsity::kKl).sparsity_target(0.05).sparsity_weight(weight));
    train_layer(layer, x, 300, ReconstructionLoss::kMse);
    torch::NoGradGuard no_grad;
    return layer->encode(x).mean().item<double>();
  };
  const double free = mean_activation(0.0);
  const double sparse = mean_activation(0.5);
  EXPECT_LT(std::abs(sparse - 0.05), std::abs(free - 0.05));
  EXPECT_LT(sparse, 0.15);
}

// Options set from C++ fail with the option's name and value, not a LibTorch check with a stack trace.
TEST(AutoencoderLayer, InvalidOptionsAreRejectedWithTheOptionAndValue) {
  EXPECT_THROW_WITH(AutoencoderLayer(AutoencoderLayerOptions(10, 0)), encore::core::OptionError,
                    "option hidden_dim: layer sizes must be >= 1, got 10 -> 0");
  EXPECT_THROW_WITH(AutoencoderLayer(AutoencoderLayerOptions(10, 4).activation(Activation::kRelu).sparsity(Sparsity::kKl)),
                    encore::core::OptionError, "option sparsity: \"kl\" needs sigmoid codes; use \"l1\" with activation \"relu\"");
}

TEST(StackedAutoencoder, InvalidOptionsAreRejectedWithTheOptionAndValue) {
  EXPECT_THROW_WITH(StackedAutoencoder(StackedAutoencoderOptions(10, {})), encore::core::OptionError,
                    "option hidden_dims: must list at least one layer size");
  EXPECT_THROW_WITH(StackedAutoencoder(StackedAutoencoderOptions(10, {8, 0})), encore::core::OptionError,
                    "option hidden_dims: entries must be >= 1, got 0 at index 1");
  EXPECT_THROW_WITH(StackedAutoencoder(StackedAutoencoderOptions(10, {8}).corruption(Corruption::kMasking).corruption_levels({1.5})),
                    encore::core::OptionError, "option corruption_levels: masking levels must be in [0, 1), got 1.5");
  EXPECT_THROW_WITH(StackedAutoencoder(StackedAutoencoderOptions(10, {8}).sparsity_weight(-1)), encore::core::OptionError,
                    "option sparsity_weight: must be >= 0, got -1");
}

TEST(StackedAutoencoder, LayersHaveStableNamesAndShapes) {
  StackedAutoencoder stack(StackedAutoencoderOptions(12, {8, 4, 2}).corruption(Corruption::kMasking).corruption_levels({0.1, 0.2, 0.3}));
  const auto params = stack->named_parameters();
  EXPECT_TRUE(params.contains("layer0.encoder_weight"));
  EXPECT_TRUE(params.contains("layer2.decoder_bias"));
  EXPECT_EQ(params["layer1.encoder_weight"].sizes(), (std::vector<std::int64_t>{4, 8}));
  EXPECT_DOUBLE_EQ(stack->layer(2)->options.corruption_level(), 0.3);
  const auto x = torch::rand({3, 12});
  EXPECT_EQ(stack->encode(x).sizes(), (std::vector<std::int64_t>{3, 2}));
  EXPECT_EQ(stack->encode(x, 1).sizes(), (std::vector<std::int64_t>{3, 8}));
  EXPECT_EQ(stack->forward(x).sizes(), x.sizes());
}

TEST(StackedAutoencoder, SavedAndReloadedGivesBitwiseTheSameOutputs) {
  encore::testing::TempDir dir;
  torch::manual_seed(7);
  StackedAutoencoder stack(StackedAutoencoderOptions(12, {8, 4}).tied(true));
  torch::save(stack, (dir / "stack.pt").string());
  torch::manual_seed(99);
  StackedAutoencoder loaded(StackedAutoencoderOptions(12, {8, 4}).tied(true));
  torch::load(loaded, (dir / "stack.pt").string());
  stack->eval();
  loaded->eval();
  const auto x = torch::rand({5, 12});
  EXPECT_TRUE(encore::testing::bitwise_equal(stack->forward(x), loaded->forward(x)));
}
