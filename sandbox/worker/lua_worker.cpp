#include "sandbox/worker/lua_worker.h"

#include <chrono>
#include <cstdlib>
#include <limits>

#include "runtime/core/json_reader.h"
#include "runtime/core/time_format.h"
#include "runtime/core/utf8.h"
#include "sandbox/worker/frame.h"
#include "sandbox/worker/observed_confinement.h"
#include "sandbox/worker/worker_process.h"

namespace mitigate {
namespace {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

constexpr std::size_t max_frame_bytes = 8u << 20;
constexpr auto start_deadline = std::chrono::seconds(10);
// Beyond the script's own wall-clock limit: time to convert and send the answer.
constexpr auto answer_grace = std::chrono::milliseconds(500);

json limits_to_json(const LuaLimits& limits) {
    return {{"memory_bytes", limits.memory_bytes},
            {"instructions", limits.instructions},
            {"wall_clock_ms", limits.wall_clock.count()},
            {"output_bytes", limits.output_bytes},
            {"max_depth", limits.max_depth},
            {"max_log_lines", limits.max_log_lines}};
}

LuaLimits limits_from_json(const json& value) {
    LuaLimits limits;
    limits.memory_bytes = value.at("memory_bytes").get<std::size_t>();
    limits.instructions = value.at("instructions").get<std::uint64_t>();
    limits.wall_clock = Duration{value.at("wall_clock_ms").get<std::int64_t>()};
    limits.output_bytes = value.at("output_bytes").get<std::size_t>();
    limits.max_depth = value.at("max_depth").get<int>();
    limits.max_log_lines = value.at("max_log_lines").get<std::size_t>();
    return limits;
}

std::optional<LuaFailure> parse_failure(const std::string& name) {
    for (auto failure : {LuaFailure::syntax, LuaFailure::runtime, LuaFailure::memory,
                         LuaFailure::instructions, LuaFailure::time, LuaFailure::forbidden,
                         LuaFailure::bad_return, LuaFailure::output, LuaFailure::crashed}) {
        if (to_string(failure) == name) {
            return failure;
        }
    }
    return std::nullopt;
}

}  // namespace

std::optional<LuaOutcome> read_result_frame(const json& message, std::string& problems) {
    LuaOutcome outcome;
    problems = frame_field_problems(message, "result", [&](JsonObjectReader& reader) {
        if (const json* value = reader.member("value", Presence::optional)) {
            // {"module": {...}, "result": ...}: what run_sandboxed returns, nothing else.
            if (!value->is_object() || value->size() != 2 || !value->contains("module") ||
                !value->at("module").is_object() || !value->contains("result")) {
                reader.add_error("value", "must be {\"module\": {...}, \"result\": ...}");
            } else {
                outcome.value = *value;
            }
        }
        if (message.contains("failure") && !message.at("failure").is_null()) {
            outcome.failure = reader.enumeration(
                "failure", parse_failure, LuaFailure::crashed,
                "syntax, runtime, memory, instructions, time, forbidden, bad_return, output, "
                "crashed");
        } else {
            reader.member("failure", Presence::optional);
        }
        outcome.message = reader.string("message", Presence::present);
        outcome.log = reader.string_list("log", Presence::present);
        outcome.instructions = static_cast<std::uint64_t>(
            reader.integer("instructions", 0, std::numeric_limits<std::int64_t>::max()));
    });
    if (!problems.empty()) {
        return std::nullopt;
    }
    return outcome;
}

namespace {

LuaOutcome failed(LuaFailure failure, std::string message) {
    LuaOutcome outcome;
    outcome.failure = failure;
    outcome.message = std::move(message);
    return outcome;
}

}  // namespace

// ---- The worker process -------------------------------------------------------------

namespace {

// The runtime reads within its own deadlines and kills a worker it stops waiting for.
bool send_to_runtime(int descriptor, std::string_view frame) {
    return write_frame(descriptor, frame, no_deadline()) == FrameStatus::ok;
}

// An evaluation request as the runtime writes it; nullopt for anything else, which the
// runtime never sends.
std::optional<std::pair<LuaCall, LuaLimits>> read_evaluation(const json& request) {
    try {
        if (frame_type(request) != "evaluate") {
            return std::nullopt;
        }
        LuaCall call;
        call.source = request.at("source").get<std::string>();
        call.chunk_name = request.at("chunk_name").get<std::string>();
        call.function = request.at("function").get<std::string>();
        call.argument = request.at("argument");
        call.now = parse_rfc3339(request.at("now").get<std::string>()).value_or(TimePoint{});
        call.libraries =
            request.at("libraries").get<std::vector<std::pair<std::string, std::string>>>();
        return std::pair{std::move(call), limits_from_json(request.at("limits"))};
    } catch (const json::exception&) {
        return std::nullopt;
    }
}

}  // namespace

int run_lua_worker(int descriptor, const ConfinementPolicy& policy) {
    const ConfinementReport report = confine_this_process(policy);
    if (!report.applied) {
        send_to_runtime(descriptor, json{{"type", "refused"}, {"error", report.error}}.dump());
        return 3;
    }
    send_to_runtime(descriptor, json{{"type", "ready"},
                                     {"landlock_abi", report.landlock_abi},
                                     {"namespaces", report.namespaces}}
                                    .dump());
    while (true) {
        std::string payload;
        // No deadline while idle: the runtime decides when a worker is no longer wanted.
        const FrameStatus status = read_frame(descriptor, max_frame_bytes, no_deadline(), payload);
        if (status != FrameStatus::ok) {
            return status == FrameStatus::closed ? 0 : 4;
        }
        std::string error;
        const std::optional<json> request = parse_frame(payload, max_frame_bytes, error);
        auto evaluation = request ? read_evaluation(*request) : std::nullopt;
        if (!evaluation) {
            return 5;  // the runtime never sends this: something is wrong, stop
        }
        auto& [call, limits] = *evaluation;
        const auto deadline = SteadyClock::now() + limits.wall_clock;
        call.host.state = [descriptor, deadline](const std::string& provider,
                                                 const std::string& target) -> std::optional<json> {
            if (!send_to_runtime(
                    descriptor,
                    json{{"type", "state"}, {"provider", provider}, {"target", target}}.dump(
                        -1, ' ', false, json::error_handler_t::replace))) {
                return std::nullopt;
            }
            std::string answer;
            if (read_frame(descriptor, max_frame_bytes, deadline, answer) != FrameStatus::ok) {
                // An answer may still come; read later, it would pass for the next request.
                // A worker out of step with the runtime ends here.
                std::_Exit(7);
            }
            std::string unused;
            const std::optional<json> parsed = parse_frame(answer, max_frame_bytes, unused);
            if (!parsed || !parsed->contains("state") || parsed->at("state").is_null()) {
                return std::nullopt;
            }
            return parsed->at("state");
        };
        const LuaOutcome outcome = run_sandboxed(call, limits);
        const json response{
            {"type", "result"},
            {"value", outcome.value ? *outcome.value : json(nullptr)},
            {"failure", outcome.failure ? json(to_string(*outcome.failure)) : json(nullptr)},
            {"message", outcome.message},
            {"log", outcome.log},
            {"instructions", outcome.instructions}};
        if (!send_to_runtime(descriptor,
                             response.dump(-1, ' ', false, json::error_handler_t::replace))) {
            return 6;
        }
    }
}

// ---- The runtime side ---------------------------------------------------------------

LuaWorker::LuaWorker(std::filesystem::path executable, ConfinementPolicy policy)
    : executable_(std::move(executable)), policy_(std::move(policy)) {}

LuaWorker::~LuaWorker() {
    stop();
}

void LuaWorker::stop() {
    stop_worker(process_);
}

std::string LuaWorker::reap() {
    return reap_worker(process_);
}

bool LuaWorker::start(std::string& error) {
    std::vector<std::string> arguments{executable_.string(), "__lua-worker"};
    if (may_give_workers_away()) {
        arguments.emplace_back("--unprivileged-uid");
    }
    if (policy_.allow_weaker_landlock) {
        arguments.emplace_back("--allow-weaker-landlock");
    }
    process_ = spawn_worker(arguments, error);
    if (!process_.running()) {
        return false;
    }
    ++starts_;
    std::string payload;
    const FrameStatus status =
        read_frame(process_.socket, max_frame_bytes, SteadyClock::now() + start_deadline, payload);
    std::string parse_error;
    const json hello = status == FrameStatus::ok
                           ? parse_frame(payload, max_frame_bytes, parse_error).value_or(json())
                           : json();
    std::int64_t landlock_abi = 0;
    std::vector<std::string> reported;
    const std::string problems =
        frame_field_problems(hello, "ready", [&](JsonObjectReader& reader) {
            landlock_abi = reader.integer("landlock_abi", 0, 1000);
            reported = reader.string_list("namespaces");
        });
    if (frame_type(hello) != "ready" || !problems.empty()) {
        std::string why;
        const bool refused = frame_type(hello) == "refused" &&
                             frame_field_problems(hello, "refused", [&](JsonObjectReader& reader) {
                                 why = reader.string("error");
                             }).empty();
        error = refused ? "the worker refused to start: " +
                              cut_on_character_boundary(std::move(why), 4096)
                        : "the worker did not start (" + arguments[0] + " __lua-worker)" +
                              (frame_type(hello) == "ready" ? ": " + problems : "");
        stop();
        return false;
    }
    // The worker's word is checked against the kernel's before any script runs in it.
    const ObservedConfinement observed = observe_confinement(process_.pid);
    if (auto unconfined = unconfined_reason(observed)) {
        error = "the worker is not confined: " + *unconfined;
        stop();
        return false;
    }
    confinement_ = {};
    confinement_.applied = true;
    confinement_.landlock_abi = static_cast<int>(landlock_abi);
    confinement_.landlock = confinement_.landlock_abi > 0;
    confinement_.seccomp = observed.seccomp_filter;
    confinement_.capabilities_dropped = observed.capabilities_dropped;
    confinement_.user = observed.user >= 0 ? static_cast<unsigned>(observed.user) : 0;
    confinement_.namespaces = observed.namespaces;
    // An empty root ("mnt") is the worker's own word, sent before any script ran.
    if (std::find(reported.begin(), reported.end(), "mnt") != reported.end()) {
        confinement_.namespaces.emplace_back("mnt");
    }
    return true;
}

LuaOutcome LuaWorker::evaluate(const LuaCall& call, const LuaLimits& limits) {
    if (!process_.running()) {
        std::string error;
        if (!start(error)) {
            return failed(LuaFailure::crashed, error);
        }
    }
    const json request{{"type", "evaluate"},
                       {"source", call.source},
                       {"chunk_name", call.chunk_name},
                       {"function", call.function},
                       {"argument", call.argument},
                       {"now", format_rfc3339(call.now)},
                       {"limits", limits_to_json(limits)},
                       {"libraries", call.libraries}};
    const auto deadline = SteadyClock::now() + limits.wall_clock + answer_grace;
    const FrameStatus sent = write_frame(
        process_.socket, request.dump(-1, ' ', false, json::error_handler_t::replace), deadline);
    if (sent == FrameStatus::timeout) {
        stop();
        return failed(LuaFailure::time,
                      call.chunk_name + ": the worker did not take the evaluation; it was killed");
    }
    if (sent != FrameStatus::ok) {
        return failed(LuaFailure::crashed, call.chunk_name + ": the worker died" + reap());
    }
    while (true) {
        std::string payload;
        const FrameStatus status = read_frame(process_.socket, max_frame_bytes, deadline, payload);
        if (status == FrameStatus::timeout) {
            stop();
            return failed(LuaFailure::time, call.chunk_name +
                                                ": no answer within the wall-clock "
                                                "limit of " +
                                                format_duration(limits.wall_clock) +
                                                "; the worker was killed");
        }
        if (status == FrameStatus::too_large) {
            reap();
            return failed(LuaFailure::crashed, call.chunk_name +
                                                   ": the worker sent a frame over the size "
                                                   "cap; it was killed");
        }
        if (status != FrameStatus::ok) {
            return failed(LuaFailure::crashed, call.chunk_name + ": the worker died" + reap());
        }
        std::string error;
        const std::optional<json> message = parse_frame(payload, max_frame_bytes, error);
        const std::string type = message ? frame_type(*message) : "";
        if (type == "state") {
            std::string provider;
            std::string target;
            const std::string problems =
                frame_field_problems(*message, "state", [&](JsonObjectReader& reader) {
                    provider = reader.string("provider", Presence::present);
                    target = reader.string("target", Presence::present);
                });
            if (!problems.empty()) {
                stop();
                return failed(LuaFailure::crashed, call.chunk_name +
                                                       ": the worker sent a state request without "
                                                       "provider and target strings (" +
                                                       problems + "); it was killed");
            }
            std::optional<json> state;
            try {
                if (call.host.state) {
                    state = call.host.state(provider, target);
                }
            } catch (const std::exception& thrown) {
                stop();  // the conversation is lost: never reuse this worker
                return failed(LuaFailure::crashed,
                              call.chunk_name + ": mitigate.state failed in the runtime: " +
                                  cut_on_character_boundary(thrown.what(), 1024));
            }
            if (SteadyClock::now() >= deadline - answer_grace) {
                // The worker gives up waiting at the script's own wall clock (and exits);
                // an answer sent later would be read as the next evaluation's request.
                stop();
                return failed(LuaFailure::time,
                              call.chunk_name +
                                  ": mitigate.state answered after the wall-clock "
                                  "limit of " +
                                  format_duration(limits.wall_clock) + "; the worker was killed");
            }
            const FrameStatus answered = write_frame(
                process_.socket,
                json{{"type", "state_answer"}, {"state", state ? *state : json(nullptr)}}.dump(
                    -1, ' ', false, json::error_handler_t::replace),
                deadline);
            if (answered != FrameStatus::ok) {
                return failed(LuaFailure::crashed,
                              call.chunk_name + ": the worker stopped reading" + reap());
            }
            continue;
        }
        std::optional<LuaOutcome> outcome =
            type == "result" ? read_result_frame(*message, error) : std::nullopt;
        if (!outcome) {
            stop();  // a worker that speaks nonsense is not trusted with another evaluation
            return failed(LuaFailure::crashed,
                          call.chunk_name + ": the worker sent a malformed message" +
                              (error.empty() ? "" : " (" + error + ")") + "; it was killed");
        }
        // Bounded here too: the worker runs hostile scripts, so its word is not the limit.
        if (outcome->log.size() > limits.max_log_lines) {
            outcome->log.resize(limits.max_log_lines);
        }
        for (auto& line : outcome->log) {
            line = cut_on_character_boundary(std::move(line), limits.max_log_line_bytes);
        }
        return *outcome;
    }
}

}  // namespace mitigate
