// The one-pass operations of the training step give what the plain LibTorch code they replace gives.
#include "encore/core/ops.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "support/support.h"

namespace encore::core {
namespace {

using testing::bitwise_equal;
using testing::IntraOpThreads;
using testing::kSplitColumns;
using testing::kSplitRows;

TEST(MaskingNoise, DropsTheLevelsShareAndKeepsTheRest) {
  torch::manual_seed(1);
  const auto x = torch::rand({300, 1000}) + 0.5;
  const auto y = masking_noise(x, 0.3);
  const auto dropped = (y == 0).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(dropped, 0.3, 0.005);
  const auto kept = y != 0;
  EXPECT_TRUE(torch::equal(y.masked_select(kept), x.masked_select(kept)));
  // Neighbouring elements are not correlated (a weak hash would show runs).
  const auto flat = (y == 0).to(torch::kFloat64).flatten();
  const auto both = (flat.narrow(0, 0, flat.size(0) - 1) * flat.narrow(0, 1, flat.size(0) - 1)).mean().item<double>();
  EXPECT_NEAR(both, 0.09, 0.005);
}

TEST(MaskingNoise, FollowsTheSeedAndNotTheThreadCount) {
  const auto x = torch::rand({64, 4096});
  torch::Tensor first, single_thread;
  {
    IntraOpThreads threads(2);
    torch::manual_seed(9);
    first = masking_noise(x, 0.5);
  }
  {
    IntraOpThreads threads(1);
    torch::manual_seed(9);
    single_thread = masking_noise(x, 0.5);
  }
  EXPECT_TRUE(bitwise_equal(first, single_thread));
  EXPECT_FALSE(torch::equal(first, masking_noise(x, 0.5)));
}

TEST(MaskingNoise, KeepsTheGradientPathForInputsThatNeedIt) {
  const auto x = torch::rand({8, 16}).requires_grad_(true);
  masking_noise(x, 0.25).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(((x.grad() == 0) | (x.grad() == 1)).all().item<bool>());
}

// `noise_like` draws the same noise after the same seed, other noise on the next call, and a
// data-parallel rank holding rows 50.. of the batch draws the noise one process draws there.
void expect_follows_the_seed_and_row_offset(torch::Tensor (*noise_like)(const torch::Tensor&), const torch::Tensor& x, std::uint64_t seed) {
  torch::manual_seed(seed);
  const auto noise = noise_like(x);
  EXPECT_FALSE(torch::equal(noise_like(x), noise));
  torch::manual_seed(seed);
  EXPECT_TRUE(bitwise_equal(noise_like(x), noise));
  torch::manual_seed(seed);
  BatchRowOffset offset(50);
  EXPECT_TRUE(bitwise_equal(noise_like(x.narrow(0, 50, 30)), noise.narrow(0, 50, 30)));
}

TEST(GaussianNoise, IsStandardNormalFollowsTheSeedAndGivesARankItsRowsOfTheGlobalBatch) {
  const auto x = torch::zeros({200, 1000});
  torch::manual_seed(3);
  const auto noise = gaussian_noise_like(x);
  EXPECT_EQ(noise.sizes(), x.sizes());
  EXPECT_NEAR(noise.mean().item<double>(), 0.0, 0.01);
  EXPECT_NEAR(noise.std().item<double>(), 1.0, 0.01);
  // Its tails: about 4.55% of a standard normal lies beyond two deviations.
  EXPECT_NEAR((noise.abs() > 2).to(torch::kFloat64).mean().item<double>(), 0.0455, 0.002);
  expect_follows_the_seed_and_row_offset(gaussian_noise_like, x, 3);
}

TEST(UniformNoise, FillsTheUnitIntervalEvenlyBelowOneFollowsTheSeedAndGivesARankItsRowsOfTheGlobalBatch) {
  const auto x = torch::zeros({200, 1000});
  torch::manual_seed(5);
  const auto noise = uniform_noise_like(x);
  EXPECT_EQ(noise.sizes(), x.sizes());
  EXPECT_GE(noise.min().item<float>(), 0.0F);
  EXPECT_LT(noise.max().item<float>(), 1.0F);
  // Each tenth of the interval holds a tenth of the draws.
  const auto tenths = torch::histc(noise, 10, 0, 1) / static_cast<double>(noise.numel());
  EXPECT_LT((tenths - 0.1).abs().max().item<double>(), 0.002);
  expect_follows_the_seed_and_row_offset(uniform_noise_like, x, 5);
}

TEST(OwnedRows, EachBlockRunsOnItsOwnThreadAndTheBlocksCoverEveryRowOnce) {
  IntraOpThreads threads(3);
  ASSERT_EQ(owned_row_blocks(kSplitRows, kSplitColumns), 3);
  std::vector<std::int64_t> owner(kSplitRows, -1);
  std::vector<int> thread_of_block(3, -1);
  for_each_owned_rows(kSplitRows, kSplitColumns, [&](std::int64_t block, std::int64_t first, std::int64_t end) {
    thread_of_block[static_cast<std::size_t>(block)] = at::get_thread_num();
    for (auto row = first; row < end; ++row) owner[static_cast<std::size_t>(row)] = block;
  });
  // A serial loop (encore compiled without OpenMP runs ATen's parallel loops serially) would run
  // every block on thread 0.
  EXPECT_EQ(thread_of_block, (std::vector<int>{0, 1, 2}));
  for (std::size_t row = 1; row < owner.size(); ++row) ASSERT_LE(owner[row - 1], owner[row]) << "row " << row;
  EXPECT_EQ(owner.front(), 0);
  EXPECT_EQ(owner.back(), 2);
  // A small parameter is one block, on the calling thread.
  EXPECT_EQ(owned_row_blocks(10, 1000), 1);
  EXPECT_EQ(owned_row_blocks(0, 1000), 1);
}

// Forward values and every gradient of core::linear against torch::linear and LibTorch's activation.
void expect_linear_like_torch(const torch::Tensor& input, const torch::Tensor& weight, const torch::Tensor& bias,
                              Activation activation = Activation::kLinear) {
  const auto grad_output_like = [](const torch::Tensor& y) { return torch::randn_like(y); };
  const auto run = [&](bool ours) {
    auto x = input.detach().clone().requires_grad_(input.requires_grad());
    auto w = weight.detach().clone().requires_grad_(true);
    auto b = bias.defined() ? bias.detach().clone().requires_grad_(true) : torch::Tensor();
    auto y = ours ? linear(x, w, b, activation) : activate(activation, torch::linear(x, w, b));
    torch::manual_seed(11);
    (y * grad_output_like(y)).sum().backward();
    return std::vector<torch::Tensor>{y.detach(), x.grad(), w.grad(), b.defined() ? b.grad() : torch::Tensor()};
  };
  const auto ours = run(true);
  const auto reference = run(false);
  const char* names[] = {"output", "input gradient", "weight gradient", "bias gradient"};
  for (std::size_t i = 0; i < ours.size(); ++i) {
    ASSERT_EQ(ours[i].defined(), reference[i].defined()) << names[i];
    if (!ours[i].defined()) continue;
    EXPECT_EQ(ours[i].sizes(), reference[i].sizes()) << names[i];
    // The products sum in another order (per-thread blocks against one GEMM, and each BLAS kernel
    // blocks differently): rounding is relative to the size of what is summed, not to each element.
    const double scale = std::max(1.0, reference[i].abs().max().item<double>());
    EXPECT_TRUE(torch::allclose(ours[i], reference[i], /*rtol=*/1e-4, /*atol=*/1e-4 * scale))
        << names[i] << ": largest difference " << (ours[i] - reference[i]).abs().max().item<double>() << " of values up to "
        << reference[i].abs().max().item<double>();
  }
}

TEST(Linear, MatchesTorchLinearWhenTheWeightIsSplitAcrossThreads) {
  IntraOpThreads threads(3);
  torch::manual_seed(5);
  const auto weight = torch::randn({kSplitRows, kSplitColumns}) * 0.05;
  const auto bias = torch::randn({kSplitRows});
  ASSERT_EQ(owned_row_blocks(kSplitRows, kSplitColumns), 3);
  expect_linear_like_torch(torch::randn({50, kSplitColumns}).requires_grad_(true), weight, bias);
  expect_linear_like_torch(torch::randn({50, kSplitColumns}).requires_grad_(true), weight, torch::Tensor());
  // Data as the first layer sees it: no gradient with respect to the input.
  expect_linear_like_torch(torch::randn({50, kSplitColumns}), weight, bias);
  expect_linear_like_torch(torch::randn({4, 6, kSplitColumns}).requires_grad_(true), weight, bias);
}

TEST(Linear, AppliesEachActivationInsideTheBlocksAsLibTorchDoes) {
  IntraOpThreads threads(3);
  torch::manual_seed(7);
  const auto weight = torch::randn({kSplitRows, kSplitColumns}) * 0.05;
  const auto bias = torch::randn({kSplitRows});
  for (const auto activation : {Activation::kSigmoid, Activation::kRelu, Activation::kTanh}) {
    SCOPED_TRACE(static_cast<int>(activation));
    expect_linear_like_torch(torch::randn({50, kSplitColumns}).requires_grad_(true), weight, bias, activation);
    // Pre-activations out to about +-100: saturated units, and the sigmoid's exp at its limits.
    expect_linear_like_torch((torch::randn({50, kSplitColumns}) * 100).requires_grad_(true), weight, bias, activation);
    // One block, on the calling thread.
    expect_linear_like_torch(torch::randn({50, kSplitColumns}).requires_grad_(true), weight.narrow(0, 0, 10), bias.narrow(0, 0, 10),
                             activation);
  }
}

TEST(Linear, MatchesTorchLinearForWeightsItDoesNotSplit) {
  IntraOpThreads threads(3);
  torch::manual_seed(6);
  const auto x = torch::randn({20, kSplitRows}).requires_grad_(true);
  // A tied decoder's weight is the encoder's transposed (LibTorch's path); a head's is one block.
  expect_linear_like_torch(x, torch::randn({kSplitRows, kSplitColumns}).t(), torch::randn({kSplitColumns}));
  expect_linear_like_torch(x, torch::randn({10, kSplitRows}), torch::randn({10}));
  expect_linear_like_torch(x.to(torch::kFloat64), torch::randn({kSplitColumns, kSplitRows}, torch::kFloat64), torch::Tensor());
}

TEST(LogisticLossSum, MatchesLibTorchsLossAndGradientAcrossTheLogitRange) {
  torch::manual_seed(12);
  // Saturated logits both ways, zero, and soft targets; over 3 chunks of the loss's loops.
  auto logits = torch::cat({torch::randn({40000}) * 6, torch::tensor({-100.0f, -30.0f, -1e-8f, 0.0f, 1e-8f, 30.0f, 100.0f})});
  const auto targets = torch::rand_like(logits);
  const auto run = [&](bool ours) {
    auto z = logits.detach().clone().requires_grad_(true);
    auto loss = ours ? logistic_loss_sum(z, targets) : torch::binary_cross_entropy_with_logits(z, targets, {}, {}, at::Reduction::Sum);
    (loss / 7).backward();
    return std::make_pair(loss.item<double>(), z.grad());
  };
  const auto [loss, grad] = run(true);
  const auto [reference_loss, reference_grad] = run(false);
  EXPECT_NEAR(loss, reference_loss, 1e-5 * std::abs(reference_loss));
  EXPECT_TRUE(torch::allclose(grad, reference_grad, /*rtol=*/1e-5, /*atol=*/1e-7))
      << "largest difference " << (grad - reference_grad).abs().max().item<double>();
  EXPECT_TRUE(torch::isfinite(grad).all().item<bool>());
}

TEST(LogisticLossSum, IsTheSameForAnyThreadCountAndFallsBackForOtherTypes) {
  torch::manual_seed(13);
  const auto logits = torch::randn({300, 200});
  const auto targets = torch::rand({300, 200});
  torch::Tensor one_thread, three_threads;
  {
    IntraOpThreads threads(1);
    one_thread = logistic_loss_sum(logits, targets);
  }
  {
    IntraOpThreads threads(3);
    three_threads = logistic_loss_sum(logits, targets);
  }
  EXPECT_TRUE(bitwise_equal(one_thread, three_threads));
  const auto doubles = logistic_loss_sum(logits.to(torch::kFloat64), targets.to(torch::kFloat64));
  EXPECT_EQ(doubles.scalar_type(), torch::kFloat64);
  EXPECT_NEAR(doubles.item<double>(), one_thread.item<double>(), 1e-5 * std::abs(doubles.item<double>()));
}

}  // namespace
}  // namespace encore::core
