#include "runtime/log/logging.h"

#include "runtime/core/time_format.h"
#include "runtime/core/utf8.h"

#include <array>
#include <chrono>
#include <memory>
#include <utility>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace mitigate {
namespace {

constexpr std::array<std::pair<LogLevel, std::string_view>, 6> level_names{{
    {LogLevel::trace, "trace"},
    {LogLevel::debug, "debug"},
    {LogLevel::info, "info"},
    {LogLevel::warn, "warn"},
    {LogLevel::error, "error"},
    {LogLevel::off, "off"},
}};

// One JSON object per line: {"time":"...","level":"info","message":"..."}. The message
// goes through nlohmann's serializer so quotes, control characters and invalid UTF-8
// cannot break the line structure a collector depends on.
class JsonLineFormatter final : public spdlog::formatter {
  public:
    void format(const spdlog::details::log_msg& message, spdlog::memory_buf_t& out) override {
        nlohmann::json line{
            {"time", format_rfc3339(std::chrono::floor<Duration>(message.time))},
            {"level", std::string_view(spdlog::level::to_string_view(message.level).data(),
                                       spdlog::level::to_string_view(message.level).size())},
            {"message", std::string(message.payload.data(), message.payload.size())},
        };
        if (message.logger_name.size() != 0) {
            line["logger"] = std::string(message.logger_name.data(), message.logger_name.size());
        }
        const std::string text =
            line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        out.append(text.data(), text.data() + text.size());
    }

    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<JsonLineFormatter>();
    }
};

// The message of a text line with its control characters escaped: a message that carries
// untrusted text (a plugin's log line, a playbook's error) cannot forge a second line or
// send escape sequences to a terminal.
class EscapedMessage final : public spdlog::custom_flag_formatter {
  public:
    void format(const spdlog::details::log_msg& message, const std::tm& /*time*/,
                spdlog::memory_buf_t& out) override {
        const std::string text = escape_control_characters(
            std::string_view(message.payload.data(), message.payload.size()));
        out.append(text.data(), text.data() + text.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<EscapedMessage>();
    }
};

spdlog::level::level_enum to_spdlog(LogLevel level) {
    switch (level) {
        case LogLevel::trace: return spdlog::level::trace;
        case LogLevel::debug: return spdlog::level::debug;
        case LogLevel::info: return spdlog::level::info;
        case LogLevel::warn: return spdlog::level::warn;
        case LogLevel::error: return spdlog::level::err;
        case LogLevel::off: return spdlog::level::off;
    }
    return spdlog::level::info;
}

}  // namespace

std::optional<LogFormat> parse_log_format(std::string_view text) {
    if (text == "text") {
        return LogFormat::text;
    }
    if (text == "json") {
        return LogFormat::json;
    }
    return std::nullopt;
}

std::optional<LogLevel> parse_log_level(std::string_view text) {
    for (const auto& [level, name] : level_names) {
        if (name == text) {
            return level;
        }
    }
    return std::nullopt;
}

std::string_view to_string(LogFormat format) {
    return format == LogFormat::json ? "json" : "text";
}

std::string_view to_string(LogLevel level) {
    return level_names[static_cast<std::size_t>(level)].second;
}

void configure_logging(LogFormat format, LogLevel level) {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(
        format == LogFormat::json ? spdlog::color_mode::never : spdlog::color_mode::automatic);
    auto logger = std::make_shared<spdlog::logger>("mitigate", std::move(sink));
    if (format == LogFormat::json) {
        logger->set_formatter(std::make_unique<JsonLineFormatter>());
    } else {
        auto formatter =
            std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
        formatter->add_flag<EscapedMessage>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ %*");
        logger->set_formatter(std::move(formatter));
    }
    logger->set_level(to_spdlog(level));
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(std::move(logger));
}

}  // namespace mitigate
