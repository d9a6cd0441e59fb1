// Lua evaluation in a confined worker process: the limits the in-process sandbox cannot
// enforce (a C function that never returns), crashes, replacement, and proof that the
// confinement holds on this kernel.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>

#include "runtime/core/time_format.h"
#include "sandbox/worker/frame.h"
#include "sandbox/worker/lua_worker.h"
#include "sandbox/worker/worker_process.h"
#include "tests/support/child_process.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using SteadyClock = std::chrono::steady_clock;

LuaCall playbook_call(const std::string& body) {
    LuaCall call;
    call.source = "return { name = 'w', propose = function(incident)\n" + body + "\nend }";
    call.chunk_name = "worker-test.lua";
    call.argument = {{"service", "checkout"}};
    call.now = *parse_rfc3339("2026-11-24T10:00:00Z");
    return call;
}

LuaLimits short_limits() {
    LuaLimits limits;
    limits.memory_bytes = 8u << 20;
    limits.instructions = 5'000'000;
    limits.wall_clock = Duration{300};
    return limits;
}

TEST(LuaWorker, EvaluatesInAConfinedProcessWithHostStateRoundTrips) {
    LuaWorker worker(testing::mitigate_binary());
    LuaCall call = playbook_call(
        "local s = mitigate.state('aws', 'ecs/' .. incident.service)\n"
        "mitigate.log('desired', s.desired)\n"
        "return { { desired = s.desired * 2, missing = mitigate.state('aws', 'nope') == nil } }");
    std::vector<std::string> asked;
    call.host.state = [&](const std::string& provider,
                          const std::string& target) -> std::optional<nlohmann::json> {
        asked.push_back(provider + " " + target);
        if (target == "ecs/checkout") {
            return nlohmann::json{{"desired", 7}};
        }
        return std::nullopt;
    };
    const LuaOutcome outcome = worker.evaluate(call, short_limits());
    ASSERT_TRUE(outcome.value) << outcome.message;
    EXPECT_EQ((*outcome.value)["result"][0]["desired"], 14);
    EXPECT_EQ((*outcome.value)["result"][0]["missing"], true);
    EXPECT_EQ(asked, (std::vector<std::string>{"aws ecs/checkout", "aws nope"}));
    EXPECT_EQ(outcome.log, std::vector<std::string>{"desired 7"});
    EXPECT_GT(worker.pid(), 0);
    EXPECT_TRUE(worker.confinement().applied);
    EXPECT_GE(worker.confinement().landlock_abi, 4);
    // A Lua worker needs no file at all, so one started by root (with CAP_KILL, to stop it
    // still) gives root up in any case; the runtime's own reading of /proc/PID/status.
    const bool in_user_namespace =
        std::find(worker.confinement().namespaces.begin(), worker.confinement().namespaces.end(),
                  "user") != worker.confinement().namespaces.end();
    EXPECT_EQ(worker.confinement().user,
              may_give_workers_away() && !in_user_namespace ? 65534u : geteuid());
    // The same process serves the next evaluation.
    const pid_t first = worker.pid();
    EXPECT_TRUE(worker.evaluate(playbook_call("return {}"), short_limits()).value);
    EXPECT_EQ(worker.pid(), first);
    EXPECT_EQ(worker.starts(), 1);
}

TEST(LuaWorker, AResultFrameIsReadFieldByFieldAndAnythingElseIsRefused) {
    // What a worker whose Lua VM was subverted could send instead of a real result.
    const nlohmann::json good = {{"type", "result"},
                                 {"value", {{"module", nlohmann::json::object()}, {"result", 1}}},
                                 {"failure", nullptr},
                                 {"message", ""},
                                 {"log", nlohmann::json::array()},
                                 {"instructions", 42}};
    std::string problems;
    const auto read = read_result_frame(good, problems);
    ASSERT_TRUE(read) << problems;
    EXPECT_EQ(read->instructions, 42u);
    EXPECT_FALSE(read->failure);
    const std::vector<std::pair<std::string, nlohmann::json>> hostile{
        {"failure", "made-up"},
        {"failure", 7},
        {"message", nullptr},
        {"message", 5},
        {"log", nullptr},
        {"log", {"ok", 5}},
        {"instructions", -1},
        {"instructions", 18446744073709551615u},
        {"instructions", "42"},
        {"value", {{"module", 1}, {"result", 1}}},
        {"value", {1, 2}},
        {"injected", true},
        {std::string(1 << 20, 'k'), 1}};
    for (const auto& [field, value] : hostile) {
        nlohmann::json frame = good;
        frame[field] = value;
        std::string why;
        EXPECT_FALSE(read_result_frame(frame, why)) << field.substr(0, 20) << " = " << value;
        EXPECT_FALSE(why.empty());
        EXPECT_LE(why.size(), 512u);  // bounded, whatever the field's name
    }
    for (const char* field : {"message", "log", "instructions"}) {
        nlohmann::json frame = good;
        frame.erase(field);
        std::string why;
        EXPECT_FALSE(read_result_frame(frame, why)) << field;
        EXPECT_THAT(why, HasSubstr(std::string("result.") + field + ": is required"));
    }
    std::string why;
    EXPECT_FALSE(read_result_frame(nlohmann::json::array(), why));
}

TEST(LuaWorker, AStateAnswerLaterThanTheWallClockCannotPassForTheNextRequest) {
    // The runtime's answer to mitigate.state arrives after the worker stopped waiting:
    // sent anyway, it would sit in the socket and be read as the next evaluation.
    LuaWorker worker(testing::mitigate_binary());
    LuaCall call = playbook_call("return { { s = mitigate.state('aws', 'slow') } }");
    const LuaLimits limits = short_limits();
    call.host.state = [&limits](const std::string&,
                                const std::string&) -> std::optional<nlohmann::json> {
        // A provider slower than the evaluation's whole wall clock (this is the runtime
        // side: no test clock reaches a provider call).
        std::this_thread::sleep_for(limits.wall_clock + std::chrono::milliseconds(200));
        return nlohmann::json{{"late", true}};
    };
    const LuaOutcome late = worker.evaluate(call, limits);
    ASSERT_TRUE(late.failure.has_value());
    EXPECT_EQ(*late.failure, LuaFailure::time) << late.message;
    EXPECT_THAT(late.message, HasSubstr("answered after the wall-clock limit"));
    // The next evaluation gets its own answer, from a fresh worker.
    const LuaOutcome next = worker.evaluate(playbook_call("return { { fresh = true } }"), limits);
    ASSERT_TRUE(next.value) << next.message;
    EXPECT_EQ((*next.value)["result"][0]["fresh"], true);
    EXPECT_EQ(worker.starts(), 2);
}

TEST(LuaWorker, CatastrophicPatternInACFunctionIsKilledFromOutside) {
    // string.find never returns to the Lua hook: only the worker's death stops it.
    LuaWorker worker(testing::mitigate_binary());
    const auto start = SteadyClock::now();
    const LuaOutcome outcome = worker.evaluate(
        playbook_call("return ('a'):rep(40):find(('a*'):rep(30) .. 'b')"), short_limits());
    ASSERT_TRUE(outcome.failure);
    EXPECT_EQ(*outcome.failure, LuaFailure::time) << outcome.message;
    EXPECT_THAT(outcome.message, HasSubstr("the worker was killed"));
    EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(10));
    EXPECT_EQ(worker.pid(), -1);
    // A new worker takes the next evaluation.
    const LuaOutcome next = worker.evaluate(playbook_call("return { ok = true }"), short_limits());
    ASSERT_TRUE(next.value) << next.message;
    EXPECT_EQ(worker.starts(), 2);
}

TEST(LuaWorker, AWorkerThatDiesFailsTheEvaluationCleanlyAndIsReplaced) {
    LuaWorker worker(testing::mitigate_binary());
    LuaCall call = playbook_call("return mitigate.state('x', 'y')");
    call.host.state = [&](const std::string&, const std::string&) -> std::optional<nlohmann::json> {
        kill(worker.pid(), SIGKILL);  // the worker dies while it waits for the host
        return nlohmann::json{{"late", true}};
    };
    const LuaOutcome outcome = worker.evaluate(call, short_limits());
    ASSERT_TRUE(outcome.failure);
    EXPECT_EQ(*outcome.failure, LuaFailure::crashed) << outcome.message;
    EXPECT_THAT(outcome.message, HasSubstr("signal 9"));
    EXPECT_TRUE(worker.evaluate(playbook_call("return {}"), short_limits()).value);
    EXPECT_EQ(worker.starts(), 2);
}

TEST(LuaWorker, HostileScriptsGetTheirTypedErrorsThroughTheWorker) {
    LuaWorker worker(testing::mitigate_binary());
    const std::pair<const char*, LuaFailure> cases[] = {
        {"while true do end", LuaFailure::instructions},
        {"return string.rep('x', 1 << 30)", LuaFailure::memory},
        {"return os.execute('id')", LuaFailure::forbidden},
        {"local t = {} t.t = t return t", LuaFailure::bad_return},
    };
    for (const auto& [body, failure] : cases) {
        const LuaOutcome outcome = worker.evaluate(playbook_call(body), short_limits());
        ASSERT_TRUE(outcome.failure) << body;
        EXPECT_EQ(*outcome.failure, failure) << body << ": " << outcome.message;
    }
    EXPECT_EQ(worker.starts(), 1);  // typed failures do not cost the worker its life
}

TEST(LuaWorker, TheWorkerHasNoneOfTheRuntimesEnvironment) {
    // The runtime's environment holds secrets (env: references); a worker must not.
    ::setenv("MITIGATE_TEST_WORKER_SECRET", "worker-secret-5f3a9c", 1);
    LuaWorker worker(testing::mitigate_binary());
    ASSERT_TRUE(worker.evaluate(playbook_call("return {}"), short_limits()).value);
    std::ifstream environ_file("/proc/" + std::to_string(worker.pid()) + "/environ",
                               std::ios::binary);
    ASSERT_TRUE(environ_file.good());
    const std::string environment((std::istreambuf_iterator<char>(environ_file)),
                                  std::istreambuf_iterator<char>());
    EXPECT_EQ(environment.find("worker-secret-5f3a9c"), std::string::npos);
    EXPECT_EQ(environment.find("PATH="), std::string::npos);
    ::unsetenv("MITIGATE_TEST_WORKER_SECRET");
}

TEST(LuaWorker, AMissingExecutableIsAClearFailure) {
    LuaWorker worker("/nonexistent/mitigate");
    const LuaOutcome outcome = worker.evaluate(playbook_call("return {}"), short_limits());
    ASSERT_TRUE(outcome.failure);
    EXPECT_EQ(*outcome.failure, LuaFailure::crashed);
    EXPECT_THAT(outcome.message, HasSubstr("did not start"));
}

// ---- The confinement, probed from inside a confined process ----------------------

testing::ProcessResult probe(const std::string& attempt) {
    return testing::run_process({testing::mitigate_binary(), "__confinement-probe", attempt});
}

TEST(Confinement, FilesCannotBeOpenedForReadingOrWriting) {
    const auto read = probe("read-file");
    EXPECT_EQ(read.exit_code, 0) << read.out;
    EXPECT_THAT(read.out, HasSubstr("open /etc/hostname: Operation not permitted"));
    const auto write = probe("write-file");
    EXPECT_EQ(write.exit_code, 0) << write.out;
    EXPECT_THAT(write.out, HasSubstr("Operation not permitted"));
}

TEST(Confinement, SocketsExecAndForkKillTheProcess) {
    for (const char* attempt : {"socket", "exec", "fork"}) {
        const auto result = probe(attempt);
        EXPECT_EQ(result.exit_code, 128 + SIGSYS) << attempt << ": " << result.out;
        EXPECT_THAT(result.out, ::testing::Not(HasSubstr("ALLOWED"))) << attempt;
    }
}

// ---- Frames ----------------------------------------------------------------------

TEST(Frames, OversizedClosedAndTimedOutFramesAreReported) {
    int sockets[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sockets), 0);
    const auto soon = SteadyClock::now() + std::chrono::milliseconds(200);
    std::string payload;
    EXPECT_EQ(read_frame(sockets[0], 1024, soon, payload), FrameStatus::timeout);
    const auto later = SteadyClock::now() + std::chrono::seconds(1);
    ASSERT_EQ(write_frame(sockets[1], std::string(2048, 'x'), later), FrameStatus::ok);
    EXPECT_EQ(read_frame(sockets[0], 1024, SteadyClock::now() + std::chrono::seconds(1), payload),
              FrameStatus::too_large);
    close(sockets[0]);
    close(sockets[1]);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sockets), 0);
    ASSERT_EQ(write_frame(sockets[1], "{\"a\":1}", later), FrameStatus::ok);
    EXPECT_EQ(read_frame(sockets[0], 1024, SteadyClock::now() + std::chrono::seconds(1), payload),
              FrameStatus::ok);
    EXPECT_EQ(payload, "{\"a\":1}");
    close(sockets[1]);
    EXPECT_EQ(read_frame(sockets[0], 1024, SteadyClock::now() + std::chrono::seconds(1), payload),
              FrameStatus::closed);
    close(sockets[0]);
}

TEST(Frames, AWriteToAPeerThatNeverReadsEndsAtTheDeadline) {
    int sockets[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sockets), 0);
    // Far more than any socket buffer: without a deadline this write would block forever.
    const std::string big(64u << 20, 'x');
    const auto start = SteadyClock::now();
    EXPECT_EQ(write_frame(sockets[0], big, start + std::chrono::milliseconds(200)),
              FrameStatus::timeout);
    close(sockets[1]);
    EXPECT_EQ(write_frame(sockets[0], "{}", SteadyClock::now() + std::chrono::seconds(1)),
              FrameStatus::closed);
    close(sockets[0]);
}

TEST(Frames, DeepTypeConfusedAndNonObjectFramesAreRefusedUnparsedAndNeverThrow) {
    std::string error;
    // A million levels in 2 MB: under the size cap, deep enough to overflow any stack
    // that copies or dumps it.
    const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
    EXPECT_FALSE(parse_frame(deep, 8u << 20, error));
    EXPECT_THAT(error, HasSubstr("nests deeper than 128"));
    const std::string deep_objects = [] {
        std::string text;
        for (int level = 0; level < 200; ++level) {
            text += R"({"a":)";
        }
        return text + "1" + std::string(200, '}');
    }();
    EXPECT_FALSE(parse_frame(deep_objects, 8u << 20, error));
    // Brackets inside strings are text, not depth; escaped quotes do not end a string.
    const std::string brackets_in_text =
        R"({"type":"log","message":")" + std::string(500, '[') + R"(\"[[[["})";
    EXPECT_TRUE(parse_frame(brackets_in_text, 8u << 20, error)) << error;
    EXPECT_FALSE(parse_frame("[1,2]", 1024, error));
    EXPECT_THAT(error, HasSubstr("not an object"));
    EXPECT_FALSE(parse_frame("\"text\"", 1024, error));
    EXPECT_FALSE(parse_frame("{\"a\":", 1024, error));
    EXPECT_THAT(error, HasSubstr("not valid JSON"));
    EXPECT_FALSE(parse_frame("{\"a\":\"\xff\xfe\"}", 1024, error));  // invalid UTF-8
    EXPECT_FALSE(parse_frame(std::string(2000, ' ') + "{}", 1024, error));
    EXPECT_THAT(error, HasSubstr("over the limit of 1024"));
    EXPECT_EQ(frame_type(json{{"type", 7}}), "");
    EXPECT_EQ(frame_type(json::array()), "");
    EXPECT_EQ(frame_type(json{{"type", "log"}}), "log");
}

}  // namespace
}  // namespace mitigate
