#include "encore/core/npy.h"

#include <cctype>
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "encore/core/errors.h"
#include "encore/core/files.h"

namespace encore::core {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;

struct TypeInfo {
  NpyType type;
  const char* code;
  const char* name;
  std::size_t size;
  bool integer;
};

constexpr TypeInfo kTypes[] = {
    {NpyType::kUInt8, "u1", "uint8", 1, true},      {NpyType::kInt8, "i1", "int8", 1, true},
    {NpyType::kInt16, "i2", "int16", 2, true},      {NpyType::kInt32, "i4", "int32", 4, true},
    {NpyType::kInt64, "i8", "int64", 8, true},      {NpyType::kUInt16, "u2", "uint16", 2, true},
    {NpyType::kUInt32, "u4", "uint32", 4, true},    {NpyType::kUInt64, "u8", "uint64", 8, true},
    {NpyType::kFloat32, "f4", "float32", 4, false}, {NpyType::kFloat64, "f8", "float64", 8, false},
};

const TypeInfo& info(NpyType type) {
  for (const auto& t : kTypes) {
    if (t.type == type) return t;
  }
  throw std::logic_error("npy: unknown type");
}

// The header dict, a Python literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, std::size_t base, const std::string& source) : text_(text), base_(base), source_(source) {}

  void parse(std::string& descr, bool& fortran_order, std::vector<std::int64_t>& shape) {
    bool has_descr = false, has_order = false, has_shape = false;
    expect('{');
    while (!peek('}')) {
      const auto key = quoted();
      expect(':');
      if (key == "descr") {
        descr = quoted();
        has_descr = true;
      } else if (key == "fortran_order") {
        fortran_order = boolean();
        has_order = true;
      } else if (key == "shape") {
        shape = tuple();
        has_shape = true;
      } else {
        throw data_error_at(source_, offset(), fmt::format("header has an unknown key '{}'", key));
      }
      if (!peek('}')) expect(',');
    }
    expect('}');
    skip_space();
    if (pos_ != text_.size()) throw data_error_at(source_, offset(), "header has text after its dict");
    if (!has_descr || !has_order || !has_shape)
      throw data_error_at(source_, base_, "header lacks one of 'descr', 'fortran_order', 'shape'");
  }

 private:
  std::size_t offset() const { return base_ + pos_; }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool peek(char c) {
    skip_space();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  void expect(char c) {
    if (!peek(c)) throw data_error_at(source_, offset(), fmt::format("header: expected '{}'", c));
    ++pos_;
  }
  std::string quoted() {
    skip_space();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"'))
      throw data_error_at(source_, offset(), "header: expected a quoted string");
    const char quote = text_[pos_++];
    const auto end = text_.find(quote, pos_);
    if (end == std::string::npos) throw data_error_at(source_, offset(), "header: unterminated string");
    auto value = text_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return value;
  }
  bool boolean() {
    skip_space();
    for (const auto& [word, value] : {std::pair<const char*, bool>{"True", true}, {"False", false}}) {
      if (text_.compare(pos_, std::strlen(word), word) == 0) {
        pos_ += std::strlen(word);
        return value;
      }
    }
    throw data_error_at(source_, offset(), "header: 'fortran_order' must be True or False");
  }
  std::vector<std::int64_t> tuple() {
    expect('(');
    std::vector<std::int64_t> dims;
    while (!peek(')')) {
      skip_space();
      const auto start = pos_;
      std::int64_t value = 0;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
        const int digit = text_[pos_++] - '0';
        if (value > (std::numeric_limits<std::int64_t>::max() - digit) / 10)
          throw data_error_at(source_, base_ + start, "header: a dimension is too large");
        value = value * 10 + digit;
      }
      if (pos_ == start) throw data_error_at(source_, offset(), "header: expected a dimension (a non-negative integer)");
      if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2's long literals
      dims.push_back(value);
      if (!peek(')')) expect(',');
    }
    expect(')');
    return dims;
  }

  const std::string& text_;
  std::size_t base_;
  const std::string& source_;
  std::size_t pos_ = 0;
};

std::uint32_t little_endian(const std::string& bytes, std::size_t offset, std::size_t size) {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < size; ++i) value |= std::uint32_t{static_cast<unsigned char>(bytes[offset + i])} << (8 * i);
  return value;
}

}  // namespace

std::size_t npy_element_size(NpyType type) { return info(type).size; }
std::string npy_type_name(NpyType type) { return info(type).name; }
bool npy_is_integer(NpyType type) { return info(type).integer; }

std::int64_t NpyArray::element_count() const {
  std::int64_t count = 1;
  for (auto d : shape) count *= d;
  return count;
}

NpyArray parse_npy(std::string bytes, const std::string& source) {
  if (bytes.size() < kMagicSize + 2 || bytes.compare(0, kMagicSize, kMagic, kMagicSize) != 0) {
    throw data_error_at(source, 0, "not a .npy file (no \\x93NUMPY magic)");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  if (major < 1 || major > 3) throw data_error_at(source, 6, fmt::format("unknown .npy format version {}", major));
  const std::size_t length_size = major == 1 ? 2 : 4;
  const std::size_t header_start = 8 + length_size;
  if (bytes.size() < header_start) throw data_error_at(source, 8, "file ends inside the header length");
  const std::size_t header_length = little_endian(bytes, 8, length_size);
  if (header_length > bytes.size() - header_start) {
    throw data_error_at(source, 8, fmt::format("header length {} runs past the end of the file ({} bytes)", header_length, bytes.size()));
  }
  std::string descr;
  bool fortran_order = false;
  NpyArray array;
  const std::string header = bytes.substr(header_start, header_length);
  HeaderParser(header, header_start, source).parse(descr, fortran_order, array.shape);
  if (fortran_order) throw data_error_at(source, header_start, "Fortran-ordered arrays are not read; save numpy.ascontiguousarray(a)");
  const TypeInfo* type = nullptr;
  if (descr.size() == 3) {
    for (const auto& t : kTypes) {
      if (descr.compare(1, 2, t.code) == 0) type = &t;
    }
  }
  if (!type) {
    throw data_error_at(source, header_start,
                        fmt::format("dtype '{}' is not read; use uint8, int8 to int64, uint16 to uint64, float32 or float64", descr));
  }
  const char order = descr[0];
  if (order == '>' && type->size > 1) {
    throw data_error_at(source, header_start, fmt::format("dtype '{}' is big-endian; save a.astype('<{}')", descr, type->code));
  }
  if (order != '<' && order != '|' && order != '=' && order != '>')
    throw data_error_at(source, header_start, fmt::format("dtype '{}' has no byte order", descr));
  array.type = type->type;
  const std::uint64_t limit = std::numeric_limits<std::int64_t>::max() / type->size;
  std::uint64_t count = 1;
  for (auto d : array.shape) {
    if (d != 0 && count > limit / static_cast<std::uint64_t>(d))
      throw data_error_at(source, header_start, "shape's element count overflows");
    count *= static_cast<std::uint64_t>(d);
  }
  array.data_offset = header_start + header_length;
  const std::uint64_t expected = count * type->size;
  const std::uint64_t present = bytes.size() - array.data_offset;
  if (present != expected) {
    throw data_error_at(source, array.data_offset,
                        fmt::format("shape ({}) of {} needs {} bytes of data, the file holds {}", fmt::join(array.shape, ", "), type->name,
                                    expected, present));
  }
  array.bytes = std::move(bytes);
  return array;
}

NpyArray read_npy_file(const std::string& file) { return parse_npy(read_file(file), file); }

std::string npy_bytes(NpyType type, const std::vector<std::int64_t>& shape, const void* data) {
  auto dims = fmt::format("{}", fmt::join(shape, ", "));
  if (shape.size() == 1) dims += ',';  // Python's one-element tuple
  std::string header =
      fmt::format("{{'descr': '{}{}', 'fortran_order': False, 'shape': ({}), }}", info(type).size == 1 ? '|' : '<', info(type).code, dims);
  // Magic, version, length and header padded with spaces to a multiple of 64 bytes, ending in '\n'.
  const std::size_t unpadded = kMagicSize + 4 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out(kMagic, kMagicSize);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  std::int64_t count = 1;
  for (auto d : shape) count *= d;
  out.append(static_cast<const char*>(data), static_cast<std::size_t>(count) * info(type).size);
  return out;
}

}  // namespace encore::core
