// Archive check: the ZIP verification every pretrained.pt and model.pt passes before LibTorch parses
// a byte. Any input passes or is a DataError: never a crash, a hang or a read out of bounds (ASan).
// An accepted archive has at least one entry, and no more than central directory entries (46 bytes
// each) fit in the input.
#include <cstdint>
#include <string>
#include <string_view>

#include "encore/core/errors.h"
#include "encore/core/zip_archive.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto summary = encore::core::verify_zip_archive(bytes, "fuzz.pt");
    // Every entry is at least its local header: more entries than that cannot have been checked.
    if (summary.entries == 0 || summary.entries > size / 46) __builtin_trap();
  } catch (const encore::core::DataError&) {
  }
  return 0;
}
