// Data-parallel runs as separate processes: `--nproc N` (file store, loopback) and torchrun-style
// launches (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; TCP store).
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>

#include "encore/core/config.h"
#include "encore/core/trainer.h"
#include "encore/finetune/experiment.h"
#include "support/process.h"
#include "support/support.h"

namespace {

namespace fs = std::filesystem;
using encore::core::Json;
using encore::testing::TempDir;

/// Pretraining (greedy with masking noise, then end to end) and three fine-tuning phases, the second
/// with gradual unfreezing and early stopping, the third semi-supervised (its unlabelled batches
/// split across the ranks as the others' are); no dropout, whose masks each rank draws itself.
Json parallel_config(const TempDir& dir, std::int64_t batch_size, int finetune_epochs) {
  auto [images, labels] = encore::testing::write_toy_idx(dir.path(), "train", 4, 30, 8, true);
  auto [test_images, test_labels] = encore::testing::write_toy_idx(dir.path(), "test", 4, 10, 8, false);
  const Json stage{{"epochs", 2}, {"batch_size", batch_size}};
  return Json{{"name", "parallel"},
              {"seed", 5},
              {"threads", 1},
              {"checkpoint_every_steps", 2},
              {"data",
               {{"format", "idx"},
                {"train_images", images.string()},
                {"train_labels", labels.string()},
                {"test_images", test_images.string()},
                {"test_labels", test_labels.string()}}},
              {"model", {{"hidden_dims", {24, 12}}, {"corruption", "masking"}, {"corruption_levels", {0.2}}}},
              {"pretrain", {{"mode", "greedy_then_end_to_end"}, {"greedy", stage}, {"end_to_end", stage}}},
              {"finetune",
               {{"phases",
                 {{{"name", "head_only"}, {"trainable", {"head"}}, {"epochs", 2}, {"batch_size", batch_size}},
                  {{"name", "all"},
                   {"trainable", {"encoder", "head"}},
                   {"epochs", finetune_epochs},
                   {"batch_size", batch_size},
                   {"unfreeze_every_epochs", 1},
                   {"early_stopping", {{"monitor", "val/loss"}, {"patience", 50}}}},
                  {{"name", "semi"},
                   {"trainable", {"encoder", "decoder", "head"}},
                   {"epochs", 2},
                   {"batch_size", batch_size},
                   {"semi_supervised", {{"unlabelled_batch_size", batch_size}, {"layer_weights", {1.0, 0.5}}}}}}}}}};
}

std::map<std::string, torch::Tensor> parameters_of(const fs::path& model_file) {
  auto model = encore::finetune::load_trained_model(model_file, encore::finetune::builtin_components());
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : model.classifier->named_parameters()) out[item.key()] = item.value().detach().clone();
  return out;
}

Json summary_of(const fs::path& run) { return encore::core::load_json_file((run / "summary.json").string()); }

std::vector<Json> metrics_lines(const fs::path& run) {
  std::vector<Json> out;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(Json::parse(line));
  return out;
}

/// Runs the config with 1 process and with `processes` (same global batch and seed), and checks that
/// they train the same model: parameters within a relative 1e-5, identical test predictions.
/// The runs are left in `dir`/one and `dir`/many.
void expect_same_model_as_one_process(const Json& config, int processes, const fs::path& dir) {
  fs::create_directories(dir);
  const auto file = (dir / "config.json").string();
  encore::testing::write_text(file, config.dump());
  const auto one = encore::testing::wait_for_encore(
      encore::testing::start_encore({"run", file, "--output-dir", (dir / "one").string()}, dir / "one.err"), dir / "one.err");
  ASSERT_EQ(one.code, 0) << one.err;
  const auto many_dir = dir / "many";
  const auto many = encore::testing::wait_for_encore(
      encore::testing::start_encore({"run", file, "--output-dir", many_dir.string(), "--nproc", std::to_string(processes)},
                                    dir / "many.err"),
      dir / "many.err");
  ASSERT_EQ(many.code, 0) << many.err;
  EXPECT_NE(many.err.find(fmt::format("data parallel: {} processes", processes)), std::string::npos) << many.err;

  const auto expected = parameters_of(dir / "one" / "model.pt");
  const auto actual = parameters_of(many_dir / "model.pt");
  ASSERT_EQ(expected.size(), actual.size());
  double largest = 0;
  for (const auto& [name, value] : expected) {
    const double relative = ((actual.at(name) - value).norm() / value.norm()).item<double>();
    EXPECT_LE(relative, 1e-5) << name;
    largest = std::max(largest, relative);
  }
  std::cout << "largest relative parameter difference, 1 process against " << processes << ": " << largest << "\n";
  const auto summary_one = summary_of(dir / "one");
  const auto summary_many = summary_of(many_dir);
  EXPECT_EQ(summary_many.at("test").at("accuracy"), summary_one.at("test").at("accuracy"));
  EXPECT_EQ(summary_many.at("test").at("confusion"), summary_one.at("test").at("confusion"));
  // Rank 0 alone wrote the run directory, one metrics line per stage and epoch as one process does.
  EXPECT_EQ(encore::testing::list_tree(many_dir), encore::testing::list_tree(dir / "one"));
  std::ifstream lines_one(dir / "one" / "metrics.jsonl"), lines_many(many_dir / "metrics.jsonl");
  const auto count = [](std::ifstream& in) {
    return std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n');
  };
  EXPECT_EQ(count(lines_many), count(lines_one));
}

TEST(DataParallel, TwoProcessesTrainTheModelOneProcessTrains) {
  TempDir dir;
  // 108 training rows in batches of 7: the last batch of 3 rows splits 1 + 2.
  expect_same_model_as_one_process(parallel_config(dir, 7, 3), 2, dir.path());
}

TEST(DataParallel, ARankWithoutARowOfTheLastBatchStillTakesPart) {
  TempDir dir;
  // 108 rows in batches of 53: the last batch has 2 rows for 3 ranks.
  expect_same_model_as_one_process(parallel_config(dir, 53, 3), 3, dir.path());
}

TEST(DataParallel, ConvolutionalAndVariationalModelsTrainWithTwoProcessesAsWithOne) {
  TempDir dir;
  auto config = parallel_config(dir, 7, 3);
  // Without batch normalisation: its batch statistics are each rank's own.
  config["model"] = {{"type", "convolutional_autoencoder"},
                     {"channels", {4, 6}},
                     {"strides", {2, 1}},
                     {"pooling", {1, 2}},
                     {"corruption", "masking"},
                     {"corruption_level", 0.2}};
  // Greedy block stages, then end to end, and a semi-supervised phase scoring every block.
  config["finetune"]["phases"][1]["trainable"] = {"encoder.block0", "encoder.block1", "head"};
  config["finetune"]["phases"][2]["trainable"] = {"encoder", "head"};
  expect_same_model_as_one_process(config, 2, dir / "convolutional");
  // Variational: latent samples drawn as the noise is, and the KL warm-up counted alike; the code
  // layer is a third greedy stage and a third level of the semi-supervised cost.
  config["model"]["code_dim"] = 3;
  config["model"]["variational"] = true;
  config["model"]["kl_warmup_steps"] = 10;
  config["finetune"]["phases"][2]["semi_supervised"]["layer_weights"] = {1.0, 0.5, 0.5};
  expect_same_model_as_one_process(config, 2, dir / "variational");
}

TEST(DataParallel, AMeanTeacherPseudoLabelPhaseTrainsWithTwoProcessesAsWithOne) {
  TempDir dir;
  auto config = parallel_config(dir, 7, 3);
  // Each rank picks the confident rows of its own share; without noise (drawn by each rank, as
  // dropout is) the ranks' averaged gradients are one process's, and so are their moving averages.
  config["finetune"]["phases"][2]["semi_supervised"] = {{"unlabelled_batch_size", 7},
                                                        {"layer_weights", {0.0}},
                                                        {"consistency_weight", 1.0},
                                                        {"consistency_noise", 0.0},
                                                        {"consistency_target", "confident_class"},
                                                        {"consistency_threshold", 0.3},
                                                        {"teacher_decay", 0.9}};
  expect_same_model_as_one_process(config, 2, dir.path());
  // Some rows were confident enough: the phase did train on pseudo-labels.
  const auto lines = metrics_lines(dir / "one");
  const auto semi = std::find_if(lines.begin(), lines.end(), [](const Json& line) { return line.at("stage") == "finetune/semi"; });
  ASSERT_NE(semi, lines.end());
  EXPECT_GT(semi->at("train/unlabelled_cost").get<double>(), 0.0);
}

TEST(DataParallel, EveryRankSkipsANonFiniteStepAlike) {
  TempDir dir;
  auto config = parallel_config(dir, 7, 1);
  config["on_non_finite"] = "skip_step";
  // A learning rate that sends the weights far enough for the next losses to overflow (a linear
  // output and squared error, which saturate nowhere).
  config["model"]["output_activation"] = "linear";
  config["pretrain"]["loss"] = "mse";
  config["pretrain"]["greedy"]["optimizer"] = {{"type", "sgd"}, {"lr", 1e30}};
  const auto file = (dir / "config.json").string();
  encore::testing::write_text(file, config.dump());
  const auto one = encore::testing::wait_for_encore(
      encore::testing::start_encore({"run", file, "--output-dir", (dir / "one").string()}, dir / "one.err"), dir / "one.err");
  ASSERT_EQ(one.code, 0) << one.err;
  const auto two = encore::testing::wait_for_encore(
      encore::testing::start_encore({"run", file, "--output-dir", (dir / "two").string(), "--nproc", "2"}, dir / "two.err"),
      dir / "two.err");
  ASSERT_EQ(two.code, 0) << two.err;
  const auto expected = metrics_lines(dir / "one");
  const auto actual = metrics_lines(dir / "two");
  ASSERT_EQ(actual.size(), expected.size());
  double skipped = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(actual[i].at("stage"), expected[i].at("stage"));
    EXPECT_EQ(actual[i].value("train/skipped_steps", -1.0), expected[i].value("train/skipped_steps", -1.0)) << expected[i].at("stage");
    skipped += expected[i].value("train/skipped_steps", 0.0);
  }
  EXPECT_GT(skipped, 0.0) << "the learning rate was meant to make steps non-finite";
}

/// A torchrun-style worker: rank `rank` of 2 meeting at a TCP store on the loopback address.
pid_t start_rank(int rank, int port, const std::vector<std::string>& args, const fs::path& err_file) {
  return encore::testing::start_encore(args, err_file,
                                       {"WORLD_SIZE=2", "RANK=" + std::to_string(rank), "LOCAL_RANK=" + std::to_string(rank),
                                        "LOCAL_WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port)});
}

TEST(DataParallel, AKilledRankStopsTheOtherNamingItAndTheRunResumesWithTwoRanks) {
  TempDir dir;
  const auto file = (dir / "config.json").string();
  encore::testing::write_text(file, parallel_config(dir, 7, 60).dump());
  const auto run = dir / "run";
  constexpr double kTimeoutSeconds = 5;
  const std::vector<std::string> args{"run", file, "--output-dir", run.string(), "--dist-timeout", "5"};
  const int port = encore::testing::free_loopback_port();
  const pid_t rank0 = start_rank(0, port, args, dir / "rank0.err");
  const pid_t rank1 = start_rank(1, port, args, dir / "rank1.err");
  // Killed mid-epoch of fine-tuning: once the newest checkpoint is one taken inside an epoch of it.
  const auto checkpoint = run / "checkpoints" / "latest.pt";
  const auto mid_epoch_of_fine_tuning = [&] {
    try {
      const auto state = encore::core::Checkpoint(checkpoint).state();
      return state.stage == "finetune/all" && state.epoch > 0 && state.position > 0;
    } catch (const std::exception&) {
      return false;  // not written yet, or between the rotation and the next write
    }
  };
  while (!mid_epoch_of_fine_tuning()) {
    if (waitpid(rank1, nullptr, WNOHANG) == rank1) FAIL() << "rank 1 ended before fine-tuning";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  kill(rank1, SIGKILL);
  const auto killed_at = std::chrono::steady_clock::now();
  waitpid(rank1, nullptr, 0);
  const auto survivor = encore::testing::wait_for_encore(rank0, dir / "rank0.err");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  std::cout << "the survivor exited " << seconds << " s after the kill (timeout " << kTimeoutSeconds << " s)\n";
  EXPECT_NE(survivor.code, 0);
  EXPECT_NE(survivor.err.find("lost rank 1"), std::string::npos) << survivor.err;
  EXPECT_NE(survivor.err.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << "the store is named: " << survivor.err;
  EXPECT_LT(seconds, 2 * kTimeoutSeconds) << "a lost rank must not hang the others";

  // A resume with another number of processes is refused; with two it finishes the run, and the
  // result is the uninterrupted two-process run's, bitwise.
  const auto alone = encore::testing::wait_for_encore(
      encore::testing::start_encore({"run", file, "--resume", run.string()}, dir / "alone.err"), dir / "alone.err");
  EXPECT_EQ(alone.code, 1);
  EXPECT_NE(alone.err.find("written by a run of 2 processes"), std::string::npos) << alone.err;
  const auto resumed = encore::testing::wait_for_encore(
      encore::testing::start_encore({"run", file, "--resume", run.string(), "--nproc", "2"}, dir / "resumed.err"), dir / "resumed.err");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("stage finetune/all"), std::string::npos) << resumed.err;
  const auto reference = dir / "reference";
  const auto uninterrupted = encore::testing::wait_for_encore(
      encore::testing::start_encore({"run", file, "--output-dir", reference.string(), "--nproc", "2"}, dir / "reference.err"),
      dir / "reference.err");
  ASSERT_EQ(uninterrupted.code, 0) << uninterrupted.err;
  EXPECT_TRUE(encore::testing::read_bytes(run / "model.pt") == encore::testing::read_bytes(reference / "model.pt"));
}

TEST(DataParallel, RanksJoinTheStoreOfTorchrunsAgent) {
  TempDir dir;
  const auto file = (dir / "config.json").string();
  encore::testing::write_text(file, parallel_config(dir, 7, 1).dump());
  // What torchrun's agent does: it hosts the TCPStore and tells the workers to use it
  // (TORCHELASTIC_USE_AGENT_STORE), under a prefix of its restart count.
  const int port = encore::testing::free_loopback_port();
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(port);
  options.isServer = true;
  options.waitWorkers = false;
  c10d::TCPStore agent_store("127.0.0.1", options);
  const auto run = dir / "run";
  std::vector<pid_t> ranks;
  for (int rank = 0; rank < 2; ++rank) {
    ranks.push_back(encore::testing::start_encore(
        {"run", file, "--output-dir", run.string()}, dir / fmt::format("rank{}.err", rank),
        {"WORLD_SIZE=2", fmt::format("RANK={}", rank), fmt::format("LOCAL_RANK={}", rank), "LOCAL_WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1",
         fmt::format("MASTER_PORT={}", port), "TORCHELASTIC_USE_AGENT_STORE=True", "TORCHELASTIC_RESTART_COUNT=3"}));
  }
  for (int rank = 0; rank < 2; ++rank) {
    const auto outcome = encore::testing::wait_for_encore(ranks[rank], dir / fmt::format("rank{}.err", rank));
    EXPECT_EQ(outcome.code, 0) << outcome.err;
  }
  EXPECT_TRUE(fs::exists(run / "model.pt"));
  EXPECT_TRUE(agent_store.check({"/worker/attempt_3/encore/arrived/1"}));
}

TEST(DataParallel, RanksStartedWithDifferentConfigsStopBeforeTraining) {
  TempDir dir;
  const auto file = (dir / "config.json").string();
  encore::testing::write_text(file, parallel_config(dir, 7, 1).dump());
  const int port = encore::testing::free_loopback_port();
  const std::vector<std::string> args{"run", file, "--output-dir", (dir / "run").string()};
  auto changed = args;
  changed.insert(changed.end(), {"--set", "/pretrain/greedy/epochs=3"});
  const pid_t rank0 = start_rank(0, port, args, dir / "rank0.err");
  const pid_t rank1 = start_rank(1, port, changed, dir / "rank1.err");
  for (const auto& outcome :
       {encore::testing::wait_for_encore(rank0, dir / "rank0.err"), encore::testing::wait_for_encore(rank1, dir / "rank1.err")}) {
    EXPECT_EQ(outcome.code, 2);
    EXPECT_NE(outcome.err.find("rank 1's resolved config differs from rank 0's at: /pretrain/greedy/epochs"), std::string::npos)
        << outcome.err;
  }
  EXPECT_FALSE(fs::exists(dir / "run" / "metrics.jsonl"));
}

/// Whether a process is gone (or a zombie nobody has reaped yet).
bool process_ended(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return true;
  const auto state = text.find(") ");
  return state != std::string::npos && text[state + 2] == 'Z';
}

TEST(DataParallel, WorkersEndWhenTheirLauncherIsKilled) {
  TempDir dir;
  const auto file = (dir / "config.json").string();
  // Long enough (about a minute) that workers left running would still be running at the deadline.
  encore::testing::write_text(file, parallel_config(dir, 7, 2000).dump());
  const auto run = dir / "run";
  const pid_t launcher = encore::testing::start_encore({"run", file, "--output-dir", run.string(), "--nproc", "2"}, dir / "launcher.err");
  while (!fs::exists(run / "metrics.jsonl")) {
    if (waitpid(launcher, nullptr, WNOHANG) == launcher) FAIL() << "the run ended before its first epoch";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::vector<pid_t> workers;
  {
    std::ifstream children("/proc/" + std::to_string(launcher) + "/task/" + std::to_string(launcher) + "/children");
    for (pid_t pid = 0; children >> pid;) workers.push_back(pid);
  }
  ASSERT_EQ(workers.size(), 2u);
  kill(launcher, SIGKILL);
  waitpid(launcher, nullptr, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (const pid_t worker : workers) {
    while (!process_ended(worker) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(process_ended(worker)) << "worker " << worker << " outlived its launcher";
    if (!process_ended(worker)) kill(worker, SIGKILL);
  }
}

TEST(DataParallel, ARankThatNeverArrivesIsNamedAndNothingIsWritten) {
  TempDir dir;
  const auto file = (dir / "config.json").string();
  encore::testing::write_text(file, parallel_config(dir, 7, 1).dump());
  const auto run = dir / "run";
  const auto alone =
      encore::testing::wait_for_encore(start_rank(0, encore::testing::free_loopback_port(),
                                                  {"run", file, "--output-dir", run.string(), "--dist-timeout", "1"}, dir / "rank0.err"),
                                       dir / "rank0.err");
  EXPECT_EQ(alone.code, 1);
  EXPECT_NE(alone.err.find("rank 1 did not arrive at the store 127.0.0.1:"), std::string::npos) << alone.err;
  EXPECT_FALSE(fs::exists(run));
}

TEST(DataParallel, NprocUnderALauncherAndMalformedLauncherVariablesAreUsageErrors) {
  TempDir dir;
  const auto file = (dir / "config.json").string();
  encore::testing::write_text(file, parallel_config(dir, 7, 1).dump());
  const auto nested =
      encore::testing::wait_for_encore(encore::testing::start_encore({"run", file, "--nproc", "2"}, dir / "nested.err",
                                                                     {"WORLD_SIZE=2", "RANK=0", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=1"}),
                                       dir / "nested.err");
  EXPECT_EQ(nested.code, 2);
  EXPECT_NE(nested.err.find("--nproc"), std::string::npos) << nested.err;
  const auto bad_rank = encore::testing::wait_for_encore(
      encore::testing::start_encore({"run", file}, dir / "rank.err", {"WORLD_SIZE=2", "RANK=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=1"}),
      dir / "rank.err");
  EXPECT_EQ(bad_rank.code, 2);
  EXPECT_NE(bad_rank.err.find("$RANK: must be an integer in [0, 1], got \"2\""), std::string::npos) << bad_rank.err;
  const auto no_port = encore::testing::wait_for_encore(
      encore::testing::start_encore({"run", file}, dir / "port.err", {"WORLD_SIZE=2", "RANK=0", "MASTER_ADDR=127.0.0.1"}),
      dir / "port.err");
  EXPECT_EQ(no_port.code, 2);
  EXPECT_NE(no_port.err.find("$MASTER_PORT"), std::string::npos) << no_port.err;
}

}  // namespace
