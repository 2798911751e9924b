// CSV reader: any text, with and without a required label column.
#include <cstdint>
#include <string>

#include "encore/core/csv.h"
#include "encore/core/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const bool label_required : {true, false}) {
    encore::core::CsvOptions options;
    options.label_required = label_required;
    try {
      encore::core::parse_csv(text, "fuzz.csv", options);
    } catch (const encore::core::DataError&) {
    }
  }
  return 0;
}
