#pragma once
/// model.pt: a trained classifier with what it needs to be used on new data (its config, scaler,
/// class names and example shape), in a LibTorch module archive.

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

struct TrainedModel {
  ExperimentConfig config;
  Classifier classifier = nullptr;
  core::Scaler scaler;
  std::vector<std::string> class_names;
  std::vector<std::int64_t> example_shape;
};

/// model.pt's bytes: the classifier's weights (a LibTorch module archive) plus the resolved config,
/// scaler and class names under "encore_*" keys. The classifier is left in eval mode with every
/// block trainable, the state it is saved in.
std::string trained_model_bytes(ClassifierImpl& classifier, const ExperimentConfig& config, const Components& components,
                                const core::Scaler& scaler, const std::vector<std::string>& class_names,
                                const std::vector<std::int64_t>& example_shape);

/// Reads model.pt back, rebuilding the classifier from its config.
TrainedModel load_trained_model(const std::filesystem::path& file, const Components& components);

/// Scores [N, K] and predictions [N] of raw feature rows, in batches, in eval mode.
std::pair<torch::Tensor, torch::Tensor> predict(TrainedModel& model, const torch::Tensor& raw_features);

/// Rows per batch when evaluating and predicting (no gradients: larger than a training batch).
constexpr std::int64_t kEvaluationBatch = 512;

/// Serialises a module archive in memory: LibTorch names the archive's top folder after the file
/// written, and an atomic write's temporary name would make every run's bytes differ.
std::string archive_bytes(torch::serialize::OutputArchive& archive);

}  // namespace encore::finetune
