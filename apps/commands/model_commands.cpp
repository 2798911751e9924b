#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "commands/commands.h"
#include "encore/core/csv.h"
#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "encore/core/npy.h"
#include "encore/finetune/embedding.h"
#include "encore/finetune/evaluation.h"
#include "encore/finetune/report.h"
#include "encore/finetune/run_directory.h"
#include "encore/finetune/trained_model.h"
#include "encore/models/pictures.h"

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
  auto test = finetune::read_labelled_data(model, data.test_examples_file(), data.format == "csv" ? "" : data.test_labels, notes);
  if (data.limit_test) core::keep_first(test, *data.limit_test);
  return test;
}

bool is_npy(const std::string& file) { return fs::path(file).extension() == ".npy"; }

// predict's second .npy: P.npy holds the probabilities, P_classes.npy the class indices.
std::string classes_file_of(const std::string& probabilities_file) {
  const fs::path file(probabilities_file);
  return (file.parent_path() / (file.stem().string() + "_classes.npy")).string();
}

// A float32 or int64 tensor as a .npy file.
void write_npy(const std::string& file, const torch::Tensor& values, std::ostream& out) {
  const auto contiguous = values.contiguous();
  const auto type = contiguous.scalar_type() == torch::kInt64 ? core::NpyType::kInt64 : core::NpyType::kFloat32;
  const auto data = type == core::NpyType::kInt64 ? contiguous : contiguous.to(torch::kFloat32);
  core::write_user_file(file, core::npy_bytes(type, data.sizes().vec(), data.data_ptr()), out);
}

}  // namespace

int evaluate_command(const EvaluateArgs& args, std::ostream& out, std::ostream& err) {
  if (!args.labels_file.empty() && args.data_file.empty()) throw core::UsageError("--labels goes with --data");
  const auto components = finetune::builtin_components();
  auto model = finetune::load_classifier(model_file_of(args.run_or_model), components);
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
  auto model = finetune::load_classifier(args.model_file, components);
  std::vector<std::string> notes;
  const auto inputs = finetune::read_model_inputs(model, args.input_file, "", notes);
  for (const auto& note : notes) err << note << '\n';
  const auto [scores, predictions] = finetune::predict(model, inputs.raw_features);
  if (is_npy(args.output_file)) {
    const auto classes_file = classes_file_of(args.output_file);
    write_npy(args.output_file, scores, out);
    write_npy(classes_file, predictions, out);
    err << fmt::format("wrote the {} predictions' probabilities to {} and their classes to {}\n", predictions.size(0), args.output_file,
                       classes_file);
    return 0;
  }
  // Images read from a folder are named by their file, first.
  const bool named = !inputs.example_files.empty();
  std::string csv = named ? "file,prediction" : "prediction";
  for (const auto& name : model.class_names) csv += "," + core::csv_field("p_" + name);
  csv += '\n';
  const auto* p = predictions.data_ptr<std::int64_t>();
  const auto s = scores.contiguous();
  const auto* v = s.data_ptr<float>();
  const auto classes = s.size(1);
  for (std::int64_t i = 0; i < predictions.size(0); ++i) {
    if (named) csv += core::csv_field(inputs.example_files[static_cast<std::size_t>(i)]) + ",";
    csv += p[i] < 0 ? std::string("none") : core::csv_field(model.class_names[static_cast<std::size_t>(p[i])]);
    for (std::int64_t k = 0; k < classes; ++k) csv += fmt::format(",{:.6g}", v[i * classes + k]);
    csv += '\n';
  }
  core::write_user_file(args.output_file, csv, out);
  err << fmt::format("wrote {} predictions to {}\n", predictions.size(0), args.output_file == "-" ? "standard output" : args.output_file);
  return 0;
}

}  // namespace encore::apps

namespace encore::apps {

int embed_command(const EmbedArgs& args, std::ostream& out, std::ostream& err) {
  const auto components = finetune::builtin_components();
  auto model = finetune::load_trained_model(args.model_file, components);
  std::vector<std::string> notes;
  const auto inputs = finetune::read_model_inputs(model, args.input_file, args.labels_file, notes);
  for (const auto& note : notes) err << note << '\n';
  const auto codes = finetune::encode(model, inputs.raw_features, args.depth);
  if (is_npy(args.output_file)) {
    write_npy(args.output_file, codes, out);
  } else {
    std::string csv;
    for (std::int64_t k = 0; k < codes.size(1); ++k) csv += fmt::format("{}code{}", k ? "," : "", k);
    csv += '\n';
    const auto* v = codes.data_ptr<float>();
    for (std::int64_t i = 0; i < codes.size(0); ++i) {
      for (std::int64_t k = 0; k < codes.size(1); ++k) csv += fmt::format("{}{:.9g}", k ? "," : "", v[i * codes.size(1) + k]);
      csv += '\n';
    }
    core::write_user_file(args.output_file, csv, out);
  }
  err << fmt::format("wrote {} codes of {} numbers to {}\n", codes.size(0), codes.size(1),
                     args.output_file == "-" ? "standard output" : args.output_file);
  const auto picture = args.picture_file.empty() ? fs::path(args.output_file == "-" ? "" : args.output_file).parent_path() / "embedding.png"
                                                 : fs::path(args.picture_file);
  const auto title =
      fmt::format("{} codes of {} ({} examples)", codes.size(1), fs::path(args.input_file).filename().string(), codes.size(0));
  finetune::write_embedding_png(picture, finetune::principal_components_2d(codes), inputs.labels, model.class_names, title);
  err << fmt::format("drew their first two principal components in {}\n", picture.string());
  return 0;
}

namespace {

// sample reads a run's pretrained.pt (the generative model itself), else the file given.
fs::path generative_model_file_of(const fs::path& run_or_model) {
  if (!fs::is_directory(run_or_model)) return run_or_model;
  const auto pretrained = run_or_model / finetune::RunDirectory::kPretrained;
  if (fs::exists(pretrained)) return pretrained;
  throw core::UsageError(
      fmt::format("{} has no {}: it is not an encore run that pretrained", run_or_model.string(), finetune::RunDirectory::kPretrained));
}

std::pair<std::int64_t, std::int64_t> parse_example_pair(const std::string& text) {
  const auto comma = text.find(',');
  try {
    std::size_t used_first = 0, used_second = 0;
    if (comma == std::string::npos) throw std::invalid_argument("no comma");
    const auto first = std::stoll(text.substr(0, comma), &used_first);
    const auto second = std::stoll(text.substr(comma + 1), &used_second);
    if (used_first != comma || used_second != text.size() - comma - 1 || first < 0 || second < 0) throw std::invalid_argument("not two");
    return {first, second};
  } catch (const std::logic_error&) {
    throw core::UsageError(fmt::format("--between takes two example numbers I,J (from 0), got \"{}\"", text));
  }
}

}  // namespace

int sample_command(const SampleArgs& args, std::ostream& err) {
  const auto components = finetune::builtin_components();
  const auto file = generative_model_file_of(args.run_or_model);
  auto model = finetune::load_trained_model(file, components);
  if (model.autoencoder->latent_dim() == 0) {
    throw core::UsageError(
        fmt::format("{}: its model ({}) is not variational; sample needs a variational_autoencoder, or a "
                    "convolutional_autoencoder with \"variational\": true",
                    file.string(), model.config.model.type));
  }
  const auto& shape = model.example_shape;
  if (!models::is_image_shape(shape)) {
    throw core::UsageError(fmt::format("{}: its examples are not grey or colour images (shape [{}]); sample draws images", file.string(),
                                       fmt::join(shape, ", ")));
  }
  std::int64_t columns = 0;
  torch::Tensor images;
  if (args.between.empty()) {
    if (!args.input_file.empty()) throw core::UsageError("--input goes with --between");
    images = finetune::sample_prior(model, args.count, args.seed);
    columns = static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(args.count))));
  } else {
    if (args.input_file.empty()) throw core::UsageError("--between needs --input, the file its examples come from");
    const auto [first, second] = parse_example_pair(args.between);
    std::vector<std::string> notes;
    const auto inputs = finetune::read_model_inputs(model, args.input_file, "", notes);
    for (const auto& note : notes) err << note << '\n';
    const auto examples = inputs.raw_features.size(0);
    if (first >= examples || second >= examples) {
      throw core::UsageError(
          fmt::format("--between {}: {} has {} examples (0 to {})", args.between, args.input_file, examples, examples - 1));
    }
    images = finetune::interpolate_latent(model, inputs.raw_features[first], inputs.raw_features[second], args.steps);
    columns = args.steps;
  }
  models::write_examples_png(args.output_file, images, model.example_shape, columns);
  err << fmt::format("wrote {} examples to {}\n", images.size(0), args.output_file);
  return 0;
}

int report_command(const std::string& run_dir, std::ostream& err) {
  err << fmt::format("wrote {}\n", finetune::write_report(run_dir).string());
  return 0;
}

}  // namespace encore::apps
