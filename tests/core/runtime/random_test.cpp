#include "encore/core/random.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace encore::core;

// The offsets are those encore used before the streams were named: a seed gives the same run.
TEST(RandomStreams, EachStreamHasTheSeedItAlwaysHad) {
  EXPECT_EQ(stream_seed(40, RandomStream::kValidationSplit), 40u);
  EXPECT_EQ(stream_seed(40, RandomStream::kLabelledSubset), 41u);
  EXPECT_EQ(stream_seed(40, RandomStream::kGreedyLayer, 0), 40u);
  EXPECT_EQ(stream_seed(40, RandomStream::kGreedyLayer, 2), 42u);
  EXPECT_EQ(stream_seed(40, RandomStream::kEndToEnd), 140u);
  EXPECT_EQ(stream_seed(40, RandomStream::kFinetunePhase, 1), 241u);
  EXPECT_EQ(stream_seed(40, RandomStream::kProductCheck), 7u);
}

TEST(RandomStreams, AGeneratorDependsOnlyOnItsSeedAndUse) {
  auto a = seeded_generator(5, kEpochOrder + 3);
  auto b = seeded_generator(5, kEpochOrder + 3);
  auto other_use = seeded_generator(5, kEpochOrder + 4);
  const auto first = torch::randperm(100, a, torch::kInt64);
  EXPECT_TRUE(torch::equal(first, torch::randperm(100, b, torch::kInt64)));
  EXPECT_FALSE(torch::equal(first, torch::randperm(100, other_use, torch::kInt64)));
}

TEST(RandomStreams, TheDefaultGeneratorsStateRestoresItsDraws) {
  torch::manual_seed(11);
  const auto state = default_generator_state();
  const auto drawn = torch::rand({8});
  set_default_generator_state(state);
  EXPECT_TRUE(torch::equal(torch::rand({8}), drawn));
}
