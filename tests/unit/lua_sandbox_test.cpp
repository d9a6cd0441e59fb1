// The Lua sandbox against hostile scripts: each ends with the right typed failure within
// its limits, and the test process (the host) is unharmed and goes on to the next.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>

#include "runtime/core/time_format.h"
#include "sandbox/lua/lua_sandbox.h"

namespace mitigate {
namespace {

using ::testing::HasSubstr;

LuaLimits small_limits() {
    LuaLimits limits;
    limits.memory_bytes = 4u << 20;
    limits.instructions = 2'000'000;
    limits.wall_clock = Duration{2000};
    return limits;
}

LuaOutcome run(const std::string& source, const LuaLimits& limits = small_limits(),
               nlohmann::json argument = nlohmann::json::object()) {
    LuaCall call;
    call.source = source;
    call.chunk_name = "test.lua";
    call.argument = std::move(argument);
    call.now = *parse_rfc3339("2026-11-24T10:00:00Z");
    call.host.state = [](const std::string& provider,
                         const std::string& target) -> std::optional<nlohmann::json> {
        if (provider == "flags" && target == "checkout") {
            return nlohmann::json{{"variant", "on"}, {"variants", {"on", "off"}}};
        }
        return std::nullopt;
    };
    return run_sandboxed(call, limits);
}

// Wraps a body as the `propose` function of a playbook.
std::string playbook(const std::string& body) {
    return "return { name = 'hostile', propose = function(incident)\n" + body + "\nend }";
}

void expect_failure(const LuaOutcome& outcome, LuaFailure failure, const std::string& text = "") {
    ASSERT_TRUE(outcome.failure.has_value())
        << "expected " << to_string(failure) << ", got value " << outcome.value->dump();
    EXPECT_EQ(*outcome.failure, failure) << outcome.message;
    EXPECT_THAT(outcome.message, HasSubstr(text));
}

TEST(LuaSandbox, RunsAWellBehavedPlaybook) {
    const LuaOutcome outcome = run(R"lua(
local threshold = 0.05
return {
  name = "error-rate",
  matches = { alerts = { "HighErrorRate" } },
  priority = 10,
  propose = function(incident)
    mitigate.log("saw", incident.name, incident.value, true)
    local current = mitigate.state("flags", "checkout")
    if incident.value < threshold or current.variant == "off" then return {} end
    return {
      { provider = "flags", action = "flag.set", target = "checkout",
        parameters = { variant = "off" }, ttl = "30m",
        reason = string.format("error rate %.0f%% at %s", incident.value * 100, mitigate.now()) },
    }
  end,
}
)lua",
                                   small_limits(), {{"name", "HighErrorRate"}, {"value", 0.12}});
    ASSERT_TRUE(outcome.value) << outcome.message;
    const auto& value = *outcome.value;
    EXPECT_EQ(value["module"]["name"], "error-rate");
    EXPECT_EQ(value["module"]["matches"]["alerts"][0], "HighErrorRate");
    EXPECT_FALSE(value["module"].contains("propose"));
    ASSERT_EQ(value["result"].size(), 1u);
    EXPECT_EQ(value["result"][0]["parameters"]["variant"], "off");
    EXPECT_EQ(value["result"][0]["reason"], "error rate 12% at 2026-11-24T10:00:00Z");
    ASSERT_EQ(outcome.log.size(), 1u);
    EXPECT_EQ(outcome.log[0], "saw HighErrorRate 0.12 true");
}

TEST(LuaSandbox, DurationsAndFrozenTime) {
    const LuaOutcome outcome = run(playbook(
        "return { a = mitigate.duration('1h30m'), b = mitigate.now(), c = mitigate.now() }"));
    ASSERT_TRUE(outcome.value) << outcome.message;
    EXPECT_EQ((*outcome.value)["result"]["a"], 5400.0);
    EXPECT_EQ((*outcome.value)["result"]["b"], (*outcome.value)["result"]["c"]);
    expect_failure(run(playbook("return mitigate.duration('soon')")), LuaFailure::runtime,
                   "not a duration");
}

// ---- Endless loops ---------------------------------------------------------------

TEST(LuaSandboxHostile, EndlessLoop) {
    expect_failure(run(playbook("while true do end")), LuaFailure::instructions);
}

TEST(LuaSandboxHostile, EndlessLoopInsidePcall) {
    expect_failure(run(playbook("while true do pcall(function() while true do end end) end")),
                   LuaFailure::instructions);
}

TEST(LuaSandboxHostile, EndlessLoopInACoroutine) {
    expect_failure(run(playbook("local co = coroutine.wrap(function() while true do end end)\n"
                                "co()")),
                   LuaFailure::instructions);
}

TEST(LuaSandboxHostile, CoroutineResumeCannotSwallowTheBudget) {
    expect_failure(run(playbook("while true do\n"
                                "  local co = coroutine.create(function() while true do end end)\n"
                                "  coroutine.resume(co)\n"
                                "end")),
                   LuaFailure::instructions);
}

TEST(LuaSandboxHostile, ErrorHandlerCannotSwallowTheBudget) {
    expect_failure(
        run(playbook(
            "local ok = xpcall(function() while true do end end, function() return 'ignored' end)\n"
            "return { ok = ok }")),
        LuaFailure::instructions);
}

TEST(LuaSandboxHostile, WallClockLimitForSlowLuaCode) {
    LuaLimits limits = small_limits();
    limits.instructions = 1'000'000'000'000;  // only the clock can stop it
    limits.wall_clock = Duration{100};
    const auto start = std::chrono::steady_clock::now();
    expect_failure(run(playbook("local x = 0 while true do x = x + 1 end"), limits),
                   LuaFailure::time);
    // The limit is enforced, not merely reported afterwards (generous bound for slow CI).
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// ---- Memory ----------------------------------------------------------------------

TEST(LuaSandboxHostile, StringRepBomb) {
    expect_failure(run(playbook("return string.rep('x', 1 << 30)")), LuaFailure::memory);
}

TEST(LuaSandboxHostile, TableGrowthBomb) {
    expect_failure(run(playbook("local t = {} for i = 1, 1e9 do t[i] = i end")),
                   LuaFailure::memory);
}

TEST(LuaSandboxHostile, StringConcatenationBomb) {
    expect_failure(run(playbook("local s = 'x' while true do s = s .. s end")), LuaFailure::memory);
}

TEST(LuaSandboxHostile, MemoryErrorCaughtByPcallStillFails) {
    expect_failure(run(playbook("pcall(string.rep, 'x', 1 << 30)\nreturn {}")), LuaFailure::memory);
}

// ---- Removed libraries and functions ---------------------------------------------

TEST(LuaSandboxHostile, EveryRemovedGlobalIsForbidden) {
    for (const char* name : {"io", "os", "debug", "load", "loadstring", "dofile", "loadfile",
                             "require", "package", "collectgarbage", "print"}) {
        expect_failure(run(playbook(std::string("return ") + name + " ~= nil")),
                       LuaFailure::forbidden, name);
    }
}

TEST(LuaSandboxHostile, ForbiddenAccessCaughtByPcallStillFails) {
    expect_failure(
        run(playbook("local ok = pcall(function() return os.execute('id') end)\nreturn {}")),
        LuaFailure::forbidden, "os");
}

TEST(LuaSandboxHostile, StringDumpIsForbiddenEvenAsAMethod) {
    expect_failure(run(playbook("return string.dump(function() end)")), LuaFailure::forbidden,
                   "string.dump");
    expect_failure(run(playbook("return ('x'):dump()")), LuaFailure::forbidden, "string.dump");
}

TEST(LuaSandboxHostile, RandomnessIsForbidden) {
    expect_failure(run(playbook("return math.random()")), LuaFailure::forbidden, "math.random");
}

TEST(LuaSandboxHostile, BytecodeIsRefused) {
    // The start of a Lua 5.4 binary chunk: ESC 'L' 'u' 'a' 0x54.
    expect_failure(run(std::string("\x1bLua\x54\x00\x19\x93\r\n\x1a\n", 12)), LuaFailure::forbidden,
                   "bytecode");
}

// ---- Escapes ---------------------------------------------------------------------

TEST(LuaSandboxHostile, GlobalTableHoldsNothingMore) {
    const LuaOutcome outcome =
        run(playbook("return { same = _G == _ENV, os = rawget(_G, 'os') == nil, "
                     "debug = rawget(_G, 'debug') == nil, mt = getmetatable('') }"));
    ASSERT_TRUE(outcome.value) << outcome.message;
    EXPECT_EQ((*outcome.value)["result"]["same"], true);
    EXPECT_EQ((*outcome.value)["result"]["os"], true);
    EXPECT_EQ((*outcome.value)["result"]["debug"], true);
    EXPECT_EQ((*outcome.value)["result"]["mt"], "protected");
}

TEST(LuaSandboxHostile, StringMetatableCannotBeReplaced) {
    expect_failure(run(playbook("setmetatable('', {})")), LuaFailure::runtime);
}

TEST(LuaSandboxHostile, GcMetamethodIsForbidden) {
    expect_failure(run(playbook("setmetatable({}, { __gc = function() while true do end end })")),
                   LuaFailure::forbidden, "__gc");
}

TEST(LuaSandboxHostile, ReturnedTableMetatableDoesNotRun) {
    // An __index on the returned table would run script code outside any protection;
    // the host reads raw fields only, so `propose` is simply missing.
    expect_failure(run("return setmetatable({}, { __index = function() while true do end end })"),
                   LuaFailure::bad_return, "no function \"propose\"");
}

// ---- Recursion -------------------------------------------------------------------

TEST(LuaSandboxHostile, DeepRecursion) {
    const LuaOutcome outcome =
        run(playbook("local function f(n) return f(n + 1) + 1 end\nreturn f(1)"));
    ASSERT_TRUE(outcome.failure);
    EXPECT_TRUE(*outcome.failure == LuaFailure::runtime || *outcome.failure == LuaFailure::memory)
        << to_string(*outcome.failure) << ": " << outcome.message;
}

TEST(LuaSandboxHostile, DeepCRecursionThroughPcall) {
    // Each level's pcall catches the "C stack overflow" of the level below: the script
    // handles its own error, breaks no limit, and the host is unharmed.
    const LuaOutcome outcome =
        run(playbook("local function f() return pcall(f) end\nf()\nreturn {}"));
    ASSERT_TRUE(outcome.value) << outcome.message;
    EXPECT_EQ((*outcome.value)["result"], nlohmann::json::object());
}

TEST(LuaSandboxHostile, EndlessTailCalls) {
    expect_failure(run(playbook("local function f() return f() end\nreturn f()")),
                   LuaFailure::instructions);
}

// ---- Hostile return values -------------------------------------------------------

TEST(LuaSandboxHostile, CyclicReturn) {
    expect_failure(run(playbook("local t = {} t.self = t return t")), LuaFailure::bad_return,
                   "self: refers back to itself");
}

TEST(LuaSandboxHostile, FunctionsAndCoroutinesAreNotData) {
    expect_failure(run(playbook("return { f = print }")), LuaFailure::forbidden);
    expect_failure(run(playbook("return { { handler = function() end } }")), LuaFailure::bad_return,
                   "[1].handler: a function is not data");
    expect_failure(run(playbook("return { co = coroutine.create(function() end) }")),
                   LuaFailure::bad_return, "co: a thread");
}

TEST(LuaSandboxHostile, TooDeepReturn) {
    expect_failure(run(playbook("local t = {} for i = 1, 100 do t = { t } end return t")),
                   LuaFailure::bad_return, "nested deeper");
}

TEST(LuaSandboxHostile, MixedAndHoleyTables) {
    expect_failure(run(playbook("return { 1, 2, x = 3 }")), LuaFailure::bad_return, "not both");
    expect_failure(run(playbook("return { [1] = 'a', [3] = 'c' }")), LuaFailure::bad_return,
                   "holes");
    expect_failure(run(playbook("return { [1.5] = 'a' }")), LuaFailure::bad_return, "keys");
    expect_failure(run(playbook("return { x = 0/0 }")), LuaFailure::bad_return, "NaN");
}

TEST(LuaSandboxHostile, MetamethodsOnReturnedValuesAreNotCalled) {
    const LuaOutcome outcome =
        run(playbook("local mt = { __pairs = function() error('pairs ran') end,\n"
                     "             __index = function() error('index ran') end,\n"
                     "             __len = function() error('len ran') end }\n"
                     "return setmetatable({ a = 1 }, mt)"));
    ASSERT_TRUE(outcome.value) << outcome.message;
    EXPECT_EQ((*outcome.value)["result"], (nlohmann::json{{"a", 1}}));
}

TEST(LuaSandboxHostile, OversizedOutput) {
    LuaLimits limits = small_limits();
    limits.output_bytes = 1000;
    expect_failure(run(playbook("return string.rep('x', 2000)"), limits), LuaFailure::output);
}

TEST(LuaSandboxHostile, ErrorObjectsAreNotConvertedByScriptCode) {
    expect_failure(
        run(playbook("error(setmetatable({}, { __tostring = function() while true do end end }))")),
        LuaFailure::runtime, "error object is a table");
}

// ---- The trust boundary (issue 18) ---------------------------------------------------

TEST(LuaSandboxHostile, AMessageHandlerStopsWithTheBudget) {
    // An error raised by the count hook calls the handler with hooks off: without the
    // guard this handler would spin far past the budget.
    LuaLimits limits = small_limits();
    limits.wall_clock = Duration{60000};  // only the budget may stop it
    const LuaOutcome outcome =
        run(playbook("local spins = 0\n"
                     "xpcall(function() while true do end end,\n"
                     "       function(e) for i = 1, 1e9 do spins = spins + 1 end return e end)\n"
                     "return { spins = spins }"),
            limits);
    expect_failure(outcome, LuaFailure::instructions);
    EXPECT_LT(outcome.instructions, limits.instructions + 100'000);
    // A handler for an ordinary error still runs, under the budget.
    const LuaOutcome handled = run(playbook(
        "local ok, e = xpcall(function() error('boom') end, function(m) return 'handled: ' .. m "
        "end)\nreturn { ok = ok, e = e }"));
    ASSERT_TRUE(handled.value) << handled.message;
    EXPECT_THAT((*handled.value)["result"]["e"].get<std::string>(), HasSubstr("handled: "));
}

TEST(LuaSandboxHostile, OneStringReferencedThousandsOfTimesIsRefusedWhileConverting) {
    LuaLimits limits = small_limits();
    const LuaOutcome outcome = run(playbook("local s = string.rep('x', 65536)\n"
                                            "local t = {} for i = 1, 5000 do t[i] = s end\n"
                                            "return t"),
                                   limits);
    expect_failure(outcome, LuaFailure::output, "more than the limit of 262144 bytes");
}

TEST(LuaSandboxHostile, InvalidUtf8IsReportedNotReplaced) {
    expect_failure(run(playbook("return { name = 'caf\\xff' }")), LuaFailure::bad_return,
                   "name: is not valid UTF-8 (byte 3)");
    // Two keys that replacement would merge into one.
    expect_failure(run(playbook("return { ['a\\xff'] = 1, ['a\\xfe'] = 2 }")),
                   LuaFailure::bad_return, "not valid UTF-8");
    // NUL bytes are text JSON can carry: kept as they are.
    const LuaOutcome nul = run(playbook("return { text = 'a\\0b' }"));
    ASSERT_TRUE(nul.value) << nul.message;
    EXPECT_EQ((*nul.value)["result"]["text"].get<std::string>(), std::string("a\0b", 3));
}

TEST(LuaSandboxHostile, StateArgumentsAreCheckedNotCutOrChanged) {
    expect_failure(run(playbook("return mitigate.state('flags', 'check\\0out')")),
                   LuaFailure::runtime, "the target contains a NUL byte");
    expect_failure(run(playbook("return mitigate.state('fl\\xffags', 'checkout')")),
                   LuaFailure::runtime, "the provider is not valid UTF-8");
    expect_failure(run(playbook("return mitigate.state('flags', string.rep('t', 5000))")),
                   LuaFailure::runtime, "the target is 5000 bytes, more than 4096");
    expect_failure(run(playbook("for i = 1, 1000 do mitigate.state('flags', 'checkout') end")),
                   LuaFailure::runtime, "more than 100 calls in one evaluation");
}

TEST(LuaSandboxHostile, ErrorMessagesAreCapped) {
    LuaLimits limits = small_limits();
    limits.memory_bytes = 32u << 20;
    const LuaOutcome outcome = run(playbook("error(string.rep('e', 3000000))"), limits);
    expect_failure(outcome, LuaFailure::runtime, "[cut: the message was");
    EXPECT_LT(outcome.message.size(), 5000u);
}

TEST(LuaSandboxHostile, LogLinesAreCutOnACharacterBoundary) {
    LuaLimits limits = small_limits();
    limits.max_log_line_bytes = 10;
    const LuaOutcome outcome =
        run(playbook("mitigate.log('aaaaaaaaa\\u{e9}') return {}"), limits);  // é at bytes 9-10
    ASSERT_TRUE(outcome.value) << outcome.message;
    ASSERT_EQ(outcome.log.size(), 1u);
    EXPECT_EQ(outcome.log[0], "aaaaaaaaa");
}

TEST(LuaSandboxHostile, NoAddressesReachAScript) {
    const LuaOutcome outcome = run(playbook(
        "return { t = tostring({}), f = tostring(pairs),\n"
        "  c = tostring(coroutine.create(function() end)),\n"
        "  s = string.format('%s %s', {}, pairs),\n"
        "  m = tostring(setmetatable({}, { __tostring = function() return 'mine' end })) }"));
    ASSERT_TRUE(outcome.value) << outcome.message;
    const nlohmann::json& result = (*outcome.value)["result"];
    EXPECT_EQ(result["t"], "table");
    EXPECT_EQ(result["f"], "function");
    EXPECT_EQ(result["c"], "thread");
    EXPECT_EQ(result["s"], "table function");
    EXPECT_EQ(result["m"], "mine");
    expect_failure(run(playbook("return string.format('%p', {})")), LuaFailure::forbidden, "%p");
    expect_failure(run(playbook("return string.format('%5p', {})")), LuaFailure::forbidden);
    const LuaOutcome percent = run(playbook("return string.format('100%%p')"));
    ASSERT_TRUE(percent.value) << percent.message;
    EXPECT_EQ((*percent.value)["result"], "100%p");
}

TEST(LuaSandboxHostile, FeaturesHitByKnownLuaBugsAreUnavailable) {
    // Lua 5.4.4: "C-stack overflow with deep nesting of coroutine.close" (a segfault).
    expect_failure(run(playbook("local co = coroutine.create(function() end)\n"
                                "coroutine.close(co)")),
                   LuaFailure::forbidden, "coroutine.close");
    // Lua 5.4.4: "'break' may not properly exit a loop with a to-be-closed variable".
    expect_failure(
        run(playbook("local x <close> = setmetatable({}, { __close = function() end })")),
        LuaFailure::forbidden, "<close>");
}

TEST(LuaSandboxHostile, ToBeClosedVariablesAreRefusedHoweverTheMetatableGetsItsClose) {
    expect_failure(run(playbook("return setmetatable({}, { __close = function() end })")),
                   LuaFailure::forbidden, "__close");
    // __close added after setmetatable saw the metatable: the text check refuses it.
    expect_failure(run(playbook("local mt = {}\nlocal t = setmetatable({}, mt)\n"
                                "mt.__close = function() end\n"
                                "do local x < close > = t end")),
                   LuaFailure::forbidden, "<close>");
    // Comments between the tokens, as Lua's lexer allows them.
    expect_failure(run(playbook("local x <--[[ hidden ]]close> = nil")), LuaFailure::forbidden,
                   "<close>");
    expect_failure(run(playbook("local x <close --\n> = nil")), LuaFailure::forbidden, "<close>");
    // A generic for's fourth value is to-be-closed with no <close> in the text: __close
    // cannot be added to a metatable after setmetatable, by assignment or by rawset.
    expect_failure(run(playbook("local mt = {}\nlocal t = setmetatable({}, mt)\n"
                                "mt.__close = function() end\n"
                                "for _ in function() return nil end, nil, nil, t do break end")),
                   LuaFailure::forbidden, "__close");
    expect_failure(run(playbook("local mt = {}\nsetmetatable({}, mt)\n"
                                "rawset(mt, '__close', function() end)")),
                   LuaFailure::forbidden, "__close");
    expect_failure(run(playbook("local mt = {}\nsetmetatable({}, mt)\nsetmetatable(mt, {})")),
                   LuaFailure::runtime, "protected metatable");
    // Ordinary metatables still work: __index added later, rawset of other keys.
    const LuaOutcome ordinary = run(playbook(
        "local mt = {}\nlocal t = setmetatable({}, mt)\nmt.__index = function() return 7 end\n"
        "rawset(t, 'own', 1)\nreturn { t.missing, t.own }"));
    ASSERT_TRUE(ordinary.value) << ordinary.message;
    EXPECT_EQ((*ordinary.value)["result"], nlohmann::json::array({7, 1}));
    const LuaOutcome fine = run(playbook("local closed = '<closed>' return { closed }"));
    ASSERT_TRUE(fine.value) << fine.message;
}

TEST(LuaSandboxHostile, AMemoryFailureNamesTheLimitNotACatch) {
    const LuaOutcome outcome = run(playbook("return string.rep('x', 1 << 30)"));
    expect_failure(outcome, LuaFailure::memory, "memory limit of 4194304 bytes reached");
    EXPECT_THAT(outcome.message, ::testing::Not(HasSubstr("caught by the script")));
}

// ---- Shape of the chunk ----------------------------------------------------------

TEST(LuaSandbox, SyntaxErrorsNameTheChunkAndLine) {
    expect_failure(run("return {\n  propose = function( end\n}"), LuaFailure::syntax,
                   "test.lua:2:");
}

TEST(LuaSandbox, ChunkMustReturnATableWithTheFunction) {
    expect_failure(run("return 42"), LuaFailure::bad_return, "must return a table");
    expect_failure(run("return { name = 'x' }"), LuaFailure::bad_return, "no function \"propose\"");
}

TEST(LuaSandbox, NondeterminismIsUnavailable) {
    // No clock but the frozen one, no random numbers; table order is not relied upon by
    // the conversion (records become JSON objects with sorted keys).
    const LuaOutcome first =
        run(playbook("local t = {} for i = 1, 50 do t['k' .. i] = i end return t"));
    const LuaOutcome second =
        run(playbook("local t = {} for i = 50, 1, -1 do t['k' .. i] = i end return t"));
    ASSERT_TRUE(first.value && second.value);
    EXPECT_EQ(first.value->dump(), second.value->dump());
}

TEST(LuaSandbox, EachEvaluationStartsFresh) {
    const std::string source =
        playbook("counter = (counter or 0) + 1 return { counter = counter }");
    for (int i = 0; i < 3; ++i) {
        const LuaOutcome outcome = run(source);
        ASSERT_TRUE(outcome.value) << outcome.message;
        EXPECT_EQ((*outcome.value)["result"]["counter"], 1);
    }
}

}  // namespace
}  // namespace mitigate

namespace mitigate {
namespace {

TEST(LuaSandbox, LibrariesRunFirstAndAppearUnderLib) {
    LuaCall call;
    call.chunk_name = "uses-lib.lua";
    call.source = "return { propose = function() return { lib.math2.double(21) } end }";
    call.libraries = {{"math2", "local m = {} function m.double(x) return x * 2 end return m"}};
    const LuaOutcome outcome = run_sandboxed(call, small_limits());
    ASSERT_TRUE(outcome.value) << outcome.message;
    EXPECT_EQ((*outcome.value)["result"][0], 42);

    call.libraries = {{"broken", "return {"}};
    const LuaOutcome broken = run_sandboxed(call, small_limits());
    ASSERT_TRUE(broken.failure);
    EXPECT_EQ(*broken.failure, LuaFailure::syntax);
    EXPECT_THAT(broken.message, HasSubstr("library broken: lib/broken.lua:1:"));

    call.libraries = {{"hostile", "while true do end"}};
    const LuaOutcome hostile = run_sandboxed(call, small_limits());
    ASSERT_TRUE(hostile.failure);
    EXPECT_EQ(*hostile.failure, LuaFailure::instructions);
}

}  // namespace
}  // namespace mitigate
