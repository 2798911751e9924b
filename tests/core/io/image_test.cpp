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

TEST(Image, TextIsDrawnInsideItsLineBoxHorizontallyOrReadingUpwardsAndNonAsciiHasGlyphs) {
  constexpr int kHeight = 16;
  const int width = encore::core::text_width("Ankle boot", kHeight);
  EXPECT_GT(width, encore::core::text_width("Bag", kHeight));
  EXPECT_GT(width, 5 * kHeight / 2);  // ten characters, about half a line high each
  auto image = torch::zeros({40, 120}, torch::kUInt8);
  encore::core::draw_text(image, "Ankle boot", 10, 5, kHeight, 255);
  const auto inked = image.gt(0).nonzero();
  ASSERT_GT(inked.size(0), 0);
  EXPECT_GE(inked.select(1, 0).min().item<std::int64_t>(), 5);
  EXPECT_LT(inked.select(1, 0).max().item<std::int64_t>(), 5 + kHeight);
  EXPECT_GE(inked.select(1, 1).min().item<std::int64_t>(), 10);
  EXPECT_LT(inked.select(1, 1).max().item<std::int64_t>(), 10 + width);
  // Antialiased: partial coverage between background and ink.
  EXPECT_TRUE(image.gt(0).logical_and(image.lt(255)).any().item<bool>());

  // Vertical: the same pixels turned a quarter counter-clockwise, from the same top-left corner.
  auto turned = torch::zeros({120, 40}, torch::kUInt8);
  encore::core::draw_text(turned, "Ankle boot", 5, 10, kHeight, 255, /*vertical=*/true);
  EXPECT_TRUE(
      torch::equal(turned.narrow(0, 10, width).narrow(1, 5, kHeight), image.narrow(0, 5, kHeight).narrow(1, 10, width).t().flip(0)));

  auto accented = torch::zeros({30, 60}, torch::kUInt8);
  encore::core::draw_text(accented, "\xC3\xA9t\xC3\xA9", 0, 0, kHeight, 255);  // "été"
  EXPECT_GT(accented.gt(0).sum().item<std::int64_t>(), 20);
  EXPECT_EQ(encore::core::text_width("\xC3\xA9", kHeight), encore::core::text_width("e", kHeight));
}
