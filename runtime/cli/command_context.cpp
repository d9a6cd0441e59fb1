#include "runtime/cli/command_context.h"

#include <pthread.h>

#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>

#include "runtime/config/config.h"
#include "runtime/core/json_reader.h"
#include "runtime/core/text_file.h"
#include "runtime/core/time_format.h"
#include "runtime/log/logging.h"

namespace mitigate {

std::optional<Config> load_config_for_command(const GlobalOptions& options) {
    ConfigLoad load = options.config_path.empty()
                          ? load_config_text(embedded_default_config(), "<embedded default>",
                                             std::filesystem::current_path())
                          : load_config_file(options.config_path);
    if (!load.config) {
        for (const auto& error : load.errors) {
            std::cerr << error.to_string() << "\n";
        }
        std::cerr << "mitigate: the configuration has " << load.errors.size() << " error"
                  << (load.errors.size() == 1 ? "" : "s") << "\n";
        return std::nullopt;
    }
    LogConfig log = load.config->log;
    if (!options.log_level.empty()) {
        log.level = parse_log_level(options.log_level).value_or(log.level);
    }
    if (!options.log_format.empty()) {
        log.format = parse_log_format(options.log_format).value_or(log.format);
    }
    configure_logging(log.format, log.level);
    return std::move(load.config);
}

std::optional<TimePoint> parse_now_option(const std::string& text) {
    if (text.empty()) {
        return SystemClock().now();
    }
    const auto parsed = parse_rfc3339(text);
    if (!parsed) {
        std::cerr << "mitigate: --now must be an RFC 3339 time such as 2026-11-23T10:00:00Z\n";
    }
    return parsed;
}

void add_output_option(CLI::App& command, OutputFormat& format) {
    command.add_option("--output", format, "Output format: text for people, json for programs")
        ->transform(CLI::CheckedTransformer(std::map<std::string, OutputFormat>{
            {"text", OutputFormat::text}, {"json", OutputFormat::json}}))
        ->default_str("text");
}

sigset_t block_stop_signals() {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    return stop_signals;
}

std::filesystem::path this_executable() {
    std::error_code error;
    const std::filesystem::path path = std::filesystem::read_symlink("/proc/self/exe", error);
    return error ? std::filesystem::path("/proc/self/exe") : path;
}

std::optional<std::string> read_command_text(const std::filesystem::path& path) {
    TextFileError problem;
    std::optional<std::string> text = read_text_file(path, text_file_max_bytes, problem);
    if (!text) {
        std::cerr << describe_text_file_error(path, problem) << "\n";
    }
    return text;
}

std::optional<nlohmann::json> read_command_json(const std::filesystem::path& path) {
    const auto text = read_command_text(path);
    if (!text) {
        return std::nullopt;
    }
    std::string error;
    std::optional<nlohmann::json> parsed = parse_json_within(*text, JsonTextLimits{}, error);
    if (!parsed) {
        std::cerr << path.string() << ": " << error << "\n";
    }
    return parsed;
}

}  // namespace mitigate
