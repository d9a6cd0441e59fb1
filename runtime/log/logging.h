// Process-wide logging setup. Logs go to stderr (stdout is for command output), as
// text for people or as JSON lines for collectors. Code logs through spdlog directly.
#pragma once

#include <optional>
#include <string_view>

namespace mitigate {

enum class LogFormat { text, json };
enum class LogLevel { trace, debug, info, warn, error, off };

std::optional<LogFormat> parse_log_format(std::string_view text);
std::optional<LogLevel> parse_log_level(std::string_view text);
std::string_view to_string(LogFormat format);
std::string_view to_string(LogLevel level);

// Replaces the default logger. Safe to call again (the CLI does: once with defaults,
// again once the config file and flags are known).
void configure_logging(LogFormat format, LogLevel level);

}  // namespace mitigate
