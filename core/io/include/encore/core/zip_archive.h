#pragma once
/// Verification of the ZIP archives LibTorch and PyTorch write (pretrained.pt, model.pt), before
/// LibTorch parses a byte: LibTorch's reader does not check the CRC-32 that the archive keeps for
/// every entry, so a flipped bit in a weight would load silently. The files stay plain PyTorch
/// archives (`torch.jit.load` reads them). LibTorch-free, so it can be fuzzed fast.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace encore::core {

/// What a verified archive holds.
struct ZipSummary {
  /// Entries in the central directory.
  std::uint64_t entries = 0;
  /// The sum of the entries' uncompressed sizes.
  std::uint64_t data_bytes = 0;
};

/// Checks the archive's structure (end record, ZIP64 records, central directory, local headers)
/// and every entry's data against its size and CRC-32, inflating compressed entries. Throws
/// DataError naming `source`, the entry and the byte offset of the first damage found.
ZipSummary verify_zip_archive(std::string_view bytes, const std::string& source);

/// The bytes of an archive file, verified: what LibTorch then parses from memory (reading the file
/// again could see other bytes).
std::string read_zip_archive(const std::filesystem::path& file);

}  // namespace encore::core
