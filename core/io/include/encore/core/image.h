#pragma once
/// Pictures of tensors: image grids and PNG files (written through stb's image writer).

#include <cstdint>
#include <filesystem>
#include <string>

#include <torch/types.h>

namespace encore::core {

/// Lays out images [N, H, W] in a grid of `columns` columns with `padding` pixels of gap.
/// Each image is scaled to [0, 255] by its own minimum and maximum when `normalize_each`, else
/// clamped from [0, 1]. Returns uint8 [rows*(H+padding)+padding, columns*(W+padding)+padding].
torch::Tensor image_grid(const torch::Tensor& images, std::int64_t columns, std::int64_t padding, bool normalize_each);

/// Width in pixels of `text` drawn by draw_text at `scale` (the font is 5 pixels wide, 7 high, and
/// advances about 6 per character before scaling).
int text_width(const std::string& text, int scale);

/// Draws `text` into a uint8 [H, W] image in place, in stb's built-in bitmap font (printable ASCII;
/// other bytes show as '?') with `scale` x `scale` pixels per font pixel, the text's top-left corner at
/// column `x`, row `y`. `vertical` turns it a quarter counter-clockwise, to read bottom to top, with
/// the same top-left corner. Pixels outside the image are dropped.
void draw_text(torch::Tensor& image, const std::string& text, int x, int y, int scale, std::uint8_t value, bool vertical = false);

/// Writes a uint8 [H, W] grayscale or [H, W, 3] RGB image as a PNG, atomically; `scale` repeats
/// each pixel for legibility of small images.
void write_png(const std::filesystem::path& file, const torch::Tensor& image, std::int64_t scale = 1);

}  // namespace encore::core
