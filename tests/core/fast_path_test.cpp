// The fast paths of the training step give what the plain LibTorch code they replace gives.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>

#include "encore/core/dataset.h"
#include "encore/core/fused_adam.h"
#include "encore/core/ops.h"
#include "encore/core/runtime.h"
#include "support/support.h"

namespace encore::core {
namespace {

using testing::bitwise_equal;

// Runs `steps` updates of the same gradients through two optimizers over copies of one parameter set.
template <class Reference, class Fused, class Options>
void expect_same_trajectory(const Options& options) {
  torch::manual_seed(3);
  // Odd sizes exercise the vector loops' remainders; zero gradients in one block exercise v = 0.
  std::vector<torch::Tensor> reference_params{torch::randn({37, 129}), torch::randn({1001})};
  std::vector<torch::Tensor> fused_params;
  for (auto& p : reference_params) {
    p.requires_grad_(true);
    fused_params.push_back(p.detach().clone().requires_grad_(true));
  }
  Reference reference(reference_params, options);
  Fused fused(fused_params, options);
  for (int step = 0; step < 25; ++step) {
    for (std::size_t i = 0; i < reference_params.size(); ++i) {
      auto grad = torch::randn_like(reference_params[i]);
      grad.narrow(0, 0, 5).zero_();
      reference_params[i].mutable_grad() = grad.clone();
      fused_params[i].mutable_grad() = grad.clone();
    }
    reference.step();
    fused.step();
  }
  for (std::size_t i = 0; i < reference_params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(fused_params[i], reference_params[i], /*rtol=*/1e-5, /*atol=*/1e-6)) << "parameter " << i;
    EXPECT_FALSE(torch::equal(fused_params[i], fused_params[i].detach().clone().zero_()));
  }
}

TEST(FusedAdam, FollowsLibTorchAdamWithWeightDecay) {
  expect_same_trajectory<torch::optim::Adam, FusedAdam>(torch::optim::AdamOptions(0.01).betas({0.8, 0.99}).weight_decay(0.1));
}

TEST(FusedAdam, FollowsLibTorchAdamW) {
  expect_same_trajectory<torch::optim::AdamW, FusedAdamW>(torch::optim::AdamWOptions(0.01).weight_decay(0.05));
}

TEST(FusedAdam, StateSavedByTheFusedOptimizerResumesInLibTorchAdam) {
  torch::manual_seed(4);
  auto p = torch::randn({50}).requires_grad_(true);
  FusedAdam fused({p}, torch::optim::AdamOptions(0.1));
  p.mutable_grad() = torch::randn({50});
  fused.step();
  testing::TempDir dir;
  torch::save(fused, (dir / "adam.pt").string());
  torch::optim::Adam plain({p}, torch::optim::AdamOptions(0.1));
  torch::load(plain, (dir / "adam.pt").string());
  const auto& state = static_cast<torch::optim::AdamParamState&>(*plain.state().begin()->second);
  EXPECT_EQ(state.step(), 1);
  EXPECT_GT(state.exp_avg_sq().abs().sum().item<double>(), 0);
}

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
  const int threads = at::get_num_threads();
  torch::manual_seed(9);
  const auto first = masking_noise(x, 0.5);
  at::set_num_threads(1);
  torch::manual_seed(9);
  const auto single_thread = masking_noise(x, 0.5);
  at::set_num_threads(threads);
  EXPECT_TRUE(bitwise_equal(first, single_thread));
  EXPECT_FALSE(torch::equal(first, masking_noise(x, 0.5)));
}

TEST(MaskingNoise, KeepsTheGradientPathForInputsThatNeedIt) {
  const auto x = torch::rand({8, 16}).requires_grad_(true);
  masking_noise(x, 0.25).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(((x.grad() == 0) | (x.grad() == 1)).all().item<bool>());
}

TEST(ScalerGather, EqualsScalingTheSelectedRows) {
  torch::manual_seed(2);
  Dataset images;
  images.features = torch::randint(0, 256, {40, 7, 3}, torch::kUInt8);
  Dataset table;
  table.features = torch::randn({40, 21});
  const auto rows = torch::tensor({39, 0, 5, 5, 17}, torch::kInt64);
  for (const auto* data : {&images, &table}) {
    for (auto scaling : {Scaling::kUnit, Scaling::kStandardize}) {
      const auto scaler = Scaler::fit(scaling, *data, torch::arange(30));
      EXPECT_TRUE(torch::allclose(scaler.gather(data->features, rows), scaler.apply(data->features.index_select(0, rows))));
    }
  }
  const auto scaler = Scaler::fit(Scaling::kUnit, table, torch::arange(30));
  EXPECT_THROW_WITH(scaler.gather(table.features, torch::tensor({3, 40}, torch::kInt64)), c10::Error, "row 40 is outside the 40 examples");
}

TEST(Runtime, MatrixProductsOnTheSelectedKernelMatchDoublePrecision) {
  EXPECT_LT(blas_product_error(), 1e-5) << blas_description();
}

TEST(Runtime, TheProcessRunsTheBestKernelForThisProcessor) {
  // prepare_process() in the test binary's main() re-executed it with the kernel chosen.
  if (blas_kernel().empty()) GTEST_SKIP() << "the BLAS is not OpenBLAS: " << blas_description();
  const char* forced = std::getenv("ENCORE_BLAS_KERNEL");
  const std::string expected = forced ? forced : best_blas_kernel();
  if (expected.empty() || expected == "openblas") GTEST_SKIP() << "OpenBLAS's own choice is in use: " << blas_kernel();
  EXPECT_EQ(blas_kernel(), expected) << blas_description();
}

}  // namespace
}  // namespace encore::core
