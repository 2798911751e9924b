#include "encore/core/trainer.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>

#include "encore/core/callbacks.h"
#include "encore/core/errors.h"
#include "support/support.h"

using namespace encore::core;

namespace {

/// A softmax classifier with dropout, so that resuming depends on the restored RNG state.
struct ToyNet : torch::nn::Module {
  ToyNet() : linear(register_module("linear", torch::nn::Linear(4, 3))), dropout(register_module("dropout", torch::nn::Dropout(0.1))) {}
  torch::Tensor forward(const torch::Tensor& x) { return linear(dropout(x)); }
  torch::nn::Linear linear;
  torch::nn::Dropout dropout;
};

class ToyTask : public TrainTask {
 public:
  ToyTask() { net = std::make_shared<ToyNet>(); }
  torch::nn::Module& module() override { return *net; }
  torch::Tensor training_loss(const Batch& batch, MetricSums&) override {
    return torch::cross_entropy_loss(net->forward(batch.inputs), batch.labels);
  }
  std::shared_ptr<ToyNet> net;
};

Dataset toy_data(int n = 120) {
  torch::manual_seed(5);
  Dataset d;
  d.labels = torch::arange(n, torch::kInt64).remainder(3);
  d.features = torch::randn({n, 4}) * 0.5 + torch::nn::functional::one_hot(d.labels, 4).to(torch::kFloat32) * 2;
  d.class_names = {"a", "b", "c"};
  return d;
}


TrainConfig adam_config(int epochs) {
  const auto registry = encore::testing::builtin_optimizers();
  Json j = {{"epochs", epochs}, {"batch_size", 16}, {"optimizer", {{"type", "adam"}, {"lr", 0.05}}}, {"schedule", {{"type", "cosine"}}}};
  return parse_train_config(JsonReader(j), registry, TrainConfig{});
}

/// Saves a checkpoint after a given step and then dies, as a killed process would.
struct KillAfterStep : Callback {
  KillAfterStep(std::int64_t step, std::string file) : step(step), file(std::move(file)) {}
  void on_batch_end(Trainer& trainer, double, std::int64_t) override {
    if (trainer.state().step != step) return;
    trainer.save_checkpoint(file);
    throw std::runtime_error("killed");
  }
  std::int64_t step;
  std::string file;
};

std::vector<torch::Tensor> weights(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p.detach().clone());
  return out;
}

}  // namespace

TEST(Trainer, LossFallsOnAToyTask) {
  struct RecordLoss : Callback {
    void on_epoch_end(Trainer&, const Metrics& metrics) override { losses.push_back(metrics.at("train/loss")); }
    std::vector<double> losses;
  };
  const auto data = toy_data();
  const auto registry = encore::testing::builtin_optimizers();
  torch::manual_seed(1);
  ToyTask task;
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 1);
  Trainer trainer(task, adam_config(8), "toy", registry);
  auto recorder = std::make_shared<RecordLoss>();
  trainer.add_callback(recorder);
  trainer.fit(train, nullptr);
  ASSERT_EQ(recorder->losses.size(), 8u);
  EXPECT_LT(recorder->losses.back(), 0.6 * recorder->losses.front());
}

TEST(Trainer, ResumedFromACheckpointMatchesAnUninterruptedRunBitwise) {
  const auto data = toy_data();
  const auto registry = encore::testing::builtin_optimizers();
  const auto scaler = Scaler::fit(Scaling::kNone, data, torch::arange(120));
  BatchSource train(data, torch::arange(120), scaler, 16, true, 9);
  encore::testing::TempDir dir;

  torch::manual_seed(3);
  ToyTask uninterrupted;
  Trainer full(uninterrupted, adam_config(6), "toy", registry);
  full.fit(train, nullptr);

  torch::manual_seed(3);
  ToyTask first_half;
  Trainer interrupted(first_half, adam_config(6), "toy", registry);
  // 8 batches per epoch: step 20 is mid-way through the third epoch.
  interrupted.add_callback(std::make_shared<KillAfterStep>(20, (dir / "ckpt.pt").string()));
  EXPECT_THROW(interrupted.fit(train, nullptr), std::runtime_error);
  torch::manual_seed(12345);  // the resumed process starts with other weights and RNG state

  ToyTask resumed_task;
  Trainer resumed(resumed_task, adam_config(6), "toy", registry);
  resumed.load_checkpoint((dir / "ckpt.pt").string());
  EXPECT_EQ(resumed.state().epoch, 2);
  EXPECT_EQ(resumed.state().position, 4);
  resumed.fit(train, nullptr);
  EXPECT_EQ(resumed.state().epoch, 6);
  const auto a = weights(*uninterrupted.net);
  const auto b = weights(*resumed_task.net);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(encore::testing::bitwise_equal(a[i], b[i])) << "parameter " << i;
}

TEST(Trainer, CheckpointOfAnotherStageIsRefused) {
  const auto registry = encore::testing::builtin_optimizers();
  encore::testing::TempDir dir;
  ToyTask task;
  Trainer a(task, adam_config(1), "stage-a", registry);
  a.save_checkpoint((dir / "a.pt").string());
  Trainer b(task, adam_config(1), "stage-b", registry);
  EXPECT_THROW_WITH(b.load_checkpoint((dir / "a.pt").string()), DataError, "checkpoint is of stage \"stage-a\", expected \"stage-b\"");
  encore::testing::write_text(dir / "junk.pt", "not a checkpoint");
  EXPECT_THROW_WITH(b.load_checkpoint((dir / "junk.pt").string()), DataError, "junk.pt: 16 bytes, shorter than the 24-byte checkpoint header");
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
  const auto registry = encore::testing::builtin_optimizers();
  ExplodingTask task;
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 1);
  Trainer trainer(task, adam_config(2), "toy", registry);
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
  const auto registry = encore::testing::builtin_optimizers();
  const auto clean = toy_data();
  const auto scaler = Scaler::fit(Scaling::kNone, clean, torch::arange(120));
  const std::vector<std::pair<Injection, std::string>> cases{
      {Injection::kInput, "step 4 (batch 4 of the epoch): first non-finite tensor: the input batch"},
      {Injection::kWeight, "step 4 (batch 4 of the epoch): first non-finite tensor: parameter linear.weight"},
      {Injection::kLoss, "step 4 (batch 4 of the epoch): first non-finite tensor: the loss itself"}};
  for (const auto& [where, message] : cases) {
    BatchSource train(where == Injection::kInput ? data : clean, torch::arange(120), scaler, 16, false, 1);
    PoisonedTask task(where, 4);
    Trainer trainer(task, adam_config(2), "toy", registry);
    EXPECT_THROW_WITH(trainer.fit(train, nullptr), NonFiniteError, message);
  }
}

TEST(Trainer, SkipStepPolicyLeavesTheWeightsOfABadStepBitwiseAndCountsIt) {
  const auto data = poisoned_data();
  const auto clean = toy_data();
  const auto registry = encore::testing::builtin_optimizers();
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
    Trainer trainer(task, adam_config(1), "toy", registry);
    trainer.set_non_finite_policy(NonFinitePolicy::kSkipStep);
    auto snapshot = std::make_shared<Snapshot>();
    trainer.add_callback(snapshot);
    const auto metrics = trainer.fit(train, nullptr);
    ASSERT_EQ(snapshot->before.size(), snapshot->after.size());
    for (std::size_t i = 0; i < snapshot->before.size(); ++i) EXPECT_TRUE(encore::testing::bitwise_equal(snapshot->before[i], snapshot->after[i]));
    EXPECT_DOUBLE_EQ(metrics.at("train/skipped_steps"), 1.0 / 8.0);
    EXPECT_TRUE(std::isfinite(metrics.at("train/loss")));
  }
}

TEST(Trainer, NoCheckpointHoldsANonFiniteWeight) {
  const auto registry = encore::testing::builtin_optimizers();
  encore::testing::TempDir dir;
  ToyTask task;
  Trainer trainer(task, adam_config(1), "toy", registry);
  {
    torch::NoGradGuard no_grad;
    task.net->linear->bias[0] = std::numeric_limits<float>::infinity();
  }
  EXPECT_THROW_WITH(trainer.save_checkpoint((dir / "bad.pt").string()), NonFiniteError,
                    "parameter linear.bias holds a non-finite value");
  EXPECT_FALSE(std::filesystem::exists(dir / "bad.pt"));
}

TEST(Trainer, DamagedCheckpointIsRejectedNamingTheFile) {
  const auto registry = encore::testing::builtin_optimizers();
  encore::testing::TempDir dir;
  ToyTask task;
  Trainer trainer(task, adam_config(1), "toy", registry);
  const auto file = dir / "ok.pt";
  trainer.save_checkpoint(file.string());
  const auto good = encore::testing::read_bytes(file);
  auto flipped = good;
  flipped[good.size() / 2] ^= 0x10;
  encore::testing::write_bytes(dir / "flipped.pt", flipped);
  EXPECT_THROW_WITH(trainer.load_checkpoint((dir / "flipped.pt").string()), DataError, "flipped.pt: checksum mismatch");
  auto truncated = good;
  truncated.pop_back();
  encore::testing::write_bytes(dir / "truncated.pt", truncated);
  EXPECT_THROW_WITH(trainer.load_checkpoint((dir / "truncated.pt").string()), DataError, "truncated.pt: offset 8: header promises");
  trainer.load_checkpoint(file.string());
}

TEST(CheckpointSaver, KeepsTheLastTwoAndFallsBackToThePreviousWhenTheLatestIsDamaged) {
  const auto data = toy_data();
  const auto registry = encore::testing::builtin_optimizers();
  encore::testing::TempDir dir;
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 1);
  ToyTask task;
  Trainer trainer(task, adam_config(2), "toy", registry);
  trainer.add_callback(std::make_shared<CheckpointSaver>(dir.path(), 3));
  trainer.fit(train, nullptr);
  EXPECT_EQ(encore::testing::list_tree(dir.path()), (std::vector<std::string>{"latest.pt", "previous.pt"}));
  std::ostringstream log;
  const auto latest = newest_valid_checkpoint(dir.path(), log);
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->file(), dir / "latest.pt");
  auto bytes = encore::testing::read_bytes(dir / "latest.pt");
  bytes[100] ^= 1;
  encore::testing::write_bytes(dir / "latest.pt", bytes);
  const auto fallback = newest_valid_checkpoint(dir.path(), log);
  ASSERT_TRUE(fallback.has_value());
  EXPECT_EQ(fallback->file(), dir / "previous.pt");
  EXPECT_NE(log.str().find("latest.pt: checksum mismatch"), std::string::npos) << log.str();
}

namespace {

/// Reports a scripted validation loss, one value per epoch (the validation set is one batch).
class ScriptedTask : public ToyTask {
 public:
  explicit ScriptedTask(std::vector<double> script) : script_(std::move(script)) {}
  torch::Tensor validation_loss(const Batch&, MetricSums&) override { return torch::tensor(script_.at(calls_++)); }

 private:
  std::vector<double> script_;
  std::size_t calls_ = 0;
};

struct RecordWeights : Callback {
  void on_epoch_end(Trainer& trainer, const Metrics&) override { history.push_back(weights(trainer.task().module())); }
  std::vector<std::vector<torch::Tensor>> history;
};

}  // namespace

TEST(EarlyStopping, StopsAtTheExpectedEpochAndRestoresTheBestWeights) {
  const auto data = toy_data();
  const auto registry = encore::testing::builtin_optimizers();
  const auto scaler = Scaler::fit(Scaling::kNone, data, torch::arange(120));
  BatchSource train(data, torch::arange(100), scaler, 16, true, 1);
  BatchSource validation(data, torch::arange(100, 120), scaler, 20, false, 1);
  ScriptedTask task({5, 4, 3, 3.5, 3.2, 3.1, 2.0, 1.0});
  auto config = adam_config(8);
  config.early_stopping = EarlyStoppingConfig{"val/loss", "min", 3, 0.0, true};
  Trainer trainer(task, config, "toy", registry);
  auto stopper = std::make_shared<EarlyStopping>(*config.early_stopping);
  auto recorder = std::make_shared<RecordWeights>();
  trainer.add_callback(stopper);
  trainer.add_callback(recorder);
  trainer.fit(train, &validation);
  // Best 3.0 at epoch 3; epochs 4, 5, 6 do not improve; patience 3 stops after epoch 6.
  EXPECT_EQ(trainer.state().epoch, 6);
  EXPECT_EQ(stopper->best_epoch(), 3);
  EXPECT_NE(trainer.stop_reason().find("val/loss has not improved for 3 epochs"), std::string::npos);
  const auto now = weights(*task.net);
  for (std::size_t i = 0; i < now.size(); ++i) EXPECT_TRUE(encore::testing::bitwise_equal(now[i], recorder->history[2][i]));
}

TEST(EarlyStopping, MinDeltaIgnoresTinyImprovements) {
  EarlyStopping stopper(EarlyStoppingConfig{"val/loss", "min", 2, 0.1, false});
  EXPECT_FALSE(stopper.update(1.0));
  EXPECT_FALSE(stopper.update(0.95));
  EXPECT_TRUE(stopper.update(0.92));
  EarlyStopping maximise(EarlyStoppingConfig{"val/accuracy", "max", 1, 0.0, false});
  EXPECT_FALSE(maximise.update(0.5));
  EXPECT_FALSE(maximise.update(0.6));
  EXPECT_TRUE(maximise.update(0.6));
}

TEST(Optimizers, ConfigSelectsTypeAndRejectsOptionsOfOtherTypes) {
  const auto registry = encore::testing::builtin_optimizers();
  Json sgd = {{"type", "sgd"}, {"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}};
  const auto config = parse_optimizer(JsonReader(sgd, "/optimizer"), registry);
  EXPECT_EQ(config.options["nesterov"], true);
  auto p = torch::zeros({2}, torch::requires_grad());
  EXPECT_NE(dynamic_cast<torch::optim::SGD*>(make_optimizer(config, registry, {p}).get()), nullptr);
  Json adam_with_momentum = {{"type", "adam"}, {"momentum", 0.9}};
  EXPECT_THROW_WITH(parse_optimizer(JsonReader(adam_with_momentum, "/optimizer"), registry), ConfigError,
                    "config error at /optimizer: unknown key \"momentum\"");
  Json unknown = {{"type", "adamx"}};
  EXPECT_THROW_WITH(parse_optimizer(JsonReader(unknown, "/optimizer"), registry), ConfigError,
                    "must be one of adam, adamw, sgd, got \"adamx\" (did you mean \"adam\"?)");
  Json bad_nesterov = {{"type", "sgd"}, {"momentum", 0.0}, {"nesterov", true}};
  EXPECT_THROW_WITH(parse_optimizer(JsonReader(bad_nesterov, "/optimizer"), registry), ConfigError, "/optimizer/nesterov: needs momentum > 0");
}

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

TEST(MetricsWriter, AppendsOneParseableLinePerEpoch) {
  const auto data = toy_data();
  const auto registry = encore::testing::builtin_optimizers();
  encore::testing::TempDir dir;
  ToyTask task;
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 1);
  Trainer trainer(task, adam_config(3), "toy", registry);
  trainer.add_callback(std::make_shared<MetricsWriter>(dir / "metrics.jsonl"));
  trainer.fit(train, nullptr);
  std::ifstream in(dir / "metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    const auto record = Json::parse(line);
    EXPECT_EQ(record["stage"], "toy");
    EXPECT_EQ(record["epoch"], ++lines);
    EXPECT_TRUE(record["train/loss"].is_number());
  }
  EXPECT_EQ(lines, 3);
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
  const auto registry = encore::testing::builtin_optimizers();
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 1);
  auto update_norm = [&](double clip) {
    torch::manual_seed(1);
    ToyTask task;
    Json j = {{"epochs", 1}, {"optimizer", {{"type", "sgd"}, {"lr", 1.0}, {"momentum", 0.0}}}, {"grad_clip_norm", clip}};
    Trainer trainer(task, parse_train_config(JsonReader(j), registry, TrainConfig{}), "toy", registry);
    auto probe = std::make_shared<FirstStep>();
    trainer.add_callback(probe);
    trainer.fit(train, nullptr);
    return probe->update_norm();
  };
  EXPECT_GT(update_norm(0.0), 0.01);
  EXPECT_NEAR(update_norm(0.001), 0.001, 1e-5);
}
