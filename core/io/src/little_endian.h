#pragma once
// Byte-level helpers shared by the file formats io verifies (sealed checkpoints, ZIP archives).

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <string_view>

namespace encore::core::detail {

/// The unsigned little-endian integer of `count` bytes at `offset`; the caller checks the bounds.
inline std::uint64_t read_little_endian(std::string_view bytes, std::size_t offset, int count) {
  std::uint64_t value = 0;
  for (int i = 0; i < count; ++i) value |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  return value;
}

/// zlib's CRC-32 of `bytes`, continuing from `crc`.
inline std::uint32_t crc32_of(std::string_view bytes, uLong crc = crc32(0L, Z_NULL, 0)) {
  // zlib takes lengths as uInt: feed large inputs in pieces.
  constexpr std::size_t kPiece = 1u << 30;
  for (std::size_t at = 0; at < bytes.size(); at += kPiece) {
    const auto length = static_cast<uInt>(std::min(kPiece, bytes.size() - at));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at), length);
  }
  return static_cast<std::uint32_t>(crc);
}

}  // namespace encore::core::detail
