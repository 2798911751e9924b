#pragma once
/// What data a run uses: which files, how to scale, how to split (data_section.h reads it from JSON).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "encore/core/dataset.h"
#include "encore/core/image_folder.h"

namespace encore::core {

/// The `data` section: files, scaling, split and limits.
struct DataConfig {
  /// "idx" (MNIST-style image and label files, raw or .gz), "npy" (NumPy feature and label arrays),
  /// "csv", or "image_folder" (class folders of PNG, JPEG and BMP files).
  std::string format = "idx";
  /// IDX training images (raw or gzipped).
  std::string train_images;
  /// IDX or npy training labels (integers).
  std::string train_labels;
  /// IDX test images; empty: no test set.
  std::string test_images;
  /// IDX or npy test labels.
  std::string test_labels;
  /// npy training features: uint8, float32 or float64, N x D or N x (example shape).
  std::string train_features;
  /// npy test features; empty: no test set.
  std::string test_features;
  /// CSV training file.
  std::string train_csv;
  /// CSV test file; empty: no test set.
  std::string test_csv;
  /// A folder with one subfolder of images per class (the folder's name is the class name).
  std::string train_folder;  // image_folder
  /// A folder of test images in class folders named as the training ones; empty: no test set.
  std::string test_folder;
  /// A folder of images without labels (any depth), added to the training rows that pretraining and
  /// semi-supervised phases see; empty: none.
  std::string unlabelled_folder;
  /// The shape images are decoded to (channels, height, width, resize).
  ImageShape image;
  /// Whether an unreadable image file fails the run or is left out (listed in the run directory).
  UnreadableImages unreadable_images = UnreadableImages::kError;
  /// Whether decoded images are cached in cache_dir (read by page, memory-mapped).
  bool cache = true;
  /// Where the image cache goes; empty: default_image_cache_dir().
  std::string cache_dir;
  /// The CSV column that holds the labels.
  std::string label_column = "label";  // csv
  /// Ceiling on a gzipped IDX file's decompressed size, in MiB (a "zip bomb" stops there).
  std::int64_t max_decompressed_mib = 8192;  // idx
  /// IDX and npy: the names of the classes 0..K-1, in label order (empty: the label numbers). A CSV's
  /// classes are its label texts.
  std::vector<std::string> class_names;
  /// How features are scaled (fitted on the training rows).
  Scaling scaling = Scaling::kUnit;
  /// Fraction of the training file held out (stratified) for validation.
  double validation_fraction = 0.1;
  /// Labelled examples per class kept for supervised training; the rest are unlabelled. Absent: all.
  std::optional<std::int64_t> labelled_per_class;
  /// Use only the first N training examples, for quick runs.
  std::optional<std::int64_t> limit_train;
  /// Use only the first N test examples.
  std::optional<std::int64_t> limit_test;

  /// Whether a test set is given.
  bool has_test() const { return !test_examples_file().empty(); }
  /// The file of training examples for the format: train_images, train_features or train_csv.
  const std::string& train_examples_file() const {
    return format == "idx" ? train_images : format == "npy" ? train_features : format == "csv" ? train_csv : train_folder;
  }
  /// The file (or folder) of test examples for the format.
  const std::string& test_examples_file() const {
    return format == "idx" ? test_images : format == "npy" ? test_features : format == "csv" ? test_csv : test_folder;
  }
  /// Where the training labels come from: train_labels, the CSV, or the class folders.
  const std::string& train_labels_file() const { return format == "idx" || format == "npy" ? train_labels : train_examples_file(); }
  /// Where the test labels come from: test_labels, the test CSV, or the test class folders.
  const std::string& test_labels_file() const { return format == "idx" || format == "npy" ? test_labels : test_examples_file(); }
  /// The image_folder reading settings (cache folder resolved; the row limit left to the caller).
  ImageFolderOptions image_folder_options() const;
};

/// The loaded files.
struct LoadedData {
  /// The training file.
  Dataset train;
  /// The test file, when given.
  std::optional<Dataset> test;
  /// Lines for the log: what was read differently from the files as they are (columns skipped).
  std::vector<std::string> notes;
  /// "FILE: REASON" of each image file left out as unreadable (image_folder with "skip").
  std::vector<std::string> skipped_images;
};

/// Checks a data section set from C++ (the ranges the JSON reader checks); throws OptionError
/// naming the option and its value. load_data and split_data run it.
void check_data_config(const DataConfig& config);

/// Reads the training and test files a config names; a bad file is a DataError naming it.
LoadedData load_data(const DataConfig& config);

/// Row indices of the training file after a seeded stratified split. Rows without a label (kNoLabel:
/// an unlabelled folder's images) are never validation or labelled rows.
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
