// A five-field cron expression ("minute hour day-of-month month day-of-week"), the form
// every SRE already reads: "0 9 * * mon-fri" is 09:00 on weekdays. Fields take *, numbers,
// ranges (1-5), lists (1,15), steps (*/15, 9-17/2) and, for months and weekdays, English
// three-letter names. As in Vixie cron, when both day-of-month and day-of-week are
// restricted, a day matches if either does. Sunday is 0 or 7.
#pragma once

#include <bitset>
#include <optional>
#include <string>
#include <string_view>

namespace mitigate {

// A local (civil) minute: what a wall clock in some time zone shows.
struct CivilMinute {
    int year = 1970;
    int month = 1;    // 1-12
    int day = 1;      // 1-31
    int hour = 0;     // 0-23
    int minute = 0;   // 0-59
    int weekday = 4;  // 0 = Sunday ... 6 = Saturday
};

class CronSchedule {
  public:
    // On failure, `error` says which field is wrong and why.
    static std::optional<CronSchedule> parse(std::string_view text, std::string& error);

    bool matches(const CivilMinute& minute) const;
    // Whether any minute of this hour can match: lets a walk over minutes skip whole hours.
    bool matches_hour(int hour) const { return hours_[static_cast<std::size_t>(hour)]; }
    // The latest minute of an hour, at most `minute`, that the minute field allows; -1 if
    // none: lets a walk back over minutes jump to the next candidate.
    int latest_minute_at_most(int minute) const {
        for (int at = minute; at >= 0; --at) {
            if (minutes_[static_cast<std::size_t>(at)]) {
                return at;
            }
        }
        return -1;
    }
    // The cheap half of matches(), to skip most minutes before computing a weekday.
    bool matches_time_of_day(int hour, int minute) const {
        return minutes_[static_cast<std::size_t>(minute)] && hours_[static_cast<std::size_t>(hour)];
    }
    // False for schedules that can never fire, such as "0 0 30 2 *" (February 30th).
    bool can_ever_match() const;
    const std::string& text() const { return text_; }

  private:
    std::string text_;
    std::bitset<60> minutes_;
    std::bitset<24> hours_;
    std::bitset<32> days_;     // 1-31
    std::bitset<13> months_;   // 1-12
    std::bitset<7> weekdays_;  // 0-6
    bool days_restricted_ = false;
    bool weekdays_restricted_ = false;
};

}  // namespace mitigate
