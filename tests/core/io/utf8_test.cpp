#include "encore/core/utf8.h"

#include <gtest/gtest.h>

#include <string>

using encore::core::decode_utf8;
using encore::core::first_non_utf8_byte;

TEST(Utf8, DecodesEveryLengthOfWellFormedSequence) {
  const std::string text = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // a, e acute, euro sign, a smiling face
  EXPECT_EQ(decode_utf8(text, 0).value, 'a');
  EXPECT_EQ(decode_utf8(text, 1).value, 0xE9);
  EXPECT_EQ(decode_utf8(text, 1).length, 2u);
  EXPECT_EQ(decode_utf8(text, 3).value, 0x20AC);
  EXPECT_EQ(decode_utf8(text, 3).length, 3u);
  EXPECT_EQ(decode_utf8(text, 6).value, 0x1F600);
  EXPECT_EQ(decode_utf8(text, 6).length, 4u);
  EXPECT_EQ(first_non_utf8_byte(text), std::nullopt);
}

TEST(Utf8, RefusesWhatTheStandardCallsMalformedAtItsFirstByte) {
  EXPECT_EQ(first_non_utf8_byte("Caf\xE9"), 3u);                    // Latin-1 e acute
  EXPECT_EQ(first_non_utf8_byte("ok\xC3"), 2u);                     // a sequence cut short
  EXPECT_EQ(first_non_utf8_byte("\x80"), 0u);                       // a lone continuation byte
  EXPECT_EQ(first_non_utf8_byte(std::string("x\xC0\x80", 3)), 1u);  // overlong NUL
  EXPECT_EQ(first_non_utf8_byte("\xED\xA0\x80"), 0u);               // a surrogate
  EXPECT_EQ(first_non_utf8_byte("\xF4\x90\x80\x80"), 0u);           // past U+10FFFF
  EXPECT_EQ(decode_utf8("\xE9x", 0).value, -1);
  EXPECT_EQ(decode_utf8("\xE9x", 0).length, 1u);
}
