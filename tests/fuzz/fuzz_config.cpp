// Config text: parsing with the size and depth limits, then validation of what a training section
// reads (types, ranges, choices, unknown keys) and a --set override.
#include <cstdint>
#include <string>

#include "encore/core/config.h"

namespace core = encore::core;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    core::Json json = core::parse_json_text(text, "fuzz.json");
    if (!json.is_object()) return 0;
    core::JsonReader reader(json);
    reader.get<std::int64_t>("epochs", 10, core::at_least(std::int64_t{0}));
    reader.get<double>("lr", 1e-3, core::greater_than(0.0));
    reader.get<std::vector<double>>("betas", {0.9, 0.999});
    reader.choice("mode", {"greedy", "end_to_end"}, "greedy");
    if (auto nested = reader.optional_object("schedule")) {
      nested->get<std::string>("type", "constant");
      nested->finish();
    }
    if (reader.has("phases")) {
      for (auto& phase : reader.array("phases")) phase.get<std::string>("name", "");
    }
    reader.finish();
  } catch (const core::ConfigError&) {
  }
  try {
    core::Json json = core::Json::object();
    json["a"] = core::Json::object();
    core::apply_override(json, text);
  } catch (const core::ConfigError&) {
  }
  return 0;
}
