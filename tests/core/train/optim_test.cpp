#include "encore/core/optim.h"

#include <gtest/gtest.h>

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
  EXPECT_DOUBLE_EQ(scheduled_lr(cosine, 1.0, 0, 5), 1.0);
  EXPECT_NEAR(scheduled_lr(cosine, 1.0, 2, 5), 0.55, 1e-12);
  EXPECT_NEAR(scheduled_lr(cosine, 1.0, 4, 5), 0.1, 1e-12);
  cosine.warmup_epochs = 2;
  EXPECT_DOUBLE_EQ(scheduled_lr(cosine, 1.0, 0, 5), 0.5);
}
