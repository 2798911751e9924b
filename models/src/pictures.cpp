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

void write_filters_png(const std::filesystem::path& file, AutoencoderModel& model, const std::vector<std::int64_t>& image_shape) {
  TORCH_CHECK(image_shape.size() == 2, "filters need [H, W] images");
  const auto layers = model.greedy_layers();
  TORCH_CHECK(!layers.empty(), "filters need a model with greedy layers");
  const auto weight = layers.front()->encoder_weight.detach().to(torch::kCPU);
  TORCH_CHECK(weight.size(1) == image_shape[0] * image_shape[1], "first-layer inputs (", weight.size(1), ") are not ", image_shape[0], "x",
              image_shape[1], " images");
  const auto units = weight.size(0);
  const auto columns = static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(units))));
  core::write_png(file, core::image_grid(weight.reshape({units, image_shape[0], image_shape[1]}), columns, 1, true));
}

}  // namespace encore::models
