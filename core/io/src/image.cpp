#include "encore/core/image.h"

#include <stb/stb_image_write.h>
#include <stb/stb_truetype.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "encore/core/files.h"
#include "encore/core/utf8.h"

namespace encore::core {

torch::Tensor image_grid(const torch::Tensor& images, std::int64_t columns, std::int64_t padding, bool normalize_each) {
  const bool colour = images.dim() == 4 && images.size(3) == 3;
  TORCH_CHECK(images.dim() == 3 || colour, "image_grid takes [N, H, W] or [N, H, W, 3] images, got ", images.sizes());
  TORCH_CHECK(columns > 0 && padding >= 0, "image_grid needs columns > 0 and padding >= 0");
  auto x = images.detach().to(torch::kCPU, torch::kFloat32);
  if (normalize_each) {
    const auto flat = x.reshape({x.size(0), -1});
    const auto low = std::get<0>(flat.min(1)).view({-1, 1, 1});
    const auto high = std::get<0>(flat.max(1)).view({-1, 1, 1});
    x = ((x.reshape({x.size(0), x.size(1), -1}) - low) / (high - low).clamp_min(1e-12)).view_as(x);
  }
  const auto n = x.size(0), h = x.size(1), w = x.size(2);
  const auto rows = (n + columns - 1) / columns;
  std::vector<std::int64_t> grid_shape{rows * (h + padding) + padding, columns * (w + padding) + padding};
  if (colour) grid_shape.push_back(3);
  auto grid = torch::full(grid_shape, 0.5f);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto top = padding + (i / columns) * (h + padding);
    const auto left = padding + (i % columns) * (w + padding);
    grid.narrow(0, top, h).narrow(1, left, w).copy_(x[i]);
  }
  return (grid.clamp(0, 1) * 255).round().to(torch::kUInt8);
}

namespace {

// DejaVu Sans (Debian's fonts-dejavu-core; CMake finds the file) is built into the library, so
// pictures never depend on a font being installed where encore runs.
asm(".section .rodata\n"
    ".balign 16\n"
    ".global encore_font_begin\n"
    ".hidden encore_font_begin\n"
    "encore_font_begin:\n"
    ".incbin \"" ENCORE_FONT_FILE
    "\"\n"
    ".global encore_font_end\n"
    ".hidden encore_font_end\n"
    "encore_font_end:\n"
    ".previous\n");

extern "C" const unsigned char encore_font_begin[];

const stbtt_fontinfo& font() {
  static const stbtt_fontinfo info = [] {
    stbtt_fontinfo loaded;
    if (!stbtt_InitFont(&loaded, encore_font_begin, stbtt_GetFontOffsetForIndex(encore_font_begin, 0))) {
      throw std::logic_error("the built-in font does not parse");
    }
    return loaded;
  }();
  return info;
}

// UTF-8 to code points; a malformed byte becomes U+FFFD.
std::vector<int> code_points(const std::string& text) {
  std::vector<int> out;
  for (std::size_t i = 0; i < text.size();) {
    const auto point = decode_utf8(text, i);
    out.push_back(point.value < 0 ? 0xFFFD : point.value);
    i += point.length;
  }
  return out;
}

// Where each glyph starts along the line, in pixels at the font scale, and the line's width.
struct Layout {
  std::vector<int> points;
  std::vector<float> pen;
  float width = 0;
};

Layout lay_out(const std::string& text, float scale) {
  Layout layout{code_points(text), {}, 0};
  for (std::size_t k = 0; k < layout.points.size(); ++k) {
    layout.pen.push_back(layout.width);
    int advance = 0, bearing = 0;
    stbtt_GetCodepointHMetrics(&font(), layout.points[k], &advance, &bearing);
    const int kern = k + 1 < layout.points.size() ? stbtt_GetCodepointKernAdvance(&font(), layout.points[k], layout.points[k + 1]) : 0;
    layout.width += static_cast<float>(advance + kern) * scale;
  }
  return layout;
}

}  // namespace

int text_width(const std::string& text, int pixel_height) {
  return static_cast<int>(std::ceil(lay_out(text, stbtt_ScaleForPixelHeight(&font(), static_cast<float>(pixel_height))).width));
}

void draw_text(torch::Tensor& image, const std::string& text, int x, int y, int pixel_height, std::uint8_t value, bool vertical) {
  TORCH_CHECK(image.dim() == 2 && image.scalar_type() == torch::kUInt8 && image.is_contiguous(),
              "draw_text takes a contiguous uint8 [H, W] image");
  const float scale = stbtt_ScaleForPixelHeight(&font(), static_cast<float>(pixel_height));
  int ascent = 0, descent = 0, gap = 0;
  stbtt_GetFontVMetrics(&font(), &ascent, &descent, &gap);
  const int baseline = static_cast<int>(std::lround(static_cast<float>(ascent) * scale));
  const auto layout = lay_out(text, scale);
  const int line_width = static_cast<int>(std::ceil(layout.width));
  const auto height = image.size(0), width = image.size(1);
  auto* pixels = image.data_ptr<std::uint8_t>();
  for (std::size_t k = 0; k < layout.points.size(); ++k) {
    int glyph_width = 0, glyph_height = 0, left = 0, top = 0;
    const float shift = layout.pen[k] - std::floor(layout.pen[k]);
    unsigned char* coverage =
        stbtt_GetCodepointBitmapSubpixel(&font(), scale, scale, shift, 0, layout.points[k], &glyph_width, &glyph_height, &left, &top);
    for (int v = 0; v < glyph_height; ++v) {
      for (int u = 0; u < glyph_width; ++u) {
        // (along, across): the pixel's place in the line, from its top-left corner.
        const int along = static_cast<int>(std::floor(layout.pen[k])) + left + u, across = baseline + top + v;
        const std::int64_t column = x + (vertical ? across : along);
        const std::int64_t row = y + (vertical ? line_width - 1 - along : across);
        if (row < 0 || row >= height || column < 0 || column >= width) continue;
        // Antialiased: the glyph's coverage blends `value` over what is there.
        auto& pixel = pixels[row * width + column];
        const int alpha = coverage[v * glyph_width + u];
        pixel = static_cast<std::uint8_t>((pixel * (255 - alpha) + value * alpha + 127) / 255);
      }
    }
    stbtt_FreeBitmap(coverage, nullptr);
  }
}

Colour palette_colour(std::int64_t index) {
  static constexpr std::array<Colour, 10> kPalette{{{31, 119, 180},
                                                    {255, 127, 14},
                                                    {44, 160, 44},
                                                    {214, 39, 40},
                                                    {148, 103, 189},
                                                    {140, 86, 75},
                                                    {227, 119, 194},
                                                    {127, 127, 127},
                                                    {188, 189, 34},
                                                    {23, 190, 207}}};
  return index < 0 ? Colour{0, 0, 0} : kPalette[static_cast<std::size_t>(index) % kPalette.size()];
}

void fill_rectangle(torch::Tensor& image, std::int64_t top, std::int64_t left, std::int64_t height, std::int64_t width,
                    const Colour& colour) {
  auto area = image.narrow(0, top, height).narrow(1, left, width);
  for (int c = 0; c < 3; ++c) area.select(2, c).fill_(colour[static_cast<std::size_t>(c)]);
}

void draw_text(torch::Tensor& image, const std::string& text, int x, int y, int pixel_height, const Colour& colour, bool vertical) {
  auto mask = torch::zeros({image.size(0), image.size(1)}, torch::kUInt8);
  draw_text(mask, text, x, y, pixel_height, 255, vertical);
  const auto alpha = mask.to(torch::kFloat32) / 255;
  for (int c = 0; c < 3; ++c) {
    auto channel = image.select(2, c);
    channel.copy_((channel.to(torch::kFloat32) * (1 - alpha) + alpha * colour[static_cast<std::size_t>(c)]).round().to(torch::kUInt8));
  }
}

void write_png(const std::filesystem::path& file, const torch::Tensor& image, std::int64_t scale) {
  TORCH_CHECK((image.dim() == 2 || (image.dim() == 3 && image.size(2) == 3)) && image.scalar_type() == torch::kUInt8,
              "write_png takes a uint8 [H, W] or [H, W, 3] image");
  TORCH_CHECK(scale >= 1, "write_png scale must be >= 1, got ", scale);
  auto pixels = image.repeat_interleave(scale, 0).repeat_interleave(scale, 1).contiguous();
  const int channels = image.dim() == 3 ? 3 : 1;
  const int height = static_cast<int>(pixels.size(0));
  const int width = static_cast<int>(pixels.size(1));
  std::string png;
  const auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<char*>(data), size);
  };
  if (stbi_write_png_to_func(append, &png, width, height, channels, pixels.data_ptr<std::uint8_t>(), width * channels) == 0) {
    throw std::runtime_error(fmt::format("cannot encode the PNG image {}", file.string()));
  }
  write_file_atomically(file, png);
}

}  // namespace encore::core
