#include "encore/core/data_config.h"

#include <torch/torch.h>

#include "encore/core/errors.h"
#include "support/support.h"

using namespace encore::core;
using encore::testing::idx_bytes;
using encore::testing::TempDir;
using encore::testing::write_bytes;

namespace {

// An IDX pair of 2x2 images with the given labels.
DataConfig idx_files(const TempDir& dir, const std::string& prefix, const std::vector<unsigned char>& labels, DataConfig config = {}) {
  const auto count = static_cast<std::uint32_t>(labels.size());
  write_bytes(dir / (prefix + "-images"), idx_bytes(0x08, {count, 2, 2}, std::vector<unsigned char>(count * 4, 7)));
  write_bytes(dir / (prefix + "-labels"), idx_bytes(0x08, {count}, labels));
  (prefix == "train" ? config.train_images : config.test_images) = (dir / (prefix + "-images")).string();
  (prefix == "train" ? config.train_labels : config.test_labels) = (dir / (prefix + "-labels")).string();
  return config;
}

}  // namespace

TEST(LoadData, AStrayIdxLabelThatLeavesClassesEmptyIsRefusedNamingThem) {
  TempDir dir;
  const auto config = idx_files(dir, "train", {0, 1, 2, 1, 0, 200});
  EXPECT_THROW_WITH(
      load_data(config), DataError,
      "train-labels: labels run from 0 to 200, but 197 of them never occur (3, 4, 5, 6, 7, ...); every class needs training examples");
}

TEST(LoadData, ATestLabelOutsideTheTrainingClassesIsRefusedBeforeTraining) {
  TempDir dir;
  auto config = idx_files(dir, "train", {0, 1, 2, 1, 0, 2});
  config = idx_files(dir, "test", {2, 0, 3, 3}, config);
  EXPECT_THROW_WITH(load_data(config), DataError,
                    "test-labels: label 3 of example 2 is not one of the 3 training classes (2 test examples have such labels)");
  config = idx_files(dir, "test", {2, 0}, config);
  const auto data = load_data(config);
  EXPECT_EQ(data.test->class_names, data.train.class_names);
}

TEST(LoadData, TestExamplesOfAnotherShapeAreRefusedWithBothShapesAndFiles) {
  TempDir dir;
  auto config = idx_files(dir, "train", {0, 1});
  write_bytes(dir / "test-images", idx_bytes(0x08, {2, 3, 2}, std::vector<unsigned char>(12, 7)));
  write_bytes(dir / "test-labels", idx_bytes(0x08, {2}, {0, 1}));
  config.test_images = (dir / "test-images").string();
  config.test_labels = (dir / "test-labels").string();
  EXPECT_THROW_WITH(load_data(config), DataError,
                    config.test_images + ": examples are 3x2, the training examples of " + config.train_images + " are 2x2");
}

// A data section or batch source set from C++ fails naming the option and its value.
TEST(DataConfig, OptionsSetFromCppFailNamingTheOptionAndValue) {
  encore::core::DataConfig config;
  config.validation_fraction = 1.5;
  EXPECT_THROW_WITH(encore::core::check_data_config(config), encore::core::OptionError,
                    "option validation_fraction: must be in [0, 1), got 1.5");
  config = encore::core::DataConfig{};
  config.labelled_per_class = 0;
  EXPECT_THROW_WITH(encore::core::check_data_config(config), encore::core::OptionError, "option labelled_per_class: must be >= 1, got 0");
  config = encore::core::DataConfig{};
  config.format = "parquet";
  EXPECT_THROW_WITH(encore::core::load_data(config), encore::core::OptionError,
                    "option format: must be idx, npy, csv or image_folder, got \"parquet\"");
}

TEST(LoadData, ClassNamesNameIdxLabelsInOrderAndMustMatchTheClassCount) {
  TempDir dir;
  DataConfig names;
  names.class_names = {"cat", "dog", "bird"};
  auto config = idx_files(dir, "train", {0, 1, 2, 1, 0, 2}, names);
  config = idx_files(dir, "test", {2, 0}, config);
  const auto data = load_data(config);
  EXPECT_EQ(data.train.class_names, names.class_names);
  EXPECT_EQ(data.test->class_names, names.class_names);
  config.class_names = {"cat", "dog"};
  EXPECT_THROW_WITH(load_data(config), DataError, "train-labels: labels 0 to 2 make 3 classes, and data.class_names names 2");
  config.class_names = {"cat", "dog", "cat"};
  EXPECT_THROW_WITH(check_data_config(config), OptionError, "option class_names: \"cat\" is given twice (entries 0 and 2)");
  config = DataConfig{};
  config.format = "csv";
  config.class_names = {"a"};
  EXPECT_THROW_WITH(check_data_config(config), OptionError, "option class_names: a CSV's classes are its label texts");
}
