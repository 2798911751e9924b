#pragma once
/// The JSON type of encore's configs and files (metrics.jsonl, summary.json): objects keep the key
/// order they were written in, so a resolved config reads like its source.

#include <nlohmann/json.hpp>

namespace encore::core {

/// JSON values keep the order their keys were written in, so resolved configs read like the files.
using Json = nlohmann::ordered_json;

}  // namespace encore::core
