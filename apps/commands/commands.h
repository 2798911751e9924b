#pragma once
/// One function per subcommand; cli.cpp parses arguments and calls them.

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace encore::apps {

struct ConfigArgs {
  std::string config_file;
  std::vector<std::string> overrides;
};

struct RunArgs {
  ConfigArgs config;
  std::string output_dir;
  /// `encore pretrain`: stop after pretraining.
  bool pretrain_only = false;
  /// `encore finetune --from`: the pretrained encoder to fine-tune.
  std::string pretrained_file;
  /// Draw a redrawn progress bar (stderr is a terminal).
  bool interactive = false;
  /// `--resume RUN_DIR`: continue that run; `--allow-config-change` lets its config differ.
  std::string resume_dir;
  bool allow_config_change = false;
  /// `--nproc N`: start N local worker processes (data parallel).
  int nproc = 1;
  /// `--master-addr`, `--master-port`: the workers' TCPStore instead of a local file store.
  std::string master_addr;
  int master_port = 29500;
  /// `--dist-timeout`: how long a rank waits for another before failing.
  std::chrono::milliseconds dist_timeout{std::chrono::minutes(5)};
  /// The command line as given, for starting workers.
  std::vector<std::string> argv;
};

/// `encore check`: validates a config and prints it resolved.
int check_command(const ConfigArgs& args, std::ostream& out, std::ostream& err);
/// `encore list`: registered components with one-line descriptions.
int list_command(std::ostream& out);
struct PredictArgs {
  std::string model_file, input_file, output_file;
};

/// `encore run`, `encore pretrain`, `encore finetune`: an experiment (or part of it) into a run directory.
/// A worker of a data-parallel run (torchrun's variables, or started by --nproc) joins the others.
int run_command(const RunArgs& args, std::ostream& out, std::ostream& err);
/// `--nproc N`: starts N workers (this program with RANK, WORLD_SIZE, ... set) and waits for them;
/// the exit code is the first failing worker's.
int launch_workers(const RunArgs& args, std::ostream& err);
struct EvaluateArgs {
  /// A run directory (its model.pt) or a model file.
  std::string run_or_model;
  /// Labelled data other than the run's test set: a CSV with the label column, or IDX images with
  /// `labels_file`.
  std::string data_file, labels_file;
};

/// `encore evaluate`: a trained model on its run's test data, or on the labelled file given;
/// metrics JSON on stdout.
int evaluate_command(const EvaluateArgs& args, std::ostream& out, std::ostream& err);
/// `encore predict`: classes and the K probabilities of every input row, as CSV (or two .npy files).
int predict_command(const PredictArgs& args, std::ostream& out, std::ostream& err);
struct EmbedArgs {
  std::string model_file, input_file, labels_file, output_file, picture_file;
  /// `--depth K`: codes after the first K encoder layers.
  std::optional<int> depth;
};
/// `encore embed`: the codes of every input row (CSV or .npy) and a map of them (embedding.png).
int embed_command(const EmbedArgs& args, std::ostream& out, std::ostream& err);
struct SampleArgs {
  /// A run directory (its pretrained.pt) or a model file.
  std::string run_or_model;
  std::string output_file;
  /// `--count N` samples from the prior, `--seed S` of their draw.
  std::int64_t count = 64;
  std::uint64_t seed = 1;
  /// `--between I,J --input FILE`: an interpolation between examples I and J of FILE instead.
  std::string between, input_file;
  /// `--steps N` of the interpolation.
  std::int64_t steps = 10;
};
/// `encore sample`: new examples drawn from a variational model's prior, or an interpolation
/// between two encoded examples, as a PNG grid.
int sample_command(const SampleArgs& args, std::ostream& err);
struct CurveArgs {
  ConfigArgs config;
  /// `--with CONFIG` (repeatable): further configs, one line each.
  std::vector<std::string> more_configs;
  /// `--labels`: budgets, labels per class or "all".
  std::string labels = "1,5,10,50,100,all";
  /// `--seeds N`: seeds 1..N.
  int seeds = 3;
  /// `--output-dir` (default runs/NAME/curve, where a rerun finds its finished cells).
  std::string output_dir;
};
/// `encore curve`: the label-budget curve of a config (finetune::run_curve); the table of means on stdout.
int curve_command(const CurveArgs& args, std::ostream& out, std::ostream& err);
/// `encore report`: report.html of a run directory, written again from its files.
int report_command(const std::string& run_dir, std::ostream& err);

}  // namespace encore::apps
