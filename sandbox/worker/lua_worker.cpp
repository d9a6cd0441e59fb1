#include "sandbox/worker/lua_worker.h"

#include <chrono>
#include <cstdlib>

#include "runtime/core/time_format.h"
#include "sandbox/worker/frame.h"
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

LuaOutcome failed(LuaFailure failure, std::string message) {
    LuaOutcome outcome;
    outcome.failure = failure;
    outcome.message = std::move(message);
    return outcome;
}

}  // namespace

// ---- The worker process -------------------------------------------------------------

int run_lua_worker(int descriptor, const ConfinementPolicy& policy) {
    const ConfinementReport report = confine_this_process(policy);
    if (!report.applied) {
        write_frame(descriptor, json{{"type", "refused"}, {"error", report.error}}.dump());
        return 3;
    }
    write_frame(descriptor, json{{"type", "ready"},
                                 {"landlock_abi", report.landlock_abi},
                                 {"namespaces", report.namespaces}}
                                .dump());
    while (true) {
        std::string payload;
        // No deadline while idle: the runtime decides when a worker is no longer wanted.
        const FrameStatus status =
            read_frame(descriptor, max_frame_bytes,
                       SteadyClock::now() + std::chrono::hours(24 * 365), payload);
        if (status != FrameStatus::ok) {
            return status == FrameStatus::closed ? 0 : 4;
        }
        const json request = json::parse(payload, nullptr, false);
        if (!request.is_object() || request.value("type", "") != "evaluate") {
            return 5;  // the runtime never sends this: something is wrong, stop
        }
        LuaCall call;
        call.source = request.at("source").get<std::string>();
        call.chunk_name = request.at("chunk_name").get<std::string>();
        call.function = request.at("function").get<std::string>();
        call.argument = request.at("argument");
        call.now = parse_rfc3339(request.at("now").get<std::string>()).value_or(TimePoint{});
        call.libraries =
            request.at("libraries").get<std::vector<std::pair<std::string, std::string>>>();
        const LuaLimits limits = limits_from_json(request.at("limits"));
        const auto deadline = SteadyClock::now() + limits.wall_clock;
        call.host.state = [descriptor, deadline](const std::string& provider,
                                                 const std::string& target) -> std::optional<json> {
            if (!write_frame(
                    descriptor,
                    json{{"type", "state"}, {"provider", provider}, {"target", target}}.dump())) {
                return std::nullopt;
            }
            std::string answer;
            if (read_frame(descriptor, max_frame_bytes, deadline, answer) != FrameStatus::ok) {
                return std::nullopt;
            }
            const json parsed = json::parse(answer, nullptr, false);
            if (!parsed.is_object() || !parsed.contains("state") || parsed["state"].is_null()) {
                return std::nullopt;
            }
            return parsed["state"];
        };
        const LuaOutcome outcome = run_sandboxed(call, limits);
        const json response{
            {"type", "result"},
            {"value", outcome.value ? *outcome.value : json(nullptr)},
            {"failure", outcome.failure ? json(to_string(*outcome.failure)) : json(nullptr)},
            {"message", outcome.message},
            {"log", outcome.log},
            {"instructions", outcome.instructions}};
        if (!write_frame(descriptor,
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
    const json hello = status == FrameStatus::ok ? json::parse(payload, nullptr, false) : json();
    if (!hello.is_object() || hello.value("type", "") != "ready") {
        error = hello.is_object() && hello.contains("error")
                    ? "the worker refused to start: " + hello["error"].get<std::string>()
                    : "the worker did not start (" + arguments[0] + " __lua-worker)";
        stop();
        return false;
    }
    confinement_.applied = true;
    confinement_.landlock_abi = hello.value("landlock_abi", 0);
    confinement_.namespaces = hello.value("namespaces", std::vector<std::string>{});
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
    if (!write_frame(process_.socket, request.dump())) {
        return failed(LuaFailure::crashed, call.chunk_name + ": the worker died" + reap());
    }
    const auto deadline = SteadyClock::now() + limits.wall_clock + answer_grace;
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
        const json message = json::parse(payload, nullptr, false);
        const std::string type = message.is_object() ? message.value("type", "") : "";
        if (type == "state") {
            std::optional<json> state;
            if (call.host.state && message.contains("provider") && message.contains("target")) {
                state = call.host.state(message["provider"].get<std::string>(),
                                        message["target"].get<std::string>());
            }
            if (!write_frame(process_.socket, json{{"type", "state_answer"},
                                                   {"state", state ? *state : json(nullptr)}}
                                                  .dump())) {
                return failed(LuaFailure::crashed, call.chunk_name + ": the worker died" + reap());
            }
            continue;
        }
        if (type != "result") {
            stop();  // a worker that speaks nonsense is not trusted with another evaluation
            return failed(LuaFailure::crashed,
                          call.chunk_name + ": the worker sent an unexpected message");
        }
        LuaOutcome outcome;
        if (!message["value"].is_null()) {
            outcome.value = message["value"];
        }
        if (message["failure"].is_string()) {
            outcome.failure =
                parse_failure(message["failure"].get<std::string>()).value_or(LuaFailure::crashed);
        }
        outcome.message = message.value("message", "");
        outcome.log = message.value("log", std::vector<std::string>{});
        outcome.instructions = message.value("instructions", std::uint64_t{0});
        return outcome;
    }
}

}  // namespace mitigate
