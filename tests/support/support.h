#pragma once
/// Helpers shared by the test binaries: scratch directories, tiny generated data files, and
/// assertions on error text.

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/types.h>

#include "encore/core/train_section.h"

/// Asserts that `statement` throws `exception_type` whose what() contains `substring`.
#define EXPECT_THROW_WITH(statement, exception_type, substring)                                             \
  do {                                                                                                      \
    try {                                                                                                   \
      statement;                                                                                            \
      ADD_FAILURE() << "expected " #exception_type " containing \"" << (substring) << "\", nothing thrown"; \
    } catch (const exception_type& e) {                                                                     \
      EXPECT_NE(std::string(e.what()).find(substring), std::string::npos)                                   \
          << "message \"" << e.what() << "\" lacks \"" << (substring) << "\"";                              \
    }                                                                                                       \
  } while (0)

namespace encore::testing {

/// A fresh directory removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

void write_bytes(const std::filesystem::path& file, const std::vector<unsigned char>& bytes);
void write_text(const std::filesystem::path& file, const std::string& text);
std::vector<unsigned char> read_bytes(const std::filesystem::path& file);
/// Writes bytes gzip-compressed.
void write_gzip(const std::filesystem::path& file, const std::vector<unsigned char>& bytes);

/// An IDX file's bytes: header for `type` and `dims`, then `payload` as given.
std::vector<unsigned char> idx_bytes(std::uint8_t type, const std::vector<std::uint32_t>& dims, const std::vector<unsigned char>& payload);

/// A small labelled image set: `per_class` examples of each of `classes` classes, `side` x `side`
/// uint8 pixels, each class a distinct bright stripe. Writes images and labels as IDX (gzip when
/// `gzip`), returns their paths.
std::pair<std::filesystem::path, std::filesystem::path> write_toy_idx(const std::filesystem::path& dir, const std::string& prefix,
                                                                      int classes, int per_class, int side, bool gzip);

/// A toy image folder: `root`/class<k>/<i>.png for `classes` classes of `per_class` images each,
/// `channels` (1 or 3) x `side` x `side`, each class a bright stripe (of colour k % 3 when colour)
/// over seeded noise (per_class < 1000). Returns the images [classes * per_class, channels, side, side] uint8, class by
/// class in name order, as written.
torch::Tensor write_toy_image_folder(const std::filesystem::path& root, int classes, int per_class, int side, int channels);

/// n grey 8x8 images [n, 64] in [0, 1]: a bright 4x4 square in one of the four corners (example i
/// in corner i % 4) over faint noise; structure a small (convolutional) autoencoder learns quickly.
torch::Tensor square_images(std::int64_t n);

/// An experiment config over toy IDX files written into `dir`: a 16-4 denoising stack pretrained
/// greedily then end to end for 2 epochs each, seed 3, one thread; no finetune section.
core::Json toy_experiment_config(const TempDir& dir);

/// Every file and directory below `dir`, relative, sorted.
std::vector<std::string> list_tree(const std::filesystem::path& dir);

/// An optimizer registry with the built-in optimizers.
core::OptimizerRegistry builtin_optimizers();

/// Width and height of a PNG file as decoded (0, 0 when it does not decode).
std::pair<int, int> png_size(const std::filesystem::path& file);

/// Where the data of the ZIP entry whose name ends with `name_suffix` starts in an archive: after its
/// local header (30 bytes, then the name and the extra field, of the lengths at 26 and 28).
/// LibTorch stores the first tensor of a module archive as ".../data/0".
std::size_t zip_entry_data_offset(const std::string& archive, const std::string& name_suffix);

/// A weight matrix that the CPU kernels split into three blocks on three threads (over 3 x 64K
/// elements, uneven rows): 613 x 331 floats.
constexpr std::int64_t kSplitRows = 613, kSplitColumns = 331;

/// Sets LibTorch's intra-op thread count for a test and restores it after.
class IntraOpThreads {
 public:
  explicit IntraOpThreads(int threads);
  ~IntraOpThreads();
  IntraOpThreads(const IntraOpThreads&) = delete;
  IntraOpThreads& operator=(const IntraOpThreads&) = delete;

 private:
  int previous_;
};

/// The Python whose torch reads encore's files in the tests (CMake's ENCORE_PYTHON: Debian's
/// /usr/bin/python3 with python3-torch, or the virtual environment of the PyPI LibTorch build).
std::string python_with_torch();

/// Bitwise equality of two tensors (dtype, shape and bytes).
bool bitwise_equal(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace encore::testing
