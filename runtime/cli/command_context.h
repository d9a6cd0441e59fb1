// What every subcommand shares: the global options, the documented exit codes, and the
// output format switch. Each command lives in its own command_*.cpp and registers itself
// on the CLI11 app through one function below.
#pragma once

#include <signal.h>

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "runtime/core/clock.h"

namespace CLI {
class App;
}

namespace mitigate {

struct Config;

// Documented in docs/reference/mitigate.md; scripts depend on them.
enum ExitCode : int {
    exit_ok = 0,
    exit_failure = 1,  // the command ran and found a problem (bad config, broken chain...)
    exit_usage = 2,    // the command line itself was wrong
};

enum class OutputFormat { text, json };

struct GlobalOptions {
    std::string config_path;  // empty: the embedded default
    std::string log_level;    // empty: from the config
    std::string log_format;   // empty: from the config
};

// Loads --config (or the embedded default) and configures logging from it and the
// flags. Prints every configuration error to stderr and returns nullopt on failure.
std::optional<Config> load_config_for_command(const GlobalOptions& options);

// --now TIME for commands that replay a moment: the current time when `text` is empty.
// Prints the error and returns nullopt when it is not RFC 3339 (callers exit 2).
std::optional<TimePoint> parse_now_option(const std::string& text);

// The mitigate binary's own path: workers are this binary in a hidden mode, and the
// shipped plugins live beside it (<bin>/../lib/mitigate/plugins).
std::filesystem::path this_executable();

// Blocks SIGTERM and SIGINT in this thread (call it before any thread starts, so that
// all inherit the mask and none is interrupted mid-transition) and returns the set, for
// sigwait: how `serve` and `demo --keep-running` wait to be stopped.
sigset_t block_stop_signals();

// A file named on the command line (a signal, a policy input, plugin parameters), read
// with the limits of every operator file (runtime/core/text_file.h). Prints "PATH: why"
// to stderr and returns nullopt when it cannot.
std::optional<std::string> read_command_text(const std::filesystem::path& path);
// The same file parsed as JSON through the one strict reader (parse_json_within).
std::optional<nlohmann::json> read_command_json(const std::filesystem::path& path);

// Adds "--output text|json".
void add_output_option(CLI::App& command, OutputFormat& format);

// Each register_* adds one subcommand tree; its callback stores the exit code.
void register_demo_command(CLI::App& app, const GlobalOptions& options, int& exit_code);
void register_config_command(CLI::App& app, const GlobalOptions& options, int& exit_code);
void register_audit_command(CLI::App& app, const GlobalOptions& options, int& exit_code);
void register_policy_command(CLI::App& app, const GlobalOptions& options, int& exit_code);
void register_playbook_command(CLI::App& app, const GlobalOptions& options, int& exit_code);
void register_plugins_command(CLI::App& app, const GlobalOptions& options, int& exit_code);
void register_serve_command(CLI::App& app, const GlobalOptions& options, int& exit_code);
void register_token_command(CLI::App& app, const GlobalOptions& options, int& exit_code);
void register_client_commands(CLI::App& app, const GlobalOptions& options, int& exit_code);
void register_emulate_command(CLI::App& app, const GlobalOptions& options, int& exit_code);

}  // namespace mitigate
