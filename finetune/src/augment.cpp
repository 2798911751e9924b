#include "encore/finetune/augment.h"

#include <torch/torch.h>

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "encore/core/config.h"
#include "encore/core/ops.h"
#include "encore/models/pictures.h"

namespace encore::finetune {

void AugmentConfig::check() const {
  if (shift == 0 && !flip && cutout == 0) {
    throw core::OptionError("shift", "augments nothing: give a shift > 0, flip true or a cutout > 0 (or leave augment out)");
  }
}

torch::Tensor augment_images(const torch::Tensor& rows, const std::vector<std::int64_t>& image_shape, const AugmentConfig& config) {
  const auto batch = rows.size(0);
  const auto [channels, height, width] = models::image_dims(image_shape);
  TORCH_CHECK(rows.dim() == 2 && rows.size(1) == channels * height * width, "rows of ", rows.size(1), " features are not images of shape ",
              fmt::format("{}", image_shape));
  // Per row: the move down, the move across, whether to mirror, and with a cutout its centre's row
  // and column (configs without one draw as they did before cutout existed).
  const std::int64_t draws_per_row = config.cutout > 0 ? 5 : 3;
  const auto draws = core::uniform_noise_like(torch::empty({batch, draws_per_row}, rows.options().dtype(torch::kFloat64)));
  const auto moves = (draws.narrow(1, 0, 2) * static_cast<double>(2 * config.shift + 1)).floor().to(torch::kInt64) - config.shift;
  const auto index_options = rows.options().dtype(torch::kInt64);
  // Output pixel (y, x) takes the (mirrored) image's pixel (y - down, x - across), clamped into it.
  const auto source_rows = (torch::arange(height, index_options).unsqueeze(0) - moves.select(1, 0).unsqueeze(1)).clamp(0, height - 1);
  auto source_columns = (torch::arange(width, index_options).unsqueeze(0) - moves.select(1, 1).unsqueeze(1)).clamp(0, width - 1);
  if (config.flip) source_columns = torch::where(draws.select(1, 2).lt(0.5).unsqueeze(1), width - 1 - source_columns, source_columns);
  const auto pixels = (source_rows.unsqueeze(2) * width + source_columns.unsqueeze(1)).view({batch, 1, height * width});
  auto images = rows.view({batch, channels, height * width}).gather(2, pixels.expand({batch, channels, height * width}));
  if (config.cutout > 0) {
    // Whether each row's square covers each of `length` positions along `axis`: its first
    // position is its centre, drawn uniformly, less half its side (so it may start past an edge).
    const auto inside = [&](std::int64_t length, int axis) {
      const auto first = (draws.select(1, 3 + axis) * static_cast<double>(length)).floor().to(torch::kInt64) - config.cutout / 2;
      const auto offsets = torch::arange(length, index_options).unsqueeze(0) - first.unsqueeze(1);
      return offsets.ge(0).logical_and(offsets.lt(config.cutout));
    };
    const auto cut = inside(height, 0).unsqueeze(2).logical_and(inside(width, 1).unsqueeze(1)).view({batch, 1, height * width});
    images = images.masked_fill(cut, 0);
  }
  return images.view({batch, -1});
}

void check_augment_fits_data(const AugmentConfig& config, const std::vector<std::int64_t>& example_shape) {
  if (!models::is_image_shape(example_shape)) {
    throw core::ConfigError("/finetune/augment", fmt::format("changes images, but the data's examples have shape [{}], not [height, "
                                                             "width] or [1 or 3, height, width] (image data: IDX or an image_folder)",
                                                             fmt::join(example_shape, ", ")));
  }
  const auto image = models::image_dims(example_shape);
  const auto side = std::min(image.height, image.width);
  for (const auto& [name, pixels] : {std::pair{"shift", config.shift}, std::pair{"cutout", config.cutout}}) {
    if (pixels >= side) {
      throw core::ConfigError(fmt::format("/finetune/augment/{}", name),
                              fmt::format("must be smaller than the images' shorter side ({} pixels), got {}", side, pixels));
    }
  }
}

}  // namespace encore::finetune
