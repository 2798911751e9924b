#include "encore/core/zip_archive.h"

#include <zlib.h>

#include <fmt/format.h>

#include "encore/core/errors.h"
#include "encore/core/files.h"
#include "little_endian.h"

namespace encore::core {

namespace {

using detail::read_little_endian;

constexpr std::uint32_t kEndSignature = 0x06054b50;
constexpr std::uint32_t kZip64EndSignature = 0x06064b50;
constexpr std::uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr std::uint32_t kCentralSignature = 0x02014b50;
constexpr std::uint32_t kLocalSignature = 0x04034b50;
constexpr std::size_t kEndSize = 22, kZip64LocatorSize = 20, kZip64EndSize = 56, kCentralSize = 46, kLocalSize = 30;
constexpr std::uint16_t kZip64ExtraId = 0x0001;
constexpr std::uint16_t kStored = 0, kDeflated = 8;
constexpr std::uint16_t kEncryptedFlag = 1, kDataDescriptorFlag = 8;

// Reads fields of the archive, failing with the source and the offset when one lies outside it.
class ArchiveReader {
 public:
  ArchiveReader(std::string_view bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  std::uint64_t number(std::uint64_t offset, int count) const {
    require(offset, static_cast<std::uint64_t>(count), "a field");
    return read_little_endian(bytes_, static_cast<std::size_t>(offset), count);
  }
  std::string_view span(std::uint64_t offset, std::uint64_t length, const std::string& what) const {
    require(offset, length, what);
    return bytes_.substr(static_cast<std::size_t>(offset), static_cast<std::size_t>(length));
  }
  void require(std::uint64_t offset, std::uint64_t length, const std::string& what) const {
    if (offset > bytes_.size() || length > bytes_.size() - offset) {
      fail(offset, fmt::format("{} of {} bytes runs past the end of the file ({} bytes; truncated?)", what, length, bytes_.size()));
    }
  }
  [[noreturn]] void fail(std::uint64_t offset, const std::string& message) const {
    throw DataError(fmt::format("{}: damaged archive at offset {}: {}", source_, offset, message));
  }
  std::uint64_t size() const { return bytes_.size(); }

 private:
  std::string_view bytes_;
  const std::string& source_;
};

struct CentralDirectory {
  std::uint64_t offset = 0, size = 0, entries = 0;
};

// The end-of-central-directory record is the last thing in the file, followed only by its comment.
CentralDirectory find_central_directory(const ArchiveReader& archive) {
  if (archive.size() < kEndSize) archive.fail(0, fmt::format("{} bytes is too short for a ZIP archive", archive.size()));
  std::uint64_t end = archive.size() - kEndSize;
  const std::uint64_t lowest = end > 0xFFFF ? end - 0xFFFF : 0;
  while (!(archive.number(end, 4) == kEndSignature && end + kEndSize + archive.number(end + 20, 2) == archive.size())) {
    if (end == lowest) archive.fail(archive.size(), "no end-of-central-directory record: not a ZIP archive, or truncated");
    --end;
  }
  if (archive.number(end + 4, 2) != 0 || archive.number(end + 6, 2) != 0) archive.fail(end + 4, "a multi-disk archive");
  CentralDirectory directory{archive.number(end + 16, 4), archive.number(end + 12, 4), archive.number(end + 10, 2)};
  if (archive.number(end + 8, 2) != directory.entries) archive.fail(end + 8, "entry counts of the end record disagree");
  const bool zip64 = directory.entries == 0xFFFF || directory.size == 0xFFFFFFFF || directory.offset == 0xFFFFFFFF;
  if (!zip64) return directory;
  if (end < kZip64LocatorSize || archive.number(end - kZip64LocatorSize, 4) != kZip64LocatorSignature) {
    archive.fail(end, "the end record points to ZIP64 records that are not there");
  }
  const auto zip64_end = archive.number(end - kZip64LocatorSize + 8, 8);
  archive.require(zip64_end, kZip64EndSize, "the ZIP64 end record");
  if (archive.number(zip64_end, 4) != kZip64EndSignature) archive.fail(zip64_end, "no ZIP64 end record where the locator points");
  return {archive.number(zip64_end + 48, 8), archive.number(zip64_end + 40, 8), archive.number(zip64_end + 32, 8)};
}

struct Entry {
  std::string name;
  std::uint16_t flags = 0, method = 0;
  std::uint32_t crc = 0;
  std::uint64_t compressed = 0, uncompressed = 0, local_offset = 0;
};

// Sizes and offset too large for 32 bits are in the ZIP64 extra field, in this order, for the
// fields that hold 0xFFFFFFFF.
void read_zip64_extra(const ArchiveReader& archive, std::uint64_t extra, std::uint64_t extra_length, Entry& entry) {
  for (std::uint64_t at = extra; at + 4 <= extra + extra_length;) {
    const auto id = archive.number(at, 2);
    const auto length = archive.number(at + 2, 2);
    if (at + 4 + length > extra + extra_length) archive.fail(at, "an extra field runs past its entry");
    if (id == kZip64ExtraId) {
      std::uint64_t field = at + 4;
      for (auto* value : {&entry.uncompressed, &entry.compressed, &entry.local_offset}) {
        if (*value != 0xFFFFFFFF) continue;
        if (field + 8 > at + 4 + length) archive.fail(field, "the ZIP64 extra field is too short");
        *value = archive.number(field, 8);
        field += 8;
      }
    }
    at += 4 + length;
  }
}

Entry read_central_entry(const ArchiveReader& archive, std::uint64_t at) {
  if (archive.number(at, 4) != kCentralSignature) archive.fail(at, "expected a central directory entry");
  Entry entry;
  entry.flags = static_cast<std::uint16_t>(archive.number(at + 8, 2));
  entry.method = static_cast<std::uint16_t>(archive.number(at + 10, 2));
  entry.crc = static_cast<std::uint32_t>(archive.number(at + 16, 4));
  entry.compressed = archive.number(at + 20, 4);
  entry.uncompressed = archive.number(at + 24, 4);
  entry.local_offset = archive.number(at + 42, 4);
  const auto name_length = archive.number(at + 28, 2);
  entry.name = std::string(archive.span(at + kCentralSize, name_length, "an entry name"));
  read_zip64_extra(archive, at + kCentralSize + name_length, archive.number(at + 30, 2), entry);
  return entry;
}

std::uint64_t central_entry_size(const ArchiveReader& archive, std::uint64_t at) {
  return kCentralSize + archive.number(at + 28, 2) + archive.number(at + 30, 2) + archive.number(at + 32, 2);
}

// The CRC-32 of a deflated entry's inflated bytes, checking that they come to `expected_size`.
std::uint32_t inflated_crc(const ArchiveReader& archive, std::string_view data, std::uint64_t offset, const Entry& entry) {
  if (data.size() > 0xFFFFFFFFu) archive.fail(offset, fmt::format("compressed entry \"{}\" is over 4 GiB", entry.name));
  z_stream stream{};
  if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) archive.fail(offset, "cannot start inflating");
  unsigned char buffer[1 << 15];
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  std::uint64_t produced = 0;
  uLong crc = crc32(0L, Z_NULL, 0);
  int status = Z_OK;
  while (status == Z_OK) {
    stream.next_out = buffer;
    stream.avail_out = sizeof buffer;
    status = inflate(&stream, Z_NO_FLUSH);
    const auto chunk = sizeof buffer - stream.avail_out;
    produced += chunk;
    if (produced > entry.uncompressed) break;
    crc = crc32(crc, buffer, static_cast<uInt>(chunk));
    if (status == Z_BUF_ERROR && stream.avail_in == 0) break;
  }
  inflateEnd(&stream);
  if (status != Z_STREAM_END || produced != entry.uncompressed) {
    archive.fail(offset, fmt::format("entry \"{}\" does not inflate to its {} bytes", entry.name, entry.uncompressed));
  }
  return static_cast<std::uint32_t>(crc);
}

// The local header must agree with the central directory; the data follows it.
void verify_entry(const ArchiveReader& archive, const Entry& entry, std::uint64_t data_end) {
  const auto at = entry.local_offset;
  if (archive.number(at, 4) != kLocalSignature) archive.fail(at, fmt::format("entry \"{}\" has no local header", entry.name));
  const auto name_length = archive.number(at + 26, 2);
  if (archive.span(at + kLocalSize, name_length, "an entry name") != entry.name) {
    archive.fail(at + kLocalSize, fmt::format("the local name of entry \"{}\" differs from the directory's", entry.name));
  }
  if (!(entry.flags & kDataDescriptorFlag) && archive.number(at + 14, 4) != entry.crc) {
    archive.fail(at + 14, fmt::format("the local CRC-32 of entry \"{}\" differs from the directory's", entry.name));
  }
  const auto data_offset = at + kLocalSize + name_length + archive.number(at + 28, 2);
  if (data_offset > data_end || entry.compressed > data_end - data_offset) {
    archive.fail(data_offset, fmt::format("the data of entry \"{}\" runs into the central directory", entry.name));
  }
  const auto data = archive.span(data_offset, entry.compressed, "entry data");
  std::uint32_t crc = 0;
  if (entry.method == kStored) {
    if (entry.compressed != entry.uncompressed) archive.fail(at, fmt::format("stored entry \"{}\" has two sizes", entry.name));
    crc = detail::crc32_of(data);
  } else if (entry.method == kDeflated) {
    crc = inflated_crc(archive, data, data_offset, entry);
  } else {
    archive.fail(at, fmt::format("entry \"{}\" uses compression method {}, which LibTorch does not write", entry.name, entry.method));
  }
  if (crc != entry.crc) {
    archive.fail(data_offset, fmt::format("checksum mismatch in entry \"{}\" (CRC-32 {:08x} in the directory, {:08x} of the data)",
                                          entry.name, entry.crc, crc));
  }
}

}  // namespace

ZipSummary verify_zip_archive(std::string_view bytes, const std::string& source) {
  const ArchiveReader archive(bytes, source);
  const auto directory = find_central_directory(archive);
  archive.require(directory.offset, directory.size, "the central directory");
  ZipSummary summary;
  std::uint64_t at = directory.offset;
  const auto directory_end = directory.offset + directory.size;
  while (at < directory_end) {
    archive.require(at, kCentralSize, "a central directory entry");
    const auto entry = read_central_entry(archive, at);
    if (entry.flags & kEncryptedFlag) archive.fail(at, fmt::format("entry \"{}\" is encrypted", entry.name));
    verify_entry(archive, entry, directory.offset);
    ++summary.entries;
    summary.data_bytes += entry.uncompressed;
    at += central_entry_size(archive, at);
  }
  if (at != directory_end) archive.fail(at, "the last central directory entry runs past the directory");
  if (summary.entries != directory.entries) {
    archive.fail(directory.offset,
                 fmt::format("the end record counts {} entries, the directory holds {}", directory.entries, summary.entries));
  }
  if (summary.entries == 0) archive.fail(directory.offset, "the archive is empty");
  return summary;
}

std::string read_zip_archive(const std::filesystem::path& file) {
  auto bytes = read_file(file);
  verify_zip_archive(bytes, file.string());
  return bytes;
}

}  // namespace encore::core
