#include "encore/core/image.h"

#include <torch/torch.h>

#include "support/support.h"

TEST(Image, GridPlacesTilesAndScalesEachWhenAsked) {
  auto images = torch::zeros({3, 2, 2});
  images[1].fill_(1.0);
  images[2] = torch::tensor({{-4.f, 0.f}, {0.f, 4.f}});
  const auto fixed = encore::core::image_grid(images, 2, 1, false);
  EXPECT_EQ(fixed.sizes(), (std::vector<std::int64_t>{2 * 3 + 1, 2 * 3 + 1}));
  EXPECT_EQ(fixed[1][1].item<int>(), 0);
  EXPECT_EQ(fixed[1][4].item<int>(), 255);
  EXPECT_EQ(fixed[0][0].item<int>(), 128);  // the gaps are mid grey
  const auto scaled = encore::core::image_grid(images, 2, 1, true);
  EXPECT_EQ(scaled[4][1].item<int>(), 0);
  EXPECT_EQ(scaled[5][2].item<int>(), 255);
}

TEST(Image, PngDecodesToTheScaledSize) {
  encore::testing::TempDir dir;
  const auto gray = encore::core::image_grid(torch::rand({5, 4, 6}), 5, 1, true);
  encore::core::write_png(dir / "grid.png", gray, 2);
  EXPECT_EQ(encore::testing::png_size(dir / "grid.png"), std::make_pair(2 * (5 * 7 + 1), 2 * (4 + 2)));
}
