#include <fmt/format.h>

#include "commands/commands.h"
#include "encore/core/csv.h"
#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "encore/finetune/evaluation.h"
#include "encore/finetune/run_directory.h"
#include "encore/finetune/trained_model.h"

namespace encore::apps {

namespace {

namespace fs = std::filesystem;

// evaluate takes a run directory or a model file. A run without model.pt is told apart from a
// directory that is not a run at all.
fs::path model_file_of(const fs::path& run_or_model) {
  if (!fs::is_directory(run_or_model)) return run_or_model;
  const auto model = run_or_model / finetune::RunDirectory::kModel;
  if (fs::exists(model)) return model;
  if (fs::exists(run_or_model / finetune::RunDirectory::kPretrained)) {
    throw core::UsageError(
        fmt::format("{} has no {}: the run only pretrained (its config has no finetune section, or it ran as "
                    "encore pretrain); fine-tune it with encore finetune CONFIG --from {}",
                    run_or_model.string(), finetune::RunDirectory::kModel, (run_or_model / finetune::RunDirectory::kPretrained).string()));
  }
  throw core::UsageError(
      fmt::format("{} has no {}: it is not a finished encore run", run_or_model.string(), finetune::RunDirectory::kModel));
}

// The run's own test set, as its config names it, or the file given.
core::Dataset evaluation_data(const finetune::TrainedModel& model, const EvaluateArgs& args, std::vector<std::string>& notes) {
  if (!args.data_file.empty()) return finetune::read_labelled_data(model, args.data_file, args.labels_file, notes);
  const auto& data = model.config.data;
  if (!data.has_test()) throw core::UsageError("the run's config names no test data: give a labelled file with --data");
  auto test = data.format == "idx" ? finetune::read_labelled_data(model, data.test_images, data.test_labels, notes)
                                   : finetune::read_labelled_data(model, data.test_csv, "", notes);
  if (data.limit_test) core::keep_first(test, *data.limit_test);
  return test;
}

}  // namespace

int evaluate_command(const EvaluateArgs& args, std::ostream& out, std::ostream& err) {
  if (!args.labels_file.empty() && args.data_file.empty()) throw core::UsageError("--labels goes with --data");
  const auto components = finetune::builtin_components();
  auto model = finetune::load_trained_model(model_file_of(args.run_or_model), components);
  std::vector<std::string> notes;
  const auto data = evaluation_data(model, args, notes);
  for (const auto& note : notes) err << note << '\n';
  const auto [scores, predictions] = finetune::predict(model, data.features.reshape({data.size(), -1}));
  const auto evaluation =
      finetune::evaluate_predictions(data.labels, predictions, scores, static_cast<std::int64_t>(model.class_names.size()));
  err << fmt::format("test accuracy {:.4f}, macro-F1 {:.4f} ({} examples)\n", evaluation.accuracy, evaluation.macro_f1, data.size());
  out << core::Json{{"test", evaluation.to_json(model.class_names)}}.dump(2) << '\n';
  return 0;
}

int predict_command(const PredictArgs& args, std::ostream& out, std::ostream& err) {
  const auto components = finetune::builtin_components();
  auto model = finetune::load_trained_model(args.model_file, components);
  std::vector<std::string> notes;
  const auto features = finetune::read_model_inputs(model, args.input_file, notes);
  for (const auto& note : notes) err << note << '\n';
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
  core::write_user_file(args.output_file, csv, out);
  err << fmt::format("wrote {} predictions to {}\n", predictions.size(0), args.output_file == "-" ? "standard output" : args.output_file);
  return 0;
}

}  // namespace encore::apps
