// IDX reader: raw bytes through parse_idx, and the same bytes as a file (raw or gzip) through
// read_idx_file with a small decompression ceiling. The first byte picks the path.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "encore/core/errors.h"
#include "encore/core/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool through_file = data[0] & 1;
  std::vector<unsigned char> bytes(data + 1, data + size);
  try {
    if (!through_file) {
      encore::core::parse_idx(std::move(bytes), "fuzz");
      return 0;
    }
    // A memory file keeps the fuzzer off the disk; zlib reads it by path like any file.
    const int fd = memfd_create("fuzz-idx", 0);
    if (fd < 0) return 0;
    const bool written = bytes.empty() || write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    encore::core::IdxLimits limits;
    limits.max_decompressed_bytes = 8 << 20;
    try {
      if (written) encore::core::read_idx_file("/proc/self/fd/" + std::to_string(fd), limits);
    } catch (const encore::core::DataError&) {
    }
    close(fd);
  } catch (const encore::core::DataError&) {
  }
  return 0;
}
