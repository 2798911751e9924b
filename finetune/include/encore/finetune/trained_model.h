#pragma once
/// model.pt: a trained classifier with everything it needs to be used on new data (its config,
/// scaler, class names and input schema), in a LibTorch module archive. Using it reads nothing
/// else: a model copied to another machine works there.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "encore/core/dataset.h"
#include "encore/finetune/classifier.h"
#include "encore/finetune/components.h"
#include "encore/finetune/experiment_config.h"

namespace encore::finetune {

/// A model.pt or pretrained.pt read back.
struct TrainedModel {
  /// The resolved config it was trained with.
  ExperimentConfig config;
  /// The classifier, in eval mode; null for a pretrained.pt (an autoencoder alone).
  Classifier classifier = nullptr;
  /// The autoencoder: the classifier's encoder, or the pretrained model; in eval mode.
  std::shared_ptr<models::AutoencoderModel> autoencoder;
  /// The encoder depth the model's codes come from: the classifier's encoder layers, or every
  /// greedy layer of a pretrained model (0 for models without greedy layers).
  int code_depth = 0;
  /// The scaling fitted on its training data.
  core::Scaler scaler;
  /// Class names, in label order.
  std::vector<std::string> class_names;
  /// The input schema: the shape of one example, and for CSV the feature columns' header names.
  std::vector<std::int64_t> example_shape;
  /// CSV feature column names (empty for images).
  std::vector<std::string> feature_names;
};

/// model.pt's bytes: a TorchScript module holding the classifier's parameters under their names,
/// the resolved config, class names and input schema (JSON strings under "encore_*" attributes)
/// and the scaler ("encore_scaler_offset", "encore_scaler_multiplier" buffers). Where the model and
/// head provide their TorchScript, it has the methods `forward(x)` (class probabilities [B, K]),
/// `predict(x)` (class indices [B], -1 where a one-versus-all head abstains), `encode(x)` (the
/// encoder's code), `scores(x)` (the head's scores) and `scale(x)`, taking raw examples [B, ...] shaped as the training examples, so
/// that `torch.jit.load("model.pt")(x)` works without encore. The classifier is left in eval mode
/// with every block trainable, the state it is saved in.
std::string trained_model_bytes(ClassifierImpl& classifier, const ExperimentConfig& config, const Components& components,
                                const core::Scaler& scaler, const core::Dataset& training_data);

/// pretrained.pt's bytes: the autoencoder's parameters under their names (as `finetune --from`
/// loads them) with the same attributes as model.pt and, where the model provides its TorchScript,
/// the methods `forward(x)` (the reconstruction of scaled raw examples), `encode(x)` (the full
/// code) and `scale(x)`.
std::string pretrained_model_bytes(models::AutoencoderModel& autoencoder, const ExperimentConfig& config, const Components& components,
                                   const core::Scaler& scaler, const core::Dataset& training_data);

/// Reads model.pt or pretrained.pt back (verified, see read_module_archive), rebuilding the
/// classifier or autoencoder from its config.
TrainedModel load_trained_model(const std::filesystem::path& file, const Components& components);

/// The same, refusing a pretrained.pt: for commands that classify.
TrainedModel load_classifier(const std::filesystem::path& file, const Components& components);

/// The examples of a file for a model, with their labels where the file has them.
struct ModelInputs {
  /// Raw feature rows [N, D] (uint8 images, float32 otherwise).
  torch::Tensor raw_features;
  /// Class indices [N] (int64); undefined when the input has no labels.
  torch::Tensor labels;
  /// The image file of each row, for a model trained on an image folder; empty otherwise.
  std::vector<std::string> example_files;
};

/// Raw feature rows of a file for `model`: IDX images or a .npy array of the model's example shape
/// (one example, or a file of them), or CSV rows whose columns are matched to the model's by
/// header name (the label column may be absent; when present its labels are read, each one of the
/// model's classes), or, for a model trained on an image folder, an image file or a folder of
/// images (any depth), decoded as in training. `labels_file`, for IDX and npy, names their labels.
/// Lines for the log (columns or files skipped) go to `notes`.
ModelInputs read_model_inputs(const TrainedModel& model, const std::string& file, const std::string& labels_file,
                              std::vector<std::string>& notes);

/// Labelled examples for evaluating `model`: IDX images and labels (`labels_file`), a CSV file
/// with the label column (`labels_file` empty), or a folder of class folders (a model trained on an
/// image folder; decoded as in training), checked against the model's schema and classes.
core::Dataset read_labelled_data(const TrainedModel& model, const std::string& file, const std::string& labels_file,
                                 std::vector<std::string>& notes);

/// Scores [N, K] and predictions [N] of raw feature rows, in batches, in eval mode.
std::pair<torch::Tensor, torch::Tensor> predict(TrainedModel& model, const torch::Tensor& raw_features);

/// Codes [N, code width] of raw feature rows after the first `depth` encoder layers (the model's
/// code_depth when absent), in batches, in eval mode. A depth the model does not have is a UsageError.
torch::Tensor encode(TrainedModel& model, const torch::Tensor& raw_features, std::optional<int> depth);

/// `count` examples [count, D] (in the model's scaled input space, on the CPU) decoded from latent
/// vectors drawn from a variational model's standard normal prior with a generator seeded `seed`.
torch::Tensor sample_prior(TrainedModel& model, std::int64_t count, std::uint64_t seed);
/// `steps` examples [steps, D] (scaled, on the CPU) decoded from the straight line between the
/// posterior means of two raw examples of a variational model, both ends included.
torch::Tensor interpolate_latent(TrainedModel& model, const torch::Tensor& raw_first, const torch::Tensor& raw_second, std::int64_t steps);

/// Rows per batch when evaluating and predicting (no gradients: larger than a training batch).
constexpr std::int64_t kEvaluationBatch = 512;

}  // namespace encore::finetune
