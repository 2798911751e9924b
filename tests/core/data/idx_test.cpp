#include "encore/core/idx.h"

#include <torch/torch.h>

#include "encore/core/dataset.h"
#include "encore/core/errors.h"
#include "support/support.h"

using encore::core::DataError;
using encore::testing::idx_bytes;

TEST(Idx, ReadsRawAndGzipToTheSameArray) {
  encore::testing::TempDir dir;
  const auto bytes = idx_bytes(0x08, {2, 3}, {1, 2, 3, 4, 5, 6});
  encore::testing::write_bytes(dir / "a.idx", bytes);
  encore::testing::write_gzip(dir / "a.idx.gz", bytes);
  for (const auto* name : {"a.idx", "a.idx.gz"}) {
    const auto array = encore::core::read_idx_file((dir / name).string());
    EXPECT_EQ(array.dims, (std::vector<std::int64_t>{2, 3})) << name;
    EXPECT_EQ(array.bytes[array.data_offset + 5], 6) << name;
  }
}

TEST(Idx, DatasetKeepsImagesAsUint8AndConvertsBigEndianLabels) {
  encore::testing::TempDir dir;
  auto [images, labels] = encore::testing::write_toy_idx(dir.path(), "toy", 3, 4, 6, true);
  const auto data = encore::core::load_idx_dataset(images.string(), labels.string());
  EXPECT_EQ(data.features.scalar_type(), torch::kUInt8);
  EXPECT_EQ(data.features.sizes(), (std::vector<std::int64_t>{12, 6, 6}));
  EXPECT_EQ(data.num_classes(), 3);
  EXPECT_EQ(data.labels[4].item<std::int64_t>(), 1);
  // Multi-byte element types are big-endian in IDX.
  encore::testing::write_bytes(dir / "i32.idx", idx_bytes(0x0C, {2}, {0, 0, 1, 2, 0, 0, 0, 7}));
  encore::testing::write_bytes(dir / "x.idx", idx_bytes(0x08, {2, 1}, {9, 9}));
  const auto wide = encore::core::load_idx_dataset((dir / "x.idx").string(), (dir / "i32.idx").string());
  EXPECT_EQ(wide.labels[0].item<std::int64_t>(), 258);
  EXPECT_EQ(wide.labels[1].item<std::int64_t>(), 7);
}

TEST(Idx, HeaderPromisingMoreThanTheFileHoldsIsRejectedWithOffset) {
  // 100000 x 1000 x 1000 bytes = 100 GB promised in a 40-byte file: allocating it would fail loudly.
  EXPECT_THROW_WITH(
      encore::core::parse_idx(idx_bytes(0x08, {100000, 1000, 1000}, std::vector<unsigned char>(24, 1)), "big.idx"), DataError,
      "big.idx: offset 16: header promises a 100000x1000x1000 array = 100000000000 bytes of data, but the file holds 24 (truncated?)");
}

TEST(Idx, WrongMagicNumberIsRejected) {
  EXPECT_THROW_WITH(encore::core::parse_idx({0x1f, 0x8b, 0x08, 0x00, 1, 2, 3, 4}, "bad.idx"), DataError,
                    "bad.idx: offset 0: not an IDX file: magic number 1f 8b 08 00");
}

TEST(Idx, FourDimensionsOverflowing64BitsAreRejected) {
  EXPECT_THROW_WITH(encore::core::parse_idx(idx_bytes(0x08, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {}), "overflow.idx"),
                    DataError, "overflow.idx: offset 8: the 4 dimension sizes overflow 64 bits");
}

TEST(Idx, TruncatedGzipIsRejected) {
  encore::testing::TempDir dir;
  encore::testing::write_gzip(dir / "full.gz", idx_bytes(0x08, {1000}, std::vector<unsigned char>(1000, 3)));
  auto bytes = encore::testing::read_bytes(dir / "full.gz");
  bytes.resize(bytes.size() / 2);
  encore::testing::write_bytes(dir / "cut.gz", bytes);
  EXPECT_THROW_WITH(encore::core::read_idx_file((dir / "cut.gz").string()), DataError, "corrupt or truncated gzip data");
}

TEST(Idx, GzipCeilingStopsDecompressionBombs) {
  encore::testing::TempDir dir;
  encore::testing::write_gzip(dir / "zeros.gz", idx_bytes(0x08, {1 << 22}, std::vector<unsigned char>(1 << 22, 0)));
  encore::core::IdxLimits limits;
  limits.max_decompressed_bytes = 1 << 20;
  EXPECT_THROW_WITH(encore::core::read_idx_file((dir / "zeros.gz").string(), limits), DataError, "exceed the limit of 1048576 bytes");
}

TEST(Idx, ImagesAndLabelsMustAgreeInCount) {
  encore::testing::TempDir dir;
  encore::testing::write_bytes(dir / "img", idx_bytes(0x08, {3, 2}, {1, 2, 3, 4, 5, 6}));
  encore::testing::write_bytes(dir / "lab", idx_bytes(0x08, {2}, {0, 1}));
  EXPECT_THROW_WITH(encore::core::load_idx_dataset((dir / "img").string(), (dir / "lab").string()), DataError, "holds 3 examples but");
}
