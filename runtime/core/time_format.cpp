#include "runtime/core/time_format.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <ctime>
#include <limits>

namespace mitigate {
namespace {

bool read_digits(std::string_view text, std::size_t position, std::size_t count, int& value) {
    if (position + count > text.size()) {
        return false;
    }
    value = 0;
    for (std::size_t i = position; i < position + count; ++i) {
        if (text[i] < '0' || text[i] > '9') {
            return false;
        }
        value = value * 10 + (text[i] - '0');
    }
    return true;
}

}  // namespace

std::string format_rfc3339(TimePoint time) {
    const auto seconds = std::chrono::floor<std::chrono::seconds>(time);
    const auto milliseconds = (time - seconds).count();
    const std::time_t as_time_t = seconds.time_since_epoch().count();
    std::tm parts{};
    gmtime_r(&as_time_t, &parts);
    std::array<char, 40> buffer{};
    std::size_t length = std::strftime(buffer.data(), buffer.size(), "%Y-%m-%dT%H:%M:%S", &parts);
    std::string result(buffer.data(), length);
    if (milliseconds != 0) {
        std::array<char, 8> fraction{};
        std::snprintf(fraction.data(), fraction.size(), ".%03d", static_cast<int>(milliseconds));
        result += fraction.data();
    }
    result += 'Z';
    return result;
}

std::optional<TimePoint> parse_rfc3339(std::string_view text) {
    // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    if (!read_digits(text, 0, 4, year) || text.size() < 20 || text[4] != '-' ||
        !read_digits(text, 5, 2, month) || text[7] != '-' || !read_digits(text, 8, 2, day) ||
        (text[10] != 'T' && text[10] != 't' && text[10] != ' ') ||
        !read_digits(text, 11, 2, hour) || text[13] != ':' || !read_digits(text, 14, 2, minute) ||
        text[16] != ':' || !read_digits(text, 17, 2, second)) {
        return std::nullopt;
    }
    std::size_t position = 19;
    int millis = 0;
    if (position < text.size() && text[position] == '.') {
        ++position;
        std::size_t digits = 0;
        while (position < text.size() && text[position] >= '0' && text[position] <= '9') {
            if (digits < 3) {
                millis = millis * 10 + (text[position] - '0');
            }
            ++digits;
            ++position;
        }
        if (digits == 0) {
            return std::nullopt;
        }
        for (std::size_t pad = digits; pad < 3; ++pad) {
            millis *= 10;
        }
    }
    int offset_minutes = 0;
    if (position < text.size() && (text[position] == 'Z' || text[position] == 'z')) {
        ++position;
    } else if (position < text.size() && (text[position] == '+' || text[position] == '-')) {
        int offset_hours = 0, offset_mins = 0;
        if (!read_digits(text, position + 1, 2, offset_hours) || position + 3 >= text.size() ||
            text[position + 3] != ':' || !read_digits(text, position + 4, 2, offset_mins) ||
            offset_hours > 23 || offset_mins > 59) {
            return std::nullopt;
        }
        offset_minutes = (offset_hours * 60 + offset_mins) * (text[position] == '-' ? -1 : 1);
        position += 6;
    } else {
        return std::nullopt;
    }
    if (position != text.size()) {
        return std::nullopt;
    }
    namespace chrono = std::chrono;
    const chrono::year_month_day date{chrono::year{year},
                                      chrono::month{static_cast<unsigned>(month)},
                                      chrono::day{static_cast<unsigned>(day)}};
    // second == 60 is a leap second: RFC 3339 allows it, we fold it into the next second.
    if (!date.ok() || hour > 23 || minute > 59 || second > 60) {
        return std::nullopt;
    }
    return TimePoint{chrono::sys_days{date}} + chrono::hours{hour} + chrono::minutes{minute} +
           chrono::seconds{second} + chrono::milliseconds{millis} - chrono::minutes{offset_minutes};
}

std::optional<Duration> parse_duration(std::string_view text) {
    if (text.empty()) {
        return std::nullopt;
    }
    std::int64_t total = 0;
    std::size_t position = 0;
    while (position < text.size()) {
        std::int64_t amount = 0;
        const char* begin = text.data() + position;
        const char* end = text.data() + text.size();
        if (*begin < '0' || *begin > '9') {
            return std::nullopt;
        }
        auto [after_number, error] = std::from_chars(begin, end, amount);
        if (error != std::errc{}) {
            return std::nullopt;
        }
        position = static_cast<std::size_t>(after_number - text.data());
        std::int64_t unit = 0;
        if (text.substr(position, 2) == "ms") {
            unit = 1;
            position += 2;
        } else if (position < text.size()) {
            switch (text[position]) {
                case 's': unit = 1000; break;
                case 'm': unit = 60'000; break;
                case 'h': unit = 3'600'000; break;
                case 'd': unit = 86'400'000; break;
                default: return std::nullopt;
            }
            ++position;
        } else {
            return std::nullopt;  // a bare number has no unit: "30" is ambiguous
        }
        if (amount > (std::numeric_limits<std::int64_t>::max() - total) / unit) {
            return std::nullopt;
        }
        total += amount * unit;
    }
    return Duration{total};
}

std::string format_duration(Duration duration) {
    std::int64_t remaining = duration.count();
    if (remaining == 0) {
        return "0s";
    }
    std::string result;
    if (remaining < 0) {
        result += '-';
        remaining = -remaining;
    }
    constexpr std::array<std::pair<std::int64_t, const char*>, 5> units{
        {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}}};
    for (const auto& [size, name] : units) {
        if (remaining >= size) {
            result += std::to_string(remaining / size) + name;
            remaining %= size;
        }
    }
    return result;
}

}  // namespace mitigate
