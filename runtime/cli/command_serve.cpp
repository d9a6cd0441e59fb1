// mitigate serve  -- run the runtime: API, lifecycle engine, workers (runtime/server/daemon.h)
#include <csignal>
#include <iostream>
#include <optional>

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "runtime/cli/command_context.h"
#include "runtime/config/config.h"
#include "runtime/server/daemon.h"
#include "runtime/store/audit_log.h"

namespace mitigate {
namespace {

struct ServeOptions {
    std::string listen;  // HOST:PORT overriding server.listen; port 0 picks a free one
};

int run_serve(const GlobalOptions& global, const ServeOptions& options) {
    auto config = load_config_for_command(global);
    if (!config) {
        return exit_failure;
    }
    if (!options.listen.empty()) {
        const auto colon = options.listen.rfind(':');
        try {
            config->server.host = options.listen.substr(0, colon);
            const int port = std::stoi(options.listen.substr(colon + 1));
            if (colon == std::string::npos || config->server.host.empty() || port < 0 ||
                port > 65535) {
                throw std::invalid_argument("range");
            }
            config->server.port = static_cast<std::uint16_t>(port);
        } catch (const std::exception&) {
            std::cerr << "mitigate serve: --listen must be HOST:PORT (127.0.0.1:8470), not "
                      << options.listen << "\n";
            return exit_usage;
        }
    }
    const sigset_t stop_signals = block_stop_signals();  // before any thread starts

    DaemonOptions daemon_options;
    daemon_options.config = *config;
    daemon_options.executable = this_executable();
    std::optional<Daemon> daemon_holder;
    try {
        daemon_holder.emplace(std::move(daemon_options));
        daemon_holder->start();
    } catch (const StoreError& failure) {
        // Locked by another process past the busy timeout, read-only, full: name the file.
        const std::string what = failure.what();
        const std::string path = config->store.path.string();
        std::cerr << "mitigate serve: "
                  << (what.starts_with(path) ? what
                                             : "the store " + path + " cannot be used: " + what)
                  << "\n";
        return exit_failure;
    }
    Daemon& daemon = *daemon_holder;
    // One line on stdout for scripts and supervisors; everything else is the log.
    std::cout << "mitigate: listening on " << daemon.url() << std::endl;

    int received = 0;
    sigwait(&stop_signals, &received);
    spdlog::info("{}: finishing in-flight work, then stopping", strsignal(received));
    daemon.stop();
    return exit_ok;
}

}  // namespace

void register_serve_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
    auto options = std::make_shared<ServeOptions>();
    CLI::App* serve = app.add_subcommand(
        "serve",
        "Run the runtime: the HTTP API (/v1, /healthz, /readyz, /metrics), the lifecycle\n"
        "engine and the sandboxed workers, until SIGTERM or SIGINT (then finish in-flight\n"
        "transitions and exit 0). Prints \"mitigate: listening on URL\" once ready.");
    serve->add_option("--listen", options->listen,
                      "HOST:PORT to listen on, overriding server.listen (port 0: any free one)");
    serve->callback([&global, &exit_code, options] { exit_code = run_serve(global, *options); });
}

}  // namespace mitigate
