#include "encore/core/image.h"

#include <stb/stb_image_write.h>
#include <torch/torch.h>

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

void write_png(const std::filesystem::path& file, const torch::Tensor& gray, std::int64_t scale) {
  TORCH_CHECK(gray.dim() == 2 && gray.scalar_type() == torch::kUInt8, "write_png takes a uint8 [H, W] image");
  TORCH_CHECK(scale >= 1, "write_png scale must be >= 1, got ", scale);
  auto pixels = gray.repeat_interleave(scale, 0).repeat_interleave(scale, 1).contiguous();
  const int height = static_cast<int>(pixels.size(0));
  const int width = static_cast<int>(pixels.size(1));
  std::string png;
  const auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<char*>(data), size);
  };
  if (stbi_write_png_to_func(append, &png, width, height, 1, pixels.data_ptr<std::uint8_t>(), width) == 0) {
    throw std::runtime_error(fmt::format("cannot encode the PNG image {}", file.string()));
  }
  write_file_atomically(file, png);
}

}  // namespace encore::core
