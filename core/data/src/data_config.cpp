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

// The test set must be examples of the same shape and classes the model is trained on.
void check_test_fits_training(const Dataset& test, const Dataset& train, const DataConfig& c) {
  const auto& test_file = c.format == "idx" ? c.test_images : c.test_csv;
  const auto& train_file = c.format == "idx" ? c.train_images : c.train_csv;
  if (test.example_shape() != train.example_shape()) {
    throw DataError(fmt::format("{}: examples are {}, the training examples of {} are {}", test_file, fmt::join(test.example_shape(), "x"),
                                train_file, fmt::join(train.example_shape(), "x")));
  }
  const auto classes = static_cast<std::int64_t>(train.class_names.size());
  const auto outside = test.labels.ge(classes).nonzero().flatten();
  if (outside.numel() == 0) return;
  const auto row = outside[0].item<std::int64_t>();
  throw DataError(fmt::format("{}: label {} of example {} is not one of the {} training classes ({} test examples have such labels)",
                              c.format == "idx" ? c.test_labels : c.test_csv, test.labels[row].item<std::int64_t>(), row, classes,
                              outside.numel()));
}

}  // namespace

void check_data_config(const DataConfig& c) {
  if (c.format != "idx" && c.format != "csv") throw OptionError("format", fmt::format("must be idx or csv, got \"{}\"", c.format));
  if (c.max_decompressed_mib < 1) throw OptionError("max_decompressed_mib", fmt::format("must be >= 1, got {}", c.max_decompressed_mib));
  if (!(c.validation_fraction >= 0 && c.validation_fraction < 1)) {
    throw OptionError("validation_fraction", "must be in [0, 1), got " + describe_value(Json(c.validation_fraction)));
  }
  if (c.labelled_per_class && *c.labelled_per_class < 1) {
    throw OptionError("labelled_per_class", fmt::format("must be >= 1, got {}", *c.labelled_per_class));
  }
  if (c.limit_train && *c.limit_train < 2) throw OptionError("limit_train", fmt::format("must be >= 2, got {}", *c.limit_train));
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
  } else {
    out.train = load_csv_dataset(c.train_csv, c.label_column);
    if (c.has_test()) {
      out.test = load_csv_dataset(c.test_csv, c.label_column, {out.train.class_names, out.train.feature_names}, &out.notes);
    }
  }
  if (c.limit_train) keep_first(out.train, *c.limit_train);
  if (c.format == "idx") check_every_class_occurs(out.train, c.train_labels);
  if (out.test) {
    if (c.limit_test) keep_first(*out.test, *c.limit_test);
    check_test_fits_training(*out.test, out.train, c);
    // IDX label files imply their class count; the test set may lack the top classes.
    if (out.test->class_names.size() < out.train.class_names.size()) out.test->class_names = out.train.class_names;
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
