#include "encore/finetune/experiment.h"

#include <torch/torch.h>

#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "encore/core/callbacks.h"
#include "encore/core/distributed.h"
#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "encore/core/image.h"
#include "encore/models/pictures.h"

namespace encore::finetune {

namespace fs = std::filesystem;

Components builtin_components() {
  Components c;
  core::register_builtin_optimizers(c.optimizers);
  models::register_builtin_models(c.models);
  register_builtin_heads(c.heads);
  return c;
}

std::vector<std::pair<std::string, std::string>> builtin_callbacks() {
  return {{"early_stopping", "stops a stage when a monitored metric stops improving; restores the best weights"},
          {"metrics", "appends each epoch's metrics to metrics.jsonl"},
          {"checkpoint",
           "saves sealed checkpoints (checkpoints/latest.pt, previous.pt) after each epoch, every checkpoint_every_steps steps and "
           "at a stage's end"},
          {"progress", "reports progress on stderr: a bar on a terminal, a line per epoch otherwise"},
          {"gradual_unfreezing", "makes one more block trainable every n epochs of a fine-tuning phase"}};
}

ExperimentConfig parse_experiment(const core::Json& json, const Components& components) {
  core::JsonReader r(json);
  ExperimentConfig c;
  c.name = r.get<std::string>("name", c.name);
  if (c.name.empty() || c.name.find('/') != std::string::npos || c.name == "." || c.name == "..") {
    r.fail("name", "must be a non-empty name without '/', got " + core::describe_value(json["name"]));
  }
  c.runtime = core::parse_runtime(r);
  c.data = core::parse_data_config(r.object("data"));
  c.model = models::parse_model_config(r.object("model"), components.models);
  const core::Json empty = core::Json::object();
  c.pretrain = models::parse_pretrain_config(r.has("pretrain") ? r.object("pretrain") : core::JsonReader(empty, "/pretrain"),
                                             components.optimizers);
  if (auto f = r.optional_object("finetune")) c.finetune = parse_finetune_config(*f, components.optimizers, components.heads);
  r.finish();
  return c;
}

core::Json to_json(const ExperimentConfig& c) {
  core::Json out{{"name", c.name}};
  core::add_runtime_json(out, c.runtime);
  out["data"] = core::to_json(c.data);
  out["model"] = c.model.options;
  out["pretrain"] = models::to_json(c.pretrain);
  out["finetune"] = c.finetune ? to_json(*c.finetune) : core::Json(nullptr);
  return out;
}

ExperimentConfig load_experiment(const std::string& file, const std::vector<std::string>& overrides, const Components& components) {
  const core::Json raw = core::load_json_file(file);
  ExperimentConfig config = parse_experiment(raw, components);
  if (overrides.empty()) return config;
  // Overrides address the resolved config, where every setting exists with its default.
  core::Json resolved = to_json(config);
  for (const auto& assignment : overrides) core::apply_override(resolved, assignment);
  return parse_experiment(resolved, components);
}

namespace {

constexpr std::int64_t kEvaluationBatch = 512;

// Serialised in memory first: LibTorch names the archive's top folder after the file written, and
// the atomic write's temporary name would make every run's bytes differ.
void write_archive_atomically(torch::serialize::OutputArchive& archive, const fs::path& file) {
  std::ostringstream bytes;
  archive.save_to(bytes);
  core::write_text_atomically(file, bytes.str());
}

void save_module(const torch::nn::Module& module, const fs::path& file) {
  torch::serialize::OutputArchive archive;
  module.save(archive);
  write_archive_atomically(archive, file);
}

double mean_reconstruction_mse(models::AutoencoderModel& model, const core::BatchSource& source, torch::Device device) {
  torch::NoGradGuard no_grad;
  model.module().eval();
  double total = 0;
  const auto order = source.epoch_order(0);
  for (std::int64_t b = 0; b < source.batches_per_epoch(); ++b) {
    const auto inputs = source.batch(order, b).inputs.to(device);
    total += torch::mse_loss(model.forward(inputs), inputs, at::Reduction::Sum).item<double>();
  }
  return total / static_cast<double>(source.size() * source.data().feature_dim());
}

// Per-class probabilities and predictions of one batch of model inputs, on the CPU.
void score_batch(ClassifierImpl& classifier, const torch::Tensor& inputs, std::vector<torch::Tensor>& scores,
                 std::vector<torch::Tensor>& predictions) {
  const auto s = classifier.forward(inputs);
  scores.push_back(classifier.head().probabilities(s).cpu());
  predictions.push_back(classifier.head().predict(s).cpu());
}

// Scores and predictions of every row of a source, in its index order.
std::pair<torch::Tensor, torch::Tensor> classify(ClassifierImpl& classifier, const core::BatchSource& source, torch::Device device) {
  torch::NoGradGuard no_grad;
  classifier.eval();
  std::vector<torch::Tensor> scores, predictions;
  const auto order = source.indices();
  for (std::int64_t b = 0; b < source.batches_per_epoch(); ++b) {
    score_batch(classifier, source.batch(order, b).inputs.to(device), scores, predictions);
  }
  return {torch::cat(scores), torch::cat(predictions)};
}

Evaluation evaluate_source(ClassifierImpl& classifier, const core::BatchSource& source, torch::Device device) {
  const auto [scores, predictions] = classify(classifier, source, device);
  return evaluate_predictions(source.data().labels.index_select(0, source.indices()), predictions, scores, source.data().num_classes());
}

void write_confusion_png(const fs::path& file, const torch::Tensor& confusion) {
  // Rows normalised to their class size, so that every class's errors show at the same scale.
  const auto rows = confusion.to(torch::kFloat32);
  const auto normalised = rows / rows.sum(1, true).clamp_min(1);
  const auto tile = core::image_grid(normalised.unsqueeze(0), 1, 0, false);
  constexpr std::int64_t kCellPixels = 24;
  core::write_png(file, tile, kCellPixels);
}

void check_load(const LoadReport& report, const fs::path& file, bool allow_partial) {
  if (report.matched.empty()) {
    throw core::DataError(fmt::format("{}: none of its tensors match the model's parameters (unexpected: {})", file.string(),
                                      report.unexpected.empty() ? "none" : report.unexpected.front() + ", ..."));
  }
  if (allow_partial || report.complete()) return;
  if (!report.mismatched.empty()) {
    const auto& m = report.mismatched.front();
    throw core::DataError(fmt::format("{}: tensor \"{}\" has shape [{}], the model expects [{}] (set /finetune/allow_partial_load to "
                                      "fine-tune anyway; load_report.json lists every tensor)",
                                      file.string(), m.name, fmt::join(m.found, ", "), fmt::join(m.expected, ", ")));
  }
  throw core::DataError(fmt::format("{}: has no tensor \"{}\" that the model needs ({} missing; set /finetune/allow_partial_load to "
                                    "fine-tune anyway)",
                                    file.string(), report.missing.front(), report.missing.size()));
}

}  // namespace

namespace {

std::map<std::string, core::Json> last_metrics_by_stage(const fs::path& file) {
  std::map<std::string, core::Json> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    auto record = core::parse_json_text(line, file.string());
    const auto stage = record.at("stage").get<std::string>();
    for (const char* key : {"stage", "epoch", "step"}) record.erase(key);
    out[stage] = record;
  }
  return out;
}

}  // namespace

core::Json run_experiment(const ExperimentConfig& config, const Components& components, const RunOptions& options) {
  TORCH_CHECK(options.log, "run_experiment needs a log stream");
  std::ostream& log = *options.log;
  const auto device = core::resolve_device(config.runtime.device);
  core::seed_everything(config.runtime.seed);
  // In a data-parallel run every rank trains; rank 0 alone writes files and evaluates.
  const bool writes = core::is_main_process();

  const auto data = core::load_data(config.data);
  const auto split = core::split_data(config.data, data.train, config.runtime.seed);
  const auto scaler = core::Scaler::fit(config.data.scaling, data.train, split.all_training);
  log << fmt::format("data: {} training examples ({} validation held out, {} labelled, {} unlabelled), {} features, {} classes{}\n",
                     data.train.size(), split.validation.size(0), split.labelled.size(0), split.unlabelled.size(0),
                     data.train.feature_dim(), data.train.num_classes(),
                     data.test ? fmt::format(", {} test examples", data.test->size()) : std::string());

  // The model is built and checked against the stage settings before anything is written.
  const bool pretrains = config.pretrain.runs() && !options.pretrained_file;
  const bool finetunes = config.finetune && !options.pretrain_only;
  if (options.pretrained_file && !finetunes) throw core::ConfigError("/finetune", "fine-tuning from a pretrained file needs a finetune section");
  auto model = models::build_model(config.model, components.models, data.train.feature_dim());
  if (pretrains) models::check_pretrain_fits_model(config.pretrain, *model);
  Classifier classifier = nullptr;
  if (finetunes) {
    classifier = build_classifier(*config.finetune, model, components.heads, data.train.num_classes());
    check_phases_fit_classifier(*config.finetune, *classifier);
    classifier->to(device);
  }
  // An encoder given from a file is loaded and checked before anything is written.
  std::optional<LoadReport> given_report;
  if (options.pretrained_file) {
    given_report = load_by_name(model->module(), options.pretrained_file->string());
    check_load(*given_report, *options.pretrained_file, config.finetune->allow_partial_load);
  }
  model->module().to(device);

  const auto checkpoints = options.run_dir / "checkpoints";
  const auto metrics_file = options.run_dir / "metrics.jsonl";
  auto metrics_writer = std::make_shared<core::MetricsWriter>(metrics_file);
  models::StageContext context;
  if (options.resume) {
    if (!fs::is_directory(options.run_dir)) throw std::runtime_error(fmt::format("cannot resume: {} is not a run directory", options.run_dir.string()));
    if (auto checkpoint = core::newest_valid_checkpoint(checkpoints, log)) {
      // Refused before anything is redone: each rank's generator state is in the checkpoint.
      checkpoint->check_world_size();
      // Lines written after the checkpoint go: the resumed run writes them again.
      checkpoint->load_callback(*metrics_writer);
      const auto& at = checkpoint->state();
      log << fmt::format("resuming from {}: stage {}, {} epochs done{}\n", checkpoint->file().string(), at.stage, at.epoch,
                         at.finished        ? " (stage finished)"
                         : at.position > 0 ? fmt::format(", at batch {} of epoch {}", at.position + 1, at.epoch + 1)
                                           : std::string());
      context.resume = std::make_shared<core::ResumePlan>(std::move(*checkpoint));
    } else {
      log << "no checkpoint to resume from: starting the run again\n";
      std::error_code ignored;
      if (writes) fs::remove(metrics_file, ignored);
    }
  } else if (writes) {
    core::create_run_directory(options.run_dir);
  }
  if (writes) {
    core::write_text_atomically(options.run_dir / "config.json", to_json(config).dump(2) + "\n");
    core::write_text_atomically(options.run_dir / "split.json", core::to_json(split, config.runtime.seed).dump() + "\n");
  }

  auto progress = std::make_shared<core::ProgressReporter>(log, options.interactive);
  context.optimizers = &components.optimizers;
  context.device = device;
  context.seed = config.runtime.seed;
  const auto policy = config.runtime.on_non_finite == "skip_step" ? core::NonFinitePolicy::kSkipStep : core::NonFinitePolicy::kError;
  context.attach_callbacks = [&](core::Trainer& trainer) {
    trainer.set_non_finite_policy(policy);
    if (trainer.config().early_stopping) trainer.add_callback(std::make_shared<core::EarlyStopping>(*trainer.config().early_stopping));
    trainer.add_callback(metrics_writer);
    trainer.add_callback(std::make_shared<core::CheckpointSaver>(checkpoints, config.runtime.checkpoint_every_steps));
    trainer.add_callback(progress);
  };
  const std::int64_t batch = kEvaluationBatch;
  core::BatchSource validation(data.train, split.validation, scaler, batch, false, config.runtime.seed);
  std::optional<core::BatchSource> test;
  if (data.test) test.emplace(*data.test, torch::arange(data.test->size(), torch::kInt64), scaler, batch, false, config.runtime.seed);

  core::Json summary{{"name", config.name}, {"stages", core::Json::object()}};
  std::optional<fs::path> pretrained = options.pretrained_file;
  // A run interrupted while fine-tuning has its pretraining, and pretrained.pt, behind it.
  const bool pretraining_done = context.resume && context.resume->summary().stage.rfind("finetune/", 0) == 0;
  if (pretrains && pretraining_done) pretrained = options.run_dir / "pretrained.pt";
  const bool pretrains_now = pretrains && !pretraining_done;
  if (pretrains_now) {
    // Pretraining sees every training image, labelled or not; never the validation split.
    core::BatchSource unlabelled(data.train, split.all_training, scaler, batch, true, config.runtime.seed);
    for (const auto& [stage, metrics] : models::pretrain(model, config.pretrain, unlabelled, validation, context)) {
      summary["stages"][stage] = metrics;
    }
    if (writes) {
      pretrained = options.run_dir / "pretrained.pt";
      save_module(model->module(), *pretrained);
    }
  }
  if (pretrains_now && writes) {
    const auto image_shape = data.train.example_shape();
    if (image_shape.size() == 2) {
      models::write_reconstructions_png(options.run_dir / "reconstructions.png", *model, validation, image_shape);
      if (!model->greedy_layers().empty()) models::write_filters_png(options.run_dir / "filters.png", *model, image_shape);
    }
    summary["pretrain"] = {{"validation", {{"reconstruction_mse", mean_reconstruction_mse(*model, validation, device)}}}};
    if (test) summary["pretrain"]["test"] = {{"reconstruction_mse", mean_reconstruction_mse(*model, *test, device)}};
  }

  if (finetunes) {
    // After pretraining in this run, the other ranks' encoders are rank 0's already: the all-reduced
    // gradients kept them alike.
    if (pretrained && (writes || !pretrains_now)) {
      // Loading by name from the file, also right after pretraining, so that every fine-tuned
      // encoder comes through the same checked path and leaves the same report.
      // A file given with --from was loaded and checked before the run directory existed.
      const auto report = given_report ? *given_report : load_by_name(model->module(), pretrained->string());
      if (writes) core::write_text_atomically(options.run_dir / "load_report.json", report.to_json().dump(2) + "\n");
      if (!given_report) check_load(report, *pretrained, config.finetune->allow_partial_load);
      log << fmt::format("loaded {}: {} tensors matched, {} missing, {} unexpected, {} mismatched\n", pretrained->string(),
                         report.matched.size(), report.missing.size(), report.unexpected.size(), report.mismatched.size());
    }
    core::BatchSource labelled(data.train, split.labelled, scaler, batch, true, config.runtime.seed);
    for (const auto& [stage, metrics] : finetune(classifier, *config.finetune, labelled, validation, context)) {
      summary["stages"][stage] = metrics;
    }
    if (!writes) return summary;
    save_trained_model(options.run_dir / "model.pt", *classifier, config, scaler, data.train.class_names, data.train.example_shape());
    summary["validation"] = evaluate_source(*classifier, validation, device).to_json(data.train.class_names);
    if (test) {
      const auto evaluation = evaluate_source(*classifier, *test, device);
      summary["test"] = evaluation.to_json(data.train.class_names);
      write_confusion_png(options.run_dir / "confusion.png", evaluation.confusion);
      log << fmt::format("test accuracy {:.4f}, macro-F1 {:.4f} ({} examples)\n", evaluation.accuracy, evaluation.macro_f1, test->size());
    }
  }
  if (!writes) return summary;
  if (context.resume) {
    // Stages finished before the interruption report their last metrics.jsonl line.
    for (const auto& [stage, metrics] : last_metrics_by_stage(metrics_file)) {
      if (!summary["stages"].contains(stage)) summary["stages"][stage] = metrics;
    }
  }
  core::write_text_atomically(options.run_dir / "summary.json", summary.dump(2) + "\n");
  return summary;
}

std::vector<std::string> config_differences(const core::Json& before, const core::Json& after) {
  const auto flat_before = before.flatten();
  const auto flat_after = after.flatten();
  std::vector<std::string> out;
  for (const auto& [key, value] : flat_before.items()) {
    if (!flat_after.contains(key) || flat_after.at(key) != value) out.push_back(key);
  }
  for (const auto& [key, value] : flat_after.items()) {
    if (!flat_before.contains(key)) out.push_back(key);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void save_trained_model(const fs::path& file, ClassifierImpl& classifier, const ExperimentConfig& config, const core::Scaler& scaler,
                      const std::vector<std::string>& class_names, const std::vector<std::int64_t>& example_shape) {
  // Saved for use, in one defined state whatever the phases left (and whether a resumed run skipped
  // them): eval mode, every block trainable.
  classifier.eval();
  const auto blocks = classifier.block_names();
  classifier.set_trainable(std::set<std::string>(blocks.begin(), blocks.end()));
  torch::serialize::OutputArchive archive;
  classifier.save(archive);
  archive.write("encore_config", c10::IValue(to_json(config).dump()));
  archive.write("encore_class_names", c10::IValue(core::Json(class_names).dump()));
  archive.write("encore_example_shape", c10::IValue(core::Json(example_shape).dump()));
  archive.write("encore_scaler_offset", scaler.offset().cpu(), /*is_buffer=*/true);
  archive.write("encore_scaler_multiplier", scaler.multiplier().cpu(), /*is_buffer=*/true);
  write_archive_atomically(archive, file);
}

TrainedModel load_trained_model(const fs::path& file, const Components& components) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file.string());
  } catch (const c10::Error& e) {
    throw core::DataError(fmt::format("{}: not a readable model: {}", file.string(), e.what_without_backtrace()));
  }
  auto read_json = [&](const std::string& key) {
    c10::IValue value;
    if (!archive.try_read(key, value) || !value.isString()) {
      throw core::DataError(fmt::format("{}: has no \"{}\"; is it a model.pt written by encore run?", file.string(), key));
    }
    return core::parse_json_text(value.toStringRef(), file.string() + ":" + key);
  };
  TrainedModel out;
  out.config = parse_experiment(read_json("encore_config"), components);
  if (!out.config.finetune) throw core::DataError(fmt::format("{}: its config has no finetune section", file.string()));
  out.class_names = read_json("encore_class_names").get<std::vector<std::string>>();
  out.example_shape = read_json("encore_example_shape").get<std::vector<std::int64_t>>();
  torch::Tensor offset, multiplier;
  if (!archive.try_read("encore_scaler_offset", offset, true) || !archive.try_read("encore_scaler_multiplier", multiplier, true)) {
    throw core::DataError(fmt::format("{}: has no scaler", file.string()));
  }
  out.scaler = core::Scaler::from_tensors(offset, multiplier);
  std::int64_t features = 1;
  for (auto d : out.example_shape) features *= d;
  auto autoencoder = models::build_model(out.config.model, components.models, features);
  out.classifier = build_classifier(*out.config.finetune, autoencoder, components.heads, static_cast<std::int64_t>(out.class_names.size()));
  const auto report = load_by_name(*out.classifier, file.string());
  if (!report.complete()) {
    throw core::DataError(fmt::format("{}: weights do not fit the model its config describes ({} missing, {} mismatched)", file.string(),
                                      report.missing.size(), report.mismatched.size()));
  }
  return out;
}

std::pair<torch::Tensor, torch::Tensor> predict(TrainedModel& model, const torch::Tensor& raw_features) {
  torch::NoGradGuard no_grad;
  model.classifier->eval();
  std::vector<torch::Tensor> scores, predictions;
  for (std::int64_t start = 0; start < raw_features.size(0); start += kEvaluationBatch) {
    const auto rows = raw_features.narrow(0, start, std::min(kEvaluationBatch, raw_features.size(0) - start));
    score_batch(*model.classifier, model.scaler.apply(rows), scores, predictions);
  }
  return {torch::cat(scores), torch::cat(predictions)};
}

}  // namespace encore::finetune
