// .npy reader: raw bytes through parse_npy; an array it accepts must hold exactly the bytes its
// header promises, and write back (npy_bytes) to a file that parses to the same type, shape and data.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "encore/core/errors.h"
#include "encore/core/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto array = encore::core::parse_npy(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    const auto payload = static_cast<std::size_t>(array.element_count()) * encore::core::npy_element_size(array.type);
    if (array.data_offset + payload != array.bytes.size()) std::abort();
    const auto again =
        encore::core::parse_npy(encore::core::npy_bytes(array.type, array.shape, array.bytes.data() + array.data_offset), "again");
    if (again.type != array.type || again.shape != array.shape ||
        again.bytes.compare(again.data_offset, std::string::npos, array.bytes, array.data_offset, std::string::npos) != 0) {
      std::abort();
    }
  } catch (const encore::core::DataError&) {
  }
  return 0;
}
