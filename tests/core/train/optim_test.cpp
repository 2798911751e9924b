#include "encore/core/optim.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace encore::core;

TEST(Schedules, StepAndCosineFollowTheirFormulas) {
  ScheduleConfig step;
  step.type = "step";
  step.step_epochs = 2;
  step.gamma = 0.5;
  EXPECT_DOUBLE_EQ(scheduled_lr(step, 1.0, 0, 10), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(step, 1.0, 3, 10), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(step, 1.0, 4, 10), 0.25);
  ScheduleConfig cosine;
  cosine.type = "cosine";
  cosine.min_lr = 0.1;
  EXPECT_DOUBLE_EQ(scheduled_lr(cosine, 1.0, 0, 4), 1.0);
  EXPECT_NEAR(scheduled_lr(cosine, 1.0, 2, 4), 0.55, 1e-12);
  // The last epoch still trains above min_lr: 0.1 + 0.9 * (1 + cos(3 pi / 4)) / 2.
  EXPECT_NEAR(scheduled_lr(cosine, 1.0, 3, 4), 0.1 + 0.45 * (1 - std::sqrt(0.5)), 1e-12);
  cosine.warmup_epochs = 2;
  EXPECT_DOUBLE_EQ(scheduled_lr(cosine, 1.0, 0, 5), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(cosine, 1.0, 2, 5), 1.0);
}

TEST(Schedules, EveryEpochOfACosineScheduleToZeroTrainsAtAPositiveRateThatFalls) {
  ScheduleConfig cosine;
  cosine.type = "cosine";
  for (int epochs : {1, 2, 20}) {
    double previous = 2.0;
    for (int epoch = 0; epoch < epochs; ++epoch) {
      const double lr = scheduled_lr(cosine, 1.0, epoch, epochs);
      EXPECT_GT(lr, 0.0) << "epoch " << epoch << " of " << epochs;
      EXPECT_LT(lr, previous) << "epoch " << epoch << " of " << epochs;
      previous = lr;
    }
  }
}
