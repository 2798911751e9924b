#include "encore/finetune/experiment.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include "encore/core/callbacks.h"
#include "encore/core/files.h"
#include "encore/models/pictures.h"

namespace encore::finetune {

namespace fs = std::filesystem;

Components builtin_components() {
  Components c;
  core::register_builtin_optimizers(c.optimizers);
  models::register_builtin_models(c.models);
  return c;
}

std::vector<std::pair<std::string, std::string>> builtin_callbacks() {
  return {{"early_stopping", "stops a stage when a monitored metric stops improving; restores the best weights"},
          {"metrics", "appends each epoch's metrics to metrics.jsonl"},
          {"checkpoint", "saves model, optimizer and trainer state to checkpoints/<stage>.pt after each epoch"},
          {"progress", "reports progress on stderr: a bar on a terminal, a line per epoch otherwise"}};
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
  r.finish();
  return c;
}

core::Json to_json(const ExperimentConfig& c) {
  core::Json out{{"name", c.name}};
  core::add_runtime_json(out, c.runtime);
  out["data"] = core::to_json(c.data);
  out["model"] = c.model.options;
  out["pretrain"] = models::to_json(c.pretrain);
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

void save_module(const torch::nn::Module& module, const fs::path& file) {
  core::write_file_atomically(file, [&](const fs::path& temporary) {
    torch::serialize::OutputArchive archive;
    module.save(archive);
    archive.save_to(temporary.string());
  });
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

}  // namespace

core::Json run_experiment(const ExperimentConfig& config, const Components& components, const RunOptions& options) {
  TORCH_CHECK(options.log, "run_experiment needs a log stream");
  std::ostream& log = *options.log;
  const auto device = core::resolve_device(config.runtime.device);
  core::seed_everything(config.runtime.seed);

  const auto data = core::load_data(config.data);
  const auto split = core::split_data(config.data, data.train, config.runtime.seed);
  const auto scaler = core::Scaler::fit(config.data.scaling, data.train, split.all_training);
  log << fmt::format("data: {} training examples ({} validation held out, {} labelled, {} unlabelled), {} features, {} classes{}\n",
                     data.train.size(), split.validation.size(0), split.labelled.size(0), split.unlabelled.size(0),
                     data.train.feature_dim(), data.train.num_classes(),
                     data.test ? fmt::format(", {} test examples", data.test->size()) : std::string());

  // The model is built and checked against the pretraining settings before anything is written.
  auto model = models::build_model(config.model, components.models, data.train.feature_dim());
  models::check_pretrain_fits_model(config.pretrain, *model);
  model->module().to(device);

  core::create_run_directory(options.run_dir);
  core::write_text_atomically(options.run_dir / "config.json", to_json(config).dump(2) + "\n");
  core::write_text_atomically(options.run_dir / "split.json", core::to_json(split, config.runtime.seed).dump() + "\n");

  auto metrics_writer = std::make_shared<core::MetricsWriter>(options.run_dir / "metrics.jsonl");
  auto progress = std::make_shared<core::ProgressReporter>(log, options.interactive);
  models::PretrainContext context;
  context.optimizers = &components.optimizers;
  context.device = device;
  context.seed = config.runtime.seed;
  context.attach_callbacks = [&](core::Trainer& trainer) {
    if (trainer.config().early_stopping) trainer.add_callback(std::make_shared<core::EarlyStopping>(*trainer.config().early_stopping));
    trainer.add_callback(metrics_writer);
    std::string file = trainer.state().stage;
    std::replace(file.begin(), file.end(), '/', '_');
    trainer.add_callback(std::make_shared<core::CheckpointSaver>(options.run_dir / "checkpoints" / (file + ".pt")));
    trainer.add_callback(progress);
  };
  const std::int64_t batch = 256;
  core::BatchSource train(data.train, split.all_training, scaler, batch, true, config.runtime.seed);
  core::BatchSource validation(data.train, split.validation, scaler, batch, false, config.runtime.seed);
  const auto stage_metrics = models::pretrain(model, config.pretrain, train, validation, context);
  save_module(model->module(), options.run_dir / "pretrained.pt");
  const auto image_shape = data.train.example_shape();
  if (image_shape.size() == 2) {
    models::write_reconstructions_png(options.run_dir / "reconstructions.png", *model, validation, image_shape);
    if (!model->greedy_layers().empty()) models::write_filters_png(options.run_dir / "filters.png", *model, image_shape);
  }

  core::Json summary{{"name", config.name}};
  for (const auto& [stage, metrics] : stage_metrics) summary["stages"][stage] = metrics;
  summary["validation"] = {{"reconstruction_mse", mean_reconstruction_mse(*model, validation, device)}};
  if (data.test) {
    const auto test_indices = torch::arange(data.test->size(), torch::kInt64);
    core::BatchSource test(*data.test, test_indices, scaler, batch, false, config.runtime.seed);
    summary["test"] = {{"reconstruction_mse", mean_reconstruction_mse(*model, test, device)}};
  }
  core::write_text_atomically(options.run_dir / "summary.json", summary.dump(2) + "\n");
  return summary;
}

}  // namespace encore::finetune
