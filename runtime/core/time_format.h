// Text forms of time used on every wire and in every file: RFC 3339 timestamps and
// human durations ("90s", "30m", "1h30m", "2d").
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "runtime/core/clock.h"

namespace mitigate {

// "2026-11-23T07:28:22.125Z". Always UTC, milliseconds only when non-zero.
std::string format_rfc3339(TimePoint time);

// Accepts RFC 3339 with 'Z' or a numeric offset and optional fractional seconds
// (Alertmanager sends nanoseconds; they are truncated to milliseconds).
std::optional<TimePoint> parse_rfc3339(std::string_view text);

// Accepts a sequence of <integer><unit> with units ms, s, m, h, d ("1h30m").
// Rejects empty text, signs, fractions, unknown units and overflow.
std::optional<Duration> parse_duration(std::string_view text);

// The shortest form parse_duration reads back to the same value ("1h30m", "250ms").
std::string format_duration(Duration duration);

}  // namespace mitigate
