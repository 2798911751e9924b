#include "encore/core/checkpoint.h"

#include <torch/optim/serialize.h>
#include <torch/torch.h>

#include <cmath>

#include "encore/core/errors.h"
#include "encore/core/libtorch.h"
#include "encore/core/train_section.h"
#include "support/support.h"
#include "support/toy_training.h"

using namespace encore::core;
using encore::testing::adam_config;
using encore::testing::KillAfterStep;
using encore::testing::toy_data;
using encore::testing::ToyTask;
using encore::testing::weights;

TEST(Checkpoint, ResumedFromACheckpointMatchesAnUninterruptedRunBitwise) {
  const auto data = toy_data();
  const auto scaler = Scaler::fit(Scaling::kNone, data, torch::arange(120));
  BatchSource train(data, torch::arange(120), scaler, 16, true, 9);
  encore::testing::TempDir dir;

  torch::manual_seed(3);
  ToyTask uninterrupted;
  Trainer full(uninterrupted, adam_config(6), "toy");
  full.fit(train, nullptr);

  torch::manual_seed(3);
  ToyTask first_half;
  Trainer interrupted(first_half, adam_config(6), "toy");
  // 8 batches per epoch: step 20 is mid-way through the third epoch.
  interrupted.add_callback(std::make_shared<KillAfterStep>(20, (dir / "ckpt.pt").string()));
  EXPECT_THROW(interrupted.fit(train, nullptr), std::runtime_error);
  torch::manual_seed(12345);  // the resumed process starts with other weights and RNG state

  ToyTask resumed_task;
  Trainer resumed(resumed_task, adam_config(6), "toy");
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

TEST(Checkpoint, CheckpointOfAnotherStageIsRefused) {
  encore::testing::TempDir dir;
  ToyTask task;
  Trainer a(task, adam_config(1), "stage-a");
  a.save_checkpoint((dir / "a.pt").string());
  Trainer b(task, adam_config(1), "stage-b");
  EXPECT_THROW_WITH(b.load_checkpoint((dir / "a.pt").string()), DataError, "checkpoint is of stage \"stage-a\", expected \"stage-b\"");
  encore::testing::write_text(dir / "junk.pt", "not a checkpoint");
  EXPECT_THROW_WITH(b.load_checkpoint((dir / "junk.pt").string()), DataError,
                    "junk.pt: 16 bytes, shorter than the 24-byte checkpoint header");
}

TEST(Checkpoint, DamagedCheckpointIsRejectedNamingTheFile) {
  encore::testing::TempDir dir;
  ToyTask task;
  Trainer trainer(task, adam_config(1), "toy");
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

namespace {

/// Trains `config` for 6 epochs, killed after step 20 and resumed in a new task and Trainer; with
/// `lose_rng_state` the resumed process's generator is reset after loading, as if the checkpoint's
/// had never been restored. Returns the final weights.
std::vector<torch::Tensor> killed_and_resumed(const TrainConfig& config, const BatchSource& train, const std::filesystem::path& file,
                                              bool lose_rng_state) {
  torch::manual_seed(3);
  ToyTask first_half;
  Trainer interrupted(first_half, config, "toy");
  interrupted.add_callback(std::make_shared<KillAfterStep>(20, file.string()));
  EXPECT_THROW(interrupted.fit(train, nullptr), std::runtime_error);
  torch::manual_seed(12345);
  ToyTask resumed_task;
  Trainer resumed(resumed_task, config, "toy");
  resumed.load_checkpoint(file.string());
  if (lose_rng_state) torch::manual_seed(12345);
  resumed.fit(train, nullptr);
  return weights(*resumed_task.net);
}

std::vector<torch::Tensor> uninterrupted(const TrainConfig& config, const BatchSource& train) {
  torch::manual_seed(3);
  ToyTask task;
  Trainer trainer(task, config, "toy");
  trainer.fit(train, nullptr);
  return weights(*task.net);
}

bool all_bitwise_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!encore::testing::bitwise_equal(a[i], b[i])) return false;
  }
  return true;
}

}  // namespace

// The negative control of the bitwise resume checks (here and in the kill test): dropout draws from
// the generator, so a resume that does not restore it must end elsewhere.
TEST(Checkpoint, AResumeThatLosesTheGeneratorStateEndsElsewhere) {
  const auto data = toy_data();
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 9);
  encore::testing::TempDir dir;
  const auto expected = uninterrupted(adam_config(6), train);
  EXPECT_TRUE(all_bitwise_equal(killed_and_resumed(adam_config(6), train, dir / "kept.pt", false), expected));
  EXPECT_FALSE(all_bitwise_equal(killed_and_resumed(adam_config(6), train, dir / "lost.pt", true), expected));
}

namespace {

// A user's own optimizer, written as LibTorch's are: sign of a momentum, with a step count.
struct SignMomentumOptions : torch::optim::OptimizerCloneableOptions<SignMomentumOptions> {
  SignMomentumOptions(double lr = 0.01) : lr_(lr) {}  // NOLINT: LibTorch's loader constructs options from a rate
  TORCH_ARG(double, lr);
  TORCH_ARG(double, beta) = 0.9;

 public:
  void serialize(torch::serialize::InputArchive& archive) override {
    _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
    _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta);
  }
  void serialize(torch::serialize::OutputArchive& archive) const override {
    _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
    _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta);
  }
  double get_lr() const override { return lr(); }
  void set_lr(const double rate) override { lr(rate); }
};

struct SignMomentumState : torch::optim::OptimizerCloneableParamState<SignMomentumState> {
  TORCH_ARG(torch::Tensor, momentum);
  TORCH_ARG(std::int64_t, steps) = 0;

 public:
  void serialize(torch::serialize::InputArchive& archive) override {
    _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, momentum);
    _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(std::int64_t, steps);
  }
  void serialize(torch::serialize::OutputArchive& archive) const override {
    _TORCH_OPTIM_SERIALIZE_TORCH_ARG(momentum);
    _TORCH_OPTIM_SERIALIZE_TORCH_ARG(steps);
  }
};

class SignMomentum : public torch::optim::Optimizer {
 public:
  SignMomentum(std::vector<torch::Tensor> parameters, const SignMomentumOptions& defaults)
      : Optimizer({torch::optim::OptimizerParamGroup(std::move(parameters))}, std::make_unique<SignMomentumOptions>(defaults)) {}

  torch::Tensor step(LossClosure) override {
    torch::NoGradGuard no_grad;
    for (auto& group : param_groups()) {
      const auto& options = static_cast<const SignMomentumOptions&>(group.options());
      for (auto& p : group.params()) {
        if (!p.grad().defined()) continue;
        auto& slot = state()[encore::core::libtorch::optimizer_state_key(p)];
        if (!slot) slot = std::make_unique<SignMomentumState>(SignMomentumState().momentum(torch::zeros_like(p)));
        auto& s = static_cast<SignMomentumState&>(*slot);
        s.momentum().mul_(options.beta()).add_(p.grad(), 1 - options.beta());
        // A step-dependent size, so that a lost step count shows.
        p.add_(s.momentum().sign(), -options.lr() / std::sqrt(static_cast<double>(s.steps() + 1)));
        s.steps(s.steps() + 1);
      }
    }
    return {};
  }
  void save(torch::serialize::OutputArchive& archive) const override {
    torch::optim::serialize<SignMomentumState, SignMomentumOptions>(archive, *this);
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::optim::serialize<SignMomentumState, SignMomentumOptions>(archive, *this);
  }
};

struct SignMomentumSettings : OptimizerOptions {
  double lr = 0.02;
  std::string type() const override { return "sign_momentum"; }
  std::unique_ptr<torch::optim::Optimizer> build(std::vector<torch::Tensor> parameters) const override {
    return std::make_unique<SignMomentum>(std::move(parameters), SignMomentumOptions(lr));
  }
};

}  // namespace

TEST(Checkpoint, AUserRegisteredOptimizerCheckpointsAndResumesBitwise) {
  auto registry = encore::testing::builtin_optimizers();
  registry.add("sign_momentum", "sign of a momentum",
               {[](JsonReader& r) -> std::shared_ptr<const OptimizerOptions> {
                  auto options = std::make_shared<SignMomentumSettings>();
                  options->lr = r.get<double>("lr", options->lr, greater_than(0.0));
                  r.finish();
                  return options;
                },
                [](const OptimizerOptions& options) {
                  return Json{{"lr", dynamic_cast<const SignMomentumSettings&>(options).lr}};
                }});
  Json section = {{"epochs", 6}, {"batch_size", 16}, {"optimizer", {{"type", "sign_momentum"}, {"lr", 0.03}}}};
  const auto config = parse_train_config(JsonReader(section), registry, TrainConfig{});
  EXPECT_EQ(to_json(config, registry)["optimizer"], (Json{{"type", "sign_momentum"}, {"lr", 0.03}}));
  const auto data = toy_data();
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 9);
  encore::testing::TempDir dir;
  EXPECT_TRUE(all_bitwise_equal(killed_and_resumed(config, train, dir / "ckpt.pt", false), uninterrupted(config, train)));
}

TEST(Checkpoint, TheSameTrainingWritesTheSameBytes) {
  const auto data = toy_data();
  BatchSource train(data, torch::arange(120), Scaler::fit(Scaling::kNone, data, torch::arange(120)), 16, true, 9);
  encore::testing::TempDir dir;
  for (const char* name : {"a.pt", "b.pt"}) {
    torch::manual_seed(3);
    ToyTask task;
    Trainer trainer(task, adam_config(1), "toy");
    trainer.fit(train, nullptr);
    trainer.save_checkpoint((dir / name).string());
  }
  EXPECT_TRUE(encore::testing::read_bytes(dir / "a.pt") == encore::testing::read_bytes(dir / "b.pt"));
}
