#include "runtime/policy/cron_schedule.h"

#include <array>
#include <charconv>
#include <vector>

namespace mitigate {
namespace {

struct FieldSpec {
    const char* name;
    int minimum;
    int maximum;
    const std::array<std::string_view, 13>* names;  // index = value; empty entries unused
};

constexpr std::array<std::string_view, 13> month_names{
    "", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 13> weekday_names{
    "sun", "mon", "tue", "wed", "thu", "fri", "sat", "", "", "", "", "", ""};

std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    while (true) {
        const auto end = text.find(separator, start);
        parts.push_back(text.substr(start, end - start));
        if (end == std::string_view::npos) {
            return parts;
        }
        start = end + 1;
    }
}

std::optional<int> read_value(std::string_view text, const FieldSpec& spec) {
    int value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error == std::errc{} && end == text.data() + text.size()) {
        return value;
    }
    if (spec.names != nullptr) {
        std::string lower;
        for (char c : text) {
            lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        for (std::size_t i = 0; i < spec.names->size(); ++i) {
            if (!(*spec.names)[i].empty() && (*spec.names)[i] == lower) {
                return static_cast<int>(i);
            }
        }
    }
    return std::nullopt;
}

// Parses one field into `bits` (indexed by value). Returns an error message or "".
template <std::size_t Size>
std::string parse_field(std::string_view text, const FieldSpec& spec, std::bitset<Size>& bits,
                        bool& restricted) {
    restricted = text != "*";
    for (std::string_view item : split(text, ',')) {
        const std::string quoted = "\"" + std::string(item) + "\"";
        int step = 1;
        const auto slash = item.find('/');
        if (slash != std::string_view::npos) {
            const std::string_view step_text = item.substr(slash + 1);
            const auto [end, error] =
                std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
            if (error != std::errc{} || end != step_text.data() + step_text.size() || step < 1) {
                return quoted + " has a bad step (expected /N with N at least 1)";
            }
            item = item.substr(0, slash);
        }
        int low = spec.minimum;
        int high = spec.maximum;
        if (item != "*") {
            const auto dash = item.find('-');
            const auto first = read_value(item.substr(0, dash), spec);
            if (!first) {
                return quoted + " is not a number" +
                       (spec.names != nullptr ? " or a name" : std::string()) + " from " +
                       std::to_string(spec.minimum) + " to " + std::to_string(spec.maximum);
            }
            low = high = *first;
            if (dash != std::string_view::npos) {
                const auto last = read_value(item.substr(dash + 1), spec);
                if (!last) {
                    return quoted + " has a bad range end";
                }
                high = *last;
                if (spec.maximum == 7 && high == 0) {
                    high = 7;  // "fri-sun": Sunday closes a weekday range as 7
                }
            } else if (slash != std::string_view::npos) {
                high = spec.maximum;  // "5/15" means from 5 every 15
            }
        }
        if (low < spec.minimum || high > spec.maximum || low > high) {
            return quoted + " is outside " + std::to_string(spec.minimum) + "-" +
                   std::to_string(spec.maximum) + " or an empty range";
        }
        for (int value = low; value <= high; value += step) {
            bits.set(static_cast<std::size_t>(value));
        }
    }
    return "";
}

}  // namespace

std::optional<CronSchedule> CronSchedule::parse(std::string_view text, std::string& error) {
    std::vector<std::string_view> fields;
    for (std::string_view part : split(text, ' ')) {
        if (!part.empty()) {
            fields.push_back(part);
        }
    }
    if (fields.size() != 5) {
        error = "a cron schedule has 5 fields (minute hour day-of-month month day-of-week), not " +
                std::to_string(fields.size());
        return std::nullopt;
    }
    static const FieldSpec specs[] = {{"minute", 0, 59, nullptr},
                                      {"hour", 0, 23, nullptr},
                                      {"day-of-month", 1, 31, nullptr},
                                      {"month", 1, 12, &month_names},
                                      {"day-of-week", 0, 7, &weekday_names}};
    CronSchedule schedule;
    schedule.text_ = std::string(text);
    bool ignored = false;
    std::bitset<8> weekdays;
    const std::string field_problems[] = {
        parse_field(fields[0], specs[0], schedule.minutes_, ignored),
        parse_field(fields[1], specs[1], schedule.hours_, ignored),
        parse_field(fields[2], specs[2], schedule.days_, schedule.days_restricted_),
        parse_field(fields[3], specs[3], schedule.months_, ignored),
        parse_field(fields[4], specs[4], weekdays, schedule.weekdays_restricted_),
    };
    for (std::size_t i = 0; i < 5; ++i) {
        if (!field_problems[i].empty()) {
            error = std::string(specs[i].name) + " field: " + field_problems[i];
            return std::nullopt;
        }
    }
    for (std::size_t day = 0; day < 7; ++day) {
        schedule.weekdays_[day] = weekdays[day];
    }
    if (weekdays[7]) {
        schedule.weekdays_.set(0);  // 7 is Sunday too
    }
    return schedule;
}

bool CronSchedule::matches(const CivilMinute& at) const {
    if (!minutes_[static_cast<std::size_t>(at.minute)] ||
        !hours_[static_cast<std::size_t>(at.hour)] ||
        !months_[static_cast<std::size_t>(at.month)]) {
        return false;
    }
    const bool day_ok = days_[static_cast<std::size_t>(at.day)];
    const bool weekday_ok = weekdays_[static_cast<std::size_t>(at.weekday)];
    if (days_restricted_ && weekdays_restricted_) {
        return day_ok || weekday_ok;
    }
    return day_ok && weekday_ok;
}

}  // namespace mitigate

namespace mitigate {

bool CronSchedule::can_ever_match() const {
    if (!days_restricted_ || weekdays_restricted_) {
        return true;  // any day, or the weekday alternative, always comes round
    }
    constexpr std::array<int, 13> longest_month{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int month = 1; month <= 12; ++month) {
        if (!months_[static_cast<std::size_t>(month)]) {
            continue;
        }
        for (int day = 1; day <= longest_month[static_cast<std::size_t>(month)]; ++day) {
            if (days_[static_cast<std::size_t>(day)]) {
                return true;
            }
        }
    }
    return false;
}

}  // namespace mitigate
