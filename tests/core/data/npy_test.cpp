#include "encore/core/npy.h"

#include <torch/torch.h>

#include "encore/core/dataset.h"
#include "encore/core/errors.h"
#include "encore/core/idx.h"
#include "support/support.h"

using encore::core::DataError;
using encore::core::NpyType;

namespace {

std::string bytes_of(NpyType type, const std::vector<std::int64_t>& shape, const torch::Tensor& values) {
  const auto contiguous = values.contiguous();
  return encore::core::npy_bytes(type, shape, contiguous.data_ptr());
}

// A file as NumPy 1.x writes it by hand: the header text given, padded to 64 bytes.
std::string npy_with_header(const std::string& dict, std::size_t data_bytes, int version = 1) {
  std::string header = dict;
  const std::size_t prefix = version == 1 ? 10 : 12;
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(version);
  out += '\0';
  for (std::size_t i = 0; i < prefix - 8; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\x01');
}

void write(const std::filesystem::path& file, const std::string& bytes) { encore::testing::write_text(file, bytes); }

}  // namespace

TEST(Npy, WrittenArraysReadBackWithTheirTypeShapeAndValues) {
  const auto values = torch::arange(12, torch::kFloat32).reshape({3, 4}) / 3;
  const auto array = encore::core::parse_npy(bytes_of(NpyType::kFloat32, {3, 4}, values), "a.npy");
  EXPECT_EQ(array.type, NpyType::kFloat32);
  EXPECT_EQ(array.shape, (std::vector<std::int64_t>{3, 4}));
  EXPECT_EQ(array.data_offset % 64, 0u);  // NumPy aligns the data
  EXPECT_TRUE(torch::equal(torch::from_blob(const_cast<char*>(array.bytes.data()) + array.data_offset, {3, 4}, torch::kFloat32), values));
  const auto labels = torch::tensor({4, 0, 2}, torch::kInt64);
  const auto one_dimensional = encore::core::parse_npy(bytes_of(NpyType::kInt64, {3}, labels), "l.npy");
  EXPECT_EQ(one_dimensional.shape, (std::vector<std::int64_t>{3}));
  EXPECT_NE(one_dimensional.bytes.find("'shape': (3,)"), std::string::npos);
  // Version 2 headers (4-byte length) and Python 2's long literals are NumPy's too.
  const auto v2 = encore::core::parse_npy(npy_with_header("{'descr': '|u1', 'fortran_order': False, 'shape': (2L, 3L), }", 6, 2), "v2");
  EXPECT_EQ(v2.shape, (std::vector<std::int64_t>{2, 3}));
}

TEST(Npy, DamagedOrUnsupportedFilesAreRefusedNamingTheFileAndOffset) {
  const auto good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  EXPECT_THROW_WITH(encore::core::parse_npy("PK\x03\x04 not numpy", "x.npy"), DataError, "x.npy: offset 0: not a .npy file");
  EXPECT_THROW_WITH(encore::core::parse_npy(npy_with_header(good, 23), "short.npy"), DataError,
                    "short.npy: offset 128: shape (2, 3) of float32 needs 24 bytes of data, the file holds 23");
  EXPECT_THROW_WITH(encore::core::parse_npy(npy_with_header(good, 25), "long.npy"), DataError, "needs 24 bytes of data, the file holds 25");
  EXPECT_THROW_WITH(encore::core::parse_npy(npy_with_header("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", 4), "be.npy"),
                    DataError, "dtype '>f4' is big-endian; save a.astype('<f4')");
  EXPECT_THROW_WITH(encore::core::parse_npy(npy_with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24), "f.npy"),
                    DataError, "Fortran-ordered arrays are not read");
  EXPECT_THROW_WITH(encore::core::parse_npy(npy_with_header("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", 8), "c.npy"),
                    DataError, "dtype '<c8' is not read");
  EXPECT_THROW_WITH(encore::core::parse_npy(npy_with_header("{'descr': '<f4', 'shape': (1,), }", 4), "k.npy"), DataError,
                    "header lacks one of 'descr', 'fortran_order', 'shape'");
  EXPECT_THROW_WITH(
      encore::core::parse_npy(npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", 0), "o.npy"),
      DataError, "o.npy: offset 10: shape's element count overflows");
  auto truncated = npy_with_header(good, 24);
  truncated[8] = '\xff';  // header length past the end
  truncated[9] = '\x7f';
  EXPECT_THROW_WITH(encore::core::parse_npy(truncated, "t.npy"), DataError, "t.npy: offset 8: header length 32767 runs past the end");
}

TEST(Npy, DatasetMatchesTheIdxFilesItWasCopiedFrom) {
  encore::testing::TempDir dir;
  auto [images, labels] = encore::testing::write_toy_idx(dir.path(), "toy", 3, 4, 6, false);
  const auto idx = encore::core::load_idx_dataset(images.string(), labels.string());
  write(dir / "x.npy", bytes_of(NpyType::kUInt8, idx.features.sizes().vec(), idx.features));
  write(dir / "y.npy", bytes_of(NpyType::kInt32, {idx.size()}, idx.labels.to(torch::kInt32)));
  const auto npy = encore::core::load_npy_dataset((dir / "x.npy").string(), (dir / "y.npy").string());
  EXPECT_EQ(npy.features.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(npy.features, idx.features));
  EXPECT_TRUE(torch::equal(npy.labels, idx.labels));
  EXPECT_EQ(npy.class_names, idx.class_names);

  write(dir / "f64.npy", bytes_of(NpyType::kFloat64, {2, 2}, torch::tensor({1.0, 2.0, std::nan(""), 4.0}, torch::kFloat64)));
  write(dir / "two.npy", bytes_of(NpyType::kInt64, {2}, torch::tensor({0, 1}, torch::kInt64)));
  EXPECT_THROW_WITH(encore::core::load_npy_dataset((dir / "f64.npy").string(), (dir / "two.npy").string()), DataError,
                    "f64.npy: example 1 holds a NaN or infinite value");
  EXPECT_THROW_WITH(encore::core::load_npy_dataset((dir / "x.npy").string(), (dir / "two.npy").string()), DataError,
                    "x.npy holds 12 examples but");
  EXPECT_THROW_WITH(encore::core::load_npy_dataset((dir / "two.npy").string(), (dir / "two.npy").string()), DataError,
                    "two.npy: features are int64; encore reads uint8, float32 or float64");
  EXPECT_THROW_WITH(encore::core::load_npy_dataset((dir / "x.npy").string(), (dir / "x.npy").string()), DataError,
                    "labels must be one-dimensional");
  // numpy.zeros((2, 0)) and (2, 3, 0): examples without a single feature.
  write(dir / "empty_rows.npy", bytes_of(NpyType::kFloat32, {2, 0}, torch::zeros({2, 0})));
  EXPECT_THROW_WITH(encore::core::load_npy_dataset((dir / "empty_rows.npy").string(), (dir / "two.npy").string()), DataError,
                    "empty_rows.npy: examples of shape 0 hold no features");
  write(dir / "empty_maps.npy", bytes_of(NpyType::kFloat32, {2, 3, 0}, torch::zeros({2, 3, 0})));
  EXPECT_THROW_WITH(encore::core::load_npy_dataset((dir / "empty_maps.npy").string(), (dir / "two.npy").string()), DataError,
                    "empty_maps.npy: examples of shape 3 x 0 hold no features");
}
