// One provider plugin in its own confined process, seen from the runtime.
//
// PluginProcess starts `mitigate __plugin-host PLUGIN` over a socketpair, sends it the
// provider's settings, and then one call at a time. While a call runs, the plugin may
// ask for egress (HTTP or a file); PluginProcess hands each request to the runtime's
// EgressHandler and returns the answer, so secrets and sockets stay on this side.
//
// Before each start the plugin file is identified (plugin_identity.h): resolved, checked
// for owner and mode up to /, hashed and compared with the pinned digest when there is
// one; after the start, the worker must have mapped that very file.
//
// Failure handling, all of it here so that every caller gets it the same way:
//   - a call that outlives its deadline (every read and write of the socket counts
//     against it: a worker that stops reading cannot block the runtime), a crash, an
//     oversized, too deeply nested, malformed or mistyped frame: the worker is killed,
//     the call fails with a typed status, nothing is retried here;
//   - the next call restarts the worker, but not before a backoff that doubles with each
//     consecutive failure (first_backoff .. max_backoff) and resets after a success;
//   - after `circuit_threshold` consecutive failures the circuit opens: calls fail at
//     once without touching the plugin for `circuit_open_for`; then one call is let
//     through (half-open), and its outcome closes or reopens the circuit.
// Time for backoff and the circuit comes from the injected Clock.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/core/clock.h"
#include "sandbox/plugin_host/plugin_call.h"
#include "sandbox/plugin_host/plugin_identity.h"
#include "sandbox/worker/confinement.h"
#include "sandbox/worker/observed_confinement.h"
#include "sandbox/worker/worker_process.h"

namespace mitigate {

// Frames larger than this are refused in both directions, before they are read.
inline constexpr std::size_t plugin_frame_cap = 8u << 20;

// host->log is for a few lines per call: beyond these, the rest of a call's lines are
// dropped (with one line saying so), and each line is cut to this many bytes.
inline constexpr int plugin_log_lines_per_call = 100;
inline constexpr std::size_t plugin_log_line_bytes = 4096;

// A call frame is exactly this, the request's JSON, and "}": the worker recognises it by
// the prefix and passes the request text to the plugin untouched.
inline constexpr const char* plugin_call_frame_prefix = R"({"type":"call","request":)";

struct PluginProcessOptions {
    std::filesystem::path executable;  // the mitigate binary (it has __plugin-host)
    std::filesystem::path plugin;      // the plugin's .so
    // Lowercase hex; when set, a file with another digest is refused (providers.NAME.sha256).
    std::string pinned_sha256;
    nlohmann::json settings = nlohmann::json::object();
    ConfinementPolicy confinement;  // read_only_paths gets the plugin's directory
    std::chrono::milliseconds call_deadline{30000};
    std::chrono::milliseconds start_deadline{10000};
    Duration first_backoff = std::chrono::milliseconds(200);
    Duration max_backoff = std::chrono::seconds(60);
    int circuit_threshold = 5;
    Duration circuit_open_for = std::chrono::seconds(60);
    const Clock* clock = nullptr;  // SystemClock when null
};

// Answers one egress request of the plugin: sets `status` (a mitigate_status) and returns
// the response object, {"error": "..."} when refused.
using EgressHandler = std::function<nlohmann::json(const nlohmann::json& request, int& status)>;
using PluginLogHandler = std::function<void(int level, const std::string& message)>;

class PluginProcess {
  public:
    PluginProcess(PluginProcessOptions options, EgressHandler egress,
                  PluginLogHandler log = nullptr);
    ~PluginProcess();
    PluginProcess(const PluginProcess&) = delete;
    PluginProcess& operator=(const PluginProcess&) = delete;

    // One operation of the provider contract (see plugins/sdk/mitigate_plugin.h).
    PluginCallResult call(const nlohmann::json& request);

    // Starts the worker if none runs (subject to backoff and the circuit); `ok` when one
    // runs afterwards. Its settings are sent with the first call.
    PluginCallResult ensure_started();

    // From the last successful start; empty objects before one.
    const nlohmann::json& manifest() const { return manifest_; }
    const nlohmann::json& confinement() const { return confinement_; }
    // The file the running worker loaded (see plugin_identity.h), from the last start.
    const std::optional<PluginIdentity>& identity() const { return identity_; }
    pid_t pid() const { return worker_.pid; }
    int starts() const { return starts_; }
    int consecutive_failures() const { return consecutive_failures_; }

  private:
    using SteadyTime = std::chrono::steady_clock::time_point;
    // One request and its answer, serving egress and log frames meanwhile; never throws.
    PluginCallResult exchange(const std::string& message, const char* what);
    PluginCallResult exchange_frames(const std::string& message, const char* what);
    PluginCallResult fail_worker(PluginCallStatus status, const std::string& error);
    PluginCallResult refuse_start(PluginCallResult result);
    PluginCallResult start_worker();  // ensure_started's work once a start is due
    // One frame from the worker as a JSON object; on failure the worker is ended and
    // `failed` says why, naming what it was `during` and the time `allowed` for it.
    std::optional<nlohmann::json> receive(SteadyTime deadline, std::chrono::milliseconds allowed,
                                          const std::string& during, PluginCallResult& failed);
    bool send(std::string_view frame, SteadyTime deadline, const std::string& during,
              PluginCallResult& failed);
    // Logs one "log" frame within the per-call caps; its problems when it is malformed.
    std::string log_line(const nlohmann::json& frame, int& lines);
    void record(const PluginCallResult& result);

    PluginProcessOptions options_;
    EgressHandler egress_;
    PluginLogHandler log_;
    WorkerProcess worker_;
    nlohmann::json manifest_ = nlohmann::json::object();
    nlohmann::json confinement_ = nlohmann::json::object();
    std::optional<PluginIdentity> identity_;
    bool initialized_ = false;  // settings sent to the running worker
    int starts_ = 0;
    int consecutive_failures_ = 0;
    TimePoint restart_not_before_{};
    TimePoint circuit_open_until_{};
};

// The worker side, for main(): confines (with `plugin_bytes`, the runtime's sealed copy
// of what it hashed, as the file to load), loads, serves; returns the exit code.
int run_plugin_host(int descriptor, int plugin_bytes, const std::filesystem::path& plugin,
                    const ConfinementPolicy& policy);

nlohmann::json confinement_to_json(const ConfinementReport& report);

// The confinement the runtime shows for a worker (`plugins list`, audits): what only the
// worker can know (Landlock, rlimits, an empty root) from the report it sent before the
// plugin loaded, type-checked, and the rest from the runtime's own view. nullopt when
// the report is not of confinement_to_json's shape.
std::optional<nlohmann::json> shown_confinement(const nlohmann::json& reported,
                                                const ObservedConfinement& observed,
                                                bool weaker_landlock_allowed);

}  // namespace mitigate
