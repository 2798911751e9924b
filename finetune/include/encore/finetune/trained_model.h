#pragma once
/// model.pt: a trained classifier with everything it needs to be used on new data (its config,
/// scaler, class names and input schema), in a LibTorch module archive. Using it reads nothing
/// else: a model copied to another machine works there.

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "encore/core/dataset.h"
#include "encore/finetune/classifier.h"
#include "encore/finetune/components.h"
#include "encore/finetune/experiment_config.h"

namespace encore::finetune {

/// A model.pt read back.
struct TrainedModel {
  /// The resolved config it was trained with.
  ExperimentConfig config;
  /// The classifier, in eval mode.
  Classifier classifier = nullptr;
  /// The scaling fitted on its training data.
  core::Scaler scaler;
  /// Class names, in label order.
  std::vector<std::string> class_names;
  /// The input schema: the shape of one example, and for CSV the feature columns' header names.
  std::vector<std::int64_t> example_shape;
  /// CSV feature column names (empty for images).
  std::vector<std::string> feature_names;
};

/// model.pt's bytes: the classifier's weights (a LibTorch module archive) plus the resolved config,
/// scaler and class names under "encore_*" keys. The classifier is left in eval mode with every
/// block trainable, the state it is saved in.
std::string trained_model_bytes(ClassifierImpl& classifier, const ExperimentConfig& config, const Components& components,
                                const core::Scaler& scaler, const core::Dataset& training_data);

/// Reads model.pt back (verified, see read_module_archive), rebuilding the classifier from its config.
TrainedModel load_trained_model(const std::filesystem::path& file, const Components& components);

/// Raw feature rows of a file for `model`: IDX images of the model's example shape (one image, or
/// a file of them), or CSV rows whose columns are matched to the model's by header name (the label
/// column may be absent). Lines for the log (columns skipped) go to `notes`.
torch::Tensor read_model_inputs(const TrainedModel& model, const std::string& file, std::vector<std::string>& notes);

/// Labelled examples for evaluating `model`: IDX images and labels (`labels_file`), or a CSV file
/// with the label column (`labels_file` empty), checked against the model's schema and classes.
core::Dataset read_labelled_data(const TrainedModel& model, const std::string& file, const std::string& labels_file,
                                 std::vector<std::string>& notes);

/// Scores [N, K] and predictions [N] of raw feature rows, in batches, in eval mode.
std::pair<torch::Tensor, torch::Tensor> predict(TrainedModel& model, const torch::Tensor& raw_features);

/// Rows per batch when evaluating and predicting (no gradients: larger than a training batch).
constexpr std::int64_t kEvaluationBatch = 512;

/// Serialises a module archive in memory: LibTorch names the archive's top folder after the file
/// written, and an atomic write's temporary name would make every run's bytes differ.
std::string archive_bytes(torch::serialize::OutputArchive& archive);

}  // namespace encore::finetune
