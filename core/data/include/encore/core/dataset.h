#pragma once
/// In-memory datasets, scaling, seeded stratified splits and a deterministic batch order.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "encore/core/idx.h"

namespace encore::core {

/// A whole dataset held as one contiguous tensor. Images stay `uint8` until a batch is cut.
struct Dataset {
  /// [N, ...example_shape], uint8 (images) or float32 (CSV).
  torch::Tensor features;
  /// [N] int64 class indices in [0, class_names.size()).
  torch::Tensor labels;
  /// Display name of each class index.
  std::vector<std::string> class_names;
  /// CSV: the header names of the feature columns, in the order of `features`' columns (empty for IDX).
  std::vector<std::string> feature_names;

  /// Examples.
  std::int64_t size() const { return features.size(0); }
  /// Number of features once an example is flattened.
  std::int64_t feature_dim() const;
  /// Shape of one example, e.g. {28, 28}.
  std::vector<std::int64_t> example_shape() const;
  /// Classes (the size of class_names).
  std::int64_t num_classes() const { return static_cast<std::int64_t>(class_names.size()); }
};

/// Builds a dataset from IDX image and label files (validated to agree in count and label range).
Dataset load_idx_dataset(const std::string& images_file, const std::string& labels_file, const IdxLimits& limits = {});

/// Builds a dataset from .npy feature (uint8, float32 or float64; float64 is read as float32) and
/// integer label arrays, validated as load_idx_dataset validates IDX files.
Dataset load_npy_dataset(const std::string& features_file, const std::string& labels_file);

/// Keeps only the first `count` examples (all when there are no more).
void keep_first(Dataset& data, std::int64_t count);

/// What a test file, or new data for a trained model, must match: the training set's classes and,
/// for CSV, its feature columns by header name. Empty parts impose nothing.
struct DataSchema {
  /// Class names, in label order.
  std::vector<std::string> class_names;
  /// Feature column names (CSV); empty for images.
  std::vector<std::string> feature_names;
};

/// Builds a dataset from a CSV file. Labels that are all integers keep their numeric order; other
/// labels are sorted as text. `schema` fixes the class mapping (a label outside it is an error
/// naming the row) and the feature columns (matched by name in any order; a missing one is an
/// error; extra ones are skipped, with a line in `notes` when given).
Dataset load_csv_dataset(const std::string& file, const std::string& label_column, const DataSchema& schema = {},
                         std::vector<std::string>* notes = nullptr);

/// How raw features become model inputs.
enum class Scaling {
  kNone,
  /// To [0, 1]: uint8 divided by 255; float features by per-feature min and max.
  kUnit,
  /// Per-feature zero mean, unit variance.
  kStandardize,
};

/// The Scaling of a config name ("none", "unit", "standardize").
Scaling parse_scaling(const std::string& name);
/// The config name of a Scaling.
std::string scaling_name(Scaling scaling);

/// An affine per-feature map fitted on training examples only: `(x - offset) * multiplier`.
class Scaler {
 public:
  Scaler() = default;
  /// Fits on the rows `indices` of `data`.
  static Scaler fit(Scaling scaling, const Dataset& data, const torch::Tensor& indices);
  /// A scaler saved earlier (offset and multiplier of one row's features).
  static Scaler from_tensors(torch::Tensor offset, torch::Tensor multiplier);

  /// Converts raw feature rows [B, ...] to float32 [B, D] model inputs.
  torch::Tensor apply(const torch::Tensor& raw) const;
  /// apply(features.index_select(0, rows)) in one pass, without the intermediate copies.
  torch::Tensor gather(const torch::Tensor& features, const torch::Tensor& rows) const;

  /// Subtracted from each raw feature.
  const torch::Tensor& offset() const { return offset_; }
  /// Multiplies each feature after the offset.
  const torch::Tensor& multiplier() const { return multiplier_; }

 private:
  Scaler(torch::Tensor offset, torch::Tensor multiplier) : offset_(std::move(offset)), multiplier_(std::move(multiplier)) {}
  torch::Tensor offset_;
  torch::Tensor multiplier_;
};

/// Two disjoint sets of row indices (sorted).
struct IndexSplit {
  /// The first part (labelled, or training).
  torch::Tensor first;
  /// The second part (unlabelled, or validation).
  torch::Tensor second;
};

/// Splits `indices` so that each class puts round(fraction * count) examples into `second`
/// (validation), seeded.
IndexSplit stratified_split(const torch::Tensor& labels, const torch::Tensor& indices, double fraction, std::uint64_t seed);

/// Takes `per_class` examples of each class into `first` (labelled) and the rest into `second`,
/// seeded. A class with fewer examples is an error naming it.
IndexSplit stratified_subset(const torch::Tensor& labels, const torch::Tensor& indices, std::int64_t per_class,
                             const std::vector<std::string>& class_names, std::uint64_t seed);

/// One batch of model inputs.
struct Batch {
  /// [B, D] float32 model inputs.
  torch::Tensor inputs;
  /// [B] int64 class indices.
  torch::Tensor labels;
  /// A semi-supervised step's rows without labels [U, D], trained beside the labelled `inputs`;
  /// undefined otherwise.
  torch::Tensor unlabelled;
  /// What this process's cost on `unlabelled` is multiplied by so that the ranks' averaged
  /// gradients are those of the whole step: its share of the step's unlabelled rows times the number
  /// of ranks (1 when running alone; 0 for a rank without a row of a short last batch).
  double unlabelled_scale = 1.0;
  /// Examples in the batch (the labelled ones of a semi-supervised step).
  std::int64_t size() const { return inputs.size(0); }
};

/// `batch` on `device`. A CUDA device gets it from page-locked host memory, copied without blocking
/// the host: the copy is queued ahead of the step's kernels, and the host goes on (to gather the next
/// batch while the GPU runs the backward pass and the update).
Batch to_device(Batch batch, torch::Device device);

/// Rows of a dataset seen through a scaler, cut into batches in an order that is a pure function of
/// (seed, epoch, position): a run resumed mid-epoch replays the same batches.
class BatchSource {
 public:
  /// Rows `indices` of `data`, scaled by `scaler`, in batches of `batch_size`, shuffled each epoch (seeded) or in order.
  BatchSource(const Dataset& data, torch::Tensor indices, Scaler scaler, std::int64_t batch_size, bool shuffle, std::uint64_t seed);

  /// Rows in the source.
  std::int64_t size() const { return indices_.size(0); }
  /// Rows per batch (the last may have fewer).
  std::int64_t batch_size() const { return batch_size_; }
  /// Batches in one epoch.
  std::int64_t batches_per_epoch() const { return (size() + batch_size_ - 1) / batch_size_; }
  /// The row order of an epoch: a seeded permutation when shuffling, else the index order.
  torch::Tensor epoch_order(std::int64_t epoch) const;
  /// Batch `position` of an epoch whose order is `order`.
  Batch batch(const torch::Tensor& order, std::int64_t position) const;
  /// The given rows of the dataset as one batch.
  Batch rows(const torch::Tensor& row_indices) const;
  /// A semi-supervised source: this source's rows, whose labels go unused, set the epoch (one pass
  /// over them in batches of this source's size), and step s of a stage (epoch * batches_per_epoch()
  /// + position) also takes rows [s*b, (s+1)*b) of the endless stream of `labelled`'s epoch orders
  /// laid end to end (b: its batch size). Labelled rows are cycled, every step has b of them, and
  /// which they are is a pure function of the step: resuming replays them.
  BatchSource with_labelled(BatchSource labelled) const;
  /// Whether this is a semi-supervised source (with_labelled).
  bool semi_supervised() const { return labelled_ != nullptr; }
  /// The labelled rows of step `step` of a semi-supervised source.
  Batch labelled_rows(std::int64_t step) const;
  /// The dataset the rows come from.
  const Dataset& data() const { return *data_; }
  /// The rows' indices in the dataset.
  const torch::Tensor& indices() const { return indices_; }
  /// The scaling applied to every batch.
  const Scaler& scaler() const { return scaler_; }

 private:
  const Dataset* data_;
  torch::Tensor indices_;
  Scaler scaler_;
  std::int64_t batch_size_;
  bool shuffle_;
  std::uint64_t seed_;
  std::shared_ptr<const BatchSource> labelled_;
};

}  // namespace encore::core
