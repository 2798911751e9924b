#pragma once
/// Image files (PNG, JPEG, BMP) decoded with stb to one shape, channels one after another.
/// LibTorch-free, so that it can be fuzzed on its own.

#include <cstdint>
#include <string>
#include <vector>

namespace encore::core {

/// How an image of another shape is brought to the configured height and width.
enum class ImageResize {
  /// Scaled to exactly height x width: the aspect ratio changes with the shape.
  kStretch,
  /// Scaled, keeping the aspect ratio, until it covers height x width, then cut to it around the
  /// centre: nothing is distorted, the overhanging border is lost.
  kCenterCrop,
};

/// The ImageResize of a config name ("stretch", "center_crop").
ImageResize parse_image_resize(const std::string& name);
/// The config name of an ImageResize.
std::string image_resize_name(ImageResize resize);

/// What every decoded image becomes.
struct ImageShape {
  /// 1: grey (colour images are converted to luminance); 3: RGB (grey images repeat their grey).
  std::int64_t channels = 3;
  /// Rows of the decoded image.
  std::int64_t height = 0;
  /// Columns of the decoded image.
  std::int64_t width = 0;
  /// How other shapes are brought to height x width.
  ImageResize resize = ImageResize::kStretch;

  /// Bytes of one decoded image.
  std::int64_t bytes() const { return channels * height * width; }
};

/// Decodes a PNG, JPEG or BMP file's bytes to `shape`: channels x height x width bytes, channel-major
/// (as IDX images and the models' rows are). Anything else, a truncated file (a JPEG without its
/// end-of-image marker, a PNG without its IEND chunk) or a decoder failure is a DataError naming
/// `source` and what is wrong.
std::vector<std::uint8_t> decode_image(const std::string& bytes, const std::string& source, const ImageShape& shape);

}  // namespace encore::core
