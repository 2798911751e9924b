#pragma once
/// Pictures of tensors: image grids and PNG files (written through stb's image writer).

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>

#include <torch/types.h>

namespace encore::core {

/// Lays out grey images [N, H, W] or colour ones [N, H, W, 3] in a grid of `columns` columns with
/// `padding` pixels of gap. Each image is scaled to [0, 255] by its own minimum and maximum (over
/// all its colours) when `normalize_each`, else clamped from [0, 1]. Returns uint8
/// [rows*(H+padding)+padding, columns*(W+padding)+padding] (and 3 colours for colour images).
torch::Tensor image_grid(const torch::Tensor& images, std::int64_t columns, std::int64_t padding, bool normalize_each);

/// Width in pixels of `text` (UTF-8) drawn by draw_text with lines `pixel_height` pixels high.
int text_width(const std::string& text, int pixel_height);
/// Draws `text` (UTF-8) into a uint8 [H, W] image in place, antialiased, in DejaVu Sans (built into
/// the library) with lines `pixel_height` pixels high (ascent to descent), the line's top-left corner
/// at column `x`, row `y`; the glyphs' coverage blends `value` over the image. `vertical` turns it a
/// quarter counter-clockwise, to read bottom to top, with the same top-left corner. Pixels outside
/// the image are dropped.
void draw_text(torch::Tensor& image, const std::string& text, int x, int y, int pixel_height, std::uint8_t value, bool vertical = false);
/// An RGB colour.
using Colour = std::array<std::uint8_t, 3>;
/// Colour `index` of a palette whose first ten colours most readers tell apart (Tableau's "10");
/// further indices cycle through it; a negative index is black.
Colour palette_colour(std::int64_t index);
/// Paints a rectangle of a uint8 [H, W, 3] image; it must lie inside the image.
void fill_rectangle(torch::Tensor& image, std::int64_t top, std::int64_t left, std::int64_t height, std::int64_t width,
                    const Colour& colour);
/// draw_text in one colour on a uint8 [H, W, 3] image: the glyphs' coverage blends `colour` over it.
void draw_text(torch::Tensor& image, const std::string& text, int x, int y, int pixel_height, const Colour& colour, bool vertical = false);
/// Writes a uint8 [H, W] grayscale or [H, W, 3] RGB image as a PNG, atomically; `scale` repeats
/// each pixel for legibility of small images.
void write_png(const std::filesystem::path& file, const torch::Tensor& image, std::int64_t scale = 1);

}  // namespace encore::core
