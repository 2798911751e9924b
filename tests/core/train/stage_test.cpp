#include "encore/core/stage.h"

#include <torch/torch.h>

#include "encore/core/callbacks.h"
#include "support/support.h"
#include "support/toy_training.h"

using namespace encore::core;
using encore::testing::adam_config;
using encore::testing::toy_data;
using encore::testing::ToyTask;

namespace {

// A stage that records what the runner asked of it, in order.
class RecordingStage : public Stage {
 public:
  RecordingStage(std::string name, const Dataset& data, std::vector<std::string>& calls)
      : name_(std::move(name)), data_(data), calls_(calls) {}
  std::string name() const override { return name_; }
  const TrainConfig& config() const override { return config_; }
  torch::nn::Module& module() override { return task_.module(); }
  void prepare(const StageContext& context) override {
    calls_.push_back(name_ + ": prepare");
    train_.emplace(data_, torch::arange(data_.size()), Scaler::fit(Scaling::kNone, data_, torch::arange(data_.size())), 16, true,
                   context.seed);
  }
  TrainTask& task() override { return task_; }
  const BatchSource& train() const override { return *train_; }
  const BatchSource* validation() const override { return nullptr; }
  void attach(Trainer&) override { calls_.push_back(name_ + ": attach"); }
  void before_restore(Trainer&, const TrainerState& saved) override {
    calls_.push_back(name_ + ": restore at epoch " + std::to_string(saved.epoch));
  }
  void finish(const StageContext&) override { calls_.push_back(name_ + ": finish"); }

 private:
  std::string name_;
  const Dataset& data_;
  std::vector<std::string>& calls_;
  TrainConfig config_ = adam_config(2);
  ToyTask task_;
  std::optional<BatchSource> train_;
};

}  // namespace

TEST(Stage, RunsPrepareAttachAndFitOnlyForTheStagesAResumedRunStillHasToTrain) {
  const auto data = toy_data();
  encore::testing::TempDir dir;
  std::vector<std::string> calls;
  StageContext context;
  context.attach_callbacks = [&](Trainer& trainer) {
    calls.push_back(trainer.state().stage + ": run callbacks");
    trainer.add_callback(std::make_shared<encore::testing::KillAfterStep>(10, (dir / "ckpt.pt").string()));
  };
  RecordingStage first("first", data, calls);
  EXPECT_THROW(run_stage(first, context), std::runtime_error);
  EXPECT_EQ(calls, (std::vector<std::string>{"first: prepare", "first: attach", "first: run callbacks"}));

  // Resumed: "done" ran before the checkpoint's stage, "first" continues, "after" runs anew.
  calls.clear();
  context.attach_callbacks = nullptr;
  context.resume = std::make_shared<ResumePlan>(Checkpoint(dir / "ckpt.pt"));
  RecordingStage done("done", data, calls);
  RecordingStage resumed("first", data, calls);
  RecordingStage after("after", data, calls);
  EXPECT_FALSE(run_stage(done, context).has_value());
  const auto metrics = run_stage(resumed, context);
  ASSERT_TRUE(metrics.has_value());
  EXPECT_TRUE(metrics->count("train/loss"));
  EXPECT_TRUE(run_stage(after, context).has_value());
  EXPECT_EQ(calls, (std::vector<std::string>{"first: prepare", "first: attach", "first: restore at epoch 1", "first: finish",
                                             "after: prepare", "after: attach", "after: finish"}));
  EXPECT_TRUE(context.resume->is_past({"done"}));
  EXPECT_FALSE(context.resume->is_past({"done", "first"}));
}

TEST(Stage, IsFinishedAgainWhenAResumedRunRestoresItsFinishedCheckpoint) {
  const auto data = toy_data();
  encore::testing::TempDir dir;
  std::vector<std::string> calls;
  StageContext context;
  context.attach_callbacks = [&](Trainer& trainer) { trainer.add_callback(std::make_shared<CheckpointSaver>(dir.path())); };
  RecordingStage stage("only", data, calls);
  ASSERT_TRUE(run_stage(stage, context).has_value());
  // Killed after the stage's last checkpoint, before anything after it: the checkpoint holds the
  // weights as fit left them, so what finish() does to them is done again, and nothing trains.
  calls.clear();
  context.attach_callbacks = nullptr;
  context.resume = std::make_shared<ResumePlan>(Checkpoint(dir / CheckpointSaver::kLatest));
  RecordingStage restored("only", data, calls);
  EXPECT_FALSE(run_stage(restored, context).has_value());
  EXPECT_EQ(calls, (std::vector<std::string>{"only: finish"}));
}
