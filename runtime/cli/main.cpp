// mitigate's command line. Parsing and exit codes live here; each command is in its own
// command_*.cpp. Exit codes: 0 ok, 1 failure, 2 usage (docs/reference/mitigate.md).
#include <cstdio>
#include <exception>
#include <iostream>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "runtime/cli/command_context.h"
#include "runtime/config/config.h"
#include "runtime/log/logging.h"

int main(int argc, char** argv) {
    using namespace mitigate;
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
