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
  const auto counts = torch::bincount(train.labels, {}, static_cast<std::int64_t>(train.class_names.size()));
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

}  // namespace

void check_data_config(const DataConfig& c) {
  if (c.format != "idx" && c.format != "npy" && c.format != "csv") {
    throw OptionError("format", fmt::format("must be idx, npy or csv, got \"{}\"", c.format));
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
  } else {
    out.train = load_csv_dataset(c.train_csv, c.label_column);
    if (c.has_test()) {
      out.test = load_csv_dataset(c.test_csv, c.label_column, {out.train.class_names, out.train.feature_names}, &out.notes);
    }
  }
  if (c.limit_train) keep_first(out.train, *c.limit_train);
  if (c.format != "csv") {
    check_every_class_occurs(out.train, c.train_labels);
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
  const auto all = torch::arange(train.size(), torch::kInt64);
  DataSplit split;
  auto [training, validation] =
      stratified_split(train.labels, all, c.validation_fraction, stream_seed(seed, RandomStream::kValidationSplit));
  split.validation = validation;
  split.all_training = training;
  if (c.labelled_per_class) {
    auto [labelled, unlabelled] = stratified_subset(train.labels, training, *c.labelled_per_class, train.class_names,
                                                    stream_seed(seed, RandomStream::kLabelledSubset));
    split.labelled = labelled;
    split.unlabelled = unlabelled;
  } else {
    split.labelled = training;
    split.unlabelled = torch::empty({0}, torch::kInt64);
  }
  return split;
}

}  // namespace encore::core
