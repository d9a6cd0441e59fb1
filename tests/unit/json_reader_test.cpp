// parse_json_within: the one reader of JSON that crossed a boundary. Every limit and the
// duplicate-key rule, each with the text that would have slipped through nlohmann alone.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/core/json_reader.h"

namespace mitigate {
namespace {

using ::testing::HasSubstr;

std::string refusal(std::string_view text, JsonTextLimits limits = {}) {
    std::string error;
    const auto parsed = parse_json_within(text, limits, error);
    EXPECT_FALSE(parsed.has_value()) << text;
    return error;
}

TEST(ParseJsonWithin, ARepeatedKeyIsRefusedWithItsPath) {
    EXPECT_THAT(refusal(R"({"role": "viewer", "role": "admin"})"),
                HasSubstr("the key role appears twice"));
    EXPECT_THAT(
        refusal(
            R"({"alerts": [{"labels": {"a": "1"}}, {"labels": {"a": "1", "b": 2, "a": "3"}}]})"),
        HasSubstr("the key alerts[1].labels.a appears twice"));
    // After nested values of every kind, the index and the keys still line up.
    EXPECT_THAT(refusal(R"([[1, [2]], {"x": {}}, {"y": [], "z": null, "y": 1}])"),
                HasSubstr("the key [2].y appears twice"));
    // The same key in sibling objects, or as a value, is not a repetition.
    std::string error;
    const auto parsed = parse_json_within(
        R"({"a": {"k": 1}, "b": {"k": 2}, "k": "k", "list": [{"k": 1}, {"k": 2}]})", {}, error);
    ASSERT_TRUE(parsed.has_value()) << error;
    EXPECT_EQ((*parsed)["b"]["k"], 2);
}

TEST(ParseJsonWithin, KeysThatDifferOnlyInEscapesAreTheSameKey) {
    // "\u0061" is "a": a reader that compared the raw text would let the pair through.
    EXPECT_THAT(refusal(R"({"a": 1, "\u0061": 2})"), HasSubstr("the key a appears twice"));
}

TEST(ParseJsonWithin, SizeDepthAndSyntaxAreRefusedWithoutThrowing) {
    EXPECT_THAT(refusal(std::string(100, ' ') + "{}", {50, 64}), HasSubstr("over the limit of 50"));
    EXPECT_THAT(refusal(std::string(65, '[') + std::string(65, ']')),
                HasSubstr("deeper than 64 levels"));
    // Brackets inside strings do not count towards the depth.
    std::string error;
    EXPECT_TRUE(parse_json_within(R"({"text": ")" + std::string(200, '[') + R"("})", {}, error));
    EXPECT_THAT(refusal(R"({"a": )"), HasSubstr("not valid JSON"));
    EXPECT_THAT(refusal("{\"a\": \"\xff\"}"), HasSubstr("not valid JSON"));
    EXPECT_THAT(refusal("{\"\xc0\xaf\": 1}"), HasSubstr("not valid JSON"));
}

}  // namespace
}  // namespace mitigate
