// What sandboxing a playbook costs, in one run:
//   plain_lua       the same playbook in a fresh, unsandboxed lua_State (the baseline)
//   sandboxed       run_sandboxed in-process: allowlisted environment, memory-capped
//                   allocator, count hook, defensive conversion of the result
//   worker          the same through a confined LuaWorker process (socketpair round trip,
//                   JSON both ways, one state() call answered by the host)
// Each evaluation starts from a fresh Lua state, as the runtime's do. Argument 0 is the
// typical playbook, 1 a trivial one (the fixed cost of the sandbox, or of the trip).
#include <benchmark/benchmark.h>

#include <lua5.4/lauxlib.h>
#include <lua5.4/lua.h>
#include <lua5.4/lualib.h>

#include "runtime/core/time_format.h"
#include "sandbox/lua/lua_sandbox.h"
#include "sandbox/worker/lua_worker.h"
#include "tests/support/child_process.h"

namespace mitigate {
namespace {

// A typical playbook: reads state, loops a little, formats a reason, returns a proposal.
constexpr const char* playbook = R"lua(
return {
  name = "bench",
  matches = { alerts = { "CPUSaturation" } },
  propose = function(incident)
    local ecs = mitigate and mitigate.state("aws", "ecs/" .. incident.service)
                or { desired_count = 14 }
    local total = 0
    for i = 1, 200 do total = total + (i % 7) end
    local desired = math.min(ecs.desired_count * 2, ecs.desired_count + 10, 50)
    return {
      { provider = "aws", action = "ecs.scale", target = "ecs/" .. incident.service,
        parameters = { desired_count = desired, checksum = total }, ttl = "2h",
        reason = string.format("CPU saturated on %s: %d -> %d", incident.service,
                               ecs.desired_count, desired) },
    }
  end,
}
)lua";

// The smallest playbook: what is left is the cost of the sandbox or of the trip itself.
constexpr const char* trivial_playbook = "return { propose = function() return {} end }";

LuaCall make_call(bool trivial = false) {
    LuaCall call;
    call.source = trivial ? trivial_playbook : playbook;
    call.chunk_name = "bench.lua";
    call.argument = {{"service", "search"}, {"name", "CPUSaturation"}};
    call.now = *parse_rfc3339("2026-11-24T10:00:00Z");
    call.host.state = [](const std::string&, const std::string&) -> std::optional<nlohmann::json> {
        return nlohmann::json{{"desired_count", 14}};
    };
    return call;
}

void plain_lua(benchmark::State& state) {
    for (auto _ : state) {
        lua_State* lua = luaL_newstate();
        luaL_openlibs(lua);
        luaL_loadstring(lua, playbook);
        lua_call(lua, 0, 1);
        lua_getfield(lua, -1, "propose");
        lua_newtable(lua);
        lua_pushliteral(lua, "search");
        lua_setfield(lua, -2, "service");
        lua_call(lua, 1, 1);
        benchmark::DoNotOptimize(lua_rawlen(lua, -1));
        lua_close(lua);
    }
}
BENCHMARK(plain_lua)->Unit(benchmark::kMicrosecond);

void sandboxed(benchmark::State& state) {
    const LuaCall call = make_call(state.range(0) == 1);
    for (auto _ : state) {
        LuaOutcome outcome = run_sandboxed(call);
        if (!outcome.value) {
            state.SkipWithError(outcome.message.c_str());
            break;
        }
        benchmark::DoNotOptimize(outcome);
    }
}
BENCHMARK(sandboxed)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

void worker(benchmark::State& state) {
    LuaWorker worker(testing::mitigate_binary());
    const LuaCall call = make_call(state.range(0) == 1);
    worker.evaluate(call);  // start the process outside the measurement
    for (auto _ : state) {
        LuaOutcome outcome = worker.evaluate(call);
        if (!outcome.value) {
            state.SkipWithError(outcome.message.c_str());
            break;
        }
        benchmark::DoNotOptimize(outcome);
    }
}
BENCHMARK(worker)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace mitigate

BENCHMARK_MAIN();
