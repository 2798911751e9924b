#include "encore/core/sealed_file.h"

#include <array>
#include <cstring>

#include <fmt/format.h>

#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "little_endian.h"

namespace encore::core {

namespace {

using detail::crc32_of;
using detail::read_little_endian;

constexpr std::array<char, 8> kMagic{'E', 'N', 'C', 'O', 'R', 'E', '\x01', '\x00'};

void put_le(std::string& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

}  // namespace

std::string seal(std::string_view payload) {
  std::string out(kMagic.data(), kMagic.size());
  put_le(out, payload.size(), 8);
  put_le(out, crc32_of(payload), 4);
  put_le(out, 0, 4);
  out.append(payload);
  return out;
}

std::string_view unseal(std::string_view bytes, const std::string& source) {
  if (bytes.size() < kSealedHeaderSize) {
    throw DataError(
        fmt::format("{}: {} bytes, shorter than the {}-byte checkpoint header (truncated?)", source, bytes.size(), kSealedHeaderSize));
  }
  if (std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0) {
    throw DataError(fmt::format("{}: offset 0: not an encore checkpoint (wrong magic bytes)", source));
  }
  if (read_little_endian(bytes, 20, 4) != 0) throw DataError(fmt::format("{}: offset 20: reserved header bytes are not zero", source));
  const auto length = read_little_endian(bytes, 8, 8);
  const auto expected_crc = static_cast<std::uint32_t>(read_little_endian(bytes, 16, 4));
  const std::uint64_t present = bytes.size() - kSealedHeaderSize;
  if (length != present) {
    throw DataError(fmt::format("{}: offset 8: header promises {} payload bytes, the file holds {} ({})", source, length, present,
                                present < length ? "truncated" : "extra bytes"));
  }
  const auto payload = bytes.substr(kSealedHeaderSize);
  const auto actual_crc = crc32_of(payload);
  if (actual_crc != expected_crc) {
    throw DataError(fmt::format("{}: checksum mismatch (CRC-32 {:08x} in the header, {:08x} of the bytes): the file is damaged", source,
                                expected_crc, actual_crc));
  }
  return payload;
}

void write_sealed_file(const std::filesystem::path& file, std::string_view payload) { write_file_atomically(file, seal(payload)); }

std::string read_sealed_file(const std::filesystem::path& file) {
  auto all = read_file(file);
  unseal(all, file.string());
  all.erase(0, kSealedHeaderSize);
  return all;
}

}  // namespace encore::core
