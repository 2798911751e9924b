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

// Training options set from C++ are checked as the JSON ones are, naming the option and its value:
// a mistake never reaches LibTorch's own checks (a c10::Error with a stack trace).
TEST(TrainConfig, OptionsSetFromCppFailNamingTheOptionAndValue) {
  TrainConfig config;
  config.epochs = -1;
  EXPECT_THROW_WITH(check_train_config(config), OptionError, "option epochs: must be >= 0, got -1");
  config = TrainConfig{};
  config.schedule.type = "cosin";
  EXPECT_THROW_WITH(check_train_config(config), OptionError, "option type: must be one of constant | step | cosine, got \"cosin\"");
  config = TrainConfig{};
  config.early_stopping = EarlyStoppingConfig{};
  config.early_stopping->patience = 0;
  EXPECT_THROW_WITH(check_train_config(config), OptionError, "option patience: must be >= 1, got 0");

  auto p = torch::zeros({2}, torch::requires_grad());
  AdamOptions adam;
  adam.lr = -0.001;
  EXPECT_THROW_WITH(adam.build({p}), OptionError, "option lr: must be > 0, got -0.001");
  adam = AdamOptions{};
  adam.betas = {0.9};
  EXPECT_THROW_WITH(adam.build({p}), OptionError, "option betas: must be two numbers in [0, 1), got [0.9]");
  SgdOptions sgd;
  sgd.momentum = 0;
  sgd.nesterov = true;
  EXPECT_THROW_WITH(sgd.build({p}), OptionError, "option nesterov: needs momentum > 0 and dampening = 0");
}

TEST(TrainConfig, SectionsRoundTripThroughTheirDeclaredFields) {
  const auto registry = encore::testing::builtin_optimizers();
  const Json section = {{"epochs", 3},
                        {"optimizer", {{"type", "adamw"}, {"lr", 0.01}, {"betas", {0.8, 0.99}}}},
                        {"schedule", {{"type", "step"}, {"step_epochs", 2}, {"gamma", 0.5}}},
                        {"early_stopping", {{"patience", 2}}}};
  const auto config = parse_train_config(JsonReader(section, "/stage"), registry, {});
  EXPECT_EQ(config.epochs, 3);
  EXPECT_EQ(dynamic_cast<const AdamWOptions&>(*config.optimizer).betas, (std::vector<double>{0.8, 0.99}));
  EXPECT_EQ(dynamic_cast<const AdamWOptions&>(*config.optimizer).weight_decay, 0.01);
  EXPECT_EQ(config.schedule.step_epochs, 2);
  ASSERT_TRUE(config.early_stopping.has_value());
  EXPECT_EQ(config.early_stopping->patience, 2);
  const Json resolved = to_json(config, registry);
  EXPECT_EQ(to_json(parse_train_config(JsonReader(resolved, "/stage"), registry, {}), registry), resolved);
  const Json bad_schedule = {{"schedule", {{"type", "cosine"}, {"min_lr", -1}}}};
  EXPECT_THROW_WITH(parse_train_config(JsonReader(bad_schedule, "/stage"), registry, {}), ConfigError,
                    "config error at /stage/schedule/min_lr: must be >= 0, got -1");
}
