#include "encore/models/pictures.h"

#include <torch/torch.h>

#include <cmath>

#include "encore/core/image.h"

namespace encore::models {

namespace {

// Small images are hard to see at one screen pixel per pixel; large ones are seen as they are.
std::int64_t reconstruction_scale(const std::vector<std::int64_t>& image_shape) { return image_shape.back() < 64 ? 3 : 1; }

}  // namespace

bool is_image_shape(const std::vector<std::int64_t>& example_shape) {
  return example_shape.size() == 2 || (example_shape.size() == 3 && (example_shape[0] == 1 || example_shape[0] == 3));
}

ImageDims image_dims(const std::vector<std::int64_t>& example_shape) {
  TORCH_CHECK(is_image_shape(example_shape), "the examples are not grey or colour images");
  return {example_shape.size() == 3 ? example_shape.front() : 1, example_shape[example_shape.size() - 2], example_shape.back()};
}

void write_examples_png(const std::filesystem::path& file, const torch::Tensor& examples, const std::vector<std::int64_t>& example_shape,
                        std::int64_t columns, std::int64_t scale) {
  if (!is_image_shape(example_shape)) throw std::invalid_argument("the examples are not grey or colour images");
  const auto [channels, height, width] = image_dims(example_shape);
  const bool colour = channels == 3;
  const auto n = examples.size(0);
  auto tiles = colour ? examples.reshape({n, 3, height, width}).permute({0, 2, 3, 1}) : examples.reshape({n, height, width});
  const bool unit_range = examples.min().item<float>() >= 0 && examples.max().item<float>() <= 1;
  core::write_png(file, core::image_grid(tiles, columns, 1, !unit_range), scale);
}

void write_reconstructions_png(const std::filesystem::path& file, AutoencoderModel& model, const core::BatchSource& source,
                               const std::vector<std::int64_t>& image_shape, std::int64_t count) {
  torch::NoGradGuard no_grad;
  model.module().eval();
  const auto inputs = source.rows(source.indices().narrow(0, 0, std::min(count, source.size()))).inputs;
  const auto device = model.module().parameters().empty() ? torch::Device(torch::kCPU) : model.module().parameters().front().device();
  const auto reconstructions = model.forward(inputs.to(device)).to(torch::kCPU);
  // Inputs in one row, their reconstructions in the row below.
  write_examples_png(file, torch::cat({inputs, reconstructions}), image_shape, inputs.size(0), reconstruction_scale(image_shape));
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
