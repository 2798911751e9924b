#include "encore/finetune/heads.h"

#include <torch/torch.h>

#include "support/support.h"

using namespace encore::finetune;

TEST(OneVsAllHead, LossIsTheSumOfKBinaryLogisticLosses) {
  torch::manual_seed(1);
  OneVsAllHead head(OneVsAllHeadOptions(5, 3));
  const auto x = torch::randn({4, 5});
  const auto labels = torch::tensor({0, 2, 1, 2}, torch::kInt64);
  const auto scores = head->forward(x);
  double expected = 0;
  for (int i = 0; i < 4; ++i) {
    for (int k = 0; k < 3; ++k) {
      const double p = 1.0 / (1.0 + std::exp(-scores[i][k].item<double>()));
      expected -= labels[i].item<std::int64_t>() == k ? std::log(p) : std::log(1 - p);
    }
  }
  EXPECT_NEAR(head->loss(scores, labels).item<double>(), expected / 4, 1e-5);
}

TEST(OneVsAllHead, ProbabilitiesAreIndependentSigmoidsAndPredictIsArgmax) {
  OneVsAllHead head(OneVsAllHeadOptions(2, 3));
  const auto scores = torch::tensor({{2.0f, 1.0f, -1.0f}, {-3.0f, -2.0f, -4.0f}});
  const auto p = head->probabilities(scores);
  EXPECT_TRUE(torch::allclose(p, torch::sigmoid(scores)));
  EXPECT_GT(std::abs(p[0].sum().item<double>() - 1.0), 0.1);  // they need not sum to 1
  EXPECT_TRUE(torch::allclose(normalized_probabilities(p).sum(1), torch::ones({2})));
  EXPECT_TRUE(torch::equal(head->predict(scores), torch::tensor({0, 1}, torch::kInt64)));
}

TEST(OneVsAllHead, AbstainsWhenNoClassReachesTheThreshold) {
  OneVsAllHead head(OneVsAllHeadOptions(2, 3).abstain_threshold(0.5));
  const auto scores = torch::tensor({{2.0f, 1.0f, -1.0f}, {-3.0f, -2.0f, -4.0f}});
  EXPECT_TRUE(torch::equal(head->predict(scores), torch::tensor({0, -1}, torch::kInt64)));
}

TEST(SoftmaxHead, ProbabilitiesSumToOne) {
  SoftmaxHead head(3, 4);
  const auto scores = head->forward(torch::randn({5, 3}));
  EXPECT_TRUE(torch::allclose(head->probabilities(scores).sum(1), torch::ones({5})));
  EXPECT_NEAR(head->loss(scores, torch::zeros({5}, torch::kInt64)).item<double>(),
              torch::cross_entropy_loss(scores, torch::zeros({5}, torch::kInt64)).item<double>(), 1e-6);
}
