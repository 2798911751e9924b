#pragma once
/// What data a run uses: which files, how to scale, how to split (data_section.h reads it from JSON).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "encore/core/dataset.h"

namespace encore::core {

struct DataConfig {
  /// "idx" (MNIST-style image and label files, raw or .gz) or "csv".
  std::string format = "idx";
  std::string train_images, train_labels, test_images, test_labels;  // idx
  std::string train_csv, test_csv;                                   // csv
  std::string label_column = "label";                                // csv
  /// Ceiling on a gzipped IDX file's decompressed size, in MiB (a "zip bomb" stops there).
  std::int64_t max_decompressed_mib = 8192;  // idx
  Scaling scaling = Scaling::kUnit;
  /// Fraction of the training file held out (stratified) for validation.
  double validation_fraction = 0.1;
  /// Labelled examples per class kept for supervised training; the rest are unlabelled. Absent: all.
  std::optional<std::int64_t> labelled_per_class;
  /// Use only the first N training (and test) examples, for quick runs.
  std::optional<std::int64_t> limit_train, limit_test;

  bool has_test() const { return format == "idx" ? !test_images.empty() : !test_csv.empty(); }
};

/// The loaded files.
struct LoadedData {
  Dataset train;
  std::optional<Dataset> test;
  /// Lines for the log: what was read differently from the files as they are (columns skipped).
  std::vector<std::string> notes;
};

LoadedData load_data(const DataConfig& config);

/// Row indices of the training file after a seeded stratified split.
struct DataSplit {
  /// Held-out validation rows (stratified), never trained on.
  torch::Tensor validation;
  /// Training rows with labels used for supervised training.
  torch::Tensor labelled;
  /// Training rows whose labels are not used (empty unless labelled_per_class is set).
  torch::Tensor unlabelled;
  /// labelled and unlabelled together: what unsupervised pretraining sees.
  torch::Tensor all_training;
};

/// The split of a run with seed `seed` (its kValidationSplit and kLabelledSubset streams).
DataSplit split_data(const DataConfig& config, const Dataset& train, std::uint64_t seed);

}  // namespace encore::core
