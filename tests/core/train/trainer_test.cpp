#include "encore/core/trainer.h"

#include <torch/torch.h>

#include <cmath>

#include "encore/core/errors.h"
#include "support/support.h"
#include "support/toy_training.h"

using namespace encore::core;
using encore::testing::adam_config;
using encore::testing::toy_data;
using encore::testing::ToyTask;
using encore::testing::weights;

TEST(Trainer, LossFallsOnAToyTask) {
  struct RecordLoss : Callback {
    void on_epoch_end(Trainer&, const Metrics& metrics) override { losses.push_back(metrics.at("train/loss")); }
    std::vector<double> losses;
  };
  const auto data = toy_data();
  torch::manual_seed(1);
  ToyTask task;
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 1);
  Trainer trainer(task, adam_config(8), "toy");
  auto recorder = std::make_shared<RecordLoss>();
  trainer.add_callback(recorder);
  trainer.fit(train, nullptr);
  ASSERT_EQ(recorder->losses.size(), 8u);
  EXPECT_LT(recorder->losses.back(), 0.6 * recorder->losses.front());
}

TEST(Trainer, MixedPrecisionRunsTrainingForwardPassesInBfloat16OnFloat32Weights) {
  struct RecordPrecision : ToyTask {
    torch::Tensor training_loss(const Batch& batch, MetricSums& m) override {
      forward_types.push_back(net->forward(batch.inputs).scalar_type());
      return ToyTask::training_loss(batch, m);
    }
    torch::Tensor validation_loss(const Batch& batch, MetricSums& m) override {
      validation_types.push_back(net->forward(batch.inputs).scalar_type());
      return ToyTask::training_loss(batch, m);
    }
    std::vector<torch::ScalarType> forward_types, validation_types;
  };
  const auto data = toy_data();
  const auto scaler = Scaler::fit(Scaling::kNone, data, torch::arange(120));
  BatchSource train(data, torch::arange(100), scaler, 16, true, 1);
  BatchSource validation(data, torch::arange(100, 120), scaler, 20, false, 1);
  for (const auto precision : {MixedPrecision::kOff, MixedPrecision::kBf16}) {
    torch::manual_seed(1);
    RecordPrecision task;
    Trainer trainer(task, adam_config(6), "toy");
    trainer.set_mixed_precision(precision);
    const auto metrics = trainer.fit(train, &validation);
    const auto expected = precision == MixedPrecision::kBf16 ? torch::kBFloat16 : torch::kFloat32;
    ASSERT_FALSE(task.forward_types.empty());
    for (const auto type : task.forward_types) EXPECT_EQ(type, expected);
    // Evaluation stays float32, and so do the weights the optimizer updates.
    for (const auto type : task.validation_types) EXPECT_EQ(type, torch::kFloat32);
    for (const auto& p : task.net->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat32);
    EXPECT_LT(metrics.at("val/loss"), 0.5) << (precision == MixedPrecision::kBf16 ? "bf16" : "float32");
  }
}

TEST(MetricSums, RoundTripThroughJsonKeepsNonFiniteValuesNonFinite) {
  MetricSums sums;
  sums.add("loss", std::numeric_limits<double>::quiet_NaN(), 4);
  sums.add("accuracy", 0.5, 4);
  // JSON writes NaN as null; other ranks' sums and checkpoints come back through it.
  auto merged = MetricSums::from_json(Json::parse(sums.to_json().dump()));
  merged.merge(sums);
  const auto averages = merged.averages("val/");
  EXPECT_TRUE(std::isnan(averages.at("val/loss")));
  EXPECT_DOUBLE_EQ(averages.at("val/accuracy"), 0.5);
}

TEST(Trainer, NonFiniteLossStopsNamingEpochAndStep) {
  struct ExplodingTask : ToyTask {
    torch::Tensor training_loss(const Batch& batch, MetricSums& m) override {
      auto loss = ToyTask::training_loss(batch, m);
      return ++calls == 3 ? loss * std::numeric_limits<float>::infinity() : loss;
    }
    int calls = 0;
  };
  const auto data = toy_data();
  ExplodingTask task;
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 1);
  Trainer trainer(task, adam_config(2), "toy");
  EXPECT_THROW_WITH(trainer.fit(train, nullptr), NonFiniteError, "non-finite training loss (inf) in stage toy, epoch 1, step 3");
}

namespace {

/// Where a NaN is injected at one training step.
enum class Injection { kInput, kWeight, kLoss };

/// Injects a NaN at call `at` of training_loss into a weight or the loss; kInput leaves it to the
/// data (poisoned_data()).
struct PoisonedTask : ToyTask {
  PoisonedTask(Injection where, int at) : where(where), at(at) {}
  torch::Tensor training_loss(const Batch& batch, MetricSums& m) override {
    if (++calls != at) return ToyTask::training_loss(batch, m);
    if (where == Injection::kWeight) {
      torch::NoGradGuard no_grad;
      net->linear->weight[1][2] = std::nan("");
    }
    const auto loss = ToyTask::training_loss(batch, m);
    return where == Injection::kLoss ? loss * std::nan("") : loss;
  }
  Injection where;
  int at;
  int calls = 0;
};

/// Toy data with a NaN in row 48: the first row of the 4th batch of 16 when not shuffled.
Dataset poisoned_data() {
  auto data = toy_data();
  data.features[48][1] = std::nan("");
  return data;
}

}  // namespace

TEST(Trainer, NonFiniteErrorPolicyNamesTheStepAndTheFirstNonFiniteTensor) {
  const auto data = poisoned_data();
  const auto clean = toy_data();
  const auto scaler = Scaler::fit(Scaling::kNone, clean, torch::arange(120));
  const std::vector<std::pair<Injection, std::string>> cases{
      {Injection::kInput, "step 4 (batch 4 of the epoch): first non-finite tensor: the input batch"},
      {Injection::kWeight, "step 4 (batch 4 of the epoch): first non-finite tensor: parameter linear.weight"},
      {Injection::kLoss, "step 4 (batch 4 of the epoch): first non-finite tensor: the loss itself"}};
  for (const auto& [where, message] : cases) {
    BatchSource train(where == Injection::kInput ? data : clean, torch::arange(120), scaler, 16, false, 1);
    PoisonedTask task(where, 4);
    Trainer trainer(task, adam_config(2), "toy");
    EXPECT_THROW_WITH(trainer.fit(train, nullptr), NonFiniteError, message);
  }
}

TEST(Trainer, SkipStepPolicyLeavesTheWeightsOfABadStepBitwiseAndCountsIt) {
  const auto data = poisoned_data();
  const auto clean = toy_data();
  const auto scaler = Scaler::fit(Scaling::kNone, clean, torch::arange(120));
  for (auto where : {Injection::kInput, Injection::kLoss}) {
    BatchSource train(where == Injection::kInput ? data : clean, torch::arange(120), scaler, 16, false, 1);
    // The step before the bad one: weights after 3 steps, then the bad 4th step must change nothing.
    struct Snapshot : Callback {
      void on_batch_end(Trainer& trainer, double, std::int64_t) override {
        if (trainer.state().step == 3) before = weights(trainer.task().module());
        if (trainer.state().step == 4) after = weights(trainer.task().module());
      }
      std::vector<torch::Tensor> before, after;
    };
    PoisonedTask task(where, 4);
    Trainer trainer(task, adam_config(1), "toy");
    trainer.set_non_finite_policy(NonFinitePolicy::kSkipStep);
    auto snapshot = std::make_shared<Snapshot>();
    trainer.add_callback(snapshot);
    const auto metrics = trainer.fit(train, nullptr);
    ASSERT_EQ(snapshot->before.size(), snapshot->after.size());
    for (std::size_t i = 0; i < snapshot->before.size(); ++i)
      EXPECT_TRUE(encore::testing::bitwise_equal(snapshot->before[i], snapshot->after[i]));
    EXPECT_DOUBLE_EQ(metrics.at("train/skipped_steps"), 1.0 / 8.0);
    EXPECT_TRUE(std::isfinite(metrics.at("train/loss")));
  }
}

TEST(Trainer, NoCheckpointHoldsANonFiniteWeight) {
  encore::testing::TempDir dir;
  ToyTask task;
  Trainer trainer(task, adam_config(1), "toy");
  {
    torch::NoGradGuard no_grad;
    task.net->linear->bias[0] = std::numeric_limits<float>::infinity();
  }
  EXPECT_THROW_WITH(trainer.save_checkpoint((dir / "bad.pt").string()), NonFiniteError, "parameter linear.bias holds a non-finite value");
  EXPECT_FALSE(std::filesystem::exists(dir / "bad.pt"));
}

TEST(Trainer, GradientClippingBoundsTheUpdate) {
  struct FirstStep : Callback {
    void on_fit_start(Trainer& trainer) override { before = weights(trainer.task().module()); }
    void on_batch_end(Trainer& trainer, double, std::int64_t) override {
      if (!after.empty()) return;
      after = weights(trainer.task().module());
      trainer.request_stop("one step is enough");
    }
    double update_norm() const {
      double sum = 0;
      for (std::size_t i = 0; i < before.size(); ++i) sum += (after[i] - before[i]).pow(2).sum().item<double>();
      return std::sqrt(sum);
    }
    std::vector<torch::Tensor> before, after;
  };
  const auto data = toy_data();
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 1);
  auto update_norm = [&](double clip) {
    torch::manual_seed(1);
    ToyTask task;
    Json j = {{"epochs", 1}, {"optimizer", {{"type", "sgd"}, {"lr", 1.0}, {"momentum", 0.0}}}, {"grad_clip_norm", clip}};
    Trainer trainer(task, parse_train_config(JsonReader(j), encore::testing::builtin_optimizers(), TrainConfig{}), "toy");
    auto probe = std::make_shared<FirstStep>();
    trainer.add_callback(probe);
    trainer.fit(train, nullptr);
    return probe->update_norm();
  };
  EXPECT_GT(update_norm(0.0), 0.01);
  EXPECT_NEAR(update_norm(0.001), 0.001, 1e-5);
}
