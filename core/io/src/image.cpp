#include "encore/core/image.h"

#include <stb/stb_easy_font.h>
#include <stb/stb_image_write.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "encore/core/files.h"

namespace encore::core {

torch::Tensor image_grid(const torch::Tensor& images, std::int64_t columns, std::int64_t padding, bool normalize_each) {
  TORCH_CHECK(images.dim() == 3, "image_grid takes [N, H, W] images, got ", images.sizes());
  TORCH_CHECK(columns > 0 && padding >= 0, "image_grid needs columns > 0 and padding >= 0");
  auto x = images.detach().to(torch::kCPU, torch::kFloat32);
  if (normalize_each) {
    const auto flat = x.reshape({x.size(0), -1});
    const auto low = std::get<0>(flat.min(1)).view({-1, 1, 1});
    const auto high = std::get<0>(flat.max(1)).view({-1, 1, 1});
    x = (x - low) / (high - low).clamp_min(1e-12);
  }
  const auto n = x.size(0), h = x.size(1), w = x.size(2);
  const auto rows = (n + columns - 1) / columns;
  auto grid = torch::full({rows * (h + padding) + padding, columns * (w + padding) + padding}, 0.5f);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto top = padding + (i / columns) * (h + padding);
    const auto left = padding + (i % columns) * (w + padding);
    grid.narrow(0, top, h).narrow(1, left, w).copy_(x[i]);
  }
  return (grid.clamp(0, 1) * 255).round().to(torch::kUInt8);
}

namespace {

// stb's font covers printable ASCII; it indexes its tables by the byte, so nothing else gets there.
std::string printable(const std::string& text) {
  std::string out = text;
  for (auto& c : out) {
    if (c < 32 || c > 126) c = '?';
  }
  return out;
}

}  // namespace

int text_width(const std::string& text, int scale) {
  auto shown = printable(text);
  return stb_easy_font_width(shown.data()) * scale;
}

void draw_text(torch::Tensor& image, const std::string& text, int x, int y, int scale, std::uint8_t value, bool vertical) {
  TORCH_CHECK(image.dim() == 2 && image.scalar_type() == torch::kUInt8 && image.is_contiguous(),
              "draw_text takes a contiguous uint8 [H, W] image");
  auto shown = printable(text);
  // stb writes quads of four vertices (x, y, z as floats, then 4 colour bytes), about 270 bytes a character.
  constexpr int kVertexBytes = 16, kQuadBytes = 4 * kVertexBytes;
  std::vector<char> vertices(shown.size() * 512 + kQuadBytes);
  const int quads = stb_easy_font_print(0, 0, shown.data(), nullptr, vertices.data(), static_cast<int>(vertices.size()));
  const int width_units = stb_easy_font_width(shown.data());
  const auto height = image.size(0), width = image.size(1);
  auto* pixels = image.data_ptr<std::uint8_t>();
  const auto corner = [&](int quad, int vertex, int axis) {
    float value_at = 0;
    std::memcpy(&value_at, vertices.data() + quad * kQuadBytes + vertex * kVertexBytes + axis * 4, sizeof value_at);
    return static_cast<int>(std::lround(value_at));
  };
  for (int q = 0; q < quads; ++q) {
    // Opposite corners of an axis-aligned quad, in font units.
    const int left = std::min(corner(q, 0, 0), corner(q, 2, 0)), right = std::max(corner(q, 0, 0), corner(q, 2, 0));
    const int top = std::min(corner(q, 0, 1), corner(q, 2, 1)), bottom = std::max(corner(q, 0, 1), corner(q, 2, 1));
    for (int u = left * scale; u < right * scale; ++u) {
      for (int v = top * scale; v < bottom * scale; ++v) {
        const std::int64_t column = x + (vertical ? v : u);
        const std::int64_t row = y + (vertical ? width_units * scale - 1 - u : v);
        if (row >= 0 && row < height && column >= 0 && column < width) pixels[row * width + column] = value;
      }
    }
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
