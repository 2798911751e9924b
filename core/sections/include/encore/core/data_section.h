#pragma once
/// The `data` section of a config, read into DataConfig and written back; the split as split.json.

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "encore/core/config.h"
#include "encore/core/data_config.h"

namespace encore::core {

/// Reads the section. The files it names are not looked at (check_data_files does that): a model's
/// embedded config names the files it was trained on, which need not exist where it is used.
DataConfig parse_data_config(JsonReader reader);
/// The resolved `data` section.
Json to_json(const DataConfig& config);

/// The data files (and an image_folder's folders) a config names, by key
/// ("train_images", ...) and member; the empty ones are left out.
std::vector<std::pair<std::string, std::string DataConfig::*>> data_files(const DataConfig& config);

/// Makes relative data file names (and an image cache folder) absolute against `base` (a config
/// file's directory, so that a config and its data move together).
void resolve_data_paths(DataConfig& config, const std::filesystem::path& base);

/// A ConfigError at `/data/KEY` for the first named file that is not a readable regular file (an
/// image_folder's folders: not a folder), saying what it is instead (missing, a directory, a FIFO, ...).
void check_data_files(const DataConfig& config);

/// The split as JSON for split.json: seed, sizes and the indices of each part.
Json to_json(const DataSplit& split, std::uint64_t seed);

}  // namespace encore::core
