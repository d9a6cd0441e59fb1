#include "sandbox/plugin_host/plugin_process.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "plugins/sdk/manifest.h"
#include "plugins/sdk/mitigate_plugin.h"
#include "runtime/core/time_format.h"
#include "sandbox/worker/frame.h"

namespace mitigate {
namespace {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

const SystemClock system_clock;

PluginCallStatus status_from_plugin(int status) {
    switch (status) {
        case MITIGATE_OK: return PluginCallStatus::ok;
        case MITIGATE_INVALID: return PluginCallStatus::invalid;
        case MITIGATE_CONFLICT: return PluginCallStatus::conflict;
        case MITIGATE_PROVIDER: return PluginCallStatus::provider;
        case MITIGATE_UNAVAILABLE: return PluginCallStatus::unavailable;
        default: return PluginCallStatus::internal;
    }
}

PluginCallResult failure(PluginCallStatus status, std::string error) {
    PluginCallResult result;
    result.status = status;
    result.error = std::move(error);
    return result;
}

// Failures that say something is wrong with the plugin itself, not with the request or
// the provider: they count towards backoff and the circuit breaker.
bool counts_against_plugin(PluginCallStatus status) {
    return status == PluginCallStatus::crashed || status == PluginCallStatus::timeout ||
           status == PluginCallStatus::internal || status == PluginCallStatus::refused;
}

}  // namespace

std::string_view to_string(PluginCallStatus status) {
    switch (status) {
        case PluginCallStatus::ok: return "ok";
        case PluginCallStatus::invalid: return "invalid";
        case PluginCallStatus::conflict: return "conflict";
        case PluginCallStatus::provider: return "provider";
        case PluginCallStatus::unavailable: return "unavailable";
        case PluginCallStatus::internal: return "internal";
        case PluginCallStatus::crashed: return "crashed";
        case PluginCallStatus::timeout: return "timeout";
        case PluginCallStatus::refused: return "refused";
        case PluginCallStatus::backoff: return "backoff";
        case PluginCallStatus::circuit_open: return "circuit_open";
    }
    return "unknown";
}

json confinement_to_json(const ConfinementReport& report) {
    return {{"namespaces", report.namespaces},
            {"landlock", report.landlock},
            {"landlock_abi", report.landlock_abi},
            {"weaker_landlock_allowed", report.weaker_landlock_allowed},
            {"seccomp", report.seccomp},
            {"rlimits", report.rlimits},
            {"no_new_privs", report.applied}};
}

std::optional<std::string> unsafe_plugin_file(const std::filesystem::path& plugin) {
    const uid_t runtime_user = geteuid();
    for (const auto& path : {plugin, plugin.parent_path()}) {
        struct stat status {};
        if (stat(path.c_str(), &status) != 0) {
            return path.string() + ": cannot be read";
        }
        if ((status.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
            char mode[8];
            std::snprintf(mode, sizeof mode, "%03o", status.st_mode & 0777);
            return path.string() + " is writable by group or others (mode " + mode +
                   "); refusing to load a plugin that someone else could replace";
        }
        if (status.st_uid != 0 && status.st_uid != runtime_user) {
            return path.string() + " is owned by uid " + std::to_string(status.st_uid) +
                   ", neither root nor the user running mitigate; refusing to load it";
        }
    }
    struct stat status {};
    stat(plugin.c_str(), &status);
    if (!S_ISREG(status.st_mode)) {
        return plugin.string() + " is not a regular file";
    }
    return std::nullopt;
}

PluginProcess::PluginProcess(PluginProcessOptions options, EgressHandler egress,
                             PluginLogHandler log)
    : options_(std::move(options)), egress_(std::move(egress)), log_(std::move(log)) {
    if (options_.clock == nullptr) {
        options_.clock = &system_clock;
    }
    options_.plugin = std::filesystem::absolute(options_.plugin);
}

PluginProcess::~PluginProcess() {
    stop_worker(worker_);
}

void PluginProcess::record(const PluginCallResult& result) {
    if (!counts_against_plugin(result.status)) {
        consecutive_failures_ = 0;
        return;
    }
    ++consecutive_failures_;
    const TimePoint now = options_.clock->now();
    Duration backoff = options_.first_backoff;
    for (int doubling = 1; doubling < consecutive_failures_ && backoff < options_.max_backoff;
         ++doubling) {
        backoff *= 2;
    }
    restart_not_before_ = now + std::min(backoff, options_.max_backoff);
    if (consecutive_failures_ >= options_.circuit_threshold) {
        circuit_open_until_ = now + options_.circuit_open_for;
    }
}

PluginCallResult PluginProcess::fail_worker(PluginCallStatus status, const std::string& error) {
    const std::string ended = reap_worker(worker_);
    return failure(status, error + ended);
}

PluginCallResult PluginProcess::ensure_started() {
    const TimePoint now = options_.clock->now();
    if (consecutive_failures_ >= options_.circuit_threshold && now < circuit_open_until_) {
        return failure(PluginCallStatus::circuit_open,
                       options_.plugin.filename().string() + " failed " +
                           std::to_string(consecutive_failures_) +
                           " times in a row; not calling it until " +
                           format_rfc3339(circuit_open_until_));
    }
    if (worker_.running()) {
        return {PluginCallStatus::ok, json::object(), ""};
    }
    if (now < restart_not_before_) {
        return failure(PluginCallStatus::backoff,
                       options_.plugin.filename().string() +
                           " is restarting after a failure; next attempt at " +
                           format_rfc3339(restart_not_before_));
    }
    if (auto unsafe = unsafe_plugin_file(options_.plugin)) {
        PluginCallResult result = failure(PluginCallStatus::refused, *unsafe);
        record(result);
        return result;
    }
    std::vector<std::string> arguments{options_.executable.string(), "__plugin-host",
                                       options_.plugin.string()};
    if (options_.confinement.allow_weaker_landlock) {
        arguments.emplace_back("--allow-weaker-landlock");
    }
    arguments.emplace_back("--minimum-landlock-abi");
    arguments.emplace_back(std::to_string(options_.confinement.minimum_landlock_abi));
    std::string error;
    worker_ = spawn_worker(arguments, error);
    if (!worker_.running()) {
        PluginCallResult result = failure(PluginCallStatus::refused, error);
        record(result);
        return result;
    }
    ++starts_;
    std::string payload;
    const FrameStatus status = read_frame(worker_.socket, plugin_frame_cap,
                                          SteadyClock::now() + options_.start_deadline, payload);
    const json hello = status == FrameStatus::ok ? json::parse(payload, nullptr, false) : json();
    const std::string type = hello.is_object() ? hello.value("type", "") : "";
    if (type != "ready") {
        PluginCallResult result =
            type == "refused"
                ? failure(PluginCallStatus::refused,
                          "the plugin host refused to start: " + hello.value("error", ""))
                : fail_worker(PluginCallStatus::refused,
                              "the plugin host did not start (" + options_.plugin.string() + ")");
        stop_worker(worker_);
        record(result);
        return result;
    }
    const json manifest = hello.value("manifest", json::object());
    if (auto problem = plugin::manifest_problem(manifest)) {
        stop_worker(worker_);
        PluginCallResult result =
            failure(PluginCallStatus::refused, options_.plugin.string() + ": " + *problem);
        record(result);
        return result;
    }
    manifest_ = manifest;
    confinement_ = hello.value("confinement", json::object());
    initialized_ = false;
    return {PluginCallStatus::ok, json::object(), ""};
}

PluginCallResult PluginProcess::call(const json& request) {
    PluginCallResult started = ensure_started();
    if (!started.ok()) {
        return started;
    }
    if (!initialized_) {
        PluginCallResult initialized =
            exchange(json{{"type", "init"}, {"settings", options_.settings}}.dump(), "init");
        if (!initialized.ok()) {
            // Settings do not get better by retrying: the worker stays, the call fails.
            initialized.error = "the plugin refused its settings: " + initialized.error;
            if (initialized.status == PluginCallStatus::crashed ||
                initialized.status == PluginCallStatus::timeout) {
                record(initialized);
            }
            return initialized;
        }
        initialized_ = true;
    }
    PluginCallResult result =
        exchange(plugin_call_frame_prefix +
                     request.dump(-1, ' ', false, json::error_handler_t::replace) + "}",
                 "call");
    record(result);
    return result;
}

PluginCallResult PluginProcess::exchange(const std::string& message, const char* what) {
    if (!write_frame(worker_.socket, message)) {
        return fail_worker(PluginCallStatus::crashed,
                           std::string("the plugin host died before the ") + what);
    }
    const auto deadline = SteadyClock::now() + options_.call_deadline;
    while (true) {
        std::string payload;
        const FrameStatus status = read_frame(worker_.socket, plugin_frame_cap, deadline, payload);
        if (status == FrameStatus::timeout) {
            stop_worker(worker_);
            return failure(PluginCallStatus::timeout, std::string("no answer to the ") + what +
                                                          " within " +
                                                          format_duration(options_.call_deadline) +
                                                          "; the plugin host was killed");
        }
        if (status == FrameStatus::too_large) {
            return fail_worker(PluginCallStatus::crashed, "the plugin host sent a frame over the " +
                                                              std::to_string(plugin_frame_cap) +
                                                              "-byte cap; it was killed");
        }
        if (status != FrameStatus::ok) {
            return fail_worker(PluginCallStatus::crashed,
                               std::string("the plugin host died during the ") + what);
        }
        const json answer = json::parse(payload, nullptr, false);
        const std::string type = answer.is_object() ? answer.value("type", "") : "";
        if (type == "log" && answer["message"].is_string()) {
            if (log_) {
                log_(answer.value("level", 1), answer["message"].get<std::string>());
            }
            continue;
        }
        if (type == "egress" && answer.contains("request")) {
            int egress_status = MITIGATE_UNAVAILABLE;
            json response = egress_ ? egress_(answer["request"], egress_status)
                                    : json{{"error", "no egress is configured"}};
            if (!write_frame(worker_.socket,
                             json{{"type", "egress_answer"},
                                  {"status", egress_status},
                                  {"response", response}}
                                 .dump(-1, ' ', false, json::error_handler_t::replace))) {
                return fail_worker(PluginCallStatus::crashed, "the plugin host died during egress");
            }
            continue;
        }
        if (type != "result" || !answer.contains("status") ||
            !answer["status"].is_number_integer()) {
            // A worker that speaks nonsense is not trusted with another call.
            return fail_worker(PluginCallStatus::crashed,
                               std::string("the plugin host sent a malformed message during the ") +
                                   what + "; it was killed");
        }
        const PluginCallStatus result_status = status_from_plugin(answer["status"].get<int>());
        if (result_status != PluginCallStatus::ok) {
            return failure(result_status, answer.value("error", ""));
        }
        return {PluginCallStatus::ok, answer.value("response", json::object()), ""};
    }
}

}  // namespace mitigate
