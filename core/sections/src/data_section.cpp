#include "encore/core/data_section.h"

#include <torch/torch.h>

#include <filesystem>

#include <fmt/format.h>

#include "encore/core/files.h"

namespace encore::core {

namespace {

std::string file_name(JsonReader& r, const std::string& key, bool required) {
  const std::string file = required ? r.get<std::string>(key) : r.get<std::string>(key, "");
  if (required && file.empty()) r.fail(key, "must name a file");
  return file;
}

// What stands in the way of listing `path` as a folder; empty for a folder (or a link to one).
std::string folder_problem(const std::string& path) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (status.type() == std::filesystem::file_type::not_found) return "does not exist";
  if (error) return error.message();
  return std::filesystem::is_directory(status) ? "" : "is not a folder";
}

std::vector<std::int64_t> to_vector(const torch::Tensor& t) {
  return std::vector<std::int64_t>(t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + t.numel());
}

}  // namespace

DataConfig parse_data_config(JsonReader r) {
  DataConfig c;
  c.format = r.choice("format", {"idx", "npy", "csv", "image_folder"}, c.format);
  if (c.format == "idx") {
    c.train_images = file_name(r, "train_images", true);
    c.train_labels = file_name(r, "train_labels", true);
    c.test_images = file_name(r, "test_images", false);
    c.test_labels = file_name(r, "test_labels", !c.test_images.empty());
    c.max_decompressed_mib = r.get<std::int64_t>("max_decompressed_mib", c.max_decompressed_mib);
  } else if (c.format == "npy") {
    c.train_features = file_name(r, "train_features", true);
    c.train_labels = file_name(r, "train_labels", true);
    c.test_features = file_name(r, "test_features", false);
    c.test_labels = file_name(r, "test_labels", !c.test_features.empty());
  } else if (c.format == "csv") {
    c.train_csv = file_name(r, "train_csv", true);
    c.test_csv = file_name(r, "test_csv", false);
    c.label_column = r.get<std::string>("label_column", c.label_column);
  } else {
    c.train_folder = file_name(r, "train_folder", true);
    c.test_folder = file_name(r, "test_folder", false);
    c.unlabelled_folder = file_name(r, "unlabelled_folder", false);
    c.image.channels = r.get<std::int64_t>("channels", c.image.channels);
    c.image.height = r.get<std::int64_t>("height");
    c.image.width = r.get<std::int64_t>("width");
    c.image.resize = parse_image_resize(r.choice("resize", {"stretch", "center_crop"}, image_resize_name(c.image.resize)));
    c.unreadable_images =
        r.choice("unreadable_images", {"error", "skip"}, "error") == "skip" ? UnreadableImages::kSkip : UnreadableImages::kError;
    c.cache = r.get<bool>("cache", c.cache);
    c.cache_dir = r.get<std::string>("cache_dir", c.cache_dir);
  }
  if (c.format == "idx" || c.format == "npy") c.class_names = r.get<std::vector<std::string>>("class_names", {});
  c.scaling = parse_scaling(r.choice("scaling", {"none", "unit", "standardize"}, scaling_name(c.scaling)));
  c.validation_fraction = r.get<double>("validation_fraction", c.validation_fraction);
  c.labelled_per_class = r.get<std::optional<std::int64_t>>("labelled_per_class", std::nullopt);
  c.limit_train = r.get<std::optional<std::int64_t>>("limit_train", std::nullopt);
  c.limit_test = r.get<std::optional<std::int64_t>>("limit_test", std::nullopt);
  // The ranges are the ones C++ callers get from check_data_config, reported at the key's path.
  try {
    check_data_config(c);
  } catch (const OptionError& e) {
    r.fail(e.option(), e.problem());
  }
  r.finish();
  return c;
}

Json to_json(const DataConfig& c) {
  Json out{{"format", c.format}};
  if (c.format == "idx") {
    out["train_images"] = c.train_images;
    out["train_labels"] = c.train_labels;
    out["test_images"] = c.test_images;
    out["test_labels"] = c.test_labels;
    out["max_decompressed_mib"] = c.max_decompressed_mib;
  } else if (c.format == "npy") {
    out["train_features"] = c.train_features;
    out["train_labels"] = c.train_labels;
    out["test_features"] = c.test_features;
    out["test_labels"] = c.test_labels;
  } else if (c.format == "csv") {
    out["train_csv"] = c.train_csv;
    out["test_csv"] = c.test_csv;
    out["label_column"] = c.label_column;
  } else {
    out["train_folder"] = c.train_folder;
    out["test_folder"] = c.test_folder;
    out["unlabelled_folder"] = c.unlabelled_folder;
    out["channels"] = c.image.channels;
    out["height"] = c.image.height;
    out["width"] = c.image.width;
    out["resize"] = image_resize_name(c.image.resize);
    out["unreadable_images"] = c.unreadable_images == UnreadableImages::kSkip ? "skip" : "error";
    out["cache"] = c.cache;
    out["cache_dir"] = c.cache_dir;
  }
  if (c.format == "idx" || c.format == "npy") out["class_names"] = c.class_names;
  out["scaling"] = scaling_name(c.scaling);
  out["validation_fraction"] = c.validation_fraction;
  out["labelled_per_class"] = c.labelled_per_class ? Json(*c.labelled_per_class) : Json(nullptr);
  out["limit_train"] = c.limit_train ? Json(*c.limit_train) : Json(nullptr);
  out["limit_test"] = c.limit_test ? Json(*c.limit_test) : Json(nullptr);
  return out;
}

std::vector<std::pair<std::string, std::string DataConfig::*>> data_files(const DataConfig& c) {
  std::vector<std::pair<std::string, std::string DataConfig::*>> all;
  if (c.format == "idx") {
    all = {{"train_images", &DataConfig::train_images},
           {"train_labels", &DataConfig::train_labels},
           {"test_images", &DataConfig::test_images},
           {"test_labels", &DataConfig::test_labels}};
  } else if (c.format == "npy") {
    all = {{"train_features", &DataConfig::train_features},
           {"train_labels", &DataConfig::train_labels},
           {"test_features", &DataConfig::test_features},
           {"test_labels", &DataConfig::test_labels}};
  } else if (c.format == "csv") {
    all = {{"train_csv", &DataConfig::train_csv}, {"test_csv", &DataConfig::test_csv}};
  } else {
    all = {{"train_folder", &DataConfig::train_folder},
           {"test_folder", &DataConfig::test_folder},
           {"unlabelled_folder", &DataConfig::unlabelled_folder}};
  }
  std::vector<std::pair<std::string, std::string DataConfig::*>> named;
  for (const auto& entry : all) {
    if (!(c.*entry.second).empty()) named.push_back(entry);
  }
  return named;
}

void resolve_data_paths(DataConfig& c, const std::filesystem::path& base) {
  // A config file named without a directory lies in the current one.
  const auto root = base.empty() ? std::filesystem::current_path() : std::filesystem::absolute(base);
  for (const auto& [key, member] : data_files(c)) {
    auto& file = c.*member;
    if (std::filesystem::path(file).is_relative()) file = (root / file).lexically_normal().string();
  }
  // The image cache folder moves with the config too; it is created when missing, so never checked.
  if (!c.cache_dir.empty() && std::filesystem::path(c.cache_dir).is_relative()) {
    c.cache_dir = (root / c.cache_dir).lexically_normal().string();
  }
}

void check_data_files(const DataConfig& c) {
  for (const auto& [key, member] : data_files(c)) {
    const auto problem = c.format == "image_folder" ? folder_problem(c.*member) : regular_file_problem(c.*member);
    if (!problem.empty()) throw ConfigError("/data/" + key, fmt::format("\"{}\" {}", c.*member, problem));
  }
}

Json to_json(const DataSplit& s, std::uint64_t seed) {
  return Json{{"seed", seed},
              {"sizes", {{"validation", s.validation.size(0)}, {"labelled", s.labelled.size(0)}, {"unlabelled", s.unlabelled.size(0)}}},
              {"validation", to_vector(s.validation)},
              {"labelled", to_vector(s.labelled)},
              {"unlabelled", to_vector(s.unlabelled)}};
}

}  // namespace encore::core
