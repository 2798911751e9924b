#include "encore/core/data_config.h"

#include <torch/torch.h>

#include "encore/core/random.h"

namespace encore::core {

namespace {

void limit(Dataset& data, const std::optional<std::int64_t>& count) {
  if (!count || *count >= data.size()) return;
  data.features = data.features.narrow(0, 0, *count);
  data.labels = data.labels.narrow(0, 0, *count);
}

}  // namespace

LoadedData load_data(const DataConfig& c) {
  LoadedData out;
  if (c.format == "idx") {
    IdxLimits limits;
    limits.max_decompressed_bytes = static_cast<std::uint64_t>(c.max_decompressed_mib) << 20;
    out.train = load_idx_dataset(c.train_images, c.train_labels, limits);
    if (c.has_test()) out.test = load_idx_dataset(c.test_images, c.test_labels, limits);
  } else {
    out.train = load_csv_dataset(c.train_csv, c.label_column);
    if (c.has_test()) out.test = load_csv_dataset(c.test_csv, c.label_column, out.train.class_names);
  }
  limit(out.train, c.limit_train);
  if (out.test) {
    limit(*out.test, c.limit_test);
    if (out.test->example_shape() != out.train.example_shape()) {
      throw std::runtime_error("test examples have a different shape from training examples");
    }
    // IDX label files imply their class count; the test set may lack the top classes.
    if (out.test->class_names.size() < out.train.class_names.size()) out.test->class_names = out.train.class_names;
  }
  return out;
}

DataSplit split_data(const DataConfig& c, const Dataset& train, std::uint64_t seed) {
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
