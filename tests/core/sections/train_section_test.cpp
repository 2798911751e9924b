#include "encore/core/train_section.h"

#include <torch/optim/sgd.h>

#include "support/support.h"

using namespace encore::core;

TEST(Optimizers, ConfigSelectsTypeAndRejectsOptionsOfOtherTypes) {
  const auto registry = encore::testing::builtin_optimizers();
  Json sgd = {{"type", "sgd"}, {"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}};
  const auto config = parse_optimizer(JsonReader(sgd, "/optimizer"), registry);
  EXPECT_TRUE(dynamic_cast<const SgdOptions&>(*config).nesterov);
  EXPECT_EQ(to_json(*config, registry)["nesterov"], true);
  auto p = torch::zeros({2}, torch::requires_grad());
  EXPECT_NE(dynamic_cast<torch::optim::SGD*>(config->build({p}).get()), nullptr);
  Json adam_with_momentum = {{"type", "adam"}, {"momentum", 0.9}};
  EXPECT_THROW_WITH(parse_optimizer(JsonReader(adam_with_momentum, "/optimizer"), registry), ConfigError,
                    "config error at /optimizer: unknown key \"momentum\"");
  Json unknown = {{"type", "adamx"}};
  EXPECT_THROW_WITH(parse_optimizer(JsonReader(unknown, "/optimizer"), registry), ConfigError,
                    "must be one of adam, adamw, sgd, got \"adamx\" (did you mean \"adam\"?)");
  Json bad_nesterov = {{"type", "sgd"}, {"momentum", 0.0}, {"nesterov", true}};
  EXPECT_THROW_WITH(parse_optimizer(JsonReader(bad_nesterov, "/optimizer"), registry), ConfigError,
                    "/optimizer/nesterov: needs momentum > 0");
}
