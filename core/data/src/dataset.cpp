#include "encore/core/dataset.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <type_traits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "encore/core/csv.h"
#include "encore/core/errors.h"
#include "encore/core/fields.h"
#include "encore/core/idx.h"
#include "encore/core/npy.h"
#include "encore/core/ops.h"
#include "encore/core/random.h"

namespace encore::core {

namespace {

torch::Dtype torch_dtype(IdxType type) {
  switch (type) {
    case IdxType::kUInt8:
      return torch::kUInt8;
    case IdxType::kInt8:
      return torch::kInt8;
    case IdxType::kInt16:
      return torch::kInt16;
    case IdxType::kInt32:
      return torch::kInt32;
    case IdxType::kFloat32:
      return torch::kFloat32;
    case IdxType::kFloat64:
      return torch::kFloat64;
  }
  return torch::kUInt8;
}

// Wraps the file's bytes without a copy where no byte swap is needed (uint8 images).
torch::Tensor to_tensor(IdxArray array) {
  const auto dtype = torch_dtype(array.type);
  const std::size_t element = idx_element_size(array.type);
  if (element == 1) {
    auto owner = std::make_shared<std::vector<unsigned char>>(std::move(array.bytes));
    void* data = owner->data() + array.data_offset;
    return torch::from_blob(
        data, array.dims, [owner](void*) mutable { owner.reset(); }, torch::TensorOptions(dtype));
  }
  torch::Tensor out = torch::empty(array.dims, torch::TensorOptions(dtype));
  auto* dst = static_cast<unsigned char*>(out.data_ptr());
  const unsigned char* src = array.bytes.data() + array.data_offset;
  const std::int64_t count = array.element_count();
  for (std::int64_t i = 0; i < count; ++i) {
    for (std::size_t b = 0; b < element; ++b) dst[i * element + b] = src[i * element + element - 1 - b];
  }
  return out;
}

}  // namespace

std::int64_t Dataset::feature_dim() const {
  std::int64_t d = 1;
  for (auto s : example_shape()) d *= s;
  return d;
}

std::vector<std::int64_t> Dataset::example_shape() const {
  auto sizes = features.sizes().vec();
  sizes.erase(sizes.begin());
  return sizes;
}

namespace {

// The checks both array formats get: one label per example, integer labels in a supported range.
// Classes are the labels 0..max.
Dataset dataset_of_arrays(torch::Tensor features, torch::Tensor raw_labels, const std::string& features_file,
                          const std::string& labels_file) {
  if (raw_labels.dim() != 1) {
    throw DataError(fmt::format("{}: labels must be one-dimensional, the header gives {} dimensions", labels_file, raw_labels.dim()));
  }
  if (features.dim() < 2) {
    throw DataError(
        fmt::format("{}: examples need at least 2 dimensions (count, features...), the header gives {}", features_file, features.dim()));
  }
  if (features.size(0) != raw_labels.size(0)) {
    throw DataError(
        fmt::format("{} holds {} examples but {} holds {} labels", features_file, features.size(0), labels_file, raw_labels.size(0)));
  }
  if (raw_labels.is_floating_point()) throw DataError(fmt::format("{}: labels must be integers", labels_file));
  if (features.size(0) == 0) throw DataError(fmt::format("{}: holds no examples", features_file));
  if (features[0].numel() == 0) {
    throw DataError(fmt::format("{}: examples of shape {} hold no features", features_file, fmt::join(features.sizes().slice(1), " x ")));
  }
  Dataset data;
  data.labels = raw_labels.to(torch::kInt64);
  const auto low = data.labels.min().item<std::int64_t>();
  const auto high = data.labels.max().item<std::int64_t>();
  if (low < 0) {
    const auto row = data.labels.lt(0).nonzero()[0][0].item<std::int64_t>();
    throw DataError(fmt::format("{}: label {} of example {} is negative", labels_file, data.labels[row].item<std::int64_t>(), row));
  }
  constexpr std::int64_t kMaxClasses = 100000;
  if (high >= kMaxClasses)
    throw DataError(fmt::format("{}: label {} is more than the {} classes supported", labels_file, high, kMaxClasses));
  for (std::int64_t c = 0; c <= high; ++c) data.class_names.push_back(std::to_string(c));
  data.features = std::move(features);
  return data;
}

torch::Dtype torch_dtype(NpyType type) {
  switch (type) {
    case NpyType::kUInt8:
      return torch::kUInt8;
    case NpyType::kInt8:
      return torch::kInt8;
    case NpyType::kInt16:
      return torch::kInt16;
    case NpyType::kInt32:
      return torch::kInt32;
    case NpyType::kInt64:
    case NpyType::kUInt16:
    case NpyType::kUInt32:
    case NpyType::kUInt64:
      break;
    case NpyType::kFloat32:
      return torch::kFloat32;
    case NpyType::kFloat64:
      return torch::kFloat64;
  }
  return torch::kInt64;
}

// An array's elements as a tensor of its type (unsigned types above 8 bits widened to int64, a
// uint64 above int64's range refused). The file's bytes are little-endian, as this machine's.
torch::Tensor to_tensor(const NpyArray& array, const std::string& file) {
  const auto count = array.element_count();
  const char* data = array.bytes.data() + array.data_offset;
  const auto copy_as = [&](auto sample) {
    using Element = decltype(sample);
    torch::Tensor out = torch::empty(array.shape, torch::kInt64);
    auto* dst = out.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < count; ++i) {
      Element value;
      std::memcpy(&value, data + i * sizeof(Element), sizeof(Element));
      if constexpr (std::is_same_v<Element, std::uint64_t>) {
        if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          throw DataError(fmt::format("{}: element {} ({}) is out of range", file, i, value));
        }
      }
      dst[i] = static_cast<std::int64_t>(value);
    }
    return out;
  };
  switch (array.type) {
    case NpyType::kUInt16:
      return copy_as(std::uint16_t{});
    case NpyType::kUInt32:
      return copy_as(std::uint32_t{});
    case NpyType::kUInt64:
      return copy_as(std::uint64_t{});
    default:
      break;
  }
  torch::Tensor out = torch::empty(array.shape, torch_dtype(array.type));
  std::memcpy(out.data_ptr(), data, static_cast<std::size_t>(count) * npy_element_size(array.type));
  return out;
}

}  // namespace

Dataset load_idx_dataset(const std::string& images_file, const std::string& labels_file, const IdxLimits& limits) {
  return dataset_of_arrays(to_tensor(read_idx_file(images_file, limits)), to_tensor(read_idx_file(labels_file, limits)), images_file,
                           labels_file);
}

Dataset load_npy_dataset(const std::string& features_file, const std::string& labels_file) {
  const auto features = read_npy_file(features_file);
  if (features.type != NpyType::kUInt8 && features.type != NpyType::kFloat32 && features.type != NpyType::kFloat64) {
    throw DataError(
        fmt::format("{}: features are {}; encore reads uint8, float32 or float64", features_file, npy_type_name(features.type)));
  }
  const auto labels = read_npy_file(labels_file);
  if (!npy_is_integer(labels.type)) {
    throw DataError(fmt::format("{}: labels are {}; they must be integers", labels_file, npy_type_name(labels.type)));
  }
  auto tensor = to_tensor(features, features_file);
  if (tensor.scalar_type() == torch::kFloat64) tensor = tensor.to(torch::kFloat32);
  if (tensor.is_floating_point() && !torch::isfinite(tensor).all().item<bool>()) {
    const auto first = torch::isfinite(tensor.reshape({tensor.size(0), -1})).all(1).logical_not().nonzero()[0][0].item<std::int64_t>();
    throw DataError(fmt::format("{}: example {} holds a NaN or infinite value", features_file, first));
  }
  return dataset_of_arrays(std::move(tensor), to_tensor(labels, labels_file), features_file, labels_file);
}

void keep_first(Dataset& data, std::int64_t count) {
  if (count >= data.size()) return;
  data.features = data.features.narrow(0, 0, count);
  data.labels = data.labels.narrow(0, 0, count);
}

Dataset load_csv_dataset(const std::string& file, const std::string& label_column, const DataSchema& schema,
                         std::vector<std::string>* notes) {
  CsvOptions options;
  options.label_column = label_column;
  options.feature_columns = schema.feature_names;
  CsvTable table = read_csv_file(file, options);
  if (notes && !table.ignored_columns.empty()) notes->push_back(ignored_columns_note(file, table.ignored_columns));
  Dataset data;
  data.feature_names = table.feature_names;
  data.class_names = schema.class_names;
  if (data.class_names.empty()) {
    std::set<std::string> distinct(table.labels.begin(), table.labels.end());
    data.class_names.assign(distinct.begin(), distinct.end());
    const bool all_integers = std::all_of(data.class_names.begin(), data.class_names.end(), [](const std::string& s) {
      return !s.empty() && s.find_first_not_of("-0123456789") == std::string::npos && s.size() < 18;
    });
    if (all_integers) {
      std::sort(data.class_names.begin(), data.class_names.end(),
                [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
    }
  }
  std::map<std::string, std::int64_t> index_of;
  for (std::size_t i = 0; i < data.class_names.size(); ++i) index_of[data.class_names[i]] = static_cast<std::int64_t>(i);
  auto labels = torch::empty({static_cast<std::int64_t>(table.rows)}, torch::kInt64);
  auto* out = labels.data_ptr<std::int64_t>();
  for (std::size_t r = 0; r < table.rows; ++r) {
    auto it = index_of.find(table.labels[r]);
    if (it == index_of.end()) {
      // Row numbers are 1-based with the header as row 1.
      throw DataError(fmt::format("{}: row {}: label \"{}\" is not one of the training classes", file, r + 2, table.labels[r]));
    }
    out[r] = it->second;
  }
  const auto width = static_cast<std::int64_t>(table.feature_names.size());
  auto features = torch::from_blob(table.features.data(), {static_cast<std::int64_t>(table.rows), width}, torch::kFloat32).clone();
  data.features = features;
  data.labels = labels;
  return data;
}

Scaling parse_scaling(const std::string& name) {
  if (name == "none") return Scaling::kNone;
  if (name == "unit") return Scaling::kUnit;
  if (name == "standardize") return Scaling::kStandardize;
  throw std::invalid_argument("unknown scaling \"" + name + "\"");
}

std::string scaling_name(Scaling scaling) {
  switch (scaling) {
    case Scaling::kNone:
      return "none";
    case Scaling::kUnit:
      return "unit";
    case Scaling::kStandardize:
      return "standardize";
  }
  return "none";
}

Scaler Scaler::fit(Scaling scaling, const Dataset& data, const torch::Tensor& indices) {
  const auto d = data.feature_dim();
  auto offset = torch::zeros({d});
  auto multiplier = torch::ones({d});
  if (scaling == Scaling::kNone) return Scaler(offset, multiplier);
  if (scaling == Scaling::kUnit && data.features.scalar_type() == torch::kUInt8) {
    return Scaler(offset, torch::full({d}, 1.0 / 255.0));
  }
  // Statistics in double: a float sum over 60,000 rows loses digits.
  const auto rows = data.features.index_select(0, indices).reshape({indices.size(0), d}).to(torch::kFloat64);
  if (scaling == Scaling::kUnit) {
    const auto low = std::get<0>(rows.min(0));
    const auto range = std::get<0>(rows.max(0)) - low;
    // A constant feature maps to 0 rather than dividing by zero.
    multiplier = torch::where(range > 0, 1.0 / range, torch::ones_like(range));
    return Scaler(low.to(torch::kFloat32), multiplier.to(torch::kFloat32));
  }
  const auto mean = rows.mean(0);
  const auto stddev = rows.std(0, /*unbiased=*/false);
  multiplier = torch::where(stddev > 1e-12, 1.0 / stddev, torch::ones_like(stddev));
  return Scaler(mean.to(torch::kFloat32), multiplier.to(torch::kFloat32));
}

Scaler Scaler::from_tensors(torch::Tensor offset, torch::Tensor multiplier) {
  TORCH_CHECK(offset.dim() == 1 && offset.sizes() == multiplier.sizes(), "a scaler needs two equal-length vectors, got ", offset.sizes(),
              " and ", multiplier.sizes());
  return Scaler(offset.to(torch::kFloat32), multiplier.to(torch::kFloat32));
}

torch::Tensor Scaler::apply(const torch::Tensor& raw) const {
  auto flat = raw.reshape({raw.size(0), -1}).to(torch::kFloat32);
  return (flat - offset_) * multiplier_;
}

torch::Tensor Scaler::gather(const torch::Tensor& features, const torch::Tensor& rows) const {
  if (auto fast = gather_scaled_rows(features, rows, offset_, multiplier_)) return *fast;
  return apply(features.index_select(0, rows));
}

namespace {

// Row indices of each class, in a seeded random order.
std::vector<std::vector<std::int64_t>> shuffled_by_class(const torch::Tensor& labels, const torch::Tensor& indices, std::uint64_t seed) {
  auto generator = seeded_generator(seed, kClassShuffle);
  const auto order = indices.index_select(0, torch::randperm(indices.size(0), generator, torch::kInt64));
  const auto classes = labels.index_select(0, order);
  const auto* idx = order.data_ptr<std::int64_t>();
  const auto* cls = classes.data_ptr<std::int64_t>();
  std::vector<std::vector<std::int64_t>> by_class;
  for (std::int64_t i = 0; i < order.size(0); ++i) {
    if (static_cast<std::size_t>(cls[i]) >= by_class.size()) by_class.resize(cls[i] + 1);
    by_class[cls[i]].push_back(idx[i]);
  }
  return by_class;
}

torch::Tensor sorted_tensor(std::vector<std::int64_t> values) {
  std::sort(values.begin(), values.end());
  return torch::tensor(values, torch::kInt64);
}

}  // namespace

IndexSplit stratified_split(const torch::Tensor& labels, const torch::Tensor& indices, double fraction, std::uint64_t seed) {
  std::vector<std::int64_t> first, second;
  for (const auto& members : shuffled_by_class(labels, indices, seed)) {
    const auto take = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(members.size())));
    second.insert(second.end(), members.begin(), members.begin() + take);
    first.insert(first.end(), members.begin() + take, members.end());
  }
  return {sorted_tensor(first), sorted_tensor(second)};
}

IndexSplit stratified_subset(const torch::Tensor& labels, const torch::Tensor& indices, std::int64_t per_class,
                             const std::vector<std::string>& class_names, std::uint64_t seed) {
  std::vector<std::int64_t> first, second;
  const auto by_class = shuffled_by_class(labels, indices, seed);
  for (std::size_t c = 0; c < class_names.size(); ++c) {
    const std::size_t available = c < by_class.size() ? by_class[c].size() : 0;
    if (available < static_cast<std::size_t>(per_class)) {
      throw DataError(fmt::format("class \"{}\" has {} training examples outside the validation split, fewer than labelled_per_class = {}",
                                  class_names[c], available, per_class));
    }
    const auto& members = by_class[c];
    first.insert(first.end(), members.begin(), members.begin() + per_class);
    second.insert(second.end(), members.begin() + per_class, members.end());
  }
  return {sorted_tensor(first), sorted_tensor(second)};
}

Batch to_device(Batch batch, torch::Device device) {
  if (device == batch.inputs.device()) return batch;
  const auto copy = [&](const torch::Tensor& t) {
    return device.is_cuda() ? t.pin_memory().to(device, /*non_blocking=*/true) : t.to(device);
  };
  batch.inputs = copy(batch.inputs);
  if (batch.labels.defined()) batch.labels = copy(batch.labels);
  if (batch.unlabelled.defined()) batch.unlabelled = copy(batch.unlabelled);
  return batch;
}

BatchSource::BatchSource(const Dataset& data, torch::Tensor indices, Scaler scaler, std::int64_t batch_size, bool shuffle,
                         std::uint64_t seed)
    : data_(&data), indices_(std::move(indices)), scaler_(std::move(scaler)), batch_size_(batch_size), shuffle_(shuffle), seed_(seed) {
  if (batch_size_ < 1) throw OptionError("batch_size", fmt::format("must be >= 1, got {}", batch_size_));
  if (indices_.size(0) == 0) throw std::invalid_argument("cannot make batches from an empty set of examples");
}

torch::Tensor BatchSource::epoch_order(std::int64_t epoch) const {
  if (!shuffle_) return indices_;
  auto generator = seeded_generator(seed_, kEpochOrder + static_cast<std::uint64_t>(epoch));
  return indices_.index_select(0, torch::randperm(size(), generator, torch::kInt64));
}

Batch BatchSource::batch(const torch::Tensor& order, std::int64_t position) const {
  const auto start = position * batch_size_;
  TORCH_CHECK(start < size(), "batch position ", position, " is past the end of the epoch");
  return rows(order.narrow(0, start, std::min(batch_size_, size() - start)));
}

BatchSource BatchSource::with_labelled(BatchSource labelled) const {
  TORCH_CHECK(!labelled.semi_supervised(), "the labelled rows of a semi-supervised source cannot themselves be semi-supervised");
  BatchSource out = *this;
  out.labelled_ = std::make_shared<const BatchSource>(std::move(labelled));
  return out;
}

Batch BatchSource::labelled_rows(std::int64_t step) const {
  TORCH_CHECK(labelled_, "labelled_rows needs a semi-supervised source (with_labelled)");
  TORCH_CHECK(step >= 0, "step must be >= 0, got ", step);
  const auto rows = labelled_->size();
  const auto wanted = labelled_->batch_size();
  std::vector<torch::Tensor> parts;
  // The stream's rows [first, first + wanted): the tail of one epoch's order, whole epochs when the
  // batch is larger than the labelled set, and the head of the next.
  for (std::int64_t first = step * wanted, left = wanted; left > 0;) {
    const auto epoch = first / rows;
    const auto offset = first % rows;
    const auto take = std::min(left, rows - offset);
    parts.push_back(labelled_->epoch_order(epoch).narrow(0, offset, take));
    first += take;
    left -= take;
  }
  return labelled_->rows(parts.size() == 1 ? parts.front() : torch::cat(parts));
}

Batch BatchSource::rows(const torch::Tensor& row_indices) const {
  Batch out;
  out.inputs = scaler_.gather(data_->features, row_indices);
  if (data_->labels.defined()) out.labels = data_->labels.index_select(0, row_indices);
  return out;
}

}  // namespace encore::core
