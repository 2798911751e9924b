#pragma once
/// Files whose bytes are verified before anything parses them (checkpoints). A sealed file is a
/// 24-byte header — the magic "ENCORE\x01\x00", the payload length (uint64, little-endian), the
/// zlib CRC-32 of the payload (uint32), 4 reserved zero bytes — followed by the payload. A truncated,
/// extended or bit-flipped file fails the check and never reaches the payload's parser.
/// LibTorch-free, so it can be fuzzed fast.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace encore::core {

/// Bytes before the payload: magic, length and CRC-32.
constexpr std::size_t kSealedHeaderSize = 24;

/// Header plus payload.
std::string seal(std::string_view payload);

/// The payload of sealed bytes; throws DataError naming `source`, and the offset, on any mismatch.
std::string_view unseal(std::string_view bytes, const std::string& source);

/// Writes `payload` sealed, atomically (write_file_atomically).
void write_sealed_file(const std::filesystem::path& file, std::string_view payload);

/// Reads and verifies a sealed file; returns its payload. Throws DataError naming the file.
std::string read_sealed_file(const std::filesystem::path& file);

}  // namespace encore::core
