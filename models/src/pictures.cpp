#include "encore/models/pictures.h"

#include <torch/torch.h>

#include <cmath>

#include "encore/core/image.h"

namespace encore::models {

namespace {

// Small images are hard to see at one screen pixel per pixel.
constexpr std::int64_t kReconstructionScale = 3;

}  // namespace

void write_reconstructions_png(const std::filesystem::path& file, AutoencoderModel& model, const core::BatchSource& source,
                               const std::vector<std::int64_t>& image_shape, std::int64_t count) {
  TORCH_CHECK(image_shape.size() == 2, "reconstructions need [H, W] images");
  torch::NoGradGuard no_grad;
  model.module().eval();
  const auto inputs = source.rows(source.indices().narrow(0, 0, std::min(count, source.size()))).inputs;
  const auto device = model.module().parameters().empty() ? torch::Device(torch::kCPU) : model.module().parameters().front().device();
  const auto reconstructions = model.forward(inputs.to(device)).to(torch::kCPU);
  const auto n = inputs.size(0);
  const auto tiles = torch::cat({inputs, reconstructions}).reshape({2 * n, image_shape[0], image_shape[1]});
  // Inputs scaled to [0, 1] are shown as they are; other scalings are stretched tile by tile.
  const bool unit_range = inputs.min().item<float>() >= 0 && inputs.max().item<float>() <= 1;
  core::write_png(file, core::image_grid(tiles, n, 1, !unit_range), kReconstructionScale);
}

bool write_filters_png(const std::filesystem::path& file, AutoencoderModel& model, const std::vector<std::int64_t>& example_shape) {
  const auto filters = model.input_filters(example_shape);
  if (!filters.defined()) return false;
  const auto units = filters.size(0);
  const auto columns = static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(units))));
  // Colour filters are drawn in colour, each scaled as a whole so that its hues stay as learned.
  const auto tiles = filters.size(1) == 3 ? filters.permute({0, 2, 3, 1}) : filters.select(1, 0);
  // Filters of a few pixels (convolution kernels, tiny images) are drawn larger to be seen.
  const std::int64_t scale = filters.size(2) < 10 ? 8 : 1;
  core::write_png(file, core::image_grid(tiles, columns, 1, true), scale);
  return true;
}

}  // namespace encore::models
