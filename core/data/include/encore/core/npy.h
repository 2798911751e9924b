#pragma once
/// NumPy's .npy format (versions 1.0, 2.0 and 3.0: what `numpy.save` writes), read and written.
/// Free of LibTorch so that it can be fuzzed and tested on its own.

#include <cstdint>
#include <string>
#include <vector>

namespace encore::core {

/// Element types encore reads and writes (little-endian or single-byte `descr`s).
enum class NpyType { kUInt8, kInt8, kInt16, kInt32, kInt64, kUInt16, kUInt32, kUInt64, kFloat32, kFloat64 };

/// Bytes per element.
std::size_t npy_element_size(NpyType type);
/// NumPy's name of the type ("uint8", "float32"), for messages.
std::string npy_type_name(NpyType type);
/// Whether the type holds integers.
bool npy_is_integer(NpyType type);

/// A validated .npy array: the elements are `bytes[data_offset ...]`, little-endian, C order,
/// exactly `element_count() * npy_element_size(type)` bytes.
struct NpyArray {
  /// Element type, from the header's `descr`.
  NpyType type = NpyType::kUInt8;
  /// The header's `shape` (empty for a scalar).
  std::vector<std::int64_t> shape;
  /// The whole file.
  std::string bytes;
  /// Where the elements start in `bytes`.
  std::size_t data_offset = 0;
  /// Elements (the product of shape).
  std::int64_t element_count() const;
};

/// Validates the magic, version, header (a Python dict literal with `descr`, `fortran_order` and
/// `shape`) and the data's length against the header. `source` names the file in errors: a
/// DataError naming it, the byte offset and what is wrong (a big-endian or Fortran-ordered array
/// is refused saying how to save it instead).
NpyArray parse_npy(std::string bytes, const std::string& source);
/// Reads and parses a .npy file.
NpyArray read_npy_file(const std::string& file);

/// The bytes of a version 1.0 .npy file holding `data` (C order, little-endian) of `shape`.
std::string npy_bytes(NpyType type, const std::vector<std::int64_t>& shape, const void* data);

}  // namespace encore::core
