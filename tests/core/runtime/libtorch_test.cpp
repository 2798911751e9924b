// The LibTorch version differences of libtorch.h behave alike on 1.13 and 2.x.
#include "encore/core/libtorch.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "encore/core/ops.h"

namespace encore::core::libtorch {
namespace {

TEST(AutocastGuard, RunsMatrixProductsInBfloat16WhileItLivesAndRestoresFloat32After) {
  const auto a = torch::rand({4, 3});
  const auto b = torch::rand({3, 5});
  ASSERT_FALSE(autocast_enabled(torch::kCPU));
  {
    AutocastGuard autocast(torch::kCPU, torch::kBFloat16);
    EXPECT_TRUE(autocast_enabled(torch::kCPU));
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
    // encore's CPU kernels step aside, so that autocast governs every product.
    EXPECT_FALSE(cpu_kernel_takes(a));
    {
      AutocastGuard inner(torch::kCPU, torch::kBFloat16);
      EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
    }
    // The inner guard's end leaves the outer region as it was.
    EXPECT_TRUE(autocast_enabled(torch::kCPU));
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
  }
  EXPECT_FALSE(autocast_enabled(torch::kCPU));
  EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat32);
  EXPECT_TRUE(cpu_kernel_takes(a));
}

TEST(AutocastGuard, GradientsReachFloat32WeightsInFloat32) {
  auto weight = torch::rand({3, 5}, torch::requires_grad());
  const auto x = torch::rand({4, 3});
  torch::Tensor y;
  {
    AutocastGuard autocast(torch::kCPU, torch::kBFloat16);
    y = torch::mm(x, weight);
  }
  ASSERT_EQ(y.scalar_type(), torch::kBFloat16);
  y.to(torch::kFloat32).sum().backward();
  EXPECT_EQ(weight.grad().scalar_type(), torch::kFloat32);
  // d(sum x w)/dw = column sums of x, repeated: equal up to bfloat16's rounding of x.
  EXPECT_TRUE(torch::allclose(weight.grad(), x.sum(0).unsqueeze(1).expand({3, 5}), 2e-2, 2e-2));
}

}  // namespace
}  // namespace encore::core::libtorch
