// Checkpoint reader: the sealed-file check that runs before LibTorch sees a byte. Inputs that pass
// it must have been sealed by seal(); everything else is rejected with a DataError.
#include <cstdint>
#include <string>
#include <string_view>

#include "encore/core/errors.h"
#include "encore/core/sealed_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto payload = encore::core::unseal(bytes, "fuzz.pt");
    // Only a faithful seal gets through: sealing the payload again must give the input back.
    if (encore::core::seal(payload) != bytes) __builtin_trap();
  } catch (const encore::core::DataError&) {
  }
  return 0;
}
