// The threads of `mitigate serve`, and what each does:
//   HTTP           4 threads (http_server.h): parse, authenticate, answer. A webhook's
//                  answer is sent when its commit is done, from the intake thread, so no
//                  HTTP thread waits for a commit or a provider
//   engine         the signal intake, the playbook runner and the reconciler's workers
//                  (runtime/engine/engine.cpp lists them, and every lock)
//   drills         one loop (WakeableLoop): starts scheduled runs, follows and cleans up
//                  runs, through the engine like any client
//   chat           with chat.slack: one loop posting messages from the audit log, one
//                  doing the approvals and reverts people asked for in Slack
// Worker processes: one plugin host per provider and one Lua worker, each confined
// (sandbox/), each serving one call at a time.
#include "runtime/server/daemon.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>

#include "runtime/chat/chat_state_store.h"
#include "runtime/chat/slack_gateway.h"
#include "runtime/chat/slack_notifier.h"
#include "runtime/core/clock.h"
#include "runtime/core/time_format.h"
#include "runtime/core/wakeable_loop.h"
#include "runtime/drills/drill_run_store.h"
#include "runtime/drills/drill_runner.h"
#include "runtime/engine/engine.h"
#include "runtime/metrics/metrics.h"
#include "runtime/playbook/playbook.h"
#include "runtime/policy/policy_set.h"
#include "runtime/providers/provider_registry.h"
#include "runtime/server/api_server.h"
#include "runtime/server/http_server.h"
#include "runtime/store/daemon_lock.h"
#include "runtime/store/sqlite_database.h"
#include "runtime/store/sqlite_store.h"
#include "sandbox/worker/lua_worker.h"

namespace mitigate {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<const PolicySet> load_policies(const Config& config) {
    std::error_code ignored;
    const bool from_directory = fs::is_directory(config.directories.policies, ignored);
    PolicyLoad load = from_directory ? load_policy_directory(config.directories.policies)
                                     : load_policy_files(embedded_default_policies());
    if (!load.policy_set) {
        std::string message = "the policies do not load:";
        for (const auto& error : load.errors) {
            message += "\n  " + error.to_string();
        }
        throw std::runtime_error(message);
    }
    spdlog::info("policies: {} (hash {})",
                 from_directory ? config.directories.policies.string()
                                : "the default compiled into this binary (" +
                                      config.directories.policies.string() + " does not exist)",
                 load.policy_set->hash.substr(0, 12));
    return std::make_shared<const PolicySet>(std::move(*load.policy_set));
}

// Playbooks and their shared libraries (scripts/lib beside scripts/playbooks).
void load_playbooks(const Config& config, EngineSetup& setup) {
    std::error_code ignored;
    const fs::path& directory = config.directories.playbooks;
    const bool from_directory = fs::is_directory(directory, ignored);
    setup.playbooks = from_directory ? read_lua_files(directory) : embedded_example_playbooks();
    const fs::path libraries = directory.parent_path() / "lib";
    if (from_directory && fs::is_directory(libraries, ignored)) {
        setup.playbook_environment.libraries = load_playbook_libraries(libraries);
    } else if (!from_directory) {
        for (auto [name, source] : embedded_playbook_libraries()) {
            setup.playbook_environment.libraries.emplace_back(fs::path(name).stem().string(),
                                                              std::move(source));
        }
    }
    spdlog::info("playbooks: {} from {}", setup.playbooks.size(),
                 from_directory ? directory.string()
                                : "the examples compiled into this binary (" + directory.string() +
                                      " does not exist)");
}

// The drills of directories.drills; none when it does not exist (drills are never
// embedded: a fresh install runs none on its own).
std::vector<DrillDefinition> load_drills(const Config& config) {
    std::error_code ignored;
    if (!fs::is_directory(config.directories.drills, ignored)) {
        spdlog::info("drills: none scheduled ({} does not exist)",
                     config.directories.drills.string());
        return {};
    }
    DrillLoad load = load_drill_directory(config.directories.drills);
    if (!load.errors.empty()) {
        std::string message = "the drills do not load:";
        for (const auto& error : load.errors) {
            message += "\n  " + error.to_string();
        }
        throw std::runtime_error(message);
    }
    std::size_t scheduled = 0;
    for (const auto& drill : load.drills) {
        scheduled += drill.schedule ? 1 : 0;
    }
    spdlog::info("drills: {} from {}, {} on a schedule", load.drills.size(),
                 config.directories.drills.string(), scheduled);
    return std::move(load.drills);
}

}  // namespace

struct Daemon::State {
    DaemonOptions options;
    SystemClock system_clock;
    const Clock* clock = nullptr;
    Metrics metrics;
    std::unique_ptr<DaemonLock> store_lock;  // first in, last out: held while anything runs
    std::unique_ptr<SqliteStore> store;
    std::unique_ptr<DrillRunStore> drill_runs;
    std::unique_ptr<ChatStateStore> chat_state;
    std::unique_ptr<ProviderRegistry> providers;
    std::unique_ptr<LuaWorker> lua_worker;
    std::unique_ptr<Engine> engine;
    std::unique_ptr<ApiServer> api;
    std::unique_ptr<HttpServer> http;

    // With chat.slack configured: messages out, clicks and commands in, each on its loop.
    std::unique_ptr<SlackNotifier> slack_notifier;
    std::unique_ptr<WakeableLoop> slack_notifier_loop;
    std::unique_ptr<SlackGateway> slack_gateway;
    std::unique_ptr<WakeableLoop> slack_gateway_loop;
    std::unique_ptr<DrillRunner> drills;
    std::unique_ptr<WakeableLoop> drills_loop;
    std::mutex http_statistics_mutex;
    HttpServerStatistics http_statistics_exported;  // what /metrics has counted so far

    // The HTTP server counts on its own; /metrics adds what is new since the last scrape.
    void export_http_statistics() {
        if (!http) {
            return;
        }
        // Read under the lock: two scrapes at once must not both add the same increase.
        std::lock_guard lock(http_statistics_mutex);
        const HttpServerStatistics now = http->statistics();
        HttpServerStatistics& before = http_statistics_exported;
        const auto add = [this](const char* name, std::size_t now_count, std::size_t before_count,
                                MetricLabels labels) {
            if (now_count > before_count) {
                metrics.increment(name, labels, static_cast<double>(now_count - before_count));
            }
        };
        metrics.set("mitigate_http_connections_open", static_cast<double>(now.connections_open));
        metrics.set("mitigate_http_connections_max", static_cast<double>(http->max_connections()));
        add("mitigate_http_connections_refused_total", now.refused_at_limit,
            before.refused_at_limit, {{"reason", "limit"}});
        add("mitigate_http_connections_refused_total", now.refused_over_budget,
            before.refused_over_budget, {{"reason", "body_budget"}});
        add("mitigate_http_connections_refused_total", now.refused_framing, before.refused_framing,
            {{"reason", "framing"}});
        add("mitigate_http_connections_closed_total", now.idle_closed_for_room,
            before.idle_closed_for_room, {{"reason", "idle_for_room"}});
        add("mitigate_http_connections_closed_total", now.timed_out, before.timed_out,
            {{"reason", "timeout"}});
        add("mitigate_http_accept_failures_total", now.accept_failures, before.accept_failures, {});
        before = now;
    }

    std::atomic<bool> ready{false};
    std::atomic<bool> following{false};  // the loops below run: the engine may wake them
    bool started = false;

    void start_slack(const SlackConfig& slack, ApiServerHooks& hooks) {
        State& state = *this;
        const auto log_failure = [](const char* what) {
            return [what](const std::exception& failure) {
                spdlog::error("{} failed: {}", what, failure.what());
            };
        };
        state.slack_notifier =
            std::make_unique<SlackNotifier>(*state.store, *state.chat_state, *state.clock,
                                            state.metrics, slack, state.options.config.engine);
        SlackNotifier* notifier = state.slack_notifier.get();
        state.slack_notifier_loop = std::make_unique<WakeableLoop>(
            *state.clock, [notifier] { return notifier->step(); }, log_failure("slack notifier"));

        SlackGatewayHooks gateway_hooks;
        gateway_hooks.work_queued = [&state] { state.slack_gateway_loop->wake(); };
        gateway_hooks.messages = state.chat_state.get();
        state.slack_gateway =
            std::make_unique<SlackGateway>(*state.store, *state.engine, *state.clock, state.metrics,
                                           slack, state.options.config.engine, gateway_hooks);
        SlackGateway* gateway = state.slack_gateway.get();
        state.slack_gateway_loop = std::make_unique<WakeableLoop>(
            *state.clock, [gateway] { return gateway->step(); }, log_failure("slack request"));
        for (const std::string_view path : {slack_interactions_path, slack_commands_path}) {
            hooks.extra_routes[std::string(path)] = [gateway](const HttpExchange& request) {
                return gateway->handle(request);
            };
        }
        spdlog::info("chat: Slack channel {} through {}", slack.channel, slack.api_url);
    }

    // After anything the engine did: chat may have a message to post, a drill something
    // to see. Cheap, never blocks.
    void engine_changed() {
        if (!following) {
            return;
        }
        if (slack_notifier_loop) {
            slack_notifier_loop->wake();
        }
        drills_loop->wake();
    }
};

Daemon::Daemon(DaemonOptions options) : state_(std::make_unique<State>()) {
    State& state = *state_;
    state.options = std::move(options);
    const Config& config = state.options.config;
    state.clock = state.options.clock != nullptr ? state.options.clock : &state.system_clock;
    declare_api_metrics(state.metrics);

    EngineSetup setup;
    setup.engine = config.engine;
    setup.workers = config.engine.workers;
    setup.policies = load_policies(config);
    const std::shared_ptr<const PolicySet> policies = setup.policies;
    load_playbooks(config, setup);

    state.store_lock = lock_store_for_daemon(config.store.path);
    SqliteStoreOptions store_options;
    store_options.fault_point = state.options.store_fault_point;
    state.store = open_sqlite_store(config.store.path, store_options);
    state.drill_runs = sqlite_drill_run_store(state.store->database());
    state.chat_state = sqlite_chat_state_store(state.store->database());
    spdlog::info("store: {}", config.store.path.string());

    RegistryOptions registry;
    registry.executable = state.options.executable;
    registry.clock = state.clock;
    Store* store = state.store.get();
    const Clock* clock = state.clock;
    registry.on_weaker_confinement = [store, clock](const std::string& provider,
                                                    const nlohmann::json& confinement) {
        store->append_audit({clock->now(),
                             "runtime",
                             "sandbox.weaker_landlock",
                             provider,
                             {{"confinement", confinement}}});
    };
    registry.on_plugin_started = [store, clock](const std::string& provider,
                                                const nlohmann::json& plugin) {
        spdlog::info("provider {}: plugin host started from {} (sha256 {}{})", provider,
                     plugin.value("path", ""), plugin.value("sha256", ""),
                     plugin.value("pinned", false) ? ", pinned" : "");
        store->append_audit({clock->now(), "runtime", "plugin.started", provider, plugin});
    };
    state.providers = std::make_unique<ProviderRegistry>(config, registry);

    ConfinementPolicy confinement;
    confinement.minimum_landlock_abi = config.sandbox.minimum_landlock_abi;
    confinement.allow_weaker_landlock = config.sandbox.allow_weaker_landlock;
    state.lua_worker = std::make_unique<LuaWorker>(state.options.executable, confinement);
    LuaWorker* worker = state.lua_worker.get();
    setup.playbook_environment.evaluate = [worker](const LuaCall& call, const LuaLimits& limits) {
        return worker->evaluate(call, limits);
    };
    state.engine = std::make_unique<Engine>(*state.store, *state.providers, *state.clock,
                                            state.metrics, std::move(setup));
    state.engine->on_change([&state] { state.engine_changed(); });
    DrillRunnerHooks drill_hooks;
    drill_hooks.wake_runner = [&state] { state.drills_loop->wake(); };
    state.drills =
        std::make_unique<DrillRunner>(*state.store, *state.drill_runs, *state.engine, *state.clock,
                                      state.metrics, policies, load_drills(config), drill_hooks);
    DrillRunner* drills = state.drills.get();
    state.drills_loop = std::make_unique<WakeableLoop>(
        *state.clock, [drills] { return drills->step(); },
        [](const std::exception& failure) { spdlog::error("drills failed: {}", failure.what()); });
    ApiServerHooks hooks;
    hooks.drills = drills;
    hooks.drill_runs = state.drill_runs.get();
    if (config.chat.slack) {
        state.start_slack(*config.chat.slack, hooks);
    }
    hooks.ready = [&state] { return state.ready.load(); };
    hooks.store_health = [&state] {
        const SqliteDatabase& database = state.store->database();
        return StoreHealth{database.lost_file(), database.last_write_failure()};
    };
    hooks.refresh_metrics = [&state] { state.export_http_statistics(); };
    state.api = std::make_unique<ApiServer>(*state.store, *state.engine, state.metrics,
                                            *state.clock, hooks);
}

Daemon::~Daemon() {
    stop();
}

void Daemon::start() {
    State& state = *state_;
    if (state.started) {
        return;
    }
    const Config& config = state.options.config;
    // Listen first, so that a busy port fails before anything is touched; /readyz says 503
    // until the engine runs.
    // A service starts with 1,024 descriptors (systemd's soft limit); connections, the
    // store and plugin workers share them, so take what the hard limit allows.
    raise_descriptor_limit();
    HttpServerOptions http;
    http.host = config.server.host;
    http.port = config.server.port;
    http.threads = 4;
    http.max_connections = static_cast<std::size_t>(config.server.max_connections);
    http.body_limit = static_cast<std::size_t>(config.server.max_body_bytes);
    http.body_memory_budget = static_cast<std::size_t>(config.server.body_memory_budget_bytes);
    http.header_timeout = std::chrono::milliseconds(config.server.header_timeout_ms);
    http.body_timeout = std::chrono::milliseconds(config.server.body_timeout_ms);
    http.idle_timeout = std::chrono::milliseconds(config.server.idle_timeout_ms);
    ApiServer* api = state.api.get();
    state.http = HttpServer::deferred(
        [api](const HttpExchange& request, HttpResponder respond) {
            api->handle(request, std::move(respond));
        },
        http);
    state.started = true;  // from here on, stop() has something to stop
    state.store->append_audit({state.clock->now(),
                               "runtime",
                               "daemon.started",
                               "",
                               {{"config", config.source}, {"listen", state.http->url()}}});
    state.engine->start();
    state.drills->recover();
    state.drills_loop->start();
    if (state.slack_notifier_loop) {
        state.slack_notifier_loop->start();
        state.slack_gateway_loop->start();
    }
    state.following = true;
    state.ready = true;
    spdlog::info("listening on {} (at most {} connections)", state.http->url(),
                 state.http->max_connections());
}

void Daemon::stop() {
    State& state = *state_;
    if (!state.started) {
        return;
    }
    state.started = false;
    state.ready = false;
    if (state.http) {
        state.http->stop();  // answers what it is handling; signals once committed
    }
    state.following = false;
    state.drills_loop->stop();
    // The engine finishes the steps it is in, so no transition is cut between its journal
    // entry and its effect.
    state.engine->stop();
    if (state.slack_gateway_loop) {
        state.slack_gateway_loop->stop();  // the approvals already queued are answered
        state.slack_notifier_loop->stop();
    }
    // Stopping must not throw (it runs from the destructor, also after a failed start): a
    // store that cannot take the record is logged, not a std::terminate.
    try {
        state.store->append_audit({state.clock->now(), "runtime", "daemon.stopped", "", {}});
    } catch (const std::exception& failure) {
        spdlog::error("could not record daemon.stopped: {}", failure.what());
    }
    spdlog::info("stopped");
}

void Daemon::wake() {
    state_->engine->wake();
    state_->engine_changed();  // drills and chat have deadlines on the same clock
}

std::uint16_t Daemon::port() const {
    return state_->http ? state_->http->port() : 0;
}

std::string Daemon::url() const {
    return state_->http ? state_->http->url() : "";
}

Store& Daemon::store() {
    return *state_->store;
}

Engine& Daemon::engine() {
    return *state_->engine;
}

ChatStateStore& Daemon::chat_state() {
    return *state_->chat_state;
}

DrillRunStore& Daemon::drill_runs() {
    return *state_->drill_runs;
}

Metrics& Daemon::metrics() {
    return state_->metrics;
}

}  // namespace mitigate
