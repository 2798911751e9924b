#include "encore/core/callbacks.h"

#include <torch/torch.h>

#include <sstream>

#include "encore/core/checkpoint.h"
#include "encore/core/resume.h"
#include "support/support.h"
#include "support/toy_training.h"

using namespace encore::core;
using encore::testing::adam_config;
using encore::testing::toy_data;
using encore::testing::ToyTask;
using encore::testing::weights;

TEST(CheckpointSaver, KeepsTheLastTwoAndFallsBackToThePreviousWhenTheLatestIsDamaged) {
  const auto data = toy_data();
  encore::testing::TempDir dir;
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 1);
  ToyTask task;
  Trainer trainer(task, adam_config(2), "toy");
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
  const auto scaler = Scaler::fit(Scaling::kNone, data, torch::arange(120));
  BatchSource train(data, torch::arange(100), scaler, 16, true, 1);
  BatchSource validation(data, torch::arange(100, 120), scaler, 20, false, 1);
  ScriptedTask task({5, 4, 3, 3.5, 3.2, 3.1, 2.0, 1.0});
  auto config = adam_config(8);
  config.early_stopping = EarlyStoppingConfig{"val/loss", "min", 3, 0.0, true};
  Trainer trainer(task, config, "toy");
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

TEST(MetricsWriter, AppendsOneParseableLinePerEpoch) {
  const auto data = toy_data();
  encore::testing::TempDir dir;
  ToyTask task;
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 1);
  Trainer trainer(task, adam_config(3), "toy");
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

namespace {

struct RecordStepWeights : Callback {
  void on_batch_end(Trainer& trainer, double, std::int64_t) override { history.push_back(weights(trainer.task().module())); }
  std::vector<std::vector<torch::Tensor>> history;
};

}  // namespace

TEST(WeightAverage, FollowsEveryStepByItsDecayAndEndsTheFitWithTheAverage) {
  const auto data = toy_data();
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 1);
  ToyTask task;
  auto expected = weights(*task.net);
  Trainer trainer(task, adam_config(2), "toy");
  trainer.add_callback(std::make_shared<WeightAverage>(*task.net, 0.75));
  auto recorder = std::make_shared<RecordStepWeights>();
  trainer.add_callback(recorder);
  trainer.fit(train, nullptr);
  ASSERT_EQ(recorder->history.size(), 16u);
  for (const auto& step : recorder->history) {
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = 0.75 * expected[i] + 0.25 * step[i];
  }
  const auto now = weights(*task.net);
  const auto last = recorder->history.back();
  for (std::size_t i = 0; i < now.size(); ++i) {
    EXPECT_TRUE(torch::allclose(now[i], expected[i], 1e-5, 1e-6)) << "parameter " << i;
    EXPECT_FALSE(torch::allclose(now[i], last[i])) << "parameter " << i << " is the last step's, not the average";
  }
}

TEST(WeightAverage, ServesTheAverageToAForwardPassAndPutsTheModuleOwnWeightsBack) {
  ToyTask task;
  const auto first = weights(*task.net);
  WeightAverage average(*task.net, 0.5);
  Trainer trainer(task, adam_config(1), "toy");
  {
    torch::NoGradGuard no_grad;
    for (auto& p : task.net->parameters()) p.add_(2.0);
  }
  average.on_batch_end(trainer, 0.0, 1);  // average: first + 1
  const auto own = weights(*task.net);
  const auto input = torch::ones({2, 4});
  task.net->eval();
  const auto served = average.with_averaged_parameters([&] { return task.net->linear->forward(input); });
  const auto by_hand = torch::nn::functional::linear(input, first[0] + 1, first[1] + 1);
  EXPECT_TRUE(torch::allclose(served, by_hand));
  EXPECT_THROW(average.with_averaged_parameters([]() -> torch::Tensor { throw std::runtime_error("forward failed"); }), std::runtime_error);
  const auto after = weights(*task.net);
  for (std::size_t i = 0; i < own.size(); ++i) EXPECT_TRUE(encore::testing::bitwise_equal(after[i], own[i])) << "parameter " << i;
}

TEST(WeightAverage, ACheckpointOfAnotherModelsAverageIsRefusedNamingTheFile) {
  encore::testing::TempDir dir;
  ToyTask task;
  Trainer trainer(task, adam_config(1), "toy");
  trainer.add_callback(std::make_shared<WeightAverage>(*task.net, 0.9));
  const auto file = dir / "average.pt";
  trainer.save_checkpoint(file.string());
  torch::nn::Linear other(5, 2);
  WeightAverage mismatched(*other, 0.9);
  EXPECT_THROW_WITH(Checkpoint(file).load_callback(mismatched), DataError,
                    "average.pt: the \"weight_average\" callback's state is not readable: the checkpoint's weight average does not fit "
                    "this model's weights");
  EXPECT_THROW_WITH(WeightAverage(*other, 1.0), std::invalid_argument, "a weight average's decay must be in [0, 1), got 1");
}
