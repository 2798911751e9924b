#pragma once
/// Pictures a person would rather look at than read: reconstructions and first-layer filters.

#include <cstdint>
#include <filesystem>
#include <vector>

#include "encore/core/dataset.h"
#include "encore/models/model.h"

namespace encore::models {

/// Whether examples of `example_shape` are pictures: [H, W] or [1 or 3, H, W].
bool is_image_shape(const std::vector<std::int64_t>& example_shape);

/// The sides of an image example.
struct ImageDims {
  /// 1 (grey) or 3 (colour).
  std::int64_t channels;
  /// Rows of pixels.
  std::int64_t height;
  /// Pixels per row.
  std::int64_t width;
};

/// The channels, height and width of examples of an image shape ([H, W]: one channel).
ImageDims image_dims(const std::vector<std::int64_t>& example_shape);

/// Writes flat examples [N, D] as a grid of `columns` columns of images of `example_shape` ([H, W]
/// grey, [1, H, W] grey or [3, H, W] colour), drawn `scale` times: examples within [0, 1] as they
/// are, others each stretched to its own range. Throws std::invalid_argument where the examples
/// are not images.
void write_examples_png(const std::filesystem::path& file, const torch::Tensor& examples, const std::vector<std::int64_t>& example_shape,
                        std::int64_t columns, std::int64_t scale = 3);

/// Writes `count` examples of `source` (its first rows) above their reconstructions, as
/// `image_shape` tiles ([H, W], [1, H, W] or [3, H, W]). The model is evaluated in eval mode.
void write_reconstructions_png(const std::filesystem::path& file, AutoencoderModel& model, const core::BatchSource& source,
                               const std::vector<std::int64_t>& image_shape, std::int64_t count = 10);

/// Writes each first-layer filter (AutoencoderModel::input_filters) as a tile, each scaled to its
/// own range, grey or colour as the input images are. Returns false, writing nothing, where the
/// model's first-layer filters are not images.
bool write_filters_png(const std::filesystem::path& file, AutoencoderModel& model, const std::vector<std::int64_t>& example_shape);

}  // namespace encore::models
