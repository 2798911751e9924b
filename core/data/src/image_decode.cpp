#include "encore/core/image_decode.h"

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "encore/core/errors.h"

namespace encore::core {

namespace {

// Decoding allocates width x height x 4 bytes before resizing; a header may promise anything.
constexpr std::int64_t kMaxImagePixels = std::int64_t{100} << 20;

bool starts_with(const std::string& bytes, std::string_view prefix) { return bytes.compare(0, prefix.size(), prefix) == 0; }

// A JPEG's last scan ends with the end-of-image marker FF D9; entropy-coded data never holds FF D9
// (an FF there is followed by 00), and a thumbnail's markers come before the main scan's FF DA.
bool jpeg_is_complete(const std::string& bytes) {
  const auto last_scan = bytes.rfind("\xFF\xDA");
  return last_scan != std::string::npos && bytes.find("\xFF\xD9", last_scan + 2) != std::string::npos;
}

std::uint32_t little_endian_u32(const std::string& bytes, std::size_t offset) {
  std::uint32_t value = 0;
  for (int k = 3; k >= 0; --k) value = (value << 8) | static_cast<unsigned char>(bytes[offset + k]);
  return value;
}

std::uint32_t big_endian_u32(const std::string& bytes, std::size_t offset) {
  std::uint32_t value = 0;
  for (int k = 0; k < 4; ++k) value = (value << 8) | static_cast<unsigned char>(bytes[offset + k]);
  return value;
}

void check_pixel_count(std::int64_t width, std::int64_t height, const std::string& source) {
  if (width * height > kMaxImagePixels) {
    throw DataError(fmt::format("{}: {} x {} pixels; images over {} megapixels are refused", source, width, height, kMaxImagePixels >> 20));
  }
}

// stb decodes a truncated file by inventing the missing bytes; each container says where it ends.
void check_container(const std::string& bytes, const std::string& source) {
  if (starts_with(bytes, "\x89PNG\r\n\x1A\n")) {
    if (bytes.rfind("IEND") == std::string::npos) throw DataError(source + ": truncated PNG: the file ends before its IEND chunk");
    // stb refuses a PNG past its own size limit as "unknown image type", hiding the reason: the
    // first chunk (IHDR) gives the size, so the limit is checked here first.
    if (bytes.size() >= 24 && bytes.compare(12, 4, "IHDR") == 0)
      check_pixel_count(big_endian_u32(bytes, 16), big_endian_u32(bytes, 20), source);
  } else if (starts_with(bytes, "\xFF\xD8\xFF")) {
    if (!jpeg_is_complete(bytes)) throw DataError(source + ": truncated JPEG: the image data ends without the end-of-image marker");
  } else if (starts_with(bytes, "BM") && bytes.size() >= 14) {
    const auto declared = little_endian_u32(bytes, 2);
    if (declared > bytes.size()) {
      throw DataError(fmt::format("{}: truncated BMP: the header says {} bytes, the file has {}", source, declared, bytes.size()));
    }
  } else {
    std::string shown;
    for (const char c : bytes.substr(0, 8)) shown += std::isprint(static_cast<unsigned char>(c)) ? c : '.';
    throw DataError(fmt::format("{}: not a PNG, JPEG or BMP image (it starts with \"{}\")", source, shown));
  }
}

// The part of a width x height image that becomes the output: all of it, or its centre with the
// output's aspect ratio.
struct SourceRegion {
  int left = 0, top = 0, width = 0, height = 0;
};

SourceRegion source_region(int width, int height, const ImageShape& shape) {
  if (shape.resize == ImageResize::kStretch) return {0, 0, width, height};
  // Compare width/height with shape.width/shape.height without rounding.
  SourceRegion region{0, 0, width, height};
  if (static_cast<std::int64_t>(width) * shape.height > static_cast<std::int64_t>(height) * shape.width) {
    region.width = std::max<int>(1, static_cast<int>(std::llround(static_cast<double>(height) * shape.width / shape.height)));
    region.left = (width - region.width) / 2;
  } else {
    region.height = std::max<int>(1, static_cast<int>(std::llround(static_cast<double>(width) * shape.height / shape.width)));
    region.top = (height - region.height) / 2;
  }
  return region;
}

}  // namespace

ImageResize parse_image_resize(const std::string& name) {
  if (name == "stretch") return ImageResize::kStretch;
  if (name == "center_crop") return ImageResize::kCenterCrop;
  throw std::invalid_argument("unknown image resize \"" + name + "\" (stretch or center_crop)");
}

std::string image_resize_name(ImageResize resize) { return resize == ImageResize::kStretch ? "stretch" : "center_crop"; }

std::vector<std::uint8_t> decode_image(const std::string& bytes, const std::string& source, const ImageShape& shape) {
  check_container(bytes, source);
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int length = static_cast<int>(bytes.size());
  int width = 0, height = 0, stored_channels = 0;
  if (!stbi_info_from_memory(data, length, &width, &height, &stored_channels)) {
    throw DataError(fmt::format("{}: cannot decode: {}", source, stbi_failure_reason()));
  }
  check_pixel_count(width, height, source);
  const int channels = static_cast<int>(shape.channels);
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load_from_memory(data, length, &width, &height, &stored_channels, channels),
                                                   stbi_image_free);
  if (!pixels) throw DataError(fmt::format("{}: cannot decode: {}", source, stbi_failure_reason()));
  const auto region = source_region(width, height, shape);
  const auto* first = pixels.get() + (static_cast<std::size_t>(region.top) * width + region.left) * channels;
  const int stride = width * channels;
  std::vector<std::uint8_t> interleaved(static_cast<std::size_t>(shape.bytes()));
  const int out_width = static_cast<int>(shape.width), out_height = static_cast<int>(shape.height);
  if (region.width == out_width && region.height == out_height) {
    for (int row = 0; row < out_height; ++row) {
      std::memcpy(interleaved.data() + static_cast<std::size_t>(row) * out_width * channels, first + static_cast<std::size_t>(row) * stride,
                  static_cast<std::size_t>(out_width) * channels);
    }
  } else if (!stbir_resize_uint8(first, region.width, region.height, stride, interleaved.data(), out_width, out_height, 0, channels)) {
    throw DataError(fmt::format("{}: cannot resize {} x {} to {} x {}", source, region.width, region.height, out_width, out_height));
  }
  // stb gives pixels with their colours together; rows of the models hold one channel after another.
  std::vector<std::uint8_t> planar(interleaved.size());
  const std::size_t plane = static_cast<std::size_t>(out_width) * out_height;
  for (std::size_t pixel = 0; pixel < plane; ++pixel) {
    for (int c = 0; c < channels; ++c) planar[c * plane + pixel] = interleaved[pixel * channels + c];
  }
  return planar;
}

}  // namespace encore::core
