#include "encore/models/ladder.h"

#include <torch/torch.h>

#include "support/support.h"

using namespace encore;

namespace {

models::LadderNetwork small_ladder(double noise = 0.3) {
  torch::manual_seed(5);
  return models::LadderNetwork(models::LadderNetworkOptions(12, {8, 6}).noise(noise));
}

// A parameter or buffer by name.
torch::Tensor tensor_named(models::LadderNetwork& ladder, const std::string& name) {
  if (auto* parameter = ladder->named_parameters().find(name)) return *parameter;
  return ladder->named_buffers()[name];
}

// Rows near one of three centres: structure for the decoder to learn.
torch::Tensor clustered_rows(std::int64_t n) {
  torch::manual_seed(8);
  const auto centres = torch::rand({3, 12});
  return centres.index_select(0, torch::arange(n).remainder(3)) + 0.05 * torch::randn({n, 12});
}

}  // namespace

TEST(LadderNetwork, TheCombinatorStartsAtZeroAndComputesThePapersFormula) {
  const auto noisy = torch::randn({4, 3});
  const auto from_above = torch::randn({4, 3});
  auto a = torch::zeros({10, 3});
  a[1].fill_(1);
  a[6].fill_(1);
  EXPECT_TRUE(torch::equal(models::ladder_combinator(a, noisy, from_above), torch::zeros({4, 3})));
  a = torch::rand({10, 3});
  const auto mu = a[0] * torch::sigmoid(a[1] * from_above + a[2]) + a[3] * from_above + a[4];
  const auto v = a[5] * torch::sigmoid(a[6] * from_above + a[7]) + a[8] * from_above + a[9];
  EXPECT_TRUE(torch::allclose(models::ladder_combinator(a, noisy, from_above), noisy * v + mu * (1 - v)));
  // v = 1 (a10 alone): the estimate is the lateral activation itself, whatever comes from above.
  a.zero_();
  a[9].fill_(1);
  EXPECT_TRUE(torch::allclose(models::ladder_combinator(a, noisy, from_above), noisy));
}

TEST(LadderNetwork, EvalModeEncodesTheCleanPathWithTheRunningStatistics) {
  torch::manual_seed(5);
  models::LadderNetwork ladder(models::LadderNetworkOptions(12, {8, 6}).top_activation(models::Activation::kLinear));
  const auto x = clustered_rows(30);
  ladder->train();
  const auto noisy = ladder->encode(x);
  EXPECT_FALSE(torch::equal(noisy, ladder->encode(x))) << "the training path is noisy";
  EXPECT_FALSE(torch::allclose(tensor_named(ladder, "running_mean1"), torch::zeros({8})))
      << "a training pass updates the running statistics";
  ladder->eval();
  const auto clean = ladder->encode(x);
  EXPECT_TRUE(torch::equal(clean, ladder->encode(x)));
  auto h = x;
  for (const auto* layer : {"1", "2"}) {
    const auto of = [&](const std::string& name) { return tensor_named(ladder, name + layer); };
    const auto z = (h.matmul(of("weight").t()) - of("running_mean")) / (of("running_var") + 1e-5).sqrt();
    h = of("gamma") * (z + of("beta"));
    if (std::string(layer) == "1") h = torch::relu(h);
  }
  EXPECT_TRUE(torch::allclose(clean, h, 1e-5, 1e-6));
  EXPECT_EQ(clean.sizes(), (std::vector<std::int64_t>{30, 6}));
}

TEST(LadderNetwork, TrainingOnItsDenoisingCostLowersItAndReachesEveryLayer) {
  auto ladder = small_ladder();
  const auto x = clustered_rows(60);
  const std::vector<double> weights{1.0, 1.0, 1.0};
  torch::optim::Adam optimizer(ladder->parameters(), torch::optim::AdamOptions(0.01));
  ladder->train();
  torch::manual_seed(1);
  const double before = ladder->denoising_cost(x, weights, models::ReconstructionLoss::kMse).item<double>();
  for (int step = 0; step < 200; ++step) {
    optimizer.zero_grad();
    const auto cost = ladder->denoising_cost(x, weights, models::ReconstructionLoss::kMse);
    cost.backward();
    // The combinators start at a zero estimate, blind to the paths: gradients reach the layers once they have moved.
    if (step == 10) {
      for (const auto& item : ladder->named_parameters()) {
        EXPECT_TRUE(item.value().grad().defined() && item.value().grad().abs().sum().item<double>() > 0)
            << item.key() << " gets no gradient";
      }
    }
    optimizer.step();
  }
  torch::manual_seed(1);
  const double after = ladder->denoising_cost(x, weights, models::ReconstructionLoss::kMse).item<double>();
  EXPECT_LT(after, 0.5 * before) << "denoising cost " << before << " -> " << after;
}

TEST(LadderNetwork, TheCleanPathIsTheTargetAndAZeroWeightedLevelAddsNoTerm) {
  auto ladder = small_ladder();
  const auto x = clustered_rows(20);
  ladder->train();
  // Only level 1 weighted: the decoder runs from the top down to level 1, so the weight from
  // level 1 to the input, and the input's combinator, take no part.
  ladder->denoising_cost(x, {0.0, 1.0, 0.0}, models::ReconstructionLoss::kMse).backward();
  EXPECT_FALSE(tensor_named(ladder, "decoder_weight1").grad().defined());
  EXPECT_FALSE(tensor_named(ladder, "combinator0").grad().defined());
  EXPECT_TRUE(tensor_named(ladder, "decoder_weight2").grad().defined());
  // Without noise the noisy path is the clean one: the estimate of the input from the lateral
  // connection alone (v = 1) is exact, a zero cost.
  auto quiet = small_ladder(0.0);
  quiet->train();
  {
    torch::NoGradGuard no_grad;
    tensor_named(quiet, "combinator0").zero_();
    tensor_named(quiet, "combinator0")[9].fill_(1);
  }
  EXPECT_NEAR(quiet->denoising_cost(x, {1.0, 0.0, 0.0}, models::ReconstructionLoss::kMse).item<double>(), 0.0, 1e-12);
  // With noise of deviation 0.3 the same estimate is off by the noise: a cost near 0.3^2.
  auto noisy = small_ladder(0.3);
  {
    torch::NoGradGuard no_grad;
    tensor_named(noisy, "combinator0").zero_();
    tensor_named(noisy, "combinator0")[9].fill_(1);
  }
  EXPECT_NEAR(noisy->denoising_cost(x, {1.0, 0.0, 0.0}, models::ReconstructionLoss::kMse).item<double>(), 0.09, 0.03);
}
