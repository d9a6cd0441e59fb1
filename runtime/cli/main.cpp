// mitigate's command line. Parsing and exit codes live here; each command is in its own
// command_*.cpp. Exit codes: 0 ok, 1 failure, 2 usage (docs/reference/mitigate.md).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string_view>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "runtime/cli/command_context.h"
#include "runtime/config/config.h"
#include "runtime/log/logging.h"
#include "sandbox/plugin_host/plugin_process.h"
#include "sandbox/worker/lua_worker.h"

namespace {

// The options both hidden worker modes take after their own arguments.
mitigate::ConfinementPolicy worker_policy(int argc, char** argv, int first) {
    mitigate::ConfinementPolicy policy;
    for (int index = first; index < argc; ++index) {
        const std::string_view argument(argv[index]);
        if (argument == "--allow-weaker-landlock") {
            policy.allow_weaker_landlock = true;
        } else if (argument == "--unprivileged-uid") {
            policy.give_up_root = true;
        } else if (argument == "--minimum-landlock-abi" && index + 1 < argc) {
            policy.minimum_landlock_abi = std::atoi(argv[++index]);
        }
    }
    return policy;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace mitigate;
    // The hidden worker mode: the runtime starts `mitigate __lua-worker` itself, with the
    // worker's end of a socketpair as descriptor 3. Not a user command, so not in --help.
    if (argc >= 2 && std::string_view(argv[1]) == "__lua-worker") {
        // _exit: nothing after confinement may run exit handlers (a leak checker's ptrace
        // or a flush to a file would be refused, or kill the process, by the filter).
        _exit(run_lua_worker(3, worker_policy(argc, argv, 2)));
    }
    // `mitigate __plugin-host PLUGIN [options]`: one provider plugin, confined, with the
    // plugin's hashed bytes (a sealed memfd) as descriptor 4.
    if (argc >= 3 && std::string_view(argv[1]) == "__plugin-host") {
        _exit(run_plugin_host(3, 4, argv[2], worker_policy(argc, argv, 3)));
    }
    if (argc == 3 && std::string_view(argv[1]) == "__confinement-probe") {
        const int code = run_confinement_probe(argv[2]);
        std::fflush(stdout);
        _exit(code);
    }
    configure_logging(LogFormat::text, LogLevel::warn);

    CLI::App app{
        "mitigate: proposes reversible mitigations, applies them only after policy approval,\n"
        "and reverts them on time. Documentation: docs/ in the source tree.",
        "mitigate"};
    app.set_version_flag("--version", std::string("mitigate ") + MITIGATE_VERSION);
    app.require_subcommand(1);
    app.fallthrough();
    app.footer("Exit codes: 0 ok, 1 failure, 2 usage error.");

    GlobalOptions options;
    app.add_option("--config", options.config_path,
                   "Configuration file (default: the embedded default configuration)")
        ->check(CLI::ExistingFile);
    app.add_option("--log-level", options.log_level, "Log level, overriding the configuration")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
    app.add_option("--log-format", options.log_format,
                   "Log format on stderr, overriding the configuration")
        ->check(CLI::IsMember({"text", "json"}));

    int exit_code = exit_ok;
    register_demo_command(app, options, exit_code);
    register_config_command(app, options, exit_code);
    register_audit_command(app, options, exit_code);
    register_policy_command(app, options, exit_code);
    register_playbook_command(app, options, exit_code);
    register_plugins_command(app, options, exit_code);
    register_serve_command(app, options, exit_code);
    register_token_command(app, options, exit_code);
    register_client_commands(app, options, exit_code);
    register_emulate_command(app, options, exit_code);

    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& success) {  // --help, --version
        return app.exit(success);
    } catch (const CLI::ParseError& error) {
        app.exit(error);
        return exit_usage;
    } catch (const std::exception& error) {
        spdlog::default_logger()->flush();
        std::cerr << "mitigate: error: " << error.what() << "\n";
        return exit_failure;
    }
    std::cout.flush();
    return exit_code;
}
