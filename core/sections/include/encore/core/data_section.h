#pragma once
/// The `data` section of a config, read into DataConfig and written back; the split as split.json.

#include <cstdint>

#include "encore/core/config.h"
#include "encore/core/data_config.h"

namespace encore::core {

/// Reads the section. File names are checked for existence with the JSON path in the error.
DataConfig parse_data_config(JsonReader reader);
Json to_json(const DataConfig& config);

/// The split as JSON for split.json: seed, sizes and the indices of each part.
Json to_json(const DataSplit& split, std::uint64_t seed);

}  // namespace encore::core
