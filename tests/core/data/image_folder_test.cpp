#include "encore/core/image_folder.h"

#include <stb/stb_image_write.h>

#include <torch/torch.h>

#include <fstream>

#include "encore/core/data_config.h"
#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "support/support.h"

using namespace encore;
namespace fs = std::filesystem;

namespace {

// A width x height RGB image whose pixel (r, c) has colours (10r + c, 100 + c, 200 - r), stored
// with its colours together (as image files hold them).
std::vector<unsigned char> gradient_rgb(int width, int height) {
  std::vector<unsigned char> pixels;
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      pixels.push_back(static_cast<unsigned char>(10 * r + c));
      pixels.push_back(static_cast<unsigned char>(100 + c));
      pixels.push_back(static_cast<unsigned char>(200 - r));
    }
  }
  return pixels;
}

core::ImageShape image_shape_of(std::int64_t channels, std::int64_t height, std::int64_t width, core::ImageResize resize) {
  core::ImageShape shape;
  shape.channels = channels;
  shape.height = height;
  shape.width = width;
  shape.resize = resize;
  return shape;
}

std::string whole_file(const fs::path& file) { return core::read_file(file); }

// An image_folder config over `dir`/train, cached in `dir`/cache.
core::DataConfig folder_config(const encore::testing::TempDir& dir, const core::ImageShape& shape) {
  core::DataConfig config;
  config.format = "image_folder";
  config.train_folder = (dir / "train").string();
  config.image = shape;
  config.cache_dir = (dir / "cache").string();
  return config;
}

}  // namespace

TEST(ImageFolder, DecodesPngBmpAndJpegToTheConfiguredShapeWithChannelsOneAfterAnother) {
  encore::testing::TempDir dir;
  const auto pixels = gradient_rgb(6, 4);
  ASSERT_TRUE(stbi_write_png((dir / "a.png").c_str(), 6, 4, 3, pixels.data(), 6 * 3));
  ASSERT_TRUE(stbi_write_bmp((dir / "a.bmp").c_str(), 6, 4, 3, pixels.data()));
  ASSERT_TRUE(stbi_write_jpg((dir / "a.jpg").c_str(), 6, 4, 3, pixels.data(), 95));
  const auto same = image_shape_of(3, 4, 6, core::ImageResize::kStretch);
  for (const auto* lossless : {"a.png", "a.bmp"}) {
    const auto decoded = core::decode_image(whole_file(dir / lossless), lossless, same);
    ASSERT_EQ(decoded.size(), 3u * 4 * 6) << lossless;
    // Channel 0's plane first, row by row: exactly the pixels written.
    EXPECT_EQ(decoded[0 * 24 + 2 * 6 + 5], 10 * 2 + 5) << lossless;
    EXPECT_EQ(decoded[1 * 24 + 2 * 6 + 5], 105) << lossless;
    EXPECT_EQ(decoded[2 * 24 + 3 * 6 + 0], 197) << lossless;
  }
  // JPEG is lossy: close, not equal.
  const auto jpeg = core::decode_image(whole_file(dir / "a.jpg"), "a.jpg", same);
  EXPECT_NEAR(jpeg[1 * 24 + 2 * 6 + 5], 105, 12);
  // Grey is stb's luminance of the colours.
  const auto grey = core::decode_image(whole_file(dir / "a.png"), "a.png", image_shape_of(1, 4, 6, core::ImageResize::kStretch));
  ASSERT_EQ(grey.size(), 24u);
  EXPECT_NEAR(grey[2 * 6 + 5], 0.299 * 25 + 0.587 * 105 + 0.114 * 198, 2);
  // Stretching changes the shape to the one asked for; a centre crop of the 6x4 image to a square
  // of 4 keeps columns 1 to 4 exactly (no resampling where the sizes already agree).
  EXPECT_EQ(core::decode_image(whole_file(dir / "a.png"), "a.png", image_shape_of(3, 2, 3, core::ImageResize::kStretch)).size(), 18u);
  const auto cropped = core::decode_image(whole_file(dir / "a.png"), "a.png", image_shape_of(3, 4, 4, core::ImageResize::kCenterCrop));
  ASSERT_EQ(cropped.size(), 48u);
  EXPECT_EQ(cropped[0], 1);             // row 0, column 1 of the original
  EXPECT_EQ(cropped[16 + 3], 100 + 4);  // channel 1, row 0, last column: original column 4
  // Cropping a tall image keeps the middle rows.
  const auto tall = gradient_rgb(2, 6);
  ASSERT_TRUE(stbi_write_png((dir / "tall.png").c_str(), 2, 6, 3, tall.data(), 2 * 3));
  const auto middle = core::decode_image(whole_file(dir / "tall.png"), "tall.png", image_shape_of(3, 2, 2, core::ImageResize::kCenterCrop));
  EXPECT_EQ(middle[0], 10 * 2);  // row 0 of the crop is row 2 of the image
}

TEST(ImageFolder, BrokenFilesAreErrorsThatNameTheFileAndSayWhatIsWrong) {
  encore::testing::TempDir dir;
  const auto pixels = gradient_rgb(16, 16);
  ASSERT_TRUE(stbi_write_jpg((dir / "whole.jpg").c_str(), 16, 16, 3, pixels.data(), 90));
  ASSERT_TRUE(stbi_write_png((dir / "whole.png").c_str(), 16, 16, 3, pixels.data(), 16 * 3));
  ASSERT_TRUE(stbi_write_bmp((dir / "whole.bmp").c_str(), 16, 16, 3, pixels.data()));
  const auto shape = image_shape_of(3, 8, 8, core::ImageResize::kStretch);
  const auto jpeg = whole_file(dir / "whole.jpg"), png = whole_file(dir / "whole.png"), bmp = whole_file(dir / "whole.bmp");
  EXPECT_THROW_WITH(core::decode_image(jpeg.substr(0, jpeg.size() * 2 / 3), "cut.jpg", shape), core::DataError,
                    "cut.jpg: truncated JPEG: the image data ends without the end-of-image marker");
  EXPECT_THROW_WITH(core::decode_image(png.substr(0, png.size() - 20), "cut.png", shape), core::DataError,
                    "cut.png: truncated PNG: the file ends before its IEND chunk");
  EXPECT_THROW_WITH(core::decode_image(bmp.substr(0, bmp.size() / 2), "cut.bmp", shape), core::DataError, "cut.bmp: truncated BMP");
  EXPECT_THROW_WITH(core::decode_image("hello, I am text\n", "text.png", shape), core::DataError,
                    "text.png: not a PNG, JPEG or BMP image (it starts with \"hello, I\")");
  EXPECT_THROW_WITH(core::decode_image("", "empty.png", shape), core::DataError, "empty.png: not a PNG, JPEG or BMP image");
  // A header may promise any size: past 100 megapixels nothing is allocated. stb's own limit
  // answers "unknown image type" for this PNG; the message says the size instead.
  auto huge_png = png;
  huge_png.replace(16, 8, std::string("\x00\x00\x9C\x40\x00\x00\x9C\x40", 8));  // 40,000 x 40,000
  EXPECT_THROW_WITH(core::decode_image(huge_png, "huge.png", shape), core::DataError,
                    "huge.png: 40000 x 40000 pixels; images over 100 megapixels are refused");
  auto huge_bmp = bmp;
  huge_bmp.replace(18, 8, std::string("\x20\x4E\x00\x00\x20\x4E\x00\x00", 8));  // 20,000 x 20,000
  EXPECT_THROW_WITH(core::decode_image(huge_bmp, "huge.bmp", shape), core::DataError,
                    "huge.bmp: 20000 x 20000 pixels; images over 100 megapixels are refused");
  // A PNG whose compressed pixels are garbled fails in the decoder, which says why.
  auto garbled = png;
  ASSERT_GT(garbled.size(), 80u);
  for (std::size_t k = 45; k < 65; ++k) garbled[k] = '\x55';
  EXPECT_THROW_WITH(core::decode_image(garbled, "garbled.png", shape), core::DataError, "garbled.png: cannot decode: ");
}

TEST(ImageFolder, ClassFoldersAreTheClassesTakenInTurnAndTheDecodedImagesAreCachedByTheFilesIdentity) {
  encore::testing::TempDir dir;
  const auto written = encore::testing::write_toy_image_folder(dir / "train", 3, 4, 6, 3);
  encore::testing::write_text(dir / "train" / "class1" / "notes.txt", "not an image");
  encore::testing::write_text(dir / "train" / ".hidden" / "x.png", "ignored");
  core::ImageFolderOptions options;
  options.shape = image_shape_of(3, 6, 6, core::ImageResize::kStretch);
  options.cache_dir = dir / "cache";
  const auto first = core::load_image_folder(dir / "train", {}, options);
  EXPECT_EQ(first.data.class_names, (std::vector<std::string>{"class0", "class1", "class2"}));
  EXPECT_EQ(first.data.example_shape(), (std::vector<std::int64_t>{3, 6, 6}));
  // Classes in turn: class0's first image, class1's first, class2's first, class0's second, ...
  EXPECT_TRUE(torch::equal(first.data.labels, torch::tensor({0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(first.data.features[4], written[1 * 4 + 1]));
  EXPECT_TRUE(torch::equal(first.data.features[11], written[2 * 4 + 3]));
  ASSERT_EQ(first.notes.size(), 2u);
  EXPECT_NE(first.notes[0].find("left out 1 file(s) that are not .png, .jpg, .jpeg or .bmp images"), std::string::npos) << first.notes[0];
  EXPECT_NE(first.notes[1].find("decoded 12 images"), std::string::npos) << first.notes[1];

  // The second load maps the cache: the same pixels, nothing decoded.
  const auto second = core::load_image_folder(dir / "train", {}, options);
  EXPECT_NE(second.notes[1].find("12 decoded images read from the cache"), std::string::npos) << second.notes[1];
  EXPECT_TRUE(torch::equal(second.data.features, first.data.features));
  EXPECT_EQ(encore::testing::list_tree(dir / "cache").size(), 1u);
  // Another shape is another cache file; a changed image file is decoded again.
  options.shape.channels = 1;
  const auto grey = core::load_image_folder(dir / "train", {}, options);
  EXPECT_EQ(grey.data.example_shape(), (std::vector<std::int64_t>{1, 6, 6}));
  EXPECT_EQ(encore::testing::list_tree(dir / "cache").size(), 2u);
  options.shape.channels = 3;
  const auto pixels = gradient_rgb(6, 6);
  ASSERT_TRUE(stbi_write_png((dir / "train" / "class0" / "000.png").c_str(), 6, 6, 3, pixels.data(), 6 * 3));
  const auto changed = core::load_image_folder(dir / "train", {}, options);
  EXPECT_NE(changed.notes[1].find("decoded 12 images"), std::string::npos) << changed.notes[1];
  EXPECT_EQ(changed.data.features[0][1][0][5].item<int>(), 105);
  // A damaged cache file is not trusted: it is decoded and written again. (The tensors mapped from
  // it see the damage: copy first.)
  const auto decoded_pixels = changed.data.features.clone();
  for (const auto& entry : fs::directory_iterator(dir / "cache")) fs::resize_file(entry.path(), 5000);
  const auto rebuilt = core::load_image_folder(dir / "train", {}, options);
  EXPECT_TRUE(torch::equal(rebuilt.data.features, decoded_pixels));

  // A limit keeps every class; without a cache folder the images are decoded into memory.
  options.limit = 5;
  options.cache_dir.clear();
  const auto limited = core::load_image_folder(dir / "train", {}, options);
  EXPECT_TRUE(torch::equal(limited.data.labels, torch::tensor({0, 1, 2, 0, 1}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(limited.data.features, rebuilt.data.features.narrow(0, 0, 5)));
}

TEST(ImageFolder, UnlabelledImagesComeLastAndAreSplitOnlyIntoTheUnlabelledRows) {
  encore::testing::TempDir dir;
  encore::testing::write_toy_image_folder(dir / "train", 2, 10, 4, 1);
  encore::testing::write_toy_image_folder(dir / "extra", 3, 2, 4, 1);
  auto config = folder_config(dir, image_shape_of(1, 4, 4, core::ImageResize::kStretch));
  config.unlabelled_folder = (dir / "extra").string();
  config.validation_fraction = 0.2;
  const auto data = core::load_data(config);
  ASSERT_EQ(data.train.size(), 26);
  EXPECT_EQ(data.train.class_names, (std::vector<std::string>{"class0", "class1"}));
  EXPECT_TRUE(torch::equal(data.train.labels.narrow(0, 20, 6), torch::full({6}, core::kNoLabel, torch::kInt64)));
  const auto split = core::split_data(config, data.train, 1);
  EXPECT_EQ(split.validation.size(0), 4);
  EXPECT_EQ(split.labelled.size(0), 16);
  EXPECT_TRUE(torch::equal(split.unlabelled, torch::arange(20, 26, torch::kInt64)));
  EXPECT_EQ(split.all_training.size(0), 22);
  EXPECT_LT(split.validation.max().item<std::int64_t>(), 20);
  config.labelled_per_class = 3;
  const auto few = core::split_data(config, data.train, 1);
  EXPECT_EQ(few.labelled.size(0), 6);
  EXPECT_EQ(few.unlabelled.size(0), 10 + 6);
}

TEST(ImageFolder, UnreadableFilesFailTheLoadNamingThemOrAreSkippedAndListed) {
  encore::testing::TempDir dir;
  encore::testing::write_toy_image_folder(dir / "train", 2, 3, 8, 3);
  encore::testing::write_toy_image_folder(dir / "test", 2, 2, 8, 3);
  const auto pixels = gradient_rgb(32, 32);
  ASSERT_TRUE(stbi_write_jpg((dir / "whole.jpg").c_str(), 32, 32, 3, pixels.data(), 90));
  const auto jpeg = whole_file(dir / "whole.jpg");
  core::write_file_atomically(dir / "train" / "class0" / "cut.jpg", jpeg.substr(0, jpeg.size() / 2));
  encore::testing::write_text(dir / "train" / "class1" / "fake.png", "this is text, not a picture\n");
  auto config = folder_config(dir, image_shape_of(3, 8, 8, core::ImageResize::kCenterCrop));
  config.test_folder = (dir / "test").string();
  const auto cut = (dir / "train" / "class0" / "cut.jpg").string();
  EXPECT_THROW_WITH(core::load_data(config), core::DataError,
                    cut + ": truncated JPEG: the image data ends without the end-of-image marker (set data.unreadable_images to \"skip\"");
  // Nothing is left behind by the failed load.
  EXPECT_TRUE(!fs::exists(dir / "cache") || fs::is_empty(dir / "cache"));
  config.unreadable_images = core::UnreadableImages::kSkip;
  const auto data = core::load_data(config);
  EXPECT_EQ(data.train.size(), 6);
  ASSERT_EQ(data.skipped_images.size(), 2u);
  EXPECT_EQ(data.skipped_images[0].rfind(cut + ": truncated JPEG", 0), 0u) << data.skipped_images[0];
  EXPECT_NE(data.skipped_images[1].find("fake.png: not a PNG, JPEG or BMP image"), std::string::npos) << data.skipped_images[1];
  // A skipped file whose name is not UTF-8 is listed (the cache's list keeps it, bytes replaced).
  encore::testing::write_text(dir / "train" / "class1" / "caf\xE9.png", "text again\n");
  EXPECT_EQ(core::load_data(config).skipped_images.size(), 3u);
  EXPECT_EQ(core::load_data(config).skipped_images.size(), 3u);
  fs::remove(dir / "train" / "class1" / "caf\xE9.png");
  // A cache written while skipping still fails a load that does not skip.
  config.unreadable_images = core::UnreadableImages::kError;
  EXPECT_THROW_WITH(core::load_data(config), core::DataError, cut + ": truncated JPEG");
  // A test class folder must be a training class.
  fs::create_directories(dir / "test" / "class9");
  encore::testing::write_text(dir / "test" / "class9" / "x.png", "");
  config.unreadable_images = core::UnreadableImages::kSkip;
  EXPECT_THROW_WITH(core::load_data(config), core::DataError,
                    "the class folder \"class9\" is not one of the training classes (class0, class1)");
  // A class name goes into JSON files: a folder name that is not UTF-8 is refused.
  fs::create_directories(dir / "latin1" / "caf\xE9");
  encore::testing::write_text(dir / "latin1" / "caf\xE9" / "x.png", "");
  config.train_folder = (dir / "latin1").string();
  EXPECT_THROW_WITH(core::load_data(config), core::DataError,
                    "latin1: the name of a class folder is not UTF-8 text (byte 0xE9 after \"caf\"): rename the folder");
  // Folders without classes or without images say so.
  fs::create_directories(dir / "empty_root");
  config.train_folder = (dir / "empty_root").string();
  EXPECT_THROW_WITH(core::load_data(config), core::DataError, "holds no class folder");
  fs::create_directories(dir / "empty_root" / "cats");
  EXPECT_THROW_WITH(core::load_data(config), core::DataError, "cats: holds no .png, .jpg, .jpeg or .bmp file");
}
