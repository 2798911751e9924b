#include "encore/finetune/trained_model.h"

#include "encore/core/random.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <sstream>

#include <fmt/ranges.h>

#include <fmt/format.h>

#include "encore/core/csv.h"
#include "encore/core/errors.h"
#include "encore/core/idx.h"
#include "encore/core/image_folder.h"
#include "encore/core/npy.h"

namespace encore::finetune {

namespace fs = std::filesystem;

namespace {

using TorchScriptUnit = std::shared_ptr<torch::jit::CompilationUnit>;

// A TorchScript module holding `module`'s parameters, buffers and children under their names (so
// that `self.layer0.encoder_weight` in TorchScript is what it is in C++), typed `type_name`.
torch::jit::Module scripted_copy(const torch::nn::Module& module, const std::string& type_name, const TorchScriptUnit& unit) {
  torch::jit::Module copy(c10::QualifiedName(type_name), unit);
  for (const auto& item : module.named_parameters(/*recurse=*/false)) copy.register_parameter(item.key(), item.value().detach(), false);
  for (const auto& item : module.named_buffers(/*recurse=*/false)) copy.register_buffer(item.key(), item.value().detach());
  for (const auto& item : module.named_children()) {
    copy.register_module(item.key(), scripted_copy(*item.value(), type_name + "." + item.key(), unit));
  }
  return copy;
}

// What both files carry besides the weights: what encore (and a user in Python) needs to use them.
void add_metadata(torch::jit::Module& file, const std::string& contents, const ExperimentConfig& config, const Components& components,
                  const core::Scaler& scaler, const core::Dataset& training_data) {
  const auto text = [&](const std::string& name, const std::string& value) {
    file.register_attribute(name, c10::StringType::get(), c10::IValue(value));
  };
  text("encore_contents", contents);
  text("encore_config", to_json(config, components).dump());
  text("encore_class_names", core::Json(training_data.class_names).dump());
  text("encore_example_shape", core::Json(training_data.example_shape()).dump());
  text("encore_feature_names", core::Json(training_data.feature_names).dump());
  file.register_buffer("encore_scaler_offset", scaler.offset().cpu());
  file.register_buffer("encore_scaler_multiplier", scaler.multiplier().cpu());
}

// Raw examples [B, ...] to model inputs, as core::Scaler::apply does.
constexpr const char* kScaleScript = R"(
def scale(self, x: Tensor) -> Tensor:
    return (x.reshape([x.size(0), -1]).float() - self.encore_scaler_offset) * self.encore_scaler_multiplier
)";

// Serialised in memory: a file name would end up inside the archive, and an atomic write's
// temporary name would make every run's bytes differ.
std::string module_bytes(const torch::jit::Module& module) {
  std::ostringstream bytes;
  module.save(bytes);
  return bytes.str();
}

constexpr const char* kClassifierContents = "classifier";
constexpr const char* kAutoencoderContents = "autoencoder";

}  // namespace

std::string trained_model_bytes(ClassifierImpl& classifier, const ExperimentConfig& config, const Components& components,
                                const core::Scaler& scaler, const core::Dataset& training_data) {
  // Saved for use, in one defined state whatever the phases left (and whether a resumed run skipped
  // them): eval mode, every block trainable.
  classifier.eval();
  const auto blocks = classifier.block_names();
  classifier.set_trainable(std::set<std::string>(blocks.begin(), blocks.end()));
  const auto unit = std::make_shared<torch::jit::CompilationUnit>();
  auto file = scripted_copy(classifier, "__torch__.encore.Classifier", unit);
  add_metadata(file, kClassifierContents, config, components, scaler, training_data);
  const auto model_script = classifier.autoencoder().torchscript();
  const auto head_script = classifier.head().torchscript();
  if (!model_script.empty() && !head_script.empty()) {
    file.attr("encoder").toModule().define(model_script);
    file.attr("head").toModule().define(head_script);
    std::string features = "self.encode(x)";
    if (const auto& hidden = config.finetune->hidden) {
      features = core::linear_script(features, "self.hidden.weight", "self.hidden.bias", hidden->activation);
    }
    file.define(kScaleScript + fmt::format(R"(
def encode(self, x: Tensor) -> Tensor:
    return self.encoder.code_of(self.scale(x), {})

def scores(self, x: Tensor) -> Tensor:
    return self.head.scores_of({})

def forward(self, x: Tensor) -> Tensor:
    return self.head.probabilities_of(self.scores(x))

def predict(self, x: Tensor) -> Tensor:
    return self.head.classes_of(self.scores(x))
)",
                                           classifier.encoder_layer_count(), features));
  }
  return module_bytes(file);
}

std::string pretrained_model_bytes(models::AutoencoderModel& autoencoder, const ExperimentConfig& config, const Components& components,
                                   const core::Scaler& scaler, const core::Dataset& training_data) {
  auto file = scripted_copy(autoencoder.module(), "__torch__.encore.Autoencoder", std::make_shared<torch::jit::CompilationUnit>());
  add_metadata(file, kAutoencoderContents, config, components, scaler, training_data);
  const auto model_script = autoencoder.torchscript();
  if (!model_script.empty()) {
    const auto depth = autoencoder.greedy_layers().size();
    file.define(model_script + kScaleScript +
                fmt::format(R"(
def encode(self, x: Tensor) -> Tensor:
    return self.code_of(self.scale(x), {})

def forward(self, x: Tensor) -> Tensor:
    return self.reconstruction_of(self.scale(x))
)",
                            depth));
  }
  return module_bytes(file);
}

TrainedModel load_trained_model(const fs::path& file, const Components& components) {
  auto archive = read_module_archive(file.string());
  auto read_text = [&](const std::string& key) {
    c10::IValue value;
    if (!archive.try_read(key, value) || !value.isString()) {
      throw core::DataError(fmt::format("{}: has no \"{}\"; is it a model.pt or pretrained.pt written by encore?", file.string(), key));
    }
    return value.toStringRef();
  };
  auto read_json = [&](const std::string& key) { return core::parse_json_text(read_text(key), file.string() + ":" + key); };
  const auto contents = read_text("encore_contents");
  if (contents != kClassifierContents && contents != kAutoencoderContents) {
    throw core::DataError(fmt::format("{}: holds \"{}\", neither a classifier nor an autoencoder", file.string(), contents));
  }
  TrainedModel out;
  out.config = parse_experiment(read_json("encore_config"), components);
  out.class_names = read_json("encore_class_names").get<std::vector<std::string>>();
  out.example_shape = read_json("encore_example_shape").get<std::vector<std::int64_t>>();
  out.feature_names = read_json("encore_feature_names").get<std::vector<std::string>>();
  torch::Tensor offset, multiplier;
  if (!archive.try_read("encore_scaler_offset", offset, true) || !archive.try_read("encore_scaler_multiplier", multiplier, true)) {
    throw core::DataError(fmt::format("{}: has no scaler", file.string()));
  }
  out.scaler = core::Scaler::from_tensors(offset, multiplier);
  out.autoencoder = models::build_model(out.config.model, components.models, out.example_shape);
  torch::nn::Module* weights = &out.autoencoder->module();
  out.code_depth = static_cast<int>(out.autoencoder->greedy_layers().size());
  if (contents == kClassifierContents) {
    if (!out.config.finetune) throw core::DataError(fmt::format("{}: its config has no finetune section", file.string()));
    out.classifier =
        build_classifier(*out.config.finetune, out.autoencoder, components.heads, static_cast<std::int64_t>(out.class_names.size()));
    out.code_depth = out.classifier->encoder_layer_count();
    weights = out.classifier.get();
  }
  const auto report = load_by_name(*weights, archive);
  if (!report.complete()) {
    throw core::DataError(fmt::format("{}: weights do not fit the model its config describes ({} missing, {} mismatched)", file.string(),
                                      report.missing.size(), report.mismatched.size()));
  }
  weights->eval();
  return out;
}

TrainedModel load_classifier(const fs::path& file, const Components& components) {
  auto model = load_trained_model(file, components);
  if (!model.classifier) {
    throw core::UsageError(fmt::format("{} is a pretrained autoencoder without a classifier: use the run's model.pt", file.string()));
  }
  return model;
}

namespace {

std::vector<std::int64_t> shape_without_count(const core::IdxArray& array, std::size_t example_rank) {
  return std::vector<std::int64_t>(array.dims.begin() + (array.dims.size() > example_rank ? 1 : 0), array.dims.end());
}

// Examples of another shape than the model's are refused naming the file and both shapes.
void check_example_shape(const std::string& file, const std::vector<std::int64_t>& shape, const TrainedModel& model) {
  if (shape == model.example_shape) return;
  const auto given = shape.empty() ? std::string("single numbers") : fmt::format("{}", fmt::join(shape, "x"));
  throw core::DataError(fmt::format("{}: examples are {}, the model takes {}", file, given, fmt::join(model.example_shape, "x")));
}

// A .npy of examples of the model's shape (a batch of them, or one), uint8 or floating point.
torch::Tensor read_npy_inputs(const TrainedModel& model, const std::string& file) {
  const auto array = core::read_npy_file(file);
  const bool one = array.shape == model.example_shape;
  const auto shape = one ? array.shape : std::vector<std::int64_t>(array.shape.begin() + (array.shape.empty() ? 0 : 1), array.shape.end());
  check_example_shape(file, shape, model);
  const auto count = one ? 1 : array.shape.front();
  const auto features = models::feature_count(model.example_shape);
  const void* data = array.bytes.data() + array.data_offset;
  switch (array.type) {
    case core::NpyType::kUInt8:
      return torch::from_blob(const_cast<void*>(data), {count, features}, torch::kUInt8).clone();
    case core::NpyType::kFloat32:
      return torch::from_blob(const_cast<void*>(data), {count, features}, torch::kFloat32).clone();
    case core::NpyType::kFloat64:
      return torch::from_blob(const_cast<void*>(data), {count, features}, torch::kFloat64).to(torch::kFloat32);
    default:
      throw core::DataError(
          fmt::format("{}: examples are {}; encore reads uint8, float32 or float64", file, core::npy_type_name(array.type)));
  }
}

}  // namespace

ModelInputs read_model_inputs(const TrainedModel& model, const std::string& file, const std::string& labels_file,
                              std::vector<std::string>& notes) {
  const auto& format = model.config.data.format;
  if (!labels_file.empty()) {
    if (format == "csv") throw core::UsageError("--labels is for IDX and npy inputs: a CSV's labels are its label column");
    auto data = read_labelled_data(model, file, labels_file, notes);
    return {data.features.reshape({data.size(), -1}), data.labels};
  }
  const auto features = models::feature_count(model.example_shape);
  if (format == "idx") {
    auto array = core::read_idx_file(file);
    check_example_shape(file, shape_without_count(array, model.example_shape.size()), model);
    if (array.type != core::IdxType::kUInt8) throw core::DataError(fmt::format("{}: prediction reads uint8 IDX images", file));
    const auto count = array.dims.size() > model.example_shape.size() ? array.dims.front() : 1;
    return {torch::from_blob(array.bytes.data() + array.data_offset, {count, features}, torch::kUInt8).clone(), {}};
  }
  if (format == "npy") return {read_npy_inputs(model, file), {}};
  if (format == "image_folder") {
    auto images = core::load_image_files(file, model.config.data.image_folder_options());
    notes.insert(notes.end(), images.notes.begin(), images.notes.end());
    for (const auto& skipped : images.skipped) notes.push_back("left out " + skipped);
    return {images.pixels.reshape({images.pixels.size(0), -1}), {}, images.files};
  }
  core::CsvOptions options;
  options.label_column = model.config.data.label_column;
  options.label_required = false;
  options.feature_columns = model.feature_names;
  auto table = core::read_csv_file(file, options);
  if (!table.ignored_columns.empty()) notes.push_back(core::ignored_columns_note(file, table.ignored_columns));
  const auto rows = static_cast<std::int64_t>(table.rows);
  ModelInputs out{torch::from_blob(table.features.data(), {rows, features}, torch::kFloat32).clone(), {}};
  if (!table.labels.empty()) {
    out.labels = torch::empty({rows}, torch::kInt64);
    for (std::int64_t row = 0; row < rows; ++row) {
      const auto& label = table.labels[static_cast<std::size_t>(row)];
      const auto known = std::find(model.class_names.begin(), model.class_names.end(), label);
      if (known == model.class_names.end()) {
        throw core::DataError(
            fmt::format("{}: row {}: label \"{}\" is not one of the model's {} classes", file, row + 2, label, model.class_names.size()));
      }
      out.labels[row] = static_cast<std::int64_t>(known - model.class_names.begin());
    }
  }
  return out;
}

core::Dataset read_labelled_data(const TrainedModel& model, const std::string& file, const std::string& labels_file,
                                 std::vector<std::string>& notes) {
  const auto& data_config = model.config.data;
  if (data_config.format == "csv") {
    return core::load_csv_dataset(file, data_config.label_column, {model.class_names, model.feature_names}, &notes);
  }
  if (data_config.format == "image_folder") {
    if (!labels_file.empty()) throw core::UsageError("--labels is for IDX and npy inputs: an image folder's labels are its class folders");
    auto options = data_config.image_folder_options();
    options.class_names = model.class_names;
    auto images = core::load_image_folder(file, {}, options);
    notes.insert(notes.end(), images.notes.begin(), images.notes.end());
    for (const auto& skipped : images.skipped) notes.push_back("left out " + skipped);
    check_example_shape(file, images.data.example_shape(), model);
    return images.data;
  }
  if (labels_file.empty()) {
    throw core::UsageError(
        fmt::format("{}: {} examples need their labels file to be evaluated", file, data_config.format == "idx" ? "IDX" : "npy"));
  }
  core::IdxLimits limits;
  limits.max_decompressed_bytes = static_cast<std::uint64_t>(data_config.max_decompressed_mib) << 20;
  auto data = data_config.format == "idx" ? core::load_idx_dataset(file, labels_file, limits) : core::load_npy_dataset(file, labels_file);
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

torch::Tensor encode(TrainedModel& model, const torch::Tensor& raw_features, std::optional<int> depth) {
  auto layer_list = model.autoencoder->greedy_layers();
  const int layers = static_cast<int>(layer_list.size());
  if (depth && (layers == 0 || *depth < 1 || *depth > layers)) {
    throw core::UsageError(layers == 0 ? "--depth needs a model with layers; this model encodes in one piece"
                                       : fmt::format("--depth must be in [1, {}], got {}", layers, *depth));
  }
  torch::NoGradGuard no_grad;
  model.autoencoder->module().eval();
  std::vector<torch::Tensor> codes;
  for (std::int64_t start = 0; start < raw_features.size(0); start += kEvaluationBatch) {
    auto h = model.scaler.apply(raw_features.narrow(0, start, std::min(kEvaluationBatch, raw_features.size(0) - start)));
    if (layers == 0) {
      h = model.autoencoder->encode(h);
    } else {
      for (int k = 0; k < depth.value_or(model.code_depth); ++k) h = layer_list[static_cast<std::size_t>(k)]->encode(h);
    }
    codes.push_back(h.cpu());
  }
  return torch::cat(codes);
}

}  // namespace encore::finetune

namespace encore::finetune {

torch::Tensor sample_prior(TrainedModel& model, std::int64_t count, std::uint64_t seed) {
  torch::NoGradGuard no_grad;
  model.autoencoder->module().eval();
  auto generator = core::seeded_generator(seed);
  const auto z = torch::randn({count, model.autoencoder->latent_dim()}, generator);
  return model.autoencoder->decode_latent(z).cpu();
}

torch::Tensor interpolate_latent(TrainedModel& model, const torch::Tensor& raw_first, const torch::Tensor& raw_second, std::int64_t steps) {
  torch::NoGradGuard no_grad;
  model.autoencoder->module().eval();
  const auto ends = model.autoencoder->encode(model.scaler.apply(torch::stack({raw_first, raw_second})));
  const auto t = torch::linspace(0, 1, steps).unsqueeze(1);
  return model.autoencoder->decode_latent((1 - t) * ends[0] + t * ends[1]).cpu();
}

}  // namespace encore::finetune
