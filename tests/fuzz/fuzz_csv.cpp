// CSV reader: any text, with and without a required label column. A file that parses is parsed
// again with its feature columns requested by name in reverse order, which must give the same
// values with the columns reversed; requesting a column the header lacks must be an error.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "encore/core/csv.h"
#include "encore/core/errors.h"

namespace {

void check_matching_by_name(const std::string& text, encore::core::CsvOptions options, const encore::core::CsvTable& table) {
  const auto width = table.feature_names.size();
  options.feature_columns.assign(table.feature_names.rbegin(), table.feature_names.rend());
  const auto reversed = encore::core::parse_csv(text, "fuzz.csv", options);
  if (reversed.rows != table.rows || !reversed.ignored_columns.empty() || reversed.labels != table.labels) __builtin_trap();
  for (std::size_t r = 0; r < table.rows; ++r) {
    for (std::size_t c = 0; c < width; ++c) {
      if (std::memcmp(&reversed.features[r * width + c], &table.features[r * width + width - 1 - c], sizeof(float)) != 0) __builtin_trap();
    }
  }
  const std::string absent = "\x01 not a column of this header";
  if (std::find(table.feature_names.begin(), table.feature_names.end(), absent) != table.feature_names.end()) return;
  options.feature_columns.push_back(absent);
  try {
    encore::core::parse_csv(text, "fuzz.csv", options);
    __builtin_trap();
  } catch (const encore::core::DataError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const bool label_required : {true, false}) {
    encore::core::CsvOptions options;
    options.label_required = label_required;
    try {
      const auto table = encore::core::parse_csv(text, "fuzz.csv", options);
      check_matching_by_name(text, options, table);
    } catch (const encore::core::DataError&) {
    }
  }
  return 0;
}
