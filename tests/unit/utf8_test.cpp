// UTF-8 checks, cuts and escapes for text that crossed a trust boundary.
#include <gtest/gtest.h>

#include "runtime/core/utf8.h"

namespace mitigate {
namespace {

TEST(Utf8, InvalidSequencesAreFoundAtTheirFirstByte) {
    EXPECT_EQ(first_invalid_utf8("plain ascii"), std::nullopt);
    EXPECT_EQ(first_invalid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), std::nullopt);
    EXPECT_EQ(first_invalid_utf8("ab\xff"), 2u);
    EXPECT_EQ(first_invalid_utf8("\xc0\xaf"), 0u);          // overlong '/'
    EXPECT_EQ(first_invalid_utf8("x\xed\xa0\x80"), 1u);     // a surrogate
    EXPECT_EQ(first_invalid_utf8("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
    EXPECT_EQ(first_invalid_utf8("ok\xe2\x82"), 2u);        // cut short
}

TEST(Utf8, ACutNeverSplitsACharacter) {
    EXPECT_EQ(cut_on_character_boundary("aaaa\xc3\xa9", 5), "aaaa");
    EXPECT_EQ(cut_on_character_boundary("aaaa\xc3\xa9", 6), "aaaa\xc3\xa9");
    EXPECT_EQ(cut_on_character_boundary("\xe2\x82\xac\xe2\x82\xac", 4), "\xe2\x82\xac");
    EXPECT_EQ(cut_on_character_boundary("short", 100), "short");
}

TEST(Utf8, ControlsSeparatorsOverridesAndInvalidBytesAreEscaped) {
    EXPECT_EQ(escape_control_characters("one\ntwo\r\tthree"), "one\\ntwo\\r\\tthree");
    EXPECT_EQ(escape_control_characters("\x1b[2Jclear"), "\\x1b[2Jclear");
    EXPECT_EQ(escape_control_characters("del\x7f"), "del\\x7f");
    EXPECT_EQ(escape_control_characters("csi\xc2\x9b"
                                        "31m"),
              "csi\\u{9b}31m");  // C1 CSI
    EXPECT_EQ(escape_control_characters("a\xe2\x80\xa8"
                                        "b"),
              "a\\u{2028}b");  // LS
    EXPECT_EQ(escape_control_characters("x\xe2\x80\xae"
                                        "cba"),
              "x\\u{202e}cba");  // RLO
    EXPECT_EQ(escape_control_characters("raw\x9b"
                                        "31m"),
              "raw\\x9b31m");  // 8-bit CSI
    EXPECT_EQ(escape_control_characters("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac");
}

TEST(Utf8, InvalidBytesAreReplacedAndValidTextKept) {
    EXPECT_EQ(replace_invalid_utf8("caf\xc3\xa9"), "caf\xc3\xa9");
    EXPECT_EQ(replace_invalid_utf8("%\xff\xfe!"), "%\xef\xbf\xbd\xef\xbf\xbd!");
    EXPECT_EQ(replace_invalid_utf8("ok\xe2\x82"), "ok\xef\xbf\xbd\xef\xbf\xbd");
    EXPECT_EQ(first_invalid_utf8(replace_invalid_utf8("\xc0\xaf\xed\xa0\x80")), std::nullopt);
}

}  // namespace
}  // namespace mitigate
