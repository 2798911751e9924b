// The fused Adam and AdamW updates give what LibTorch's give.
#include "encore/core/fused_adam.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "support/support.h"

namespace encore::core {
namespace {

using testing::bitwise_equal;
using testing::IntraOpThreads;
using testing::kSplitColumns;
using testing::kSplitRows;

// Runs `steps` updates of the same gradients through two optimizers over copies of one parameter set.
template <class Reference, class Fused, class Options>
void expect_same_trajectory(const Options& options) {
  torch::manual_seed(3);
  // Odd sizes exercise the vector loops' remainders; zero gradients in one block exercise v = 0.
  // The big one is updated in blocks by three threads, as linear() splits it. The last is a
  // convolution kernel in channels-last layout, as encore keeps them: its gradient and moments
  // must be walked in the same order.
  IntraOpThreads threads(3);
  std::vector<torch::Tensor> reference_params{torch::randn({37, 129}), torch::randn({1001}), torch::randn({kSplitRows, kSplitColumns}),
                                              torch::randn({7, 5, 3, 3}).contiguous(torch::MemoryFormat::ChannelsLast)};
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
    // Float rounding differs between one fused pass and LibTorch's seven operations (up to 2.4e-6
    // seen over 25 steps on parameters of order 1).
    EXPECT_TRUE(torch::allclose(fused_params[i], reference_params[i], /*rtol=*/1e-5, /*atol=*/1e-5))
        << "parameter " << i << ": largest difference " << (fused_params[i] - reference_params[i]).abs().max().item<double>();
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

}  // namespace
}  // namespace encore::core
