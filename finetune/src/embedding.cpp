#include "encore/finetune/embedding.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include <fmt/format.h>

#include "encore/core/image.h"
#include "encore/core/random.h"

namespace encore::finetune {

torch::Tensor principal_components_2d(const torch::Tensor& codes) {
  const auto x = codes.reshape({codes.size(0), -1}).to(torch::kFloat64);
  const auto centred = x - x.mean(0, /*keepdim=*/true);
  const auto covariance = centred.t().mm(centred) / std::max<std::int64_t>(x.size(0) - 1, 1);
  // eigh: eigenvalues in ascending order, eigenvectors in the columns.
  const auto [values, vectors] = torch::linalg_eigh(covariance, "L");
  const auto d = vectors.size(1);
  auto components = vectors.index_select(1, torch::arange(d - 1, std::max<std::int64_t>(d - 3, -1), -1, torch::kInt64));
  const auto largest = components.abs().argmax(0);
  const auto signs = components.gather(0, largest.unsqueeze(0)).sign();
  components = components * torch::where(signs == 0, torch::ones_like(signs), signs);
  auto points = centred.mm(components);
  if (points.size(1) < 2) points = torch::cat({points, torch::zeros({points.size(0), 2 - points.size(1)}, points.options())}, 1);
  return points.to(torch::kFloat32);
}

void write_embedding_png(const std::filesystem::path& file, const torch::Tensor& points, const torch::Tensor& labels,
                         const std::vector<std::string>& class_names, const std::string& title) {
  constexpr int kPlot = 760, kLeft = 60, kTop = 50, kLegend = 230, kBottom = 60, kDot = 3, kTextHeight = 17, kTitleHeight = 21;
  const bool coloured = labels.defined();
  auto image = torch::full({kTop + kPlot + kBottom, kLeft + kPlot + 20 + (coloured ? kLegend : 0), 3}, 255, torch::kUInt8);
  const core::Colour black{0, 0, 0}, grey{150, 150, 150};
  core::draw_text(image, title, kLeft, 12, kTitleHeight, black);
  // The frame, then the axes' names.
  core::fill_rectangle(image, kTop - 1, kLeft - 1, 1, kPlot + 2, grey);
  core::fill_rectangle(image, kTop + kPlot, kLeft - 1, 1, kPlot + 2, grey);
  core::fill_rectangle(image, kTop - 1, kLeft - 1, kPlot + 2, 1, grey);
  core::fill_rectangle(image, kTop - 1, kLeft + kPlot, kPlot + 2, 1, grey);
  const std::string x_name = "principal component 1", y_name = "principal component 2";
  core::draw_text(image, x_name, kLeft + (kPlot - core::text_width(x_name, kTextHeight)) / 2, kTop + kPlot + 18, kTextHeight, black);
  core::draw_text(image, y_name, 18, kTop + (kPlot - core::text_width(y_name, kTextHeight)) / 2, kTextHeight, black, /*vertical=*/true);
  const auto p = points.to(torch::kFloat64).contiguous();
  const auto low = std::get<0>(p.min(0)), high = std::get<0>(p.max(0));
  const auto span = (high - low).clamp_min(1e-12);
  const auto pixel = ((p - low) / span * (kPlot - kDot)).round().to(torch::kInt64).contiguous();
  const auto* xy = pixel.data_ptr<std::int64_t>();
  const auto label_values = coloured ? labels.to(torch::kInt64).contiguous() : torch::zeros({p.size(0)}, torch::kInt64);
  const auto* label_of = label_values.data_ptr<std::int64_t>();
  // Drawn in a seeded random order, so that no class is painted over all the others.
  const auto order = torch::randperm(p.size(0), core::seeded_generator(0), torch::kInt64);
  const auto* rows = order.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < p.size(0); ++i) {
    const auto row = rows[i];
    core::fill_rectangle(image, kTop + (kPlot - kDot) - xy[2 * row + 1], kLeft + xy[2 * row], kDot, kDot,
                         core::palette_colour(label_of[row]));
  }
  if (coloured) {
    const int x = kLeft + kPlot + 30;
    for (std::size_t k = 0; k < class_names.size(); ++k) {
      const int y = kTop + 10 + static_cast<int>(k) * 26;
      core::fill_rectangle(image, y, x, 14, 14, core::palette_colour(static_cast<std::int64_t>(k)));
      core::draw_text(image, class_names[k], x + 22, y - 1, kTextHeight, black);
    }
  }
  core::write_png(file, image);
}

}  // namespace encore::finetune
