// mitigate playbook check PATH...  -- load playbooks and validate their metadata
// mitigate playbook test PLAYBOOK --signal FILE [--state FILE] [--now TIME]
//                                  -- run one against a recorded signal, print proposals
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <CLI/CLI.hpp>

#include "runtime/cli/command_context.h"
#include "runtime/core/text_file.h"
#include "runtime/core/time_format.h"
#include "runtime/core/utf8.h"
#include "runtime/ingest/alertmanager.h"
#include "runtime/playbook/playbook.h"
#include "sandbox/worker/lua_worker.h"

namespace mitigate {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct PlaybookOptions {
    std::vector<std::string> paths;
    std::string playbook;
    std::string signal_file;
    std::string state_file;
    std::string now;
    OutputFormat output = OutputFormat::text;
};

json info_to_json(const PlaybookInfo& info) {
    return {{"name", info.name},
            {"description", info.description},
            {"priority", info.priority},
            {"cooldown", info.cooldown ? json(format_duration(*info.cooldown)) : json(nullptr)},
            {"matches",
             {{"alerts", info.matches.alerts},
              {"labels", info.matches.labels},
              {"services", info.matches.services},
              {"environments", info.matches.environments}}}};
}

// Playbooks run in a confined worker process, as they will in the runtime: the same
// binary in its hidden __lua-worker mode. Shared helpers come from the lib/ directory
// beside the playbooks' directory (scripts/playbooks -> scripts/lib).
PlaybookEnvironment worker_environment(LuaWorker& worker, const fs::path& playbook_directory) {
    PlaybookEnvironment environment;
    environment.evaluate = [&worker](const LuaCall& call, const LuaLimits& limits) {
        return worker.evaluate(call, limits);
    };
    environment.libraries =
        load_playbook_libraries(fs::absolute(playbook_directory).parent_path() / "lib");
    return environment;
}

int run_check(const PlaybookOptions& options) {
    LuaWorker worker("/proc/self/exe");
    std::vector<fs::path> files;
    for (const auto& path : options.paths) {
        std::error_code error;
        if (fs::is_directory(path, error)) {
            for (const auto& entry : fs::directory_iterator(path)) {
                // Not only regular files: a FIFO or a directory named *.lua is reported
                // below as unreadable, as the daemon refuses it.
                if (entry.path().extension() == ".lua") {
                    files.push_back(entry.path());
                }
            }
        } else {
            files.emplace_back(path);
        }
    }
    std::sort(files.begin(), files.end());
    int failures = 0;
    json report = json::array();
    std::map<std::string, fs::path> named;  // playbook name -> the first file with it
    for (const auto& file : files) {
        TextFileError problem;
        const auto source = read_text_file(file, text_file_max_bytes, problem);
        PlaybookOutcome outcome;
        if (!source) {
            outcome.failure = "unreadable";
            outcome.message = describe_text_file_error(file, problem);
        } else {
            outcome = load_playbook(file.string(), *source,
                                    worker_environment(worker, file.parent_path()));
        }
        if (outcome.info) {
            const auto [first, unique] = named.emplace(outcome.info->name, file);
            if (!unique) {
                outcome.failure = "invalid";
                outcome.message = file.string() + ": the playbook name \"" + outcome.info->name +
                                  "\" is already used by " + first->second.string() +
                                  "; names must be unique (cooldowns and audit records are "
                                  "keyed by them)";
            }
        }
        failures += outcome.failure ? 1 : 0;
        if (options.output == OutputFormat::json) {
            report.push_back(
                {{"file", file.string()},
                 {"valid", !outcome.failure},
                 {"error", outcome.failure ? json(*outcome.failure) : json(nullptr)},
                 {"message", outcome.message},
                 {"playbook", outcome.info ? info_to_json(*outcome.info) : json(nullptr)}});
        } else if (outcome.failure) {
            std::cerr << escape_control_characters(outcome.message) << " [" << *outcome.failure
                      << "]\n";
        } else {
            std::cout << file.string() << ": ok (" << outcome.info->name << ")\n";
        }
    }
    if (files.empty()) {
        std::cerr << "mitigate: no playbook files (*.lua) in the given paths\n";
        return exit_failure;
    }
    if (options.output == OutputFormat::json) {
        std::cout << report.dump(2) << "\n";
    }
    return failures == 0 ? exit_ok : exit_failure;
}

int run_test(const PlaybookOptions& options) {
    const auto now_option = parse_now_option(options.now);
    if (!now_option) {
        return exit_usage;
    }
    const TimePoint now = *now_option;
    const auto source = read_command_text(options.playbook);
    if (!source) {
        return exit_failure;
    }
    const auto parsed_signal = read_command_json(options.signal_file);
    if (!parsed_signal) {
        return exit_failure;
    }
    const json& signal_json = *parsed_signal;
    std::vector<Signal> signals;
    std::vector<FieldError> errors;
    if (is_alertmanager_webhook(signal_json)) {
        auto parsed = parse_alertmanager_webhook(signal_json, now);
        errors = parsed.errors;
        if (parsed) {
            signals = std::move(*parsed.value);
        }
    } else {
        auto parsed = parse_signal(signal_json);
        errors = parsed.errors;
        if (parsed) {
            signals.push_back(std::move(*parsed.value));
        }
    }
    if (!errors.empty()) {
        std::cerr << options.signal_file << ":\n" << describe(errors) << "\n";
        return exit_failure;
    }
    json state = json::object();
    if (!options.state_file.empty()) {
        const auto state_json = read_command_json(options.state_file);
        if (!state_json) {
            return exit_failure;
        }
        state = *state_json;
        if (!state.is_object()) {
            std::cerr << options.state_file
                      << ": must be a JSON object {\"provider\": {\"target\": state}}\n";
            return exit_failure;
        }
    }
    LuaHostApi host;
    host.state = [state](const std::string& provider,
                         const std::string& target) -> std::optional<json> {
        if (state.contains(provider) && state[provider].is_object() &&
            state[provider].contains(target)) {
            return state[provider][target];
        }
        return std::nullopt;
    };
    const Incident incident = incident_from_signals(signals, now);
    LuaWorker worker("/proc/self/exe");
    const PlaybookOutcome outcome =
        run_playbook(options.playbook, *source, incident, signals, now, host,
                     worker_environment(worker, fs::path(options.playbook).parent_path()));
    if (outcome.failure) {
        if (options.output == OutputFormat::json) {
            std::cout << json{{"error", *outcome.failure},
                              {"message", outcome.message},
                              {"log", outcome.log}}
                             .dump(2)
                      << "\n";
        } else {
            std::cerr << escape_control_characters(outcome.message) << " [" << *outcome.failure
                      << "]\n";
        }
        return exit_failure;
    }
    // Proposals are the data: JSON whatever --output says, so they can be piped on.
    std::cout << json{{"playbook", outcome.info->name},
                      {"matched", outcome.matched},
                      {"incident", playbook_incident(incident, signals)},
                      {"proposals", outcome.proposals},
                      {"log", outcome.log}}
                     .dump(2)
              << "\n";
    return exit_ok;
}

}  // namespace

void register_playbook_command(CLI::App& app, const GlobalOptions&, int& exit_code) {
    CLI::App* playbook = app.add_subcommand("playbook", "Check and test Lua playbooks");
    playbook->require_subcommand(1);
    auto options = std::make_shared<PlaybookOptions>();

    CLI::App* check = playbook->add_subcommand(
        "check",
        "Load each playbook (files, or every *.lua in a directory) in the sandbox and validate\n"
        "its metadata. Errors name the file and line (syntax) or the field (metadata), with\n"
        "the error type in brackets. Exit 0 when all are valid.");
    check->add_option("PATH", options->paths, "Playbook files or directories")->required();
    add_output_option(*check, options->output);
    check->callback([options, &exit_code] { exit_code = run_check(*options); });

    CLI::App* test = playbook->add_subcommand(
        "test",
        "Run a playbook against a recorded signal (an Alertmanager webhook payload or a\n"
        "mitigate signal JSON) and optional recorded provider state, and print the proposals\n"
        "as JSON (exit 0), or the typed error (exit 1). Nothing is applied or recorded.");
    test->add_option("PLAYBOOK", options->playbook, "The playbook file")->required();
    test->add_option("--signal", options->signal_file, "Signal JSON file")->required();
    test->add_option("--state", options->state_file,
                     "Provider state JSON: {\"provider\": {\"target\": state}}");
    test->add_option("--now", options->now, "The frozen time mitigate.now() returns (RFC 3339)");
    add_output_option(*test, options->output);
    test->callback([options, &exit_code] { exit_code = run_test(*options); });
}

}  // namespace mitigate
