#include <fmt/format.h>

#include <fstream>

#include "commands/commands.h"
#include "encore/core/csv.h"
#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "encore/core/idx.h"
#include "encore/finetune/evaluation.h"
#include "encore/finetune/trained_model.h"

namespace encore::apps {

namespace {

// Feature rows of a file in the format the model was trained on: IDX images, or CSV with the same
// number of feature columns (the label column may be absent).
torch::Tensor read_features(const finetune::TrainedModel& model, const std::string& file) {
  std::int64_t features = 1;
  for (auto d : model.example_shape) features *= d;
  if (model.config.data.format == "idx") {
    auto array = core::read_idx_file(file);
    const std::vector<std::int64_t> shape(array.dims.begin() + (array.dims.size() > model.example_shape.size() ? 1 : 0), array.dims.end());
    if (shape != model.example_shape) {
      throw core::DataError(
          fmt::format("{}: examples are {}, the model takes {}", file, fmt::join(shape, "x"), fmt::join(model.example_shape, "x")));
    }
    // Reuse the dataset path's conversion with placeholder labels.
    const auto count = array.dims.size() > model.example_shape.size() ? array.dims.front() : 1;
    auto bytes = torch::from_blob(array.bytes.data() + array.data_offset, {count, features}, torch::kUInt8).clone();
    if (array.type != core::IdxType::kUInt8) throw core::DataError(fmt::format("{}: prediction reads uint8 IDX images", file));
    return bytes;
  }
  core::CsvOptions options;
  options.label_column = model.config.data.label_column;
  options.label_required = false;
  const auto table = core::read_csv_file(file, options);
  if (static_cast<std::int64_t>(table.feature_names.size()) != features) {
    throw core::DataError(fmt::format("{}: has {} feature columns, the model takes {}", file, table.feature_names.size(), features));
  }
  return torch::from_blob(const_cast<float*>(table.features.data()), {static_cast<std::int64_t>(table.rows), features}, torch::kFloat32)
      .clone();
}

}  // namespace

int evaluate_command(const std::string& run_dir, std::ostream& out, std::ostream& err) {
  const auto components = finetune::builtin_components();
  auto model = finetune::load_trained_model(std::filesystem::path(run_dir) / "model.pt", components);
  const auto& data_config = model.config.data;
  if (!data_config.has_test()) throw core::ConfigError("/data", "the run's config names no test data to evaluate on");
  const auto data = core::load_data(data_config);
  const auto [scores, predictions] = finetune::predict(model, data.test->features.reshape({data.test->size(), -1}));
  const auto evaluation =
      finetune::evaluate_predictions(data.test->labels, predictions, scores, static_cast<std::int64_t>(model.class_names.size()));
  err << fmt::format("test accuracy {:.4f}, macro-F1 {:.4f} ({} examples)\n", evaluation.accuracy, evaluation.macro_f1, data.test->size());
  out << core::Json{{"test", evaluation.to_json(model.class_names)}}.dump(2) << '\n';
  return 0;
}

int predict_command(const PredictArgs& args, std::ostream&, std::ostream& err) {
  const auto components = finetune::builtin_components();
  auto model = finetune::load_trained_model(args.model_file, components);
  const auto features = read_features(model, args.input_file);
  const auto [scores, predictions] = finetune::predict(model, features);
  std::string csv = "prediction";
  for (const auto& name : model.class_names) csv += "," + core::csv_field("p_" + name);
  csv += '\n';
  const auto* p = predictions.data_ptr<std::int64_t>();
  const auto s = scores.contiguous();
  const auto* v = s.data_ptr<float>();
  const auto classes = s.size(1);
  for (std::int64_t i = 0; i < predictions.size(0); ++i) {
    csv += p[i] < 0 ? std::string("none") : core::csv_field(model.class_names[static_cast<std::size_t>(p[i])]);
    for (std::int64_t k = 0; k < classes; ++k) csv += fmt::format(",{:.6g}", v[i * classes + k]);
    csv += '\n';
  }
  core::write_text_atomically(args.output_file, csv);
  err << fmt::format("wrote {} predictions to {}\n", predictions.size(0), args.output_file);
  return 0;
}

}  // namespace encore::apps
