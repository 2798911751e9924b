// What a user hands encore, through the executable: models copied elsewhere, data in another column
// order, damaged files, output paths that are not plain files, configs that cannot work. Each test
// asserts the exit code, the message, and the file system afterwards.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include <torch/torch.h>

#include <sstream>

#include "encore/core/config.h"
#include "encore/core/dataset.h"
#include "encore/core/npy.h"
#include "encore/core/runtime.h"
#include "support/process.h"
#include "support/support.h"

namespace {

namespace fs = std::filesystem;
using encore::core::Json;
using encore::testing::ProcessOutcome;
using encore::testing::ProcessPlace;
using encore::testing::TempDir;

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Class names a CSV writer must quote.
const std::vector<std::string> kCsvClasses{"plain", "with, comma", "with \"quotes\""};

// A CSV data set whose class k has feature k bright: columns f0..f3 and the label, in that order
// unless `columns` gives another order (names), with an `extra` column when asked.
void write_toy_csv(const fs::path& file, int per_class, const std::vector<std::string>& columns, bool extra = false) {
  std::ofstream out(file);
  for (std::size_t c = 0; c < columns.size(); ++c) out << (c ? "," : "") << columns[c];
  out << (extra ? ",extra\n" : "\n");
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> noise(0, 0.5f);
  for (int i = 0; i < per_class * 3; ++i) {
    const int label = i % 3;
    for (std::size_t c = 0; c < columns.size(); ++c) {
      if (c) out << ",";
      if (columns[c] == "label") {
        // Quoted as RFC 4180 says: in double quotes, quotes doubled.
        std::string quoted = "\"";
        for (const char ch : kCsvClasses[static_cast<std::size_t>(label)]) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
        out << quoted << '"';
        continue;
      }
      const int feature = columns[c][1] - '0';
      out << (feature == label ? 1.0f : 0.0f) + noise(rng);
    }
    out << (extra ? ",7\n" : "\n");
  }
}

const std::vector<std::string> kCsvColumns{"f0", "f1", "f2", "f3", "label"};
const std::vector<std::string> kShuffledColumns{"label", "f3", "f1", "f0", "f2"};

class UserInput : public ::testing::Test {
 protected:
  ProcessOutcome encore(const std::vector<std::string>& args, const ProcessPlace& place = {}, const std::vector<std::string>& env = {}) {
    const auto pid = encore::testing::start_encore(args, dir_ / "encore.err", env, place);
    return encore::testing::wait_for_encore(pid, dir_ / "encore.err");
  }
  void expect_exit(const ProcessOutcome& outcome, int code, const std::string& needle) {
    EXPECT_EQ(outcome.code, code) << outcome.err;
    EXPECT_NE(outcome.err.find(needle), std::string::npos) << "stderr lacks \"" << needle << "\":\n" << outcome.err;
  }
  std::string write_config(const std::string& name, const Json& config) {
    encore::testing::write_text(dir_ / name, config.dump(2));
    return (dir_ / name).string();
  }
  // The toy IDX experiment with a short fine-tuning phase.
  Json idx_config() {
    auto j = encore::testing::toy_experiment_config(dir_);
    j["finetune"] = {{"phases", {{{"name", "all"}, {"epochs", 3}, {"batch_size", 8}}}}};
    return j;
  }
  // A CSV experiment on toy_csv data (training columns in order, test columns shuffled).
  Json csv_config() {
    write_toy_csv(dir_ / "train.csv", 40, kCsvColumns);
    write_toy_csv(dir_ / "test.csv", 10, kShuffledColumns);
    return Json{{"name", "csv"},
                {"threads", 1},
                {"data", {{"format", "csv"}, {"train_csv", "train.csv"}, {"test_csv", "test.csv"}}},
                {"model", {{"hidden_dims", {8}}}},
                {"pretrain", {{"greedy", {{"epochs", 2}, {"batch_size", 8}}}}},
                {"finetune",
                 {{"phases", {{{"name", "all"}, {"epochs", 40}, {"batch_size", 8}, {"optimizer", {{"type", "adam"}, {"lr", 0.02}}}}}}}}};
  }
  // Runs `config` into dir/<run> and expects success.
  fs::path completed_run(const std::string& config_file, const std::string& run) {
    const auto outcome = encore({"run", config_file, "--output-dir", (dir_ / run).string()});
    EXPECT_EQ(outcome.code, 0) << outcome.err;
    return dir_ / run;
  }

  TempDir dir_;
};

// ---- 1. outputs go through one writer ----

TEST_F(UserInput, PredictWritesToStdoutThroughLinksIntoFifosAndDevicesAndReplacesNoneOfThem) {
  const auto run = completed_run(write_config("c.json", idx_config()), "run");
  const auto model = (run / "model.pt").string();
  const auto input = idx_config()["data"]["test_images"].get<std::string>();

  const auto to_stdout = encore({"predict", "--model", model, "--input", input, "--output", "-"}, {{}, dir_ / "stdout.csv"});
  expect_exit(to_stdout, 0, "wrote 20 predictions to standard output");
  EXPECT_EQ(read_text(dir_ / "stdout.csv").rfind("prediction,p_0,p_1,p_2,p_3\n", 0), 0u) << read_text(dir_ / "stdout.csv");
  const auto via_dev_stdout = encore({"predict", "--model", model, "--input", input, "--output", "/dev/stdout"}, {{}, dir_ / "dev.csv"});
  expect_exit(via_dev_stdout, 0, "wrote 20 predictions");
  EXPECT_EQ(read_text(dir_ / "dev.csv"), read_text(dir_ / "stdout.csv"));
  EXPECT_TRUE(fs::is_symlink("/dev/stdout"));

  fs::create_directories(dir_ / "real");
  fs::create_symlink("real/predictions.csv", dir_ / "link.csv");
  expect_exit(encore({"predict", "--model", model, "--input", input, "--output", (dir_ / "link.csv").string()}), 0, "wrote 20");
  EXPECT_TRUE(fs::is_symlink(dir_ / "link.csv"));
  EXPECT_EQ(read_text(dir_ / "real" / "predictions.csv"), read_text(dir_ / "stdout.csv"));

  ASSERT_EQ(::mkfifo((dir_ / "pipe").c_str(), 0600), 0);
  std::string piped;
  std::thread reader([&] { piped = read_text(dir_ / "pipe"); });
  expect_exit(encore({"predict", "--model", model, "--input", input, "--output", (dir_ / "pipe").string()}), 0, "wrote 20");
  reader.join();
  EXPECT_EQ(piped, read_text(dir_ / "stdout.csv"));
  EXPECT_EQ(fs::status(dir_ / "pipe").type(), fs::file_type::fifo);

  expect_exit(encore({"predict", "--model", model, "--input", input, "--output", "/dev/null"}), 0, "wrote 20");
  EXPECT_EQ(fs::status("/dev/null").type(), fs::file_type::character);

  fs::create_directories(dir_ / "folder");
  expect_exit(encore({"predict", "--model", model, "--input", input, "--output", (dir_ / "folder").string()}), 2,
              "folder is a directory; encore writes regular files, FIFOs, character devices and sockets, and replaces nothing else");
  EXPECT_TRUE(fs::is_empty(dir_ / "folder"));
}

// ---- 2 and 3. a model is self-contained; CSV columns are matched by name ----

TEST_F(UserInput, PredictAndEvaluateWorkFromAnEmptyDirectoryHoldingOnlyTheModelAndTheInput) {
  const auto idx_run = completed_run(write_config("idx.json", idx_config()), "idx_run");
  const auto csv_run = completed_run(write_config("csv.json", csv_config()), "csv_run");
  const auto elsewhere = dir_ / "elsewhere";
  fs::create_directories(elsewhere);
  fs::copy_file(idx_run / "model.pt", elsewhere / "idx.pt");
  fs::copy_file(csv_run / "model.pt", elsewhere / "csv.pt");
  const auto test_images = idx_config()["data"]["test_images"].get<std::string>();
  const auto test_labels = idx_config()["data"]["test_labels"].get<std::string>();
  fs::copy_file(test_images, elsewhere / "images.idx");
  fs::copy_file(test_labels, elsewhere / "labels.idx");
  write_toy_csv(elsewhere / "new.csv", 5, {"f2", "f0", "f3", "f1"}, true);
  // The training data is gone: nothing but the model and the input may be needed.
  fs::remove_all(dir_ / "train.csv");
  fs::remove(idx_config()["data"]["train_images"].get<std::string>());

  const ProcessPlace there{elsewhere, elsewhere / "out.txt"};
  expect_exit(encore({"predict", "--model", "idx.pt", "--input", "images.idx", "--output", "idx.csv"}, there), 0, "wrote 20 predictions");
  expect_exit(encore({"evaluate", "idx.pt", "--data", "images.idx", "--labels", "labels.idx"}, there), 0, "(20 examples)");
  EXPECT_EQ(Json::parse(read_text(elsewhere / "out.txt"))["test"]["per_class"].size(), 4u);

  const auto csv = encore({"predict", "--model", "csv.pt", "--input", "new.csv", "--output", "csv.csv"}, there);
  expect_exit(csv, 0, "new.csv: ignoring 1 column that the model does not use: extra");
  std::ifstream predictions(elsewhere / "csv.csv");
  std::string header, first;
  std::getline(predictions, header);
  std::getline(predictions, first);
  // Class names are sorted as text: ' ' before ','.
  EXPECT_EQ(header, R"(prediction,p_plain,"p_with ""quotes""","p_with, comma")");
  // Row 1 is class "plain" (feature f0 bright), whatever the column order of the file.
  EXPECT_EQ(first.substr(0, 6), "plain,") << first;
  expect_exit(encore({"evaluate", "csv.pt", "--data", "new.csv"}, there), 1, "new.csv:1:1: no label column \"label\"");
}

TEST_F(UserInput, ATestSetWithShuffledColumnsScoresAsTheTrainingOrderAndAMissingColumnIsNamed) {
  const auto config = write_config("csv.json", csv_config());
  const auto shuffled = completed_run(config, "shuffled");
  write_toy_csv(dir_ / "test.csv", 10, kCsvColumns);
  const auto ordered = completed_run(config, "ordered");
  const auto accuracy = [](const fs::path& run) { return Json::parse(read_text(run / "summary.json"))["test"]["accuracy"].get<double>(); };
  EXPECT_GT(accuracy(ordered), 0.9);
  EXPECT_EQ(accuracy(shuffled), accuracy(ordered));

  write_toy_csv(dir_ / "test.csv", 10, {"f0", "f1", "f3", "label"});
  expect_exit(encore({"run", config, "--output-dir", (dir_ / "missing").string()}), 1,
              "test.csv:1:1: 1 of the 4 expected feature columns is missing: f2");
  EXPECT_FALSE(fs::exists(dir_ / "missing"));
}

// ---- 4. integrity of the archives encore reads back ----

TEST_F(UserInput, AFlippedBitInModelOrPretrainedIsRefusedWhilePyTorchStillLoadsBoth) {
  const auto config = write_config("c.json", idx_config());
  const auto run = completed_run(config, "run");
  const auto input = idx_config()["data"]["test_images"].get<std::string>();
  for (const char* name : {"model.pt", "pretrained.pt"}) {
    auto bytes = read_text(run / name);
    bytes[encore::testing::zip_entry_data_offset(bytes, "/data/0") + 3] ^= 0x01;
    encore::testing::write_text(dir_ / (std::string("flipped_") + name), bytes);
  }
  const auto flipped_model = (dir_ / "flipped_model.pt").string();
  expect_exit(encore({"predict", "--model", flipped_model, "--input", input, "--output", (dir_ / "p.csv").string()}), 1,
              "flipped_model.pt: damaged archive at offset");
  EXPECT_FALSE(fs::exists(dir_ / "p.csv"));
  expect_exit(encore({"evaluate", flipped_model}), 1, "checksum mismatch in entry");
  expect_exit(encore({"finetune", config, "--from", (dir_ / "flipped_pretrained.pt").string(), "--output-dir", (dir_ / "ft").string()}), 1,
              "flipped_pretrained.pt: damaged archive at offset");
  EXPECT_FALSE(fs::exists(dir_ / "ft"));
  // PyTorch reads them all (the damaged ones too: it does not check; encore does).
  for (const auto& file : {run / "model.pt", run / "pretrained.pt", dir_ / "flipped_model.pt", dir_ / "flipped_pretrained.pt"}) {
    const auto command =
        encore::testing::python_with_torch() + " -c 'import sys, torch; torch.jit.load(sys.argv[1])' " + file.string() + " 2>/dev/null";
    EXPECT_EQ(std::system(command.c_str()), 0) << "torch.jit.load fails on " << file;
  }
}

// ---- 5, 6 and 7: everything check can know is checked before work ----

TEST_F(UserInput, CheckRefusesWhatARunWouldFailOnLateAndARunRefusesItBeforeItsDirectoryExists) {
  auto j = idx_config();
  const auto config = write_config("c.json", j);
  const auto refused = [&](const std::vector<std::string>& sets, int code, const std::string& needle) {
    std::vector<std::string> check_args{"check", config}, run_args{"run", config, "--output-dir", (dir_ / "run").string()};
    for (const auto& set : sets) {
      for (auto* args : {&check_args, &run_args}) args->insert(args->end(), {"--set", set});
    }
    expect_exit(encore(check_args), code, needle);
    expect_exit(encore(run_args), code, needle);
    EXPECT_FALSE(fs::exists(dir_ / "run")) << needle;
  };
  refused({"/threads=10000"}, 2, "/threads: must be at most 256");
  refused({R"(/finetune/phases/0/trainable=["encoder","decoders"])"}, 2, "/finetune/phases/0/trainable/1: unknown block \"decoders\"");
  refused({R"(/finetune/phases/0/trainable=["head","head"])"}, 2, "/finetune/phases/0/trainable/1: block \"head\" is listed twice");
  refused({"/model/hidden_dims=[1000000000]"}, 2, "/model/hidden_dims: 3e+09 parameters even for one input need");
  refused({"/data/validation_fraction=0", R"(/finetune/phases/0/early_stopping={"monitor":"val/loss"})"}, 2,
          "monitors \"val/loss\", but /data/validation_fraction is 0");

  // IDX labels: a test label the training set lacks, and a stray training label.
  auto [images, labels] = encore::testing::write_toy_idx(dir_.path(), "odd", 6, 5, 8, false);
  refused({"/data/test_images=\"" + images.string() + "\"", "/data/test_labels=\"" + labels.string() + "\""}, 1,
          "label 4 of example 4 is not one of the 4 training classes");
  auto stray = encore::testing::read_bytes(j["data"]["test_labels"].get<std::string>());
  stray.back() = 200;
  encore::testing::write_bytes(dir_ / "stray.idx", stray);
  refused({"/data/train_labels=\"" + (dir_ / "stray.idx").string() + "\"",
           "/data/train_images=\"" + j["data"]["test_images"].get<std::string>() + "\""},
          1, "labels run from 0 to 200, but 196 of them never occur");

  // More threads than cores: a warning, and the run goes on.
  const auto threads = encore::core::available_cores() + 1;
  expect_exit(encore({"check", config, "--set", "/threads=" + std::to_string(threads)}), 0,
              "warning: " + std::to_string(threads) + " threads on the");
  // validation_fraction 0: no validation set, and the run works.
  const auto unvalidated = encore({"run", config, "--set", "/data/validation_fraction=0", "--output-dir", (dir_ / "novalid").string()});
  expect_exit(unvalidated, 0, "0 validation held out");
  EXPECT_FALSE(Json::parse(read_text(dir_ / "novalid" / "summary.json")).contains("validation"));
}

// ---- 8. one --set switches modes ----

TEST_F(UserInput, EveryShippedConfigRunsAsItsFromScratchTwinWithOneSet) {
  const char* source = std::getenv("ENCORE_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "ctest sets ENCORE_SOURCE_DIR";
  // Toy images stand in for Fashion-MNIST: enough of each class for 100 labels per class and a
  // validation split; small, so that every config's fine-tuning runs in seconds, and 8x8, so
  // that the convolutional configs' three poolings still leave a pixel.
  auto [train_images, train_labels] = encore::testing::write_toy_idx(dir_.path(), "train", 10, 115, 8, true);
  auto [test_images, test_labels] = encore::testing::write_toy_idx(dir_.path(), "test", 10, 3, 8, true);
  for (const auto& entry : fs::directory_iterator(fs::path(source) / "configs")) {
    const auto name = entry.path().stem().string();
    const auto outcome =
        encore({"run", entry.path().string(), "--set", "/pretrain/mode=\"none\"", "--set", "/threads=1", "--set",
                "/data/train_images=\"" + train_images.string() + "\"", "--set", "/data/train_labels=\"" + train_labels.string() + "\"",
                "--set", "/data/test_images=\"" + test_images.string() + "\"", "--set",
                "/data/test_labels=\"" + test_labels.string() + "\"", "--output-dir", (dir_ / name).string()});
    EXPECT_EQ(outcome.code, 0) << name << ": " << outcome.err;
    EXPECT_FALSE(fs::exists(dir_ / name / "pretrained.pt")) << name;
    EXPECT_EQ(Json::parse(read_text(dir_ / name / "config.json"))["pretrain"]["mode"], "none") << name;
  }
}

// ---- 9. the cosine schedule ----

TEST_F(UserInput, TheCosineScheduleTrainsEveryEpochAtANonZeroRate) {
  auto j = idx_config();
  j["finetune"]["phases"][0]["epochs"] = 4;
  j["finetune"]["phases"][0]["schedule"] = {{"type", "cosine"}};
  const auto run = completed_run(write_config("c.json", j), "run");
  std::ifstream metrics(run / "metrics.jsonl");
  int epochs = 0;
  for (std::string line; std::getline(metrics, line);) {
    const auto record = Json::parse(line);
    if (record["stage"] != "finetune/all") continue;
    ++epochs;
    EXPECT_GT(record["lr"].get<double>(), 0.0) << line;
  }
  EXPECT_EQ(epochs, 4);
}

// ---- 10 and 11: one run per directory; interrupted runs say how to go on ----

TEST_F(UserInput, AnInterruptedRunSaysWhereItStoppedAndASecondProcessOnItsDirectoryIsRefused) {
  auto j = idx_config();
  j["finetune"]["phases"][0]["epochs"] = 100000;
  j["checkpoint_every_steps"] = 5;
  const auto config = write_config("c.json", j);
  const auto run = dir_ / "run";
  const auto pid = encore::testing::start_encore({"run", config, "--output-dir", run.string()}, dir_ / "long.err");
  // Wait until fine-tuning has checkpointed.
  for (int i = 0; i < 600 && read_text(dir_ / "long.err").find("finetune/all epoch 2") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto second = encore({"run", config, "--resume", run.string()});
  expect_exit(second, 2, "is in use by another encore process (PID " + std::to_string(pid) + ")");
  ::kill(pid, SIGINT);
  const auto interrupted = encore::testing::wait_for_encore(pid, dir_ / "long.err");
  expect_exit(interrupted, 130, "encore: interrupted by SIGINT in stage finetune/all, epoch");
  EXPECT_NE(interrupted.err.find("Continue with:\n  encore run " + config + " --resume " + run.string()), std::string::npos)
      << interrupted.err;
  EXPECT_TRUE(fs::exists(run / "checkpoints" / "latest.pt"));
  EXPECT_FALSE(fs::exists(run / "model.pt"));
}

// ---- 11. messages name what is wrong ----

TEST_F(UserInput, MessagesNameFileKindsShapesHeadersFullDisksAndRunsWithoutAModel) {
  auto j = idx_config();
  const auto config = write_config("c.json", j);
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
  expect_exit(encore({"check", config, "--set", "/data/train_images=\"" + dir_.path().string() + "\""}), 2,
              "/data/train_images: \"" + dir_.path().string() + "\" is a directory");
  expect_exit(encore({"check", config, "--set", "/data/train_labels=\"" + (dir_ / "fifo").string() + "\""}), 2, "is a FIFO (named pipe)");

  auto [wide_images, wide_labels] = encore::testing::write_toy_idx(dir_.path(), "wide", 4, 5, 6, false);
  expect_exit(
      encore({"check", config, "--set", "/data/test_images=\"" + wide_images.string() + "\"", "--set",
              "/data/test_labels=\"" + wide_labels.string() + "\""}),
      1,
      wide_images.string() + ": examples are 6x6, the training examples of " + j["data"]["train_images"].get<std::string>() + " are 8x8");

  // A spreadsheet's byte-order mark before the label column's name.
  const auto csv = write_config("csv.json", csv_config());
  write_toy_csv(dir_ / "train.csv", 40, kShuffledColumns);
  encore::testing::write_text(dir_ / "train.csv", "\xEF\xBB\xBF" + read_text(dir_ / "train.csv"));
  expect_exit(encore({"check", csv}), 0, "data: 120 training examples");

  const auto run = completed_run(config, "run");
  const auto full = encore(
      {"predict", "--model", (run / "model.pt").string(), "--input", j["data"]["test_images"].get<std::string>(), "--output", "/dev/full"});
  expect_exit(full, 1, "cannot write /dev/full: after 0 of");
  expect_exit(full, 1, "No space left on device");

  auto pretrain_only = j;
  pretrain_only.erase("finetune");
  const auto pretrained = completed_run(write_config("p.json", pretrain_only), "pretrained");
  expect_exit(encore({"evaluate", pretrained.string()}), 2, "has no model.pt: the run only pretrained");
  expect_exit(encore({"evaluate", dir_.path().string()}), 2, "has no model.pt: it is not a finished encore run");

  encore::testing::write_text(dir_ / "full", "x");
  expect_exit(encore({"run", config, "--output-dir", dir_.path().string()}), 2, "is not empty");
  expect_exit(encore({"run", config, "--resume", (dir_ / "nowhere").string()}), 2, "nowhere");
  expect_exit(encore({"run", config, "--nproc", "0"}), 2, "--nproc");
}

// ---- 12. duplicates are errors ----

TEST_F(UserInput, DuplicateJsonKeysCsvColumnsAndTrainableEntriesAreErrorsNamingThem) {
  encore::testing::write_text(dir_ / "dup.json", R"({"name": "a", "seed": 1, "seed": 2, "data": {}, "model": {}})");
  expect_exit(encore({"check", (dir_ / "dup.json").string()}), 2, "key \"seed\" is given twice in one object (at /seed)");
  auto csv = csv_config();
  encore::testing::write_text(dir_ / "train.csv", "f0,f0,label\n1,2,plain\n3,4,plain\n");
  expect_exit(encore({"check", write_config("csv.json", csv)}), 1, "train.csv:1:2: columns 1 and 2 are both named \"f0\"");
  expect_exit(
      encore({"check", write_config("c.json", idx_config()), "--set", R"(/finetune/phases/0/trainable=["encoder","head","encoder"])"}), 2,
      "\"encoder\"");
}

// ---- 13. relative paths, pictures ----

TEST_F(UserInput, AConfigAndItsDataMoveTogetherAndEachDataKindGetsItsPictures) {
  // The CSV config names its files relatively: they resolve next to it, wherever encore runs.
  const auto config = write_config("csv.json", csv_config());
  fs::create_directories(dir_ / "somewhere_else");
  const auto csv = encore({"run", config, "--output-dir", (dir_ / "csv_run").string()}, {dir_ / "somewhere_else", {}});
  expect_exit(csv, 0, "no reconstructions.png or filters.png: the examples are not images");
  EXPECT_EQ(Json::parse(read_text(dir_ / "csv_run" / "config.json"))["data"]["train_csv"], (dir_ / "train.csv").string());
  // confusion.png: three 24-pixel cells a side, plus the margin that names the classes.
  const auto [width, height] = encore::testing::png_size(dir_ / "csv_run" / "confusion.png");
  EXPECT_GT(width, 3 * 24 + 40);
  EXPECT_EQ(width, height);
  EXPECT_FALSE(fs::exists(dir_ / "csv_run" / "reconstructions.png"));

  const auto idx_run = completed_run(write_config("idx.json", idx_config()), "idx_run");
  for (const char* picture : {"reconstructions.png", "filters.png", "confusion.png"}) {
    EXPECT_GT(encore::testing::png_size(idx_run / picture).first, 0) << picture;
  }
}

// ---- 14. results other tools use: TorchScript files, codes, NumPy data, the report ----

std::string source_file(const std::string& relative) {
  const char* root = std::getenv("ENCORE_SOURCE_DIR");
  return (fs::path(root ? root : ".") / relative).string();
}

// A program built beside this test (tests/tools).
std::string tool(const std::string& name) { return (fs::read_symlink("/proc/self/exe").parent_path() / name).string(); }

int shell(const std::string& command) { return std::system(command.c_str()); }

// encore predict's CSV: probabilities [N, K] and class indices (-1 for "none") of classes named 0..K-1.
std::pair<torch::Tensor, torch::Tensor> read_predictions(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  std::vector<float> probabilities;
  std::vector<std::int64_t> classes;
  std::int64_t rows = 0;
  while (std::getline(in, line)) {
    std::stringstream fields(line);
    std::string field;
    std::getline(fields, field, ',');
    classes.push_back(field == "none" ? -1 : std::stoll(field));
    while (std::getline(fields, field, ',')) probabilities.push_back(std::stof(field));
    ++rows;
  }
  return {torch::tensor(probabilities).reshape({rows, -1}), torch::tensor(classes, torch::kInt64)};
}

TEST_F(UserInput, ModelFilesWorkInPyTorchAndInCppWithLibTorchAloneAsEncorePredictsAndEmbeds) {
  const auto idx_run = completed_run(write_config("idx.json", idx_config()), "idx_run");
  const auto csv_run = completed_run(write_config("csv.json", csv_config()), "csv_run");
  const auto images = idx_config()["data"]["test_images"].get<std::string>();
  const auto labels = idx_config()["data"]["test_labels"].get<std::string>();
  const auto out = [&](const std::string& name) { return (dir_ / name).string(); };
  expect_exit(encore({"predict", "--model", (idx_run / "model.pt").string(), "--input", images, "--output", out("idx.csv")}), 0,
              "wrote 20 predictions");
  expect_exit(encore({"predict", "--model", (idx_run / "model.pt").string(), "--input", images, "--output", out("p.npy")}), 0,
              "probabilities to " + out("p.npy") + " and their classes to " + out("p_classes.npy"));
  expect_exit(encore({"predict", "--model", (csv_run / "model.pt").string(), "--input", out("test.csv"), "--output", out("csv.csv")}), 0,
              "wrote 30 predictions");
  fs::create_directories(dir_ / "codes");
  expect_exit(encore({"embed", "--model", (idx_run / "pretrained.pt").string(), "--input", images, "--labels", labels, "--output",
                      (dir_ / "codes" / "codes.npy").string()}),
              0, "wrote 20 codes of 4 numbers");
  EXPECT_GT(encore::testing::png_size(dir_ / "codes" / "embedding.png").first, 0);
  expect_exit(encore({"embed", "--model", (idx_run / "model.pt").string(), "--input", images, "--depth", "1", "--output", out("c.csv"),
                      "--picture", out("map.png")}),
              0, "wrote 20 codes of 16 numbers");
  EXPECT_EQ(read_text(dir_ / "c.csv").substr(0, 12), "code0,code1,");
  expect_exit(encore({"embed", "--model", (idx_run / "model.pt").string(), "--input", images, "--depth", "3", "--output", out("x.csv")}), 2,
              "--depth must be in [1, 2], got 3");
  expect_exit(encore({"predict", "--model", (idx_run / "pretrained.pt").string(), "--input", images, "--output", out("x.csv")}), 2,
              "is a pretrained autoencoder without a classifier");
  EXPECT_FALSE(fs::exists(dir_ / "x.csv"));

  // The .npy files hold what the CSV does.
  const auto [probabilities, classes] = read_predictions(dir_ / "idx.csv");
  const auto npy = encore::core::read_npy_file(out("p.npy"));
  EXPECT_EQ(npy.shape, (std::vector<std::int64_t>{20, 4}));
  const auto npy_probabilities = torch::from_blob(const_cast<char*>(npy.bytes.data()) + npy.data_offset, {20, 4}, torch::kFloat32);
  EXPECT_TRUE(torch::allclose(npy_probabilities, probabilities, 0, 1e-6));
  const auto npy_classes = encore::core::read_npy_file(out("p_classes.npy"));
  EXPECT_EQ(npy_classes.type, encore::core::NpyType::kInt64);
  EXPECT_TRUE(
      torch::equal(torch::from_blob(const_cast<char*>(npy_classes.bytes.data()) + npy_classes.data_offset, {20}, torch::kInt64), classes));
  EXPECT_EQ(encore::core::read_npy_file((dir_ / "codes" / "codes.npy").string()).shape, (std::vector<std::int64_t>{20, 4}));

  // PyTorch alone (no encore code).
  const auto check = encore::testing::python_with_torch() + " " + source_file("scripts/torchscript-check");
  EXPECT_EQ(shell(check + " --model " + (idx_run / "model.pt").string() + " --input " + images + " --predictions " + out("idx.csv")), 0);
  EXPECT_EQ(
      shell(check + " --model " + (csv_run / "model.pt").string() + " --input " + out("test.csv") + " --predictions " + out("csv.csv")), 0);
  EXPECT_EQ(shell(check + " --model " + (idx_run / "pretrained.pt").string() + " --input " + images + " --codes " +
                  (dir_ / "codes" / "codes.npy").string()),
            0);

  // C++ with LibTorch alone.
  const auto inputs = torch::pickle_save(encore::core::load_idx_dataset(images, labels).features);
  encore::testing::write_text(dir_ / "inputs.pt", std::string(inputs.begin(), inputs.end()));
  ASSERT_EQ(shell(tool("torchscript_predict") + " " + (idx_run / "model.pt").string() + " " + out("inputs.pt") + " " + out("outputs.pt")),
            0);
  const auto output_bytes = read_text(dir_ / "outputs.pt");
  const auto outputs = torch::pickle_load(std::vector<char>(output_bytes.begin(), output_bytes.end())).toTuple()->elements();
  ASSERT_EQ(outputs.size(), 3u);
  EXPECT_TRUE(torch::allclose(outputs[0].toTensor(), probabilities, 0, 1e-5));
  EXPECT_TRUE(torch::equal(outputs[1].toTensor(), classes));
  EXPECT_EQ(outputs[2].toTensor().sizes(), (std::vector<std::int64_t>{20, 4}));
}

TEST_F(UserInput, AnNpyCopyOfTheDataTrainsToTheSameResultAsTheIdxFiles) {
  auto config = idx_config();
  const auto write_npy = [&](const std::string& images_key, const std::string& labels_key, const std::string& stem) {
    const auto data =
        encore::core::load_idx_dataset(config["data"][images_key].get<std::string>(), config["data"][labels_key].get<std::string>());
    const auto labels = data.labels.to(torch::kInt32);
    encore::testing::write_text(dir_ / (stem + "_x.npy"), encore::core::npy_bytes(encore::core::NpyType::kUInt8,
                                                                                  data.features.sizes().vec(), data.features.data_ptr()));
    encore::testing::write_text(dir_ / (stem + "_y.npy"),
                                encore::core::npy_bytes(encore::core::NpyType::kInt32, {data.size()}, labels.data_ptr()));
  };
  write_npy("train_images", "train_labels", "train");
  write_npy("test_images", "test_labels", "test");
  const auto idx_run = completed_run(write_config("idx.json", config), "idx_run");
  config["data"] = {{"format", "npy"},
                    {"train_features", "train_x.npy"},
                    {"train_labels", "train_y.npy"},
                    {"test_features", "test_x.npy"},
                    {"test_labels", "test_y.npy"}};
  const auto npy_run = completed_run(write_config("npy.json", config), "npy_run");
  const auto summary = [](const fs::path& run) { return Json::parse(read_text(run / "summary.json")); };
  for (const char* part : {"pretrain", "validation", "test"}) EXPECT_EQ(summary(npy_run)[part], summary(idx_run)[part]) << part;
  EXPECT_EQ(shell(tool("same_weights") + " " + (idx_run / "model.pt").string() + " " + (npy_run / "model.pt").string()), 0);
  // Prediction and evaluation read .npy inputs of the model's shape.
  expect_exit(encore({"evaluate", (npy_run / "model.pt").string(), "--data", (dir_ / "test_x.npy").string(), "--labels",
                      (dir_ / "test_y.npy").string()}),
              0, "(20 examples)");
  expect_exit(encore({"predict", "--model", (npy_run / "model.pt").string(), "--input", (dir_ / "train_y.npy").string(), "--output",
                      (dir_ / "p.csv").string()}),
              1, "train_y.npy: examples are single numbers, the model takes 8x8");
}

TEST_F(UserInput, TheRunReportRendersInChromiumWithEverySectionAndNoBrokenImage) {
  const auto run = completed_run(write_config("idx.json", idx_config()), "run");
  ASSERT_TRUE(fs::exists(run / "report.html"));
  fs::remove(run / "report.html");
  expect_exit(encore({"report", run.string()}), 0, "wrote " + (run / "report.html").string());
  expect_exit(encore({"report", dir_.path().string()}), 2, "has no config.json: it is not an encore run directory");
  if (shell("command -v chromium >/dev/null 2>&1") != 0) GTEST_SKIP() << "chromium is not installed (scripts/setup installs it)";
  const auto chromium = "cd " + dir_.path().string() + " && HOME=" + dir_.path().string() +
                        " timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage ";
  ASSERT_EQ(shell(chromium + "--dump-dom file://" + (run / "report.html").string() + " > dom.html 2>chromium.err"), 0)
      << read_text(dir_ / "chromium.err");
  const auto dom = read_text(dir_ / "dom.html");
  EXPECT_NE(dom.find("data-loaded=\"true\""), std::string::npos) << "the page's load event never ran";
  EXPECT_NE(dom.find("data-broken-images=\"0\""), std::string::npos) << "an image did not decode";
  EXPECT_EQ(dom.find("data-script-errors"), std::string::npos) << "a script failed";
  for (const char* section : {"data", "curves", "pretraining", "pictures", "evaluation", "load", "timings", "config"}) {
    EXPECT_NE(dom.find(std::string("<section id=\"") + section + "\">"), std::string::npos) << section;
  }
  EXPECT_NE(dom.find("<svg class=\"chart\""), std::string::npos);
  EXPECT_NE(dom.find("pretrain/layer1: loss"), std::string::npos);
  EXPECT_NE(dom.find("true \\ predicted"), std::string::npos);
  ASSERT_EQ(shell(chromium + "--screenshot=" + (dir_ / "report.png").string() + " --window-size=1280,2400 file://" +
                  (run / "report.html").string() + " 2>>chromium.err"),
            0);
  EXPECT_EQ(encore::testing::png_size(dir_ / "report.png"), (std::pair<int, int>{1280, 2400}));
}

}  // namespace
