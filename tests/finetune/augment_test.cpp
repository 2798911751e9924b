#include "encore/finetune/augment.h"

#include <torch/torch.h>

#include <set>
#include <utility>

#include "encore/core/config.h"
#include "encore/core/ops.h"
#include "encore/core/options.h"
#include "support/support.h"

using namespace encore;

namespace {

// `count` 7x9 grey images, each black but for pixel (3, 4) = 1.
torch::Tensor one_lit_pixel(std::int64_t count) {
  auto images = torch::zeros({count, 7, 9});
  images.select(1, 3).select(1, 4).fill_(1.0);
  return images.view({count, 63});
}

// Where the lit pixel of each image ended up.
std::vector<std::pair<std::int64_t, std::int64_t>> lit_pixels(const torch::Tensor& rows) {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  const auto flat = rows.argmax(1);
  for (std::int64_t i = 0; i < rows.size(0); ++i) out.emplace_back(flat[i].item<std::int64_t>() / 9, flat[i].item<std::int64_t>() % 9);
  return out;
}

}  // namespace

TEST(Augment, ShiftMovesEachImageByAtMostShiftPixelsAlongEachAxisAndTakesEveryMove) {
  torch::manual_seed(2);
  const auto rows = finetune::augment_images(one_lit_pixel(400), {7, 9}, {2, false});
  ASSERT_EQ(rows.sizes(), (std::vector<std::int64_t>{400, 63}));
  // A move keeps the image whole: one lit pixel, the rest black.
  EXPECT_TRUE(torch::equal(rows.sum(1), torch::ones({400})));
  std::set<std::pair<std::int64_t, std::int64_t>> moves;
  for (const auto& [row, column] : lit_pixels(rows)) moves.emplace(row - 3, column - 4);
  EXPECT_EQ(moves.size(), 25U);
  EXPECT_EQ(*moves.begin(), std::make_pair(std::int64_t{-2}, std::int64_t{-2}));
  EXPECT_EQ(*moves.rbegin(), std::make_pair(std::int64_t{2}, std::int64_t{2}));
}

TEST(Augment, EdgePixelsFillTheSpaceAnImageLeaves) {
  // Columns 0..8 numbered: a move right by k repeats column 0 k times, and never shows a column
  // from outside the image.
  const auto image = torch::arange(9, torch::kFloat32).repeat({7, 1}).view({1, 63});
  torch::manual_seed(3);
  const auto rows = finetune::augment_images(image.expand({200, 63}).contiguous(), {7, 9}, {3, false}).view({200, 7, 9});
  for (std::int64_t i = 0; i < 200; ++i) {
    const auto first_row = rows[i][0];
    const auto move = 4 - first_row[4].item<std::int64_t>();
    ASSERT_LE(std::abs(move), 3);
    for (std::int64_t column = 0; column < 9; ++column) {
      ASSERT_EQ(first_row[column].item<std::int64_t>(), std::clamp<std::int64_t>(column - move, 0, 8)) << "image " << i;
    }
  }
}

TEST(Augment, FlipMirrorsAboutHalfTheImagesLeftToRightAndLeavesTheOthers) {
  const auto image = torch::rand({1, 7, 9});
  const auto mirrored = image.flip(2).reshape({63});
  torch::manual_seed(4);
  const auto rows = finetune::augment_images(image.reshape({1, 63}).expand({400, 63}).contiguous(), {7, 9}, {0, true});
  std::int64_t flipped = 0;
  for (std::int64_t i = 0; i < 400; ++i) {
    const bool is_mirrored = torch::equal(rows[i], mirrored);
    ASSERT_TRUE(is_mirrored || torch::equal(rows[i], image.reshape({63}))) << "image " << i;
    flipped += is_mirrored ? 1 : 0;
  }
  EXPECT_NEAR(static_cast<double>(flipped) / 400.0, 0.5, 0.1);
}

TEST(Augment, ColourChannelsMoveTogether) {
  auto images = torch::zeros({50, 3, 7, 9});
  images.select(2, 3).select(2, 4).fill_(1.0);
  torch::manual_seed(5);
  const auto rows = finetune::augment_images(images.view({50, 189}), {3, 7, 9}, {2, true}).view({50, 3, 63});
  EXPECT_TRUE(torch::equal(rows.select(1, 0), rows.select(1, 1)));
  EXPECT_TRUE(torch::equal(rows.select(1, 0), rows.select(1, 2)));
  EXPECT_TRUE(torch::equal(rows.sum(2), torch::ones({50, 3})));
}

TEST(Augment, CutoutBlanksOneSquareOfItsSideCentredAnywhereInEveryChannelAndNothingElse) {
  // All-ones 3-channel 7x9 images: what a cutout of side 3 leaves is a 0/1 picture of the square.
  torch::manual_seed(7);
  const auto rows = finetune::augment_images(torch::ones({1500, 189}), {3, 7, 9}, {0, false, 3}).view({1500, 3, 7, 9});
  EXPECT_TRUE(torch::equal(rows.select(1, 0), rows.select(1, 1)));
  EXPECT_TRUE(torch::equal(rows.select(1, 0), rows.select(1, 2)));
  std::set<std::pair<std::int64_t, std::int64_t>> centres;
  for (std::int64_t i = 0; i < 1500; ++i) {
    const auto blank = rows[i][0].eq(0);
    const auto blank_rows = blank.any(1).nonzero().squeeze(1);
    const auto blank_columns = blank.any(0).nonzero().squeeze(1);
    ASSERT_GT(blank_rows.numel(), 0) << "image " << i;
    // One rectangle, the square clipped at the edges: every pixel of its rows and columns blank.
    ASSERT_EQ(blank.sum().item<std::int64_t>(), blank_rows.numel() * blank_columns.numel()) << "image " << i;
    const auto first_row = blank_rows[0].item<std::int64_t>();
    const auto first_column = blank_columns[0].item<std::int64_t>();
    // Whole where it reaches no edge, clipped where it does.
    const bool inside_rows = first_row > 0 && blank_rows[-1].item<std::int64_t>() < 6;
    const bool inside_columns = first_column > 0 && blank_columns[-1].item<std::int64_t>() < 8;
    ASSERT_TRUE(inside_rows ? blank_rows.numel() == 3 : blank_rows.numel() <= 3) << "image " << i;
    ASSERT_TRUE(inside_columns ? blank_columns.numel() == 3 : blank_columns.numel() <= 3) << "image " << i;
    // The centre is the middle of the square's three rows and columns: one after the first blank
    // one, or one before the last where the square starts past the top or left edge.
    centres.emplace(first_row > 0 ? first_row + 1 : blank_rows[-1].item<std::int64_t>() - 1,
                    first_column > 0 ? first_column + 1 : blank_columns[-1].item<std::int64_t>() - 1);
  }
  // Every pixel of the image was a centre, the corners too.
  EXPECT_EQ(centres.size(), 63U);
}

TEST(Augment, DrawsFollowTheSeedAndADataParallelRankDrawsItsRowsOfTheGlobalBatch) {
  const auto images = torch::rand({40, 63});
  const finetune::AugmentConfig config{2, true};
  torch::manual_seed(6);
  const auto whole = finetune::augment_images(images, {7, 9}, config);
  torch::manual_seed(6);
  EXPECT_TRUE(torch::equal(finetune::augment_images(images, {7, 9}, config), whole));
  EXPECT_FALSE(torch::equal(finetune::augment_images(images, {7, 9}, config), whole));
  torch::manual_seed(6);
  core::BatchRowOffset second_rank(25);
  EXPECT_TRUE(torch::equal(finetune::augment_images(images.narrow(0, 25, 15), {7, 9}, config), whole.narrow(0, 25, 15)));
}

TEST(Augment, ConfigsThatAugmentNothingAndDataThatAreNotImagesAreConfigErrors) {
  const core::Json empty = core::Json::object();
  core::JsonReader nothing(empty, "/finetune/augment");
  EXPECT_THROW_WITH(core::read_options<finetune::AugmentConfig>(nothing), core::ConfigError, "/finetune/augment/shift: augments nothing");
  EXPECT_THROW_WITH(finetune::check_augment_fits_data({2, false}, {784}), core::ConfigError,
                    "/finetune/augment: changes images, but the data's examples have shape [784]");
  EXPECT_THROW_WITH(finetune::check_augment_fits_data({7, false}, {1, 7, 9}), core::ConfigError,
                    "/finetune/augment/shift: must be smaller than the images' shorter side (7 pixels), got 7");
  EXPECT_THROW_WITH(finetune::check_augment_fits_data({0, false, 7}, {1, 7, 9}), core::ConfigError,
                    "/finetune/augment/cutout: must be smaller than the images' shorter side (7 pixels), got 7");
  EXPECT_NO_THROW(finetune::check_augment_fits_data({6, true, 6}, {3, 7, 9}));
}
