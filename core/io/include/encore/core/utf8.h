#pragma once
/// UTF-8 text: names read from users' files (CSV headers and labels, class folders) end up in JSON
/// files, which hold UTF-8 only, so they are checked where they are read.

#include <cstddef>
#include <optional>
#include <string_view>

namespace encore::core {

/// One code point of UTF-8 text.
struct CodePoint {
  /// The code point, or -1 where the bytes are not well-formed UTF-8.
  int value;
  /// Bytes it takes (1 for a malformed byte, so that decoding goes on at the next one).
  std::size_t length;
};

/// The code point at byte `position` of `text`. Overlong forms, surrogates and values past U+10FFFF
/// are malformed, as in the Unicode standard.
CodePoint decode_utf8(std::string_view text, std::size_t position);

/// The offset of the first byte of `text` that is not well-formed UTF-8; nullopt when all are.
std::optional<std::size_t> first_non_utf8_byte(std::string_view text);

}  // namespace encore::core
