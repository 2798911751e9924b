#include "encore/core/zip_archive.h"

#include <torch/torch.h>

#include <sstream>

#include "encore/core/errors.h"
#include "support/support.h"

namespace {

using encore::core::DataError;
using encore::core::verify_zip_archive;

// A module archive as LibTorch writes pretrained.pt: two tensors and a string.
std::string module_archive() {
  torch::serialize::OutputArchive archive;
  archive.write("weight", torch::arange(64, torch::kFloat32).reshape({8, 8}));
  archive.write("bias", torch::ones({8}), /*is_buffer=*/true);
  archive.write("encore_note", c10::IValue(std::string("a note")));
  std::ostringstream bytes;
  archive.save_to(bytes);
  return bytes.str();
}

TEST(ZipArchive, LibTorchsOwnArchivesVerify) {
  const auto bytes = module_archive();
  const auto summary = verify_zip_archive(bytes, "m.pt");
  EXPECT_GT(summary.entries, 3u);
  EXPECT_GT(summary.data_bytes, 64u * 4);
}

TEST(ZipArchive, EveryFlippedBitOfTheTensorsDataIsFound) {
  const auto bytes = module_archive();
  // The weight's 256 bytes: the only run of the float 63.0 (0x427c0000) is its last element.
  const std::string last_weight("\x00\x00\x7c\x42", 4);
  const auto end = bytes.find(last_weight) + 4;
  ASSERT_NE(end, std::string::npos + 4);
  for (std::size_t at = end - 256; at < end; ++at) {
    auto damaged = bytes;
    damaged[at] ^= static_cast<char>(1 << (at % 8));
    EXPECT_THROW_WITH(verify_zip_archive(damaged, "m.pt"), DataError, "m.pt: damaged archive at offset");
  }
}

TEST(ZipArchive, TruncatedExtendedAndForeignFilesAreRefusedWithTheirOffset) {
  const auto bytes = module_archive();
  EXPECT_THROW_WITH(verify_zip_archive(bytes.substr(0, bytes.size() - 1), "cut.pt"), DataError,
                    "cut.pt: damaged archive at offset " + std::to_string(bytes.size() - 1) + ": no end-of-central-directory record");
  EXPECT_THROW_WITH(verify_zip_archive(bytes + "tail", "long.pt"), DataError, "no end-of-central-directory record");
  EXPECT_THROW_WITH(verify_zip_archive("PK", "tiny.pt"), DataError, "tiny.pt: damaged archive at offset 0: 2 bytes is too short");
  // A checkpoint is a sealed file, not a bare archive.
  EXPECT_THROW_WITH(verify_zip_archive(std::string(100, '\0'), "zeros.pt"), DataError, "no end-of-central-directory record");
}

}  // namespace
