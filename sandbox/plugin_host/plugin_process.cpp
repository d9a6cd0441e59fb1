#include "sandbox/plugin_host/plugin_process.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <limits>

#include "plugins/sdk/manifest.h"
#include "plugins/sdk/mitigate_plugin.h"
#include "runtime/core/json_reader.h"
#include "runtime/core/time_format.h"
#include "runtime/core/utf8.h"
#include "sandbox/plugin_host/plugin_identity.h"
#include "sandbox/worker/frame.h"
#include "sandbox/worker/observed_confinement.h"

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

// A "refused" frame (the host could not confine itself or load the plugin) as a failure.
PluginCallResult refused_by_host(const json& frame) {
    std::string why;
    const std::string problems = frame_field_problems(
        frame, "refused", [&](JsonObjectReader& reader) { why = reader.string("error"); });
    return failure(
        PluginCallStatus::refused,
        "the plugin host refused to start: " +
            (problems.empty() ? cut_on_character_boundary(std::move(why), MITIGATE_PLUGIN_ERROR_MAX)
                              : "(its refusal was malformed: " + problems + ")"));
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
            {"capabilities_dropped", report.capabilities_dropped},
            {"user", report.user},
            {"rlimits", report.rlimits},
            {"no_new_privs", report.applied}};
}

std::optional<json> shown_confinement(const json& reported, const ObservedConfinement& observed,
                                      bool weaker_landlock_allowed) {
    // Every field of confinement_to_json's shape, typed; the ones the runtime sees for
    // itself are read only to refuse a mistyped or unknown one.
    std::vector<FieldError> errors;
    JsonObjectReader reader(reported, "confinement", errors);
    if (!reported.is_object() || !reported.contains("namespaces") ||
        !reported.contains("rlimits") || !reported.contains("landlock")) {
        return std::nullopt;
    }
    const std::vector<std::string> said = reader.string_list("namespaces");
    const bool landlock = reader.boolean("landlock", false);
    const std::int64_t landlock_abi = reader.integer("landlock_abi", 0, 1000);
    const std::vector<std::string> rlimits = reader.string_list("rlimits");
    for (const char* seen_by_the_runtime :
         {"weaker_landlock_allowed", "seccomp", "capabilities_dropped", "no_new_privs"}) {
        reader.boolean(seen_by_the_runtime, false);
    }
    reader.integer("user", 0, std::numeric_limits<std::uint32_t>::max(), 0);
    reader.reject_unknown_fields();
    if (!errors.empty()) {
        return std::nullopt;
    }
    // Namespaces as the runtime sees them in /proc when it can; "mnt" (an empty root)
    // only the worker can say, and it said so before any plugin code ran.
    json namespaces = observed.namespaces.empty() ? json(said) : json(observed.namespaces);
    if (!observed.namespaces.empty() && std::find(said.begin(), said.end(), "mnt") != said.end()) {
        namespaces.push_back("mnt");
    }
    return json{{"namespaces", std::move(namespaces)},
                {"landlock", landlock},
                {"landlock_abi", landlock_abi},
                {"weaker_landlock_allowed", weaker_landlock_allowed},
                {"seccomp", observed.seccomp_filter},
                {"capabilities_dropped", observed.capabilities_dropped},
                {"user", observed.user},
                {"rlimits", rlimits},
                {"no_new_privs", observed.no_new_privs}};
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

PluginCallResult PluginProcess::refuse_start(PluginCallResult result) {
    stop_worker(worker_);
    record(result);
    return result;
}

std::optional<json> PluginProcess::receive(SteadyClock::time_point deadline,
                                           std::chrono::milliseconds allowed,
                                           const std::string& during, PluginCallResult& failed) {
    std::string payload;
    const FrameStatus status = read_frame(worker_.socket, plugin_frame_cap, deadline, payload);
    if (status == FrameStatus::timeout) {
        stop_worker(worker_);
        failed = failure(PluginCallStatus::timeout, "no answer " + during + " within " +
                                                        format_duration(allowed) +
                                                        "; the plugin host was killed");
        return std::nullopt;
    }
    if (status == FrameStatus::too_large) {
        failed =
            fail_worker(PluginCallStatus::crashed, "the plugin host sent a frame over the " +
                                                       std::to_string(plugin_frame_cap) +
                                                       "-byte cap " + during + "; it was killed");
        return std::nullopt;
    }
    if (status != FrameStatus::ok) {
        failed = fail_worker(PluginCallStatus::crashed, "the plugin host died " + during);
        return std::nullopt;
    }
    std::string error;
    std::optional<json> message = parse_frame(payload, plugin_frame_cap, error);
    if (!message) {
        // A worker that speaks nonsense is not trusted with another call.
        failed =
            fail_worker(PluginCallStatus::crashed, "the plugin host sent a malformed message " +
                                                       during + " (" + error + "); it was killed");
    }
    return message;
}

bool PluginProcess::send(std::string_view frame, SteadyClock::time_point deadline,
                         const std::string& during, PluginCallResult& failed) {
    const FrameStatus status = write_frame(worker_.socket, frame, deadline);
    if (status == FrameStatus::ok) {
        return true;
    }
    if (status == FrameStatus::timeout) {
        stop_worker(worker_);
        failed = failure(PluginCallStatus::timeout,
                         "the plugin host stopped reading " + during +
                             " and did not take a frame by its deadline; it was killed");
        return false;
    }
    failed = fail_worker(PluginCallStatus::crashed, "the plugin host died " + during);
    return false;
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
    try {
        return start_worker();
    } catch (const std::exception& thrown) {
        // A bug on this side met by what the worker sent: the worker is not used.
        return refuse_start(
            failure(PluginCallStatus::refused, options_.plugin.string() + ": the start failed: " +
                                                   cut_on_character_boundary(thrown.what(), 1024)));
    }
}

PluginCallResult PluginProcess::start_worker() {
    std::string error;
    identity_.reset();
    std::optional<PluginIdentity> identity = identify_plugin(options_.plugin, error);
    if (!identity) {
        return refuse_start(failure(PluginCallStatus::refused, error));
    }
    if (!options_.pinned_sha256.empty() && identity->sha256 != options_.pinned_sha256) {
        return refuse_start(failure(
            PluginCallStatus::refused,
            identity->resolved.string() + " has sha256 " + identity->sha256 + ", not the pinned " +
                options_.pinned_sha256 +
                "; refusing to load it (if the new file is the one you meant, pin its digest)"));
    }
    // The worker loads the resolved path: the one that was checked and hashed.
    std::vector<std::string> arguments{options_.executable.string(), "__plugin-host",
                                       identity->resolved.string()};
    if (options_.confinement.allow_weaker_landlock) {
        arguments.emplace_back("--allow-weaker-landlock");
    }
    if (may_give_workers_away()) {
        arguments.emplace_back("--unprivileged-uid");
    }
    arguments.emplace_back("--minimum-landlock-abi");
    arguments.emplace_back(std::to_string(options_.confinement.minimum_landlock_abi));
    // The bytes that were hashed, which the worker loads where it builds its empty root.
    worker_ = spawn_worker(arguments, error, identity->bytes->descriptor);
    if (!worker_.running()) {
        return refuse_start(failure(PluginCallStatus::refused, error));
    }
    ++starts_;
    const std::chrono::milliseconds allowed = options_.start_deadline;
    const auto deadline = SteadyClock::now() + allowed;
    const std::string during = "while starting " + options_.plugin.string();
    // First frame: the confinement, sent before the plugin was loaded, so nothing the
    // plugin does can change it. Checked against what the runtime sees in /proc.
    PluginCallResult failed;
    const std::optional<json> confined = receive(deadline, allowed, during, failed);
    if (!confined) {
        return refuse_start(failure(PluginCallStatus::refused, failed.error));
    }
    if (frame_type(*confined) == "refused") {
        return refuse_start(refused_by_host(*confined));
    }
    const json* reported = nullptr;
    const std::string unreadable =
        frame_field_problems(*confined, "confined", [&](JsonObjectReader& reader) {
            reported = reader.member("confinement", Presence::required);
        });
    if (frame_type(*confined) != "confined" || !unreadable.empty()) {
        return refuse_start(failure(PluginCallStatus::refused,
                                    "the plugin host did not report its confinement first" +
                                        (unreadable.empty() ? "" : " (" + unreadable + ")")));
    }
    const ObservedConfinement observed = observe_confinement(worker_.pid);
    if (auto unconfined = unconfined_reason(observed)) {
        return refuse_start(
            failure(PluginCallStatus::refused, options_.plugin.string() + ": " + *unconfined));
    }
    std::optional<json> confinement = shown_confinement(
        *reported, observed, landlock_abi_version() < options_.confinement.minimum_landlock_abi);
    if (!confinement) {
        return refuse_start(failure(PluginCallStatus::refused,
                                    "the plugin host reported its confinement in a wrong shape"));
    }
    const std::optional<json> hello = receive(deadline, allowed, during, failed);
    if (!hello) {
        return refuse_start(failure(PluginCallStatus::refused, failed.error));
    }
    const std::string type = frame_type(*hello);
    if (type == "refused") {
        return refuse_start(refused_by_host(*hello));
    }
    const json* manifest = nullptr;
    const std::string unreadable_hello =
        frame_field_problems(*hello, "ready", [&](JsonObjectReader& reader) {
            manifest = reader.member("manifest", Presence::required);
        });
    if (type != "ready" || !unreadable_hello.empty() || manifest == nullptr) {
        return refuse_start(
            failure(PluginCallStatus::refused,
                    options_.plugin.string() + ": the plugin host sent no manifest after starting" +
                        (unreadable_hello.empty() ? "" : " (" + unreadable_hello + ")")));
    }
    if (auto problem = plugin::manifest_problem(*manifest)) {
        return refuse_start(
            failure(PluginCallStatus::refused, options_.plugin.string() + ": " + *problem));
    }
    const json& namespaces = confinement->at("namespaces");
    const bool loaded_a_checked_copy =
        std::find(namespaces.begin(), namespaces.end(), "mnt") != namespaces.end();
    if (auto mismatch = loaded_file_mismatch(worker_.pid, *identity, loaded_a_checked_copy)) {
        return refuse_start(failure(PluginCallStatus::refused, *mismatch));
    }
    identity_ = std::move(identity);
    manifest_ = *manifest;
    confinement_ = std::move(*confinement);
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

std::string PluginProcess::log_line(const json& frame, int& lines) {
    std::int64_t level = 0;
    std::string text;
    const std::string problems = frame_field_problems(frame, "log", [&](JsonObjectReader& reader) {
        level = reader.integer("level", MITIGATE_LOG_DEBUG, MITIGATE_LOG_ERROR);
        text = reader.string("message", Presence::present);
    });
    if (!problems.empty()) {
        return problems;
    }
    ++lines;
    if (!log_ || lines > plugin_log_lines_per_call + 1) {
        return "";
    }
    if (lines == plugin_log_lines_per_call + 1) {
        log_(MITIGATE_LOG_WARN, "the plugin logged more than " +
                                    std::to_string(plugin_log_lines_per_call) +
                                    " lines in one call; the rest of this call's are dropped");
        return "";
    }
    if (text.size() > plugin_log_line_bytes) {
        text = cut_on_character_boundary(std::move(text), plugin_log_line_bytes) + " [cut]";
    }
    log_(static_cast<int>(level), text);
    return "";
}

PluginCallResult PluginProcess::exchange(const std::string& message, const char* what) {
    try {
        return exchange_frames(message, what);
    } catch (const std::exception& thrown) {
        // A bug on this side met by what the worker sent; the conversation is lost.
        return fail_worker(PluginCallStatus::crashed,
                           std::string("the ") + what + " failed in the runtime (" +
                               cut_on_character_boundary(thrown.what(), 1024) +
                               "); the plugin host was killed");
    }
}

PluginCallResult PluginProcess::exchange_frames(const std::string& message, const char* what) {
    const std::chrono::milliseconds allowed = options_.call_deadline;
    const auto deadline = SteadyClock::now() + allowed;
    const std::string during = std::string("during the ") + what;
    PluginCallResult failed;
    if (!send(message, deadline, during, failed)) {
        return failed;
    }
    int log_lines = 0;
    while (true) {
        const std::optional<json> answer = receive(deadline, allowed, during, failed);
        if (!answer) {
            return failed;
        }
        const std::string type = frame_type(*answer);
        if (type == "log") {
            if (const std::string problems = log_line(*answer, log_lines); !problems.empty()) {
                return fail_worker(PluginCallStatus::crashed,
                                   "the plugin host sent a malformed log frame " + during + " (" +
                                       problems + "); it was killed");
            }
            continue;
        }
        if (type == "egress") {
            json request;
            const std::string problems =
                frame_field_problems(*answer, "egress", [&](JsonObjectReader& reader) {
                    request = reader.object("request", Presence::required);
                });
            if (!problems.empty()) {
                return fail_worker(PluginCallStatus::crashed,
                                   "the plugin host sent a malformed egress frame " + during +
                                       " (" + problems + "); it was killed");
            }
            int egress_status = MITIGATE_UNAVAILABLE;
            json response;
            if (egress_) {
                // The egress gets what is left of the call's time, no more: a plugin that
                // asks again and again cannot stretch the call past its deadline.
                const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - SteadyClock::now())
                                      .count();
                json bounded = std::move(request);
                const auto asked = bounded.find("timeout_ms");
                if (asked == bounded.end() || !asked->is_number_integer() ||
                    asked->get<std::int64_t>() > left) {
                    bounded["timeout_ms"] = std::max<std::int64_t>(left, 1);
                }
                response = egress_(bounded, egress_status);
            } else {
                response = json{{"error", "no egress is configured"}};
            }
            if (!send(json{{"type", "egress_answer"},
                           {"status", egress_status},
                           {"response", response}}
                          .dump(-1, ' ', false, json::error_handler_t::replace),
                      deadline, during, failed)) {
                return failed;
            }
            continue;
        }
        std::int64_t code = 0;
        const json* response = nullptr;
        std::string error_text;
        const std::string problems =
            frame_field_problems(*answer, "result", [&](JsonObjectReader& reader) {
                // Any integer here; an unknown status gets its own message below.
                code = reader.integer("status", std::numeric_limits<std::int64_t>::min(),
                                      std::numeric_limits<std::int64_t>::max());
                response = reader.member("response", Presence::optional);
                error_text = reader.string("error", Presence::optional);
            });
        if (type != "result" || !problems.empty()) {
            return fail_worker(PluginCallStatus::crashed,
                               "the plugin host sent a malformed message " + during + " (a \"" +
                                   cut_on_character_boundary(type, 64) +
                                   "\" frame; expected log, egress or a result with an integer "
                                   "status" +
                                   (type == "result" ? ": " + problems : "") + "); it was killed");
        }
        if (code < MITIGATE_OK || code > MITIGATE_INTERNAL) {
            return fail_worker(PluginCallStatus::crashed,
                               "the plugin host sent a result with the unknown status " +
                                   std::to_string(code) + " " + during + "; it was killed");
        }
        const PluginCallStatus result_status = status_from_plugin(static_cast<int>(code));
        if (result_status != PluginCallStatus::ok) {
            std::string text =
                error_text.empty() ? "the plugin gave no error message" : std::move(error_text);
            return failure(result_status,
                           cut_on_character_boundary(std::move(text), MITIGATE_PLUGIN_ERROR_MAX));
        }
        return {PluginCallStatus::ok, response != nullptr ? *response : json::object(), ""};
    }
}

}  // namespace mitigate
