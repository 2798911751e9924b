// The `encore` executable as a separate process: killed at random moments and resumed, and fed
// hostile files. The executable is the build tree's apps/encore next to this test's tests/ directory
// (ENCORE_BINARY overrides).
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include "encore/core/config.h"
#include "support/process.h"
#include "support/support.h"

namespace {

namespace fs = std::filesystem;
using encore::core::Json;
using encore::testing::TempDir;

using Outcome = encore::testing::ProcessOutcome;

/// Runs encore with `args`; with `kill_after`, sends SIGKILL that long after `clock_start` exists
/// (when given; else after the start), unless it ends first.
Outcome run_encore(const std::vector<std::string>& args, const fs::path& err_file, std::optional<std::chrono::microseconds> kill_after = {},
                   const std::vector<std::string>& extra_env = {}, const fs::path& clock_start = {}) {
  const pid_t pid = encore::testing::start_encore(args, err_file, extra_env);
  if (pid <= 0) return {-1, "", 0};
  if (!kill_after) return encore::testing::wait_for_encore(pid, err_file);
  int status = 0;
  rusage usage{};
  bool ended = false;
  while (!clock_start.empty() && !fs::exists(clock_start) && !ended) {
    ended = wait4(pid, &status, WNOHANG, &usage) == pid;
    if (!ended) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  const auto deadline = std::chrono::steady_clock::now() + *kill_after;
  while (!ended && std::chrono::steady_clock::now() < deadline) {
    ended = wait4(pid, &status, WNOHANG, &usage) == pid;
    if (!ended) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (!ended) {
    kill(pid, SIGKILL);
    wait4(pid, &status, 0, &usage);
  }
  return encore::testing::outcome_of(status, usage, err_file);
}

/// A small experiment touching every resumable part: greedy and end-to-end pretraining with masking
/// noise (RNG), three fine-tuning phases (the second with gradual unfreezing and early stopping, the
/// third semi-supervised: two batch orders, labelled rows cycled), and checkpoints every 3 steps so
/// that kills land mid-epoch and mid-write.
Json resumable_config(const TempDir& dir) {
  auto [images, labels] = encore::testing::write_toy_idx(dir.path(), "train", 4, 30, 8, true);
  return Json{{"name", "resume"},
              {"threads", 1},
              {"checkpoint_every_steps", 3},
              {"data", {{"format", "idx"}, {"train_images", images.string()}, {"train_labels", labels.string()}}},
              {"model", {{"hidden_dims", {24, 12}}, {"corruption", "masking"}, {"corruption_levels", {0.2}}}},
              {"pretrain",
               {{"mode", "greedy_then_end_to_end"},
                {"greedy", {{"epochs", 3}, {"batch_size", 8}}},
                {"end_to_end", {{"epochs", 3}, {"batch_size", 8}}}}},
              {"finetune",
               {{"hidden", {{"units", 16}, {"dropout", 0.2}}},
                {"phases",
                 {{{"name", "head_only"}, {"trainable", {"head"}}, {"epochs", 2}, {"batch_size", 8}},
                  {{"name", "all"},
                   {"trainable", {"encoder", "hidden", "head"}},
                   {"epochs", 4},
                   {"batch_size", 8},
                   {"unfreeze_every_epochs", 1},
                   {"early_stopping", {{"monitor", "val/loss"}, {"patience", 3}}}},
                  {{"name", "semi"},
                   {"trainable", {"encoder", "decoder", "hidden", "head"}},
                   {"epochs", 2},
                   {"batch_size", 5},
                   {"semi_supervised", {{"unlabelled_batch_size", 11}, {"layer_weights", {1.0, 0.5}}}}}}}}}};
}

/// metrics.jsonl without the wall-clock fields.
std::vector<Json> metrics_without_timing(const fs::path& file) {
  std::vector<Json> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    auto record = Json::parse(line);
    record.erase("epoch_seconds");
    record.erase("train/samples_per_second");
    out.push_back(record);
  }
  return out;
}

struct RunFiles {
  std::vector<unsigned char> model, checkpoint;
  std::vector<Json> metrics;
};

RunFiles files_of(const fs::path& run) {
  return {encore::testing::read_bytes(run / "model.pt"), encore::testing::read_bytes(run / "checkpoints" / "latest.pt"),
          metrics_without_timing(run / "metrics.jsonl")};
}

/// Kills a run `delay` after its run directory got its config, then resumes it.
/// Returns what the resumed run said of its starting point.
std::string kill_and_resume(const std::string& config, const fs::path& run, std::chrono::microseconds delay, const TempDir& dir,
                            const std::vector<std::string>& resume_env = {}) {
  // The clock starts when the run directory has its config: kills land in training, not start-up.
  const auto killed = run_encore({"run", config, "--output-dir", run.string()}, dir / "killed.err", delay, {}, run / "config.json");
  if (killed.code == 0) return "not killed: the run had ended";
  EXPECT_EQ(killed.code, -SIGKILL) << killed.err;
  const auto resumed = run_encore({"run", config, "--resume", run.string()}, dir / "resumed.err", {}, resume_env);
  EXPECT_EQ(resumed.code, 0) << resumed.err;
  const auto line = resumed.err.find("resuming from");
  return line == std::string::npos ? "no checkpoint yet" : resumed.err.substr(line, resumed.err.find('\n', line) - line);
}

/// Runs `config` to the end, then `kills` times kills a run of it at a random moment of its training
/// and resumes it: every resumed run must end bitwise where the uninterrupted one ended.
void expect_killed_runs_resume_bitwise(const TempDir& dir, const Json& config_json, int kills) {
  const auto config = (dir / "resume.json").string();
  encore::testing::write_text(config, config_json.dump());
  // Training time: from the run directory's config.json to the end.
  const auto reference_dir = dir / "reference";
  std::chrono::microseconds duration{0};
  {
    const auto reference = run_encore({"run", config, "--output-dir", reference_dir.string()}, dir / "reference.err");
    ASSERT_EQ(reference.code, 0) << reference.err;
    const auto written = fs::last_write_time(reference_dir / "config.json");
    duration = std::chrono::duration_cast<std::chrono::microseconds>(fs::last_write_time(reference_dir / "summary.json") - written);
  }
  const auto expected = files_of(dir / "reference");

  std::mt19937 random(2026);
  std::uniform_int_distribution<std::int64_t> moment(0, duration.count());
  int mid_write = 0;
  for (int kill = 0; kill < kills; ++kill) {
    const auto run = dir / ("run" + std::to_string(kill));
    const auto delay = std::chrono::microseconds(moment(random));
    const auto resumed_from = kill_and_resume(config, run, delay, dir);
    const auto actual = files_of(run);
    const auto where = "kill " + std::to_string(kill) + " after " + std::to_string(delay.count()) + " us, " + resumed_from;
    EXPECT_TRUE(actual.model == expected.model) << where << ": model.pt differs";
    EXPECT_TRUE(actual.checkpoint == expected.checkpoint) << where << ": final checkpoint (weights, optimizer, state) differs";
    EXPECT_EQ(actual.metrics, expected.metrics) << where << ": metrics.jsonl differs";
    for (const auto& entry : fs::directory_iterator(run / "checkpoints"))
      mid_write += entry.path().filename().string().find(".tmp") != std::string::npos;
  }
  std::cout << "kills that left a partly written checkpoint behind: " << mid_write << "\n";
}

TEST(Process, RunKilledAtTwentyRandomMomentsResumesToTheUninterruptedResultBitwise) {
  TempDir dir;
  expect_killed_runs_resume_bitwise(dir, resumable_config(dir), 20);
}

TEST(Process, AConvolutionalVariationalRunKilledAtRandomMomentsResumesToTheUninterruptedResultBitwise) {
  TempDir dir;
  auto config = resumable_config(dir);
  // Batch statistics (running means in buffers), masking noise, pooling, a variational code (latent
  // samples, the KL warm-up's step count in a buffer), greedy block stages (the frozen blocks below
  // in eval mode), blocks unfrozen one by one, and a semi-supervised phase scoring every block and
  // holding the head to a moving average's probabilities (a Mean Teacher, its average checkpointed).
  config["model"] = {{"type", "convolutional_autoencoder"},
                     {"channels", {4, 6}},
                     {"pooling", {2}},
                     {"batch_norm", true},
                     {"corruption", "masking"},
                     {"corruption_level", 0.2},
                     {"code_dim", 3},
                     {"variational", true},
                     {"kl_warmup_steps", 20}};
  config["pretrain"]["greedy"]["epochs"] = 2;
  config["finetune"]["phases"][1]["trainable"] = {"encoder.block0", "encoder.block1", "hidden", "head"};
  config["finetune"]["phases"][2]["trainable"] = {"encoder", "hidden", "head"};
  config["finetune"]["phases"][2]["semi_supervised"]["layer_weights"] = {1.0, 0.5, 0.5};
  config["finetune"]["phases"][2]["semi_supervised"]["consistency_weight"] = 1.0;
  config["finetune"]["phases"][2]["semi_supervised"]["teacher_decay"] = 0.9;
  expect_killed_runs_resume_bitwise(dir, config, 8);
}

/// Writes `config` into `dir` as resume.json and runs it to the end in dir/run; returns the config file.
std::string completed_run(const TempDir& dir, const Json& config) {
  const auto file = (dir / "resume.json").string();
  encore::testing::write_text(file, config.dump());
  const auto outcome = run_encore({"run", file, "--output-dir", (dir / "run").string()}, dir / "first.err");
  EXPECT_EQ(outcome.code, 0) << outcome.err;
  return file;
}

TEST(Process, SameConfigSeedAndThreadsGiveBitwiseIdenticalFiles) {
  TempDir dir;
  const auto config = completed_run(dir, resumable_config(dir));
  const auto again = run_encore({"run", config, "--output-dir", (dir / "again").string()}, dir / "again.err");
  ASSERT_EQ(again.code, 0) << again.err;
  const auto first = files_of(dir / "run");
  const auto second = files_of(dir / "again");
  EXPECT_TRUE(first.model == second.model);
  EXPECT_TRUE(first.checkpoint == second.checkpoint);
  EXPECT_TRUE(encore::testing::read_bytes(dir / "run" / "pretrained.pt") == encore::testing::read_bytes(dir / "again" / "pretrained.pt"));
}

TEST(Process, ResumeWithAChangedConfigIsRefusedListingTheKeys) {
  TempDir dir;
  auto j = resumable_config(dir);
  completed_run(dir, j);
  const auto run = dir / "run";
  j["seed"] = 7;
  j["pretrain"]["greedy"]["epochs"] = 4;
  const auto changed = (dir / "changed.json").string();
  encore::testing::write_text(changed, j.dump());
  const auto refused = run_encore({"run", changed, "--resume", run.string()}, dir / "refused.err");
  EXPECT_EQ(refused.code, 2) << refused.err;
  EXPECT_NE(refused.err.find("/pretrain/greedy/epochs, /seed"), std::string::npos) << refused.err;
  const auto allowed = run_encore({"run", changed, "--resume", run.string(), "--allow-config-change"}, dir / "allowed.err");
  EXPECT_EQ(allowed.code, 0) << allowed.err;
}

// ---- hostile inputs: each refused with a named error, exit 1 or 2, little memory ----

class HostileInput : public ::testing::Test {
 protected:
  void SetUp() override {
    // A normal start: a small valid run, which loads its data and initialises LibTorch and the BLAS.
    const auto config = (dir_ / "normal.json").string();
    encore::testing::write_text(config, resumable_config(dir_).dump());
    const auto normal = run_encore({"run", config, "--output-dir", (dir_ / "normal").string()}, dir_ / "normal.err");
    ASSERT_EQ(normal.code, 0) << normal.err;
    baseline_kib_ = normal.peak_kib;
  }
  /// Runs encore on a config naming `files` and expects a refusal naming `needle`.
  void expect_refused(const std::vector<std::string>& args, const std::string& needle) {
    const auto start = std::chrono::steady_clock::now();
    const auto outcome = run_encore(args, dir_ / "hostile.err");
    // Reported, not asserted (no timing asserts in tests): the figure goes into the issue notes.
    std::cout << "refused in " << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s, peak "
              << outcome.peak_kib / 1024 << " MiB (normal run " << baseline_kib_ / 1024 << " MiB): " << needle << "\n";
    EXPECT_TRUE(outcome.code == 1 || outcome.code == 2) << "exit " << outcome.code << ": " << outcome.err;
    EXPECT_NE(outcome.err.find(needle), std::string::npos) << outcome.err;
    EXPECT_LE(outcome.peak_kib, baseline_kib_ + 64 * 1024)
        << "peak " << outcome.peak_kib << " KiB against " << baseline_kib_ << " at start";
  }
  std::string idx_config(const fs::path& images, const fs::path& labels, const Json& extra = Json::object()) {
    Json data{{"format", "idx"}, {"train_images", images.string()}, {"train_labels", labels.string()}};
    data.update(extra);
    const Json j{{"threads", 1}, {"data", data}, {"model", {{"hidden_dims", {4}}}}};
    encore::testing::write_text(dir_ / "config.json", j.dump());
    return (dir_ / "config.json").string();
  }
  std::string csv_config(const fs::path& csv) {
    const Json j{{"threads", 1}, {"data", {{"format", "csv"}, {"train_csv", csv.string()}}}, {"model", {{"hidden_dims", {4}}}}};
    encore::testing::write_text(dir_ / "config.json", j.dump());
    return (dir_ / "config.json").string();
  }
  std::vector<std::string> run_args(const std::string& config) { return {"run", config, "--output-dir", (dir_ / "run").string()}; }

  TempDir dir_;
  long baseline_kib_ = 0;
};

TEST_F(HostileInput, IdxHeaders) {
  const auto labels = dir_ / "labels.idx";
  encore::testing::write_bytes(labels, encore::testing::idx_bytes(0x08, {2}, {0, 1}));
  const std::vector<unsigned char> pixels(2 * 28 * 28, 7);
  const std::vector<std::tuple<std::string, std::vector<unsigned char>, std::string>> cases{
      {"count_ffffffff.idx", encore::testing::idx_bytes(0x08, {0xFFFFFFFFu, 28, 28}, pixels), "count_ffffffff.idx"},
      {"overflow.idx", encore::testing::idx_bytes(0x08, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, pixels), "overflow.idx"},
      {"wrong_type.idx", encore::testing::idx_bytes(0x07, {2, 28, 28}, pixels), "wrong_type.idx"},
  };
  for (const auto& [name, bytes, needle] : cases) {
    encore::testing::write_bytes(dir_ / name, bytes);
    expect_refused(run_args(idx_config(dir_ / name, labels)), needle);
  }
  auto truncated = encore::testing::idx_bytes(0x08, {2, 28, 28}, pixels);
  truncated.pop_back();
  encore::testing::write_bytes(dir_ / "truncated.idx", truncated);
  expect_refused(run_args(idx_config(dir_ / "truncated.idx", labels)), "truncated.idx");
}

TEST_F(HostileInput, GzipBeyondTheCeiling) {
  const auto labels = dir_ / "labels.idx";
  encore::testing::write_bytes(labels, encore::testing::idx_bytes(0x08, {2}, {0, 1}));
  {
    // 64 MiB of zeros compress to about 64 KiB; the ceiling is set to 16 MiB. Freed before encore
    // starts: a spawned child's peak-memory figure starts from its parent's memory.
    const std::vector<unsigned char> zeros(64u << 20, 0);
    encore::testing::write_gzip(dir_ / "bomb.idx.gz", encore::testing::idx_bytes(0x08, {85598, 28, 28}, zeros));
  }
  expect_refused(run_args(idx_config(dir_ / "bomb.idx.gz", labels, Json{{"max_decompressed_mib", 16}})), "exceed the limit");
}

TEST_F(HostileInput, CsvFiles) {
  encore::testing::write_text(dir_ / "quote.csv", "a,label\n\"1,0\n2,1\n");
  expect_refused(run_args(csv_config(dir_ / "quote.csv")), "quote.csv");
  std::string long_line = "a,label\n" + std::string(10'000'000, '9') + "x,1\n";
  encore::testing::write_text(dir_ / "long.csv", long_line);
  expect_refused(run_args(csv_config(dir_ / "long.csv")), "long.csv:2");
  std::string wide;
  for (int c = 0; c < 20000; ++c) wide += "f" + std::to_string(c) + ",";
  wide += "label\n1,2,0\n";
  encore::testing::write_text(dir_ / "wide.csv", wide);
  expect_refused(run_args(csv_config(dir_ / "wide.csv")), "wide.csv:2");
}

TEST_F(HostileInput, ConfigNestedAHundredThousandLevels) {
  encore::testing::write_text(dir_ / "deep.json", "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}");
  expect_refused({"check", (dir_ / "deep.json").string()}, "deep.json");
}

TEST_F(HostileInput, CheckpointWithOneFlippedBit) {
  TempDir run_dir;
  const auto config = completed_run(run_dir, resumable_config(run_dir));
  const auto run = run_dir / "run";
  fs::remove(run / "checkpoints" / "previous.pt");
  auto bytes = encore::testing::read_bytes(run / "checkpoints" / "latest.pt");
  bytes[bytes.size() / 3] ^= 0x04;
  encore::testing::write_bytes(run / "checkpoints" / "latest.pt", bytes);
  expect_refused({"run", config, "--resume", run.string()}, "latest.pt: checksum mismatch");
}

}  // namespace
