#include "cli.h"

#include <torch/version.h>
#include <CLI/CLI.hpp>

#include <exception>
#include <functional>

#include <fmt/format.h>

#include "commands/commands.h"
#include "encore/core/callbacks.h"
#include "encore/core/config.h"
#include "encore/core/errors.h"
#include "encore/core/runtime.h"

namespace encore::apps {

namespace {

void add_config_options(CLI::App& command, ConfigArgs& args) {
  command.add_option("config", args.config_file, "experiment config (JSON)")->required();
  command.add_option("--set", args.overrides, "override a value of the resolved config: /json/pointer=<json> (repeatable)")
      ->type_name("/PATH=VALUE")
      ->allow_extra_args(false);
}

// --resume and the data-parallel options of run, pretrain and finetune.
void add_resume_and_parallel_options(CLI::App& command, RunArgs& run_args) {
  command.add_option("--resume", run_args.resume_dir, "continue the interrupted run in this directory from its last checkpoint")
      ->excludes("--output-dir");
  command.add_flag("--allow-config-change", run_args.allow_config_change, "resume even though the config differs from the run's");
  command.add_option("--nproc", run_args.nproc, "data parallel: start this many worker processes on this machine")
      ->check(CLI::Range(1, 256));
  command
      .add_option("--master-addr", run_args.master_addr,
                  "with --nproc: the workers meet at a TCPStore on this address (default: a local file store, no port opened)")
      ->needs("--nproc");
  command.add_option("--master-port", run_args.master_port, "with --master-addr: the store's port (default 29500)")
      ->check(CLI::Range(1, 65535))
      ->needs("--master-addr");
  command
      .add_option_function<double>(
          "--dist-timeout",
          [&run_args](double seconds) { run_args.dist_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000)); },
          "data parallel: seconds a rank waits for another before failing (default 300)")
      ->check(CLI::Range(0.1, 86400.0));
}

// Writes "encore: <message>" on `err` and returns `code`.
int report(std::ostream& err, const std::string& message, int code) {
  err << "encore: " << message << '\n';
  return code;
}

// Runs a command; the single place where exceptions become messages and exit codes. `config_file`
// prefixes config errors that do not name a file already.
int exit_code_of(const std::function<int()>& command, const std::string& config_file, std::ostream& err) {
  try {
    return command();
  } catch (const core::ConfigError& e) {
    const std::string what = e.what();
    return report(err, (what.find(config_file) == std::string::npos ? config_file + ": " : "") + what, kUsageError);
  } catch (const core::UsageError& e) {
    return report(err, e.what(), kUsageError);
  } catch (const core::NonFiniteError& e) {
    return report(err, e.what(), kNonFinite);
  } catch (const c10::Error& e) {
    return report(err, e.what_without_backtrace(), kRuntimeError);
  } catch (const std::exception& e) {
    return report(err, e.what(), kRuntimeError);
  }
}

// The subcommands that use a trained model file.
struct ModelCommands {
  CLI::App* evaluate;
  CLI::App* predict;
  CLI::App* embed;
};

ModelCommands add_model_commands(CLI::App& app, EvaluateArgs& evaluate_args, PredictArgs& predict_args, EmbedArgs& embed_args) {
  auto* evaluate = app.add_subcommand("evaluate", "evaluate a trained model on its run's test data, or on --data; metrics JSON on stdout");
  evaluate->add_option("run_or_model", evaluate_args.run_or_model, "run directory holding model.pt, or a model.pt")->required();
  evaluate->add_option("--data", evaluate_args.data_file,
                       "labelled data to evaluate on: a CSV with the label column, IDX or npy examples, or a folder of class folders (a "
                       "model trained on an image folder)");
  evaluate->add_option("--labels", evaluate_args.labels_file, "with --data of IDX or npy examples: their labels");

  auto* predict = app.add_subcommand("predict", "predict classes and per-class probabilities of new data, as CSV");
  predict->add_option("--model", predict_args.model_file, "model.pt of a run")->required();
  predict
      ->add_option("--input", predict_args.input_file,
                   "IDX images, a .npy array or CSV rows in the format the model was trained on; an image file or a folder of images (any "
                   "depth) for a model trained on an image folder")
      ->required();
  predict
      ->add_option("--output", predict_args.output_file,
                   "CSV to write: prediction,p_<class>... (file,prediction,... for images read from files); - for standard output; P.npy: "
                   "the probabilities [N, K] (float32), "
                   "and P_classes.npy the classes [N] (int64, -1 where the head abstains)")
      ->required();

  auto* embed = app.add_subcommand("embed", "the codes of new data (CSV or .npy) and embedding.png, a map of them coloured by class");
  embed->add_option("--model", embed_args.model_file, "model.pt or pretrained.pt of a run")->required();
  embed->add_option("--input", embed_args.input_file, "examples in the format the model was trained on")->required();
  embed->add_option("--labels", embed_args.labels_file, "labels of IDX or npy inputs, to colour the map (a CSV's label column is read)");
  embed->add_option("--output", embed_args.output_file, "codes to write: C.csv (code0,code1,...), C.npy (float32 [N, width]) or -")
      ->required();
  embed->add_option("--depth", embed_args.depth, "codes after the first K encoder layers (default: the model's code)");
  embed->add_option("--picture", embed_args.picture_file, "the map to draw (default: embedding.png beside the output)");
  return {evaluate, predict, embed};
}

// The subcommands that train into a run directory.
struct RunCommands {
  CLI::App* run;
  CLI::App* pretrain;
  CLI::App* finetune;
};

RunCommands add_run_commands(CLI::App& app, RunArgs& args) {
  auto* run = app.add_subcommand("run", "run an experiment (pretrain, fine-tune, evaluate) into a run directory");
  auto* pretrain = app.add_subcommand("pretrain", "pretrain the autoencoder of an experiment into a run directory");
  auto* finetune = app.add_subcommand("finetune", "fine-tune and evaluate an existing pretrained encoder into a run directory");
  for (auto* command : {run, pretrain, finetune}) {
    add_config_options(*command, args.config);
    command->add_option("--output-dir", args.output_dir, "run directory (default runs/<name>/<timestamp>); must be new or empty");
  }
  for (auto* command : {run, pretrain, finetune}) add_resume_and_parallel_options(*command, args);
  finetune->add_option("--from", args.pretrained_file, "pretrained encoder (pretrained.pt of an earlier run)")->required();
  return {run, pretrain, finetune};
}

CLI::App* add_curve_command(CLI::App& app, CurveArgs& args) {
  auto* curve = app.add_subcommand("curve", "test accuracy against labels per class over seeds, for variants of a config side by side");
  add_config_options(*curve, args.config);
  curve->add_option("--labels", args.labels, "labels per class, comma separated, \"all\" for every label (default 1,5,10,50,100,all)");
  curve
      ->add_option("--with", args.more_configs,
                   "another config whose line joins the curve, named by its name (repeatable; an equal pretraining is shared)")
      ->type_name("CONFIG")
      ->allow_extra_args(false);
  curve->add_option("--seeds", args.seeds, "seeds 1..N (default 3)")->check(CLI::Range(1, 1000));
  curve->add_option("--output-dir", args.output_dir,
                    "where the cells, curve.json, curve.csv and curve.png go (default runs/<name>/curve; finished cells are reused)");
  return curve;
}

CLI::App* add_sample_command(CLI::App& app, SampleArgs& args) {
  auto* sample =
      app.add_subcommand("sample", "draw new examples from a variational model's prior (or interpolate between two), as a PNG grid");
  sample->add_option("run_or_model", args.run_or_model, "run directory (its pretrained.pt) or a model file of a variational model")
      ->required();
  sample->add_option("--output", args.output_file, "the PNG grid to write")->required();
  sample->add_option("--count", args.count, "examples to draw (default 64)")->check(CLI::Range(1, 10000));
  sample->add_option("--seed", args.seed, "seed of the draw (default 1)");
  sample->add_option("--between", args.between, "I,J: interpolate between examples I and J of --input instead of drawing");
  sample->add_option("--input", args.input_file, "with --between: examples in the format the model was trained on");
  sample->add_option("--steps", args.steps, "with --between: images from example I to example J (default 10)")->check(CLI::Range(2, 1000));
  return sample;
}

}  // namespace

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"encore: pretraining of stacked autoencoders and fine-tuning on small labelled sets", "encore"};
  app.set_version_flag("--version", fmt::format("encore {} (LibTorch {})", ENCORE_VERSION, TORCH_VERSION));
  app.require_subcommand(1);

  ConfigArgs check_args;
  auto* check = app.add_subcommand(
      "check", "validate a config, its data and its models, and print the config resolved; trains nothing, writes nothing");
  add_config_options(*check, check_args);

  RunArgs run_args;
  const auto run_commands = add_run_commands(app, run_args);

  EvaluateArgs evaluate_args;
  PredictArgs predict_args;
  EmbedArgs embed_args;
  const auto model_commands = add_model_commands(app, evaluate_args, predict_args, embed_args);

  CurveArgs curve_args;
  auto* curve = add_curve_command(app, curve_args);
  SampleArgs sample_args;
  auto* sample = add_sample_command(app, sample_args);

  std::string report_dir;
  auto* report = app.add_subcommand("report", "write report.html of a run directory again from its files");
  report->add_option("run_dir", report_dir, "the run directory")->required();

  auto* list = app.add_subcommand("list", "list registered models, heads, optimizers and callbacks");

  for (int i = 1; i < argc; ++i) run_args.argv.emplace_back(argv[i]);
  run_args.argv.insert(run_args.argv.begin(), argc > 0 ? argv[0] : "encore");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e, out, err);
    return code == 0 ? kSuccess : kUsageError;
  }

  const auto dispatch = [&]() -> int {
    if (check->parsed()) return check_command(check_args, out, err);
    if (list->parsed()) return list_command(out);
    if (run_commands.run->parsed() || run_commands.pretrain->parsed() || run_commands.finetune->parsed()) {
      run_args.interactive = core::is_terminal(2);
      run_args.pretrain_only = run_commands.pretrain->parsed();
      return run_command(run_args, out, err);
    }
    if (model_commands.evaluate->parsed()) return evaluate_command(evaluate_args, out, err);
    if (model_commands.predict->parsed()) return predict_command(predict_args, out, err);
    if (model_commands.embed->parsed()) return embed_command(embed_args, out, err);
    if (report->parsed()) return report_command(report_dir, err);
    if (sample->parsed()) return sample_command(sample_args, err);
    if (curve->parsed()) return curve_command(curve_args, out, err);
    return kUsageError;
  };
  return exit_code_of(dispatch,
                      check->parsed()   ? check_args.config_file
                      : curve->parsed() ? curve_args.config.config_file
                                        : run_args.config.config_file,
                      err);
}

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::vector<const char*> argv{"encore"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return run_cli(static_cast<int>(argv.size()), argv.data(), out, err);
}

}  // namespace encore::apps
