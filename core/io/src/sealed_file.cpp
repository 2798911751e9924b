#include "encore/core/sealed_file.h"

#include <zlib.h>

#include <array>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "encore/core/errors.h"
#include "encore/core/files.h"

namespace encore::core {

namespace {

constexpr std::array<char, 8> kMagic{'E', 'N', 'C', 'O', 'R', 'E', '\x01', '\x00'};

std::uint32_t crc_of(std::string_view bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes lengths as uInt: feed large payloads in pieces.
  constexpr std::size_t kPiece = 1u << 30;
  for (std::size_t at = 0; at < bytes.size(); at += kPiece) {
    const auto length = static_cast<uInt>(std::min(kPiece, bytes.size() - at));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at), length);
  }
  return static_cast<std::uint32_t>(crc);
}

void put_le(std::string& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

std::uint64_t get_le(std::string_view bytes, std::size_t offset, int count) {
  std::uint64_t value = 0;
  for (int i = 0; i < count; ++i) value |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  return value;
}

}  // namespace

std::string seal(std::string_view payload) {
  std::string out(kMagic.data(), kMagic.size());
  put_le(out, payload.size(), 8);
  put_le(out, crc_of(payload), 4);
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
  if (get_le(bytes, 20, 4) != 0) throw DataError(fmt::format("{}: offset 20: reserved header bytes are not zero", source));
  const auto length = get_le(bytes, 8, 8);
  const auto expected_crc = static_cast<std::uint32_t>(get_le(bytes, 16, 4));
  const std::uint64_t present = bytes.size() - kSealedHeaderSize;
  if (length != present) {
    throw DataError(fmt::format("{}: offset 8: header promises {} payload bytes, the file holds {} ({})", source, length, present,
                                present < length ? "truncated" : "extra bytes"));
  }
  const auto payload = bytes.substr(kSealedHeaderSize);
  const auto actual_crc = crc_of(payload);
  if (actual_crc != expected_crc) {
    throw DataError(fmt::format("{}: checksum mismatch (CRC-32 {:08x} in the header, {:08x} of the bytes): the file is damaged", source,
                                expected_crc, actual_crc));
  }
  return payload;
}

void write_sealed_file(const std::filesystem::path& file, std::string_view payload) {
  const auto sealed = seal(payload);
  write_file_atomically(file, [&](const std::filesystem::path& temporary) {
    std::ofstream out(temporary, std::ios::binary);
    out.write(sealed.data(), static_cast<std::streamsize>(sealed.size()));
    out.flush();
    if (!out) throw std::runtime_error(fmt::format("cannot write {}", temporary.string()));
  });
}

std::string read_sealed_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw DataError(fmt::format("{}: cannot open", file.string()));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  auto all = bytes.str();
  unseal(all, file.string());
  all.erase(0, kSealedHeaderSize);
  return all;
}

}  // namespace encore::core
