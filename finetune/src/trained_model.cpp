#include "encore/finetune/trained_model.h"

#include <torch/torch.h>

#include <sstream>

#include <fmt/ranges.h>

#include <fmt/format.h>

#include "encore/core/csv.h"
#include "encore/core/errors.h"
#include "encore/core/idx.h"

namespace encore::finetune {

namespace fs = std::filesystem;

std::string archive_bytes(torch::serialize::OutputArchive& archive) {
  std::ostringstream bytes;
  archive.save_to(bytes);
  return bytes.str();
}

std::string trained_model_bytes(ClassifierImpl& classifier, const ExperimentConfig& config, const Components& components,
                                const core::Scaler& scaler, const core::Dataset& training_data) {
  // Saved for use, in one defined state whatever the phases left (and whether a resumed run skipped
  // them): eval mode, every block trainable.
  classifier.eval();
  const auto blocks = classifier.block_names();
  classifier.set_trainable(std::set<std::string>(blocks.begin(), blocks.end()));
  torch::serialize::OutputArchive archive;
  classifier.save(archive);
  archive.write("encore_config", c10::IValue(to_json(config, components).dump()));
  archive.write("encore_class_names", c10::IValue(core::Json(training_data.class_names).dump()));
  archive.write("encore_example_shape", c10::IValue(core::Json(training_data.example_shape()).dump()));
  archive.write("encore_feature_names", c10::IValue(core::Json(training_data.feature_names).dump()));
  archive.write("encore_scaler_offset", scaler.offset().cpu(), /*is_buffer=*/true);
  archive.write("encore_scaler_multiplier", scaler.multiplier().cpu(), /*is_buffer=*/true);
  return archive_bytes(archive);
}

TrainedModel load_trained_model(const fs::path& file, const Components& components) {
  auto archive = read_module_archive(file.string());
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
  out.feature_names = read_json("encore_feature_names").get<std::vector<std::string>>();
  torch::Tensor offset, multiplier;
  if (!archive.try_read("encore_scaler_offset", offset, true) || !archive.try_read("encore_scaler_multiplier", multiplier, true)) {
    throw core::DataError(fmt::format("{}: has no scaler", file.string()));
  }
  out.scaler = core::Scaler::from_tensors(offset, multiplier);
  std::int64_t features = 1;
  for (auto d : out.example_shape) features *= d;
  auto autoencoder = models::build_model(out.config.model, components.models, features);
  out.classifier = build_classifier(*out.config.finetune, autoencoder, components.heads, static_cast<std::int64_t>(out.class_names.size()));
  const auto report = load_by_name(*out.classifier, archive);
  if (!report.complete()) {
    throw core::DataError(fmt::format("{}: weights do not fit the model its config describes ({} missing, {} mismatched)", file.string(),
                                      report.missing.size(), report.mismatched.size()));
  }
  return out;
}

namespace {

std::vector<std::int64_t> shape_without_count(const core::IdxArray& array, std::size_t example_rank) {
  return std::vector<std::int64_t>(array.dims.begin() + (array.dims.size() > example_rank ? 1 : 0), array.dims.end());
}

// Examples of another shape than the model's are refused naming the file and both shapes.
void check_example_shape(const std::string& file, const std::vector<std::int64_t>& shape, const TrainedModel& model) {
  if (shape == model.example_shape) return;
  throw core::DataError(
      fmt::format("{}: examples are {}, the model takes {}", file, fmt::join(shape, "x"), fmt::join(model.example_shape, "x")));
}

}  // namespace

torch::Tensor read_model_inputs(const TrainedModel& model, const std::string& file, std::vector<std::string>& notes) {
  std::int64_t features = 1;
  for (auto d : model.example_shape) features *= d;
  if (model.config.data.format == "idx") {
    auto array = core::read_idx_file(file);
    check_example_shape(file, shape_without_count(array, model.example_shape.size()), model);
    if (array.type != core::IdxType::kUInt8) throw core::DataError(fmt::format("{}: prediction reads uint8 IDX images", file));
    const auto count = array.dims.size() > model.example_shape.size() ? array.dims.front() : 1;
    return torch::from_blob(array.bytes.data() + array.data_offset, {count, features}, torch::kUInt8).clone();
  }
  core::CsvOptions options;
  options.label_column = model.config.data.label_column;
  options.label_required = false;
  options.feature_columns = model.feature_names;
  auto table = core::read_csv_file(file, options);
  if (!table.ignored_columns.empty()) notes.push_back(core::ignored_columns_note(file, table.ignored_columns));
  return torch::from_blob(table.features.data(), {static_cast<std::int64_t>(table.rows), features}, torch::kFloat32).clone();
}

core::Dataset read_labelled_data(const TrainedModel& model, const std::string& file, const std::string& labels_file,
                                 std::vector<std::string>& notes) {
  const auto& data_config = model.config.data;
  if (data_config.format != "idx") {
    return core::load_csv_dataset(file, data_config.label_column, {model.class_names, model.feature_names}, &notes);
  }
  if (labels_file.empty()) throw core::UsageError(fmt::format("{}: IDX images need their labels file to be evaluated", file));
  core::IdxLimits limits;
  limits.max_decompressed_bytes = static_cast<std::uint64_t>(data_config.max_decompressed_mib) << 20;
  auto data = core::load_idx_dataset(file, labels_file, limits);
  check_example_shape(file, data.example_shape(), model);
  const auto classes = static_cast<std::int64_t>(model.class_names.size());
  if (data.num_classes() > classes) {
    throw core::DataError(fmt::format("{}: holds label {}, and the model knows {} classes (0 to {})", labels_file, data.num_classes() - 1,
                                      classes, classes - 1));
  }
  data.class_names = model.class_names;
  return data;
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
