#include "encore/core/data_config.h"

#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "encore/core/errors.h"
#include "encore/core/fields.h"
#include "encore/core/random.h"

namespace encore::core {

namespace {

// IDX classes are the labels 0..max: a class without a training example is a stray label (200 among
// labels 0-9 would make 201 classes), refused naming the labels that never occur.
void check_every_class_occurs(const Dataset& train, const std::string& labels_file) {
  const auto counts =
      torch::bincount(train.labels.masked_select(train.labels.ne(kNoLabel)), {}, static_cast<std::int64_t>(train.class_names.size()));
  const auto missing = counts.eq(0).nonzero().flatten();
  if (missing.numel() == 0) return;
  std::vector<std::int64_t> shown(missing.data_ptr<std::int64_t>(),
                                  missing.data_ptr<std::int64_t>() + std::min<std::int64_t>(missing.numel(), 5));
  throw DataError(fmt::format("{}: labels run from 0 to {}, but {} of them never occur ({}{}); every class needs training examples",
                              labels_file, train.class_names.size() - 1, missing.numel(), fmt::join(shown, ", "),
                              missing.numel() > 5 ? ", ..." : ""));
}

// Labels 0..K-1 get the names the config gives, one per class.
void name_classes(Dataset& train, const DataConfig& c) {
  if (c.class_names.empty()) return;
  if (c.class_names.size() != train.class_names.size()) {
    throw DataError(fmt::format("{}: labels 0 to {} make {} classes, and data.class_names names {}", c.train_labels,
                                train.class_names.size() - 1, train.class_names.size(), c.class_names.size()));
  }
  train.class_names = c.class_names;
}

// The test set must be examples of the same shape and classes the model is trained on.
void check_test_fits_training(const Dataset& test, const Dataset& train, const DataConfig& c) {
  const auto& test_file = c.test_examples_file();
  const auto& train_file = c.train_examples_file();
  if (test.example_shape() != train.example_shape()) {
    throw DataError(fmt::format("{}: examples are {}, the training examples of {} are {}", test_file, fmt::join(test.example_shape(), "x"),
                                train_file, fmt::join(train.example_shape(), "x")));
  }
  const auto classes = static_cast<std::int64_t>(train.class_names.size());
  const auto outside = test.labels.ge(classes).nonzero().flatten();
  if (outside.numel() == 0) return;
  const auto row = outside[0].item<std::int64_t>();
  throw DataError(fmt::format("{}: label {} of example {} is not one of the {} training classes ({} test examples have such labels)",
                              c.test_labels_file(), test.labels[row].item<std::int64_t>(), row, classes, outside.numel()));
}

// Folders are limited while listed (the limit keeps every class, and what is left out is never
// decoded); the unlabelled folder comes after the training limit.
void load_image_folders(const DataConfig& c, LoadedData& out) {
  auto options = c.image_folder_options();
  if (c.cache && options.cache_dir.empty())
    out.notes.push_back("no image cache: set data.cache_dir (neither ENCORE_CACHE_DIR, XDG_CACHE_HOME nor HOME is set)");
  options.limit = c.limit_train;
  auto train = load_image_folder(c.train_folder, c.unlabelled_folder, options);
  out.train = std::move(train.data);
  out.notes.insert(out.notes.end(), train.notes.begin(), train.notes.end());
  out.skipped_images = std::move(train.skipped);
  if (!c.has_test()) return;
  options.limit = c.limit_test;
  options.class_names = out.train.class_names;
  auto test = load_image_folder(c.test_folder, {}, options);
  out.test = std::move(test.data);
  out.notes.insert(out.notes.end(), test.notes.begin(), test.notes.end());
  out.skipped_images.insert(out.skipped_images.end(), test.skipped.begin(), test.skipped.end());
}

}  // namespace

ImageFolderOptions DataConfig::image_folder_options() const {
  ImageFolderOptions options;
  options.shape = image;
  options.unreadable = unreadable_images;
  if (cache) options.cache_dir = cache_dir.empty() ? default_image_cache_dir() : std::filesystem::path(cache_dir);
  return options;
}

void check_data_config(const DataConfig& c) {
  if (c.format != "idx" && c.format != "npy" && c.format != "csv" && c.format != "image_folder") {
    throw OptionError("format", fmt::format("must be idx, npy, csv or image_folder, got \"{}\"", c.format));
  }
  if (c.format == "image_folder") {
    if (c.image.channels != 1 && c.image.channels != 3)
      throw OptionError("channels", fmt::format("must be 1 or 3, got {}", c.image.channels));
    if (c.image.height < 1) throw OptionError("height", fmt::format("must be >= 1, got {}", c.image.height));
    if (c.image.width < 1) throw OptionError("width", fmt::format("must be >= 1, got {}", c.image.width));
  }
  if (c.max_decompressed_mib < 1) throw OptionError("max_decompressed_mib", fmt::format("must be >= 1, got {}", c.max_decompressed_mib));
  if (!(c.validation_fraction >= 0 && c.validation_fraction < 1)) {
    throw OptionError("validation_fraction", "must be in [0, 1), got " + describe_value(Json(c.validation_fraction)));
  }
  if (c.labelled_per_class && *c.labelled_per_class < 1) {
    throw OptionError("labelled_per_class", fmt::format("must be >= 1, got {}", *c.labelled_per_class));
  }
  if (c.limit_train && *c.limit_train < 2) throw OptionError("limit_train", fmt::format("must be >= 2, got {}", *c.limit_train));
  for (std::size_t k = 0; k < c.class_names.size(); ++k) {
    if (c.class_names[k].empty()) throw OptionError("class_names", fmt::format("entry {} is empty", k));
    for (std::size_t other = 0; other < k; ++other) {
      if (c.class_names[other] == c.class_names[k]) {
        throw OptionError("class_names", fmt::format("\"{}\" is given twice (entries {} and {})", c.class_names[k], other, k));
      }
    }
  }
  if (!c.class_names.empty() && c.format == "csv") throw OptionError("class_names", "a CSV's classes are its label texts");
  if (!c.class_names.empty() && c.format == "image_folder")
    throw OptionError("class_names", "an image folder's classes are its class folders' names");
  if (c.limit_test && *c.limit_test < 1) throw OptionError("limit_test", fmt::format("must be >= 1, got {}", *c.limit_test));
}

LoadedData load_data(const DataConfig& c) {
  check_data_config(c);
  LoadedData out;
  if (c.format == "idx") {
    IdxLimits limits;
    limits.max_decompressed_bytes = static_cast<std::uint64_t>(c.max_decompressed_mib) << 20;
    out.train = load_idx_dataset(c.train_images, c.train_labels, limits);
    if (c.has_test()) out.test = load_idx_dataset(c.test_images, c.test_labels, limits);
  } else if (c.format == "npy") {
    out.train = load_npy_dataset(c.train_features, c.train_labels);
    if (c.has_test()) out.test = load_npy_dataset(c.test_features, c.test_labels);
  } else if (c.format == "csv") {
    out.train = load_csv_dataset(c.train_csv, c.label_column);
    if (c.has_test()) {
      out.test = load_csv_dataset(c.test_csv, c.label_column, {out.train.class_names, out.train.feature_names}, &out.notes);
    }
  } else {
    load_image_folders(c, out);
  }
  if (c.limit_train && c.format != "image_folder") keep_first(out.train, *c.limit_train);
  if (c.format != "csv") {
    check_every_class_occurs(out.train, c.train_labels_file());
    name_classes(out.train, c);
  }
  if (out.test) {
    if (c.limit_test) keep_first(*out.test, *c.limit_test);
    check_test_fits_training(*out.test, out.train, c);
    // The training set defines the classes (IDX and npy label files imply only their own count,
    // and the test set may lack the top classes).
    out.test->class_names = out.train.class_names;
  }
  return out;
}

DataSplit split_data(const DataConfig& c, const Dataset& train, std::uint64_t seed) {
  check_data_config(c);
  const auto labelled_rows = train.labels.ne(kNoLabel);
  const auto all = labelled_rows.nonzero().flatten();
  const auto without_label = labelled_rows.logical_not().nonzero().flatten();
  DataSplit split;
  auto [training, validation] =
      stratified_split(train.labels, all, c.validation_fraction, stream_seed(seed, RandomStream::kValidationSplit));
  split.validation = validation;
  split.all_training = torch::cat({training, without_label});
  if (c.labelled_per_class) {
    auto [labelled, unlabelled] = stratified_subset(train.labels, training, *c.labelled_per_class, train.class_names,
                                                    stream_seed(seed, RandomStream::kLabelledSubset));
    split.labelled = labelled;
    split.unlabelled = torch::cat({unlabelled, without_label});
  } else {
    split.labelled = training;
    split.unlabelled = without_label;
  }
  return split;
}

}  // namespace encore::core
