#include "encore/finetune/trained_model.h"

#include <torch/torch.h>

#include <sstream>

#include <fmt/format.h>

#include "encore/core/errors.h"

namespace encore::finetune {

namespace fs = std::filesystem;

std::string archive_bytes(torch::serialize::OutputArchive& archive) {
  std::ostringstream bytes;
  archive.save_to(bytes);
  return bytes.str();
}

std::string trained_model_bytes(ClassifierImpl& classifier, const ExperimentConfig& config, const Components& components,
                                const core::Scaler& scaler, const std::vector<std::string>& class_names,
                                const std::vector<std::int64_t>& example_shape) {
  // Saved for use, in one defined state whatever the phases left (and whether a resumed run skipped
  // them): eval mode, every block trainable.
  classifier.eval();
  const auto blocks = classifier.block_names();
  classifier.set_trainable(std::set<std::string>(blocks.begin(), blocks.end()));
  torch::serialize::OutputArchive archive;
  classifier.save(archive);
  archive.write("encore_config", c10::IValue(to_json(config, components).dump()));
  archive.write("encore_class_names", c10::IValue(core::Json(class_names).dump()));
  archive.write("encore_example_shape", c10::IValue(core::Json(example_shape).dump()));
  archive.write("encore_scaler_offset", scaler.offset().cpu(), /*is_buffer=*/true);
  archive.write("encore_scaler_multiplier", scaler.multiplier().cpu(), /*is_buffer=*/true);
  return archive_bytes(archive);
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
    auto [batch_scores, batch_predictions] = model.classifier->classify(model.scaler.apply(rows));
    scores.push_back(batch_scores);
    predictions.push_back(batch_predictions);
  }
  return {torch::cat(scores), torch::cat(predictions)};
}

}  // namespace encore::finetune
