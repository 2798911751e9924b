#include "encore/finetune/evaluation.h"

#include <torch/torch.h>

#include "support/support.h"

using namespace encore::finetune;

TEST(Evaluation, MetricsMatchAHandComputedConfusionCase) {
  // True:      0 0 0 1 1 2 2 2 2
  // Predicted: 0 0 1 1 2 2 2 0 -1 (the last one abstains)
  const auto labels = torch::tensor({0, 0, 0, 1, 1, 2, 2, 2, 2}, torch::kInt64);
  const auto predictions = torch::tensor({0, 0, 1, 1, 2, 2, 2, 0, -1}, torch::kInt64);
  const auto scores = torch::rand({9, 3});
  const auto e = evaluate_predictions(labels, predictions, scores, 3);
  EXPECT_DOUBLE_EQ(e.accuracy, 5.0 / 9.0);
  EXPECT_EQ(e.abstained, 1);
  EXPECT_TRUE(torch::equal(e.confusion, torch::tensor({{2, 1, 0}, {0, 1, 1}, {1, 0, 2}}, torch::kInt64)));
  // Class 0: precision 2/3, recall 2/3; class 1: 1/2, 1/2; class 2: 2/3, 2/4.
  EXPECT_DOUBLE_EQ(e.per_class[0].precision, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(e.per_class[1].recall, 0.5);
  EXPECT_DOUBLE_EQ(e.per_class[2].recall, 0.5);
  EXPECT_NEAR(e.per_class[2].f1, 2 * (2.0 / 3) * 0.5 / (2.0 / 3 + 0.5), 1e-12);
  EXPECT_EQ(e.per_class[2].support, 4);
  const double f1_0 = 2.0 / 3, f1_1 = 0.5, f1_2 = 4.0 / 7;
  EXPECT_NEAR(e.macro_f1, (f1_0 + f1_1 + f1_2) / 3, 1e-12);
}

TEST(Evaluation, RocAucCountsTiesHalf) {
  EXPECT_DOUBLE_EQ(roc_auc(torch::tensor({0.1, 0.4, 0.35, 0.8}), torch::tensor({0, 0, 1, 1})), 0.75);
  EXPECT_DOUBLE_EQ(roc_auc(torch::tensor({0.5, 0.5}), torch::tensor({0, 1})), 0.5);
  EXPECT_DOUBLE_EQ(roc_auc(torch::tensor({0.1, 0.9}), torch::tensor({0, 1})), 1.0);
  EXPECT_TRUE(std::isnan(roc_auc(torch::tensor({0.1, 0.9}), torch::tensor({1, 1}))));
}
