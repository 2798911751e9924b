// Image decoding: raw bytes through decode_image at two shapes (colour stretched, grey centre-cropped);
// an image it accepts must come out as exactly channels x height x width bytes.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "encore/core/errors.h"
#include "encore/core/image_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  for (const auto& shape : {encore::core::ImageShape{3, 8, 8, encore::core::ImageResize::kStretch},
                            encore::core::ImageShape{1, 5, 7, encore::core::ImageResize::kCenterCrop}}) {
    try {
      if (static_cast<std::int64_t>(encore::core::decode_image(bytes, "fuzz", shape).size()) != shape.bytes()) std::abort();
    } catch (const encore::core::DataError&) {
    }
  }
  return 0;
}
