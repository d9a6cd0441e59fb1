// Runs untrusted Lua 5.4 (playbooks) inside limits, and turns whatever it returns into
// JSON without trusting it. In the spirit of Redis's script_lua.c: everything a script can
// reach is listed in one place (lua_sandbox.cpp, "the environment"), and every way out of
// the limits ends the evaluation with a typed failure while the host carries on.
//
// What this layer enforces, in-process:
// - a fresh lua_State per evaluation; text chunks only (bytecode is refused);
// - an environment built from an allowlist: no io, os, debug, load, require, package,
//   dofile, loadfile, collectgarbage, print, string.dump, coroutine.close; the string
//   metatable protected; setmetatable refuses __gc and __close; math.random absent;
// - no addresses: tostring of a table, function or coroutine is its type name, and
//   string.format refuses %p, so nothing of the heap's layout reaches a script;
// - determinism: the same script, argument, time and state give the same result, with
//   one exception: the order in which pairs() and next() visit a table's keys differs
//   from run to run (Lua seeds its string hashes per state). Sort keys where order
//   matters; returned records are JSON objects, whose keys are sorted anyway;
// - features hit by known bugs of Lua 5.4.4 removed: coroutine.close (a C-stack overflow
//   with deep nesting) and to-be-closed variables (no __close metamethod can be set);
// - mitigate.state: arguments that are not UTF-8, hold a NUL or are too long are refused
//   (never cut or changed), and an evaluation makes at most 100 calls;
// - messages: an error message is cut to 4 KiB, on a character boundary, saying so;
//   log lines are cut on a character boundary too;
// - memory: an allocator that refuses past the limit;
// - instructions: a count hook set from C, inherited by coroutines, and sticky: once the
//   budget is spent every further instruction fails, so pcall cannot swallow it;
// - wall clock: checked from the same hook. A C function that never returns (a
//   catastrophic string.find pattern) never reaches the hook: only the worker process
//   around this sandbox, killed from outside, stops that (see sandbox/README.md);
// - returned values: converted without metamethods, with depth, size and cycle limits;
//   the size is counted while converting (a value is refused before all of it exists),
//   and text that is not UTF-8 is refused with its path, never replaced;
// - message handlers: xpcall's handler does not run once a limit is reached (an error
//   raised from the count hook would call it with hooks off, outside the budget).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/core/clock.h"

namespace mitigate {

struct LuaLimits {
    std::size_t memory_bytes = 32u << 20;
    std::uint64_t instructions = 20'000'000;
    Duration wall_clock{2000};
    std::size_t output_bytes = 256u << 10;  // the returned value, as compact JSON
    int max_depth = 16;                     // nesting of returned tables
    std::size_t max_log_lines = 100;
    std::size_t max_log_line_bytes = 1024;
};

enum class LuaFailure {
    syntax,        // the chunk does not compile
    runtime,       // a Lua error raised by the script (or a stack overflow)
    memory,        // the memory limit
    instructions,  // the instruction budget
    time,          // the wall-clock limit
    forbidden,     // a removed API, bytecode, or a __gc metatable
    bad_return,    // a returned value that cannot be data (function, cycle, too deep...)
    output,        // the returned value is larger than output_bytes
    crashed,       // the worker process running the sandbox died or had to be killed
};

std::string_view to_string(LuaFailure failure);

// What the script may ask the host. Each answer is data (JSON), copied into Lua.
struct LuaHostApi {
    // mitigate.state(provider, target): read-only provider state. nullopt -> nil in Lua.
    std::function<std::optional<nlohmann::json>(const std::string& provider,
                                                const std::string& target)>
        state;
};

struct LuaCall {
    std::string source;
    std::string chunk_name;  // shown in error messages: "scripts/playbooks/x.lua"
    // The chunk must return a table; `function` names the field called with `argument`.
    // Empty: only run the chunk and return its data fields (reading a playbook's metadata).
    std::string function = "propose";
    nlohmann::json argument = nlohmann::json::object();
    TimePoint now;  // mitigate.now(): frozen for the whole evaluation
    LuaHostApi host;
    // Shared helpers (scripts/lib/*.lua): each {name, source} chunk runs first, in the same
    // sandbox and limits, and the table it returns is lib.<name> for the playbook.
    std::vector<std::pair<std::string, std::string>> libraries;
};

struct LuaOutcome {
    // {"module": non-function fields of the returned table, "result": what `function`
    // returned} when the evaluation succeeded.
    std::optional<nlohmann::json> value;
    std::optional<LuaFailure> failure;
    std::string message;             // for a failure: what and where, with the chunk name
    std::vector<std::string> log;    // mitigate.log lines, bounded
    std::uint64_t instructions = 0;  // counted in steps of the hook interval
};

LuaOutcome run_sandboxed(const LuaCall& call, const LuaLimits& limits = {});

}  // namespace mitigate
