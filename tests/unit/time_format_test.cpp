#include <gtest/gtest.h>

#include "runtime/core/clock.h"
#include "runtime/core/time_format.h"

namespace mitigate {
namespace {

using namespace std::chrono_literals;

TEST(Rfc3339, ParsesOffsetsAndFractionsAndFormatsUtc) {
    const auto utc = parse_rfc3339("2026-11-23T07:28:22Z");
    ASSERT_TRUE(utc);
    EXPECT_EQ(format_rfc3339(*utc), "2026-11-23T07:28:22Z");
    EXPECT_EQ(parse_rfc3339("2026-11-23T08:28:22+01:00"), utc);
    EXPECT_EQ(parse_rfc3339("2026-11-23T02:58:22-04:30"), utc);
    // Alertmanager sends nanoseconds: truncated to milliseconds.
    const auto fine = parse_rfc3339("2026-11-23T07:28:22.123456789Z");
    ASSERT_TRUE(fine);
    EXPECT_EQ(format_rfc3339(*fine), "2026-11-23T07:28:22.123Z");
    EXPECT_EQ(format_rfc3339(*parse_rfc3339("2026-11-23T07:28:22.5Z")), "2026-11-23T07:28:22.500Z");
}

TEST(Rfc3339, RefusesWhatIsNotATime) {
    for (const char* text :
         {"", "2026-11-23", "2026-11-23T07:28:22", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
          "2026-11-23T24:00:00Z", "2026-11-23T07:28:22.Z", "2026-11-23T07:28:22Zjunk",
          "2026-11-23T07:28:22+0100"}) {
        EXPECT_FALSE(parse_rfc3339(text)) << text;
    }
}

TEST(Durations, ParseAndFormat) {
    EXPECT_EQ(parse_duration("30m"), Duration{30min});
    EXPECT_EQ(parse_duration("1h30m"), Duration{90min});
    EXPECT_EQ(parse_duration("250ms"), Duration{250ms});
    EXPECT_EQ(parse_duration("2d"), Duration{48h});
    EXPECT_EQ(format_duration(Duration{90min}), "1h30m");
    EXPECT_EQ(format_duration(Duration{1500ms}), "1s500ms");
    EXPECT_EQ(format_duration(Duration{0}), "0s");
    for (const char* text : {"", "30", "m", "-5m", "1.5h", "5 m", "5x", "99999999999999999999d"}) {
        EXPECT_FALSE(parse_duration(text)) << text;
    }
}

TEST(ManualClock, MovesOnlyWhenTold) {
    ManualClock clock(*parse_rfc3339("2026-11-23T00:00:00Z"));
    const auto start = clock.now();
    EXPECT_EQ(clock.now(), start);
    clock.advance(Duration{30min});
    EXPECT_EQ(format_rfc3339(clock.now()), "2026-11-23T00:30:00Z");
}

}  // namespace
}  // namespace mitigate
