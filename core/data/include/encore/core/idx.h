#pragma once
/// The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed. Free of LibTorch so that it can
/// be fuzzed and tested on its own.

#include <cstdint>
#include <string>
#include <vector>

namespace encore::core {

/// Element types of IDX files (the third magic byte).
enum class IdxType : std::uint8_t { kUInt8 = 0x08, kInt8 = 0x09, kInt16 = 0x0B, kInt32 = 0x0C, kFloat32 = 0x0D, kFloat64 = 0x0E };

/// Bytes per element of an IDX type.
std::size_t idx_element_size(IdxType type);

/// A validated IDX array: the data are `bytes[data_offset ...]`, big-endian, exactly
/// `element_count() * idx_element_size(type)` bytes.
struct IdxArray {
  /// Element type, from the magic number.
  IdxType type = IdxType::kUInt8;
  /// Dimensions, from the header.
  std::vector<std::int64_t> dims;
  /// The whole file (decompressed).
  std::vector<unsigned char> bytes;
  /// Where the elements start in `bytes`.
  std::size_t data_offset = 0;

  /// Elements (the product of dims).
  std::int64_t element_count() const;
};

/// Ceilings that keep a hostile file from exhausting memory.
struct IdxLimits {
  /// Ceiling on the decompressed size of a `.gz` file, so a small "zip bomb" cannot exhaust memory.
  std::uint64_t max_decompressed_bytes = std::uint64_t{8} << 30;
};

/// Validates the header in `bytes` against the real length. `source` names the file in errors.
/// Throws DataError naming the source and the byte offset.
IdxArray parse_idx(std::vector<unsigned char> bytes, const std::string& source);

/// Reads (decompressing if gzip) and parses an IDX file. Memory grows only with the data really
/// present, never with what a header promises.
IdxArray read_idx_file(const std::string& file, const IdxLimits& limits = {});

}  // namespace encore::core
