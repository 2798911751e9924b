#include "encore/core/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <memory>

#include <fmt/format.h>

#include "encore/core/errors.h"
#include "encore/core/files.h"

namespace encore::core {

namespace {

bool valid_type(std::uint8_t code) {
  switch (code) {
    case 0x08:
    case 0x09:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x0E:
      return true;
    default:
      return false;
  }
}

// The gzip trailer's ISIZE (size mod 2^32) is a hint for reserving memory; it is capped by what
// deflate can expand the compressed bytes to, so a lying trailer cannot force a large allocation.
std::uint64_t decompressed_size_hint(const std::string& file, std::uint64_t ceiling) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in) return 0;
  const auto size = static_cast<std::uint64_t>(in.tellg());
  if (size < 18) return size;
  in.seekg(0);
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  if (magic[0] != 0x1f || magic[1] != 0x8b) return size;
  in.seekg(static_cast<std::streamoff>(size - 4));
  unsigned char trailer[4] = {0, 0, 0, 0};
  in.read(reinterpret_cast<char*>(trailer), 4);
  const std::uint64_t isize = trailer[0] | (trailer[1] << 8) | (trailer[2] << 16) | (std::uint64_t{trailer[3]} << 24);
  constexpr std::uint64_t kMaxDeflateRatio = 1032;
  return std::min({isize, size * kMaxDeflateRatio, ceiling});
}

}  // namespace

std::size_t idx_element_size(IdxType type) {
  switch (type) {
    case IdxType::kUInt8:
    case IdxType::kInt8:
      return 1;
    case IdxType::kInt16:
      return 2;
    case IdxType::kInt32:
    case IdxType::kFloat32:
      return 4;
    case IdxType::kFloat64:
      return 8;
  }
  return 0;
}

std::int64_t IdxArray::element_count() const {
  std::int64_t count = 1;
  for (auto d : dims) count *= d;
  return count;
}

IdxArray parse_idx(std::vector<unsigned char> bytes, const std::string& source) {
  if (bytes.size() < 4)
    throw data_error_at(source, bytes.size(), fmt::format("file ends inside the 4-byte IDX magic number ({} bytes)", bytes.size()));
  if (bytes[0] != 0 || bytes[1] != 0 || !valid_type(bytes[2]) || bytes[3] == 0) {
    throw data_error_at(
        source, 0,
        fmt::format("not an IDX file: magic number {:02x} {:02x} {:02x} {:02x}, expected 00 00 <type 08/09/0b/0c/0d/0e> <dimensions 1-255>",
                    bytes[0], bytes[1], bytes[2], bytes[3]));
  }
  IdxArray array;
  array.type = static_cast<IdxType>(bytes[2]);
  const std::size_t rank = bytes[3];
  const std::size_t header_size = 4 + 4 * rank;
  if (bytes.size() < header_size) {
    throw data_error_at(
        source, bytes.size(),
        fmt::format("file ends inside the header: {} dimensions need {} header bytes, file holds {}", rank, header_size, bytes.size()));
  }
  std::uint64_t payload = idx_element_size(array.type);
  for (std::size_t i = 0; i < rank; ++i) {
    const unsigned char* p = &bytes[4 + 4 * i];
    const std::uint64_t dim = (std::uint64_t{p[0]} << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
    if (dim == 0) throw data_error_at(source, 4 + 4 * i, fmt::format("dimension {} is zero", i));
    if (__builtin_mul_overflow(payload, dim, &payload) || payload > static_cast<std::uint64_t>(INT64_MAX)) {
      throw data_error_at(source, 4 + 4 * i, fmt::format("the {} dimension sizes overflow 64 bits", rank));
    }
    array.dims.push_back(static_cast<std::int64_t>(dim));
  }
  const std::uint64_t available = bytes.size() - header_size;
  if (payload != available) {
    std::string shape;
    for (auto d : array.dims) shape += (shape.empty() ? "" : "x") + std::to_string(d);
    throw data_error_at(source, header_size,
                        fmt::format("header promises a {} array = {} bytes of data, but the file holds {}{}", shape, payload, available,
                                    payload > available ? " (truncated?)" : " (trailing bytes)"));
  }
  array.data_offset = header_size;
  array.bytes = std::move(bytes);
  return array;
}

IdxArray read_idx_file(const std::string& file, const IdxLimits& limits) {
  if (const auto problem = regular_file_problem(file); !problem.empty()) throw DataError(fmt::format("{}: {}", file, problem));
  // zlib reads gzip and passes raw files through unchanged, so both formats share one path.
  std::unique_ptr<gzFile_s, int (*)(gzFile)> stream(gzopen(file.c_str(), "rb"), gzclose);
  if (!stream) throw DataError(fmt::format("{}: cannot open the file", file));
  gzbuffer(stream.get(), 1 << 18);
  // Small reads: every read zero-fills its chunk before zlib writes it.
  constexpr std::size_t kChunk = 1 << 16;
  std::vector<unsigned char> bytes;
  // One spare chunk: the read that finds the end of the stream needs room too.
  bytes.reserve(decompressed_size_hint(file, limits.max_decompressed_bytes) + kChunk);
  for (;;) {
    const std::size_t used = bytes.size();
    // Growth stops at the ceiling plus one chunk: data beyond it fail below anyway.
    if (used + kChunk > bytes.capacity()) {
      const auto ceiling = static_cast<std::size_t>(std::min<std::uint64_t>(limits.max_decompressed_bytes + 2 * kChunk, SIZE_MAX));
      bytes.reserve(std::min(std::max(bytes.capacity() * 2, used + kChunk), std::max(ceiling, used + kChunk)));
    }
    bytes.resize(used + kChunk);
    const int got = gzread(stream.get(), bytes.data() + used, static_cast<unsigned>(kChunk));
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(stream.get(), &code);
      throw data_error_at(file, used, fmt::format("corrupt or truncated gzip data after {} decompressed bytes: {}", used, message));
    }
    bytes.resize(used + static_cast<std::size_t>(got));
    if (bytes.size() > limits.max_decompressed_bytes) {
      throw data_error_at(file, bytes.size(), fmt::format("decompressed data exceed the limit of {} bytes", limits.max_decompressed_bytes));
    }
    if (got == 0) break;
  }
  int code = 0;
  const char* message = gzerror(stream.get(), &code);
  if (code != Z_OK) throw data_error_at(file, bytes.size(), fmt::format("corrupt or truncated gzip data: {}", message));
  return parse_idx(std::move(bytes), file + (gzdirect(stream.get()) ? "" : " (decompressed)"));
}

}  // namespace encore::core
