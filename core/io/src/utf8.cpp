#include "encore/core/utf8.h"

namespace encore::core {

CodePoint decode_utf8(std::string_view text, std::size_t position) {
  constexpr CodePoint kMalformed{-1, 1};
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[position + k]); };
  const auto lead = byte(0);
  if (lead < 0x80) return {lead, 1};
  const std::size_t length = (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
  if (length == 0 || position + length > text.size()) return kMalformed;
  int value = lead & (0x7F >> length);
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(k) >> 6) != 0x2) return kMalformed;
    value = (value << 6) | (byte(k) & 0x3F);
  }
  // The smallest value each length may carry: anything below has a shorter (the only valid) form.
  constexpr int kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (value < kSmallest[length] || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return kMalformed;
  return {value, length};
}

std::optional<std::size_t> first_non_utf8_byte(std::string_view text) {
  for (std::size_t position = 0; position < text.size();) {
    const auto point = decode_utf8(text, position);
    if (point.value < 0) return position;
    position += point.length;
  }
  return std::nullopt;
}

}  // namespace encore::core
