#pragma once
/// Pictures of tensors: image grids and PNG files (written through stb's image writer).

#include <cstdint>
#include <filesystem>

#include <torch/types.h>

namespace encore::core {

/// Lays out images [N, H, W] in a grid of `columns` columns with `padding` pixels of gap.
/// Each image is scaled to [0, 255] by its own minimum and maximum when `normalize_each`, else
/// clamped from [0, 1]. Returns uint8 [rows*(H+padding)+padding, columns*(W+padding)+padding].
torch::Tensor image_grid(const torch::Tensor& images, std::int64_t columns, std::int64_t padding, bool normalize_each);

/// Writes a uint8 [H, W] grayscale image as a PNG, atomically; `scale` repeats each pixel for
/// legibility of small images.
void write_png(const std::filesystem::path& file, const torch::Tensor& gray, std::int64_t scale = 1);

}  // namespace encore::core
