#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/policy/cron_schedule.h"

namespace mitigate {
namespace {

using ::testing::HasSubstr;

CronSchedule parse(std::string_view text) {
    std::string error;
    auto schedule = CronSchedule::parse(text, error);
    EXPECT_TRUE(schedule) << text << ": " << error;
    return schedule.value_or(*CronSchedule::parse("* * * * *", error));
}

CivilMinute at(int month, int day, int hour, int minute, int weekday) {
    return {2026, month, day, hour, minute, weekday};
}

TEST(CronSchedule, MatchesFieldsRangesListsStepsAndNames) {
    const auto weekday_mornings = parse("0 9 * * mon-fri");
    EXPECT_TRUE(weekday_mornings.matches(at(11, 23, 9, 0, 1)));   // Monday 09:00
    EXPECT_FALSE(weekday_mornings.matches(at(11, 22, 9, 0, 0)));  // Sunday
    EXPECT_FALSE(weekday_mornings.matches(at(11, 23, 9, 1, 1)));

    const auto quarters = parse("*/15 9-17/2 1,15 * *");
    EXPECT_TRUE(quarters.matches(at(3, 15, 11, 45, 3)));
    EXPECT_FALSE(quarters.matches(at(3, 15, 10, 45, 3)));  // 10 is not in 9-17/2
    EXPECT_FALSE(quarters.matches(at(3, 16, 11, 45, 4)));

    const auto weekends = parse("30 2 * JAN,dec sat-sun");
    EXPECT_TRUE(weekends.matches(at(12, 5, 2, 30, 6)));
    EXPECT_TRUE(weekends.matches(at(1, 4, 2, 30, 0)));
    EXPECT_FALSE(weekends.matches(at(2, 7, 2, 30, 6)));
    EXPECT_TRUE(parse("0 0 * * 7").matches(at(11, 22, 0, 0, 0)));  // 7 is Sunday
}

TEST(CronSchedule, DayOfMonthOrDayOfWeekWhenBothAreRestricted) {
    const auto schedule = parse("0 0 1 * mon");
    EXPECT_TRUE(schedule.matches(at(6, 1, 0, 0, 1)));
    EXPECT_TRUE(schedule.matches(at(6, 8, 0, 0, 1)));  // a Monday
    EXPECT_TRUE(schedule.matches(at(7, 1, 0, 0, 3)));  // the first
    EXPECT_FALSE(schedule.matches(at(7, 2, 0, 0, 4)));
}

TEST(CronSchedule, ErrorsNameTheField) {
    const std::pair<const char*, const char*> cases[] = {
        {"0 9 * *", "5 fields"},
        {"60 * * * *", "minute field: \"60\" is outside 0-59"},
        {"* 24 * * *", "hour field"},
        {"* * 0 * *", "day-of-month field"},
        {"* * * foo *", "month field: \"foo\" is not a number or a name"},
        {"* * * * mon-fun", "day-of-week field: \"mon-fun\" has a bad range end"},
        {"*/0 * * * *", "minute field: \"*/0\" has a bad step"},
        {"5-1 * * * *", "empty range"},
    };
    for (const auto& [text, expected] : cases) {
        std::string error;
        EXPECT_FALSE(CronSchedule::parse(text, error)) << text;
        EXPECT_THAT(error, HasSubstr(expected)) << text;
    }
}

TEST(CronSchedule, KnowsWhenItCanNeverFire) {
    EXPECT_FALSE(parse("0 0 30 2 *").can_ever_match());
    EXPECT_FALSE(parse("0 0 31 4,6,9,11 *").can_ever_match());
    EXPECT_TRUE(parse("0 0 29 2 *").can_ever_match());    // leap years
    EXPECT_TRUE(parse("0 0 30 2 mon").can_ever_match());  // or any Monday in February
}

}  // namespace
}  // namespace mitigate
