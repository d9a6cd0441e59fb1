// The Lua sandbox. Read top to bottom: limits (allocator, hook), the environment a script
// sees, the host API, conversion between JSON and Lua, then the evaluation itself.
//
// Debian's liblua5.4 is C: lua_error unwinds with longjmp, which skips C++ destructors.
// So no function that calls into Lua in a way that can raise (allocating, or luaL_error)
// keeps a C++ object with a destructor alive across that call. Functions that must hold
// such objects (host callbacks, conversions) finish with them before raising.
#include "sandbox/lua/lua_sandbox.h"

#include <lua5.4/lauxlib.h>
#include <lua5.4/lua.h>
#include <lua5.4/lualib.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <unordered_set>

#include "runtime/core/time_format.h"
#include "runtime/core/utf8.h"

namespace mitigate {
namespace {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

constexpr int hook_interval = 1000;  // instructions between checks of the budget and clock
// A playbook reads the state of a few targets; one that asks thousands of times is
// hammering the provider through the runtime.
constexpr int max_state_calls = 100;
// What of an error message reaches the runtime, the CLI and the audit log.
constexpr std::size_t max_message_bytes = 4096;

struct Context {
    const LuaCall* call = nullptr;
    LuaLimits limits;
    bool limits_active = false;  // off while the host builds the environment
    std::size_t memory_used = 0;
    bool memory_refused = false;
    std::uint64_t instructions = 0;
    bool instructions_spent = false;
    bool time_spent = false;
    bool forbidden = false;
    char forbidden_what[128] = {};
    SteadyClock::time_point deadline;
    std::vector<std::string> log;
    int state_calls = 0;
};

Context& context_of(lua_State* state) {
    return **static_cast<Context**>(lua_getextraspace(state));
}

// ---- Limits -------------------------------------------------------------------------

void* limited_allocate(void* user_data, void* block, std::size_t old_size, std::size_t new_size) {
    auto& context = *static_cast<Context*>(user_data);
    const std::size_t old_bytes = block != nullptr ? old_size : 0;  // else a type tag
    if (new_size == 0) {
        std::free(block);
        context.memory_used -= old_bytes;
        return nullptr;
    }
    if (context.limits_active && new_size > old_bytes &&
        context.memory_used + (new_size - old_bytes) > context.limits.memory_bytes) {
        context.memory_refused = true;
        return nullptr;  // Lua raises "not enough memory"
    }
    void* resized = std::realloc(block, new_size);
    if (resized == nullptr) {
        context.memory_refused = true;
        return nullptr;
    }
    context.memory_used = context.memory_used - old_bytes + new_size;
    return resized;
}

// Every hook_interval instructions, in every coroutine (new threads inherit the hook).
// Once a limit is reached it stays reached: the hook then fires on every instruction and
// fails again, so a script's pcall or coroutine.resume cannot absorb it.
void count_hook(lua_State* state, lua_Debug*) {
    Context& context = context_of(state);
    context.instructions += hook_interval;
    if (!context.instructions_spent && context.instructions > context.limits.instructions) {
        context.instructions_spent = true;
    }
    if (!context.time_spent && SteadyClock::now() > context.deadline) {
        context.time_spent = true;
    }
    if (context.instructions_spent || context.time_spent) {
        lua_sethook(state, count_hook, LUA_MASKCOUNT, 1);
        luaL_error(state, context.instructions_spent ? "instruction budget exhausted"
                                                     : "wall-clock limit exceeded");
    }
}

// ---- The environment ----------------------------------------------------------------

// Names that exist in standard Lua but not here. Touching one is a typed failure
// ("forbidden") rather than a confusing "attempt to call a nil value".
constexpr const char* forbidden_globals[] = {
    "io",     "os",       "debug",   "load",    "loadstring",
    "dofile", "loadfile", "require", "package", "collectgarbage",
    "print",  "module",   "setfenv", "getfenv", "newproxy"};

int forbid(lua_State* state, const char* what) {
    Context& context = context_of(state);
    context.forbidden = true;
    std::snprintf(context.forbidden_what, sizeof context.forbidden_what, "%s", what);
    return luaL_error(state, "forbidden: %s is not available to playbooks", what);
}

// __index of the environment: unknown globals read as nil, forbidden ones fail.
int environment_index(lua_State* state) {
    const char* name = lua_tostring(state, 2);
    if (name != nullptr) {
        for (const char* forbidden : forbidden_globals) {
            if (std::strcmp(name, forbidden) == 0) {
                return forbid(state, forbidden);
            }
        }
    }
    return 0;
}

// __index of a library copy: upvalue 1 is the library name, upvalue 2 a table of removed
// member names.
int library_index(lua_State* state) {
    const char* member = lua_tostring(state, 2);
    if (member != nullptr && lua_getfield(state, lua_upvalueindex(2), member) != LUA_TNIL) {
        char what[96];
        std::snprintf(what, sizeof what, "%s.%s", lua_tostring(state, lua_upvalueindex(1)), member);
        return forbid(state, what);
    }
    return 0;
}

// setmetatable without __gc or __close: a finalizer would run script code during
// collection, outside any limit the evaluation can attribute, and to-be-closed variables
// are what Lua 5.4.4's bug "'break' may not properly exit a loop with a to-be-closed
// variable" needs (without a __close metamethod a <close> variable can only hold nil).
bool is_refused_metamethod(lua_State* state, int index) {
    if (lua_type(state, index) != LUA_TSTRING) {
        return false;
    }
    const char* name = lua_tostring(state, index);
    return std::strcmp(name, "__gc") == 0 || std::strcmp(name, "__close") == 0;
}

// __newindex of a table in use as a metatable: __gc and __close cannot be added later
// either (a generic for's fourth value is to-be-closed without any "<close>" in the text).
int metatable_newindex(lua_State* state) {
    if (is_refused_metamethod(state, 2)) {
        return forbid(state, "a __gc or __close metamethod");
    }
    lua_rawset(state, 1);
    return 0;
}

// rawset, which bypasses __newindex, refuses the same two keys.
int safe_rawset(lua_State* state) {
    if (is_refused_metamethod(state, 2)) {
        return forbid(state, "a __gc or __close metamethod");
    }
    luaL_checktype(state, 1, LUA_TTABLE);
    luaL_checkany(state, 3);
    lua_settop(state, 3);
    lua_rawset(state, 1);
    return 1;
}

int safe_setmetatable(lua_State* state) {
    if (lua_type(state, 2) == LUA_TTABLE) {
        for (const char* refused : {"__gc", "__close"}) {
            lua_pushstring(state, refused);
            if (lua_rawget(state, 2) != LUA_TNIL) {
                return forbid(state,
                              refused[2] == 'g' ? "a __gc metamethod" : "a __close metamethod");
            }
            lua_pop(state, 1);
        }
        // The metatable gets a guard of its own (upvalue 2), protected so that it cannot
        // be replaced; a metatable that already has another metatable is refused.
        if (lua_getmetatable(state, 2) != 0) {
            const bool guarded = lua_rawequal(state, -1, lua_upvalueindex(2)) != 0;
            lua_pop(state, 1);
            if (!guarded) {
                return forbid(state, "a metatable that has a metatable of its own");
            }
        } else {
            lua_pushvalue(state, lua_upvalueindex(2));
            lua_setmetatable(state, 2);
        }
    }
    lua_pushvalue(state, lua_upvalueindex(1));  // the real setmetatable
    lua_insert(state, 1);
    lua_call(state, lua_gettop(state) - 1, 1);
    return 1;
}

// tostring without addresses: "table: 0x55d0..." would leak the heap's layout to a script
// and make evaluations differ from run to run. Tables, functions and coroutines print as
// their type; a __tostring or __name metamethod still applies (luaL_tolstring).
int safe_tostring(lua_State* state) {
    luaL_checkany(state, 1);
    switch (lua_type(state, 1)) {
        case LUA_TTABLE:
        case LUA_TFUNCTION:
        case LUA_TTHREAD:
        case LUA_TUSERDATA:
        case LUA_TLIGHTUSERDATA:
            if (luaL_getmetafield(state, 1, "__tostring") != LUA_TNIL) {
                lua_pop(state, 1);
                luaL_tolstring(state, 1, nullptr);
                return 1;
            }
            lua_pushstring(state, luaL_typename(state, 1));
            return 1;
        default: luaL_tolstring(state, 1, nullptr); return 1;
    }
}

// Replaces the value at `index` with safe_tostring's text for it.
void safe_tostring_in_place(lua_State* state, int index) {
    lua_pushcfunction(state, safe_tostring);
    lua_pushvalue(state, index);
    lua_call(state, 1, 1);
    lua_replace(state, index);
}

// string.format without %p (an address, like tostring's) and without %s of a value that
// is not a string or number (which would go through the address-printing tostring).
int safe_format(lua_State* state) {
    std::size_t length = 0;
    const char* format = luaL_checklstring(state, 1, &length);
    for (std::size_t index = 0; index + 1 < length; ++index) {
        if (format[index] != '%') {
            continue;
        }
        std::size_t next = index + 1;
        while (next < length && std::strchr("-+ #0123456789.", format[next]) != nullptr) {
            ++next;
        }
        if (next < length && format[next] == 'p') {
            return forbid(state, "string.format's %p (it prints an address)");
        }
        index = next;  // "%%" skips its second '%' here
    }
    for (int argument = 2; argument <= lua_gettop(state); ++argument) {
        const int type = lua_type(state, argument);
        if (type == LUA_TTABLE || type == LUA_TFUNCTION || type == LUA_TTHREAD ||
            type == LUA_TUSERDATA) {
            safe_tostring_in_place(state, argument);
        }
    }
    lua_pushvalue(state, lua_upvalueindex(1));  // the real string.format
    lua_insert(state, 1);
    lua_call(state, lua_gettop(state) - 1, 1);
    return 1;
}

// The message handler xpcall actually installs: once a limit is reached it hands the
// error back untouched instead of running the script's handler. An error raised from the
// count hook calls the handler while hooks are off, so the script's handler would
// otherwise run without any instruction limit.
int limited_message_handler(lua_State* state) {
    const Context& context = context_of(state);
    if (context.instructions_spent || context.time_spent || context.memory_refused) {
        lua_settop(state, 1);
        return 1;
    }
    lua_pushvalue(state, lua_upvalueindex(1));  // the script's handler
    lua_insert(state, 1);
    lua_call(state, lua_gettop(state) - 1, 1);
    return 1;
}

int safe_xpcall(lua_State* state) {
    luaL_checktype(state, 2, LUA_TFUNCTION);
    lua_pushvalue(state, 2);
    lua_pushcclosure(state, limited_message_handler, 1);
    lua_replace(state, 2);
    lua_pushvalue(state, lua_upvalueindex(1));  // the real xpcall
    lua_insert(state, 1);
    lua_call(state, lua_gettop(state) - 1, LUA_MULTRET);
    return lua_gettop(state);
}

// Copies library `name` from the global table into the environment (at -1), leaving out
// `removed` members, which then fail as forbidden.
void copy_library(lua_State* state, const char* name, std::initializer_list<const char*> removed) {
    lua_getglobal(state, name);
    lua_newtable(state);  // the copy
    lua_pushnil(state);
    while (lua_next(state, -3) != 0) {
        lua_pushvalue(state, -2);
        lua_insert(state, -2);
        lua_rawset(state, -4);
    }
    lua_newtable(state);  // removed names
    for (const char* member : removed) {
        lua_pushnil(state);
        lua_setfield(state, -3, member);  // drop from the copy
        lua_pushboolean(state, 1);
        lua_setfield(state, -2, member);
    }
    lua_newtable(state);  // metatable of the copy
    lua_pushstring(state, name);
    lua_pushvalue(state, -3);
    lua_pushcclosure(state, library_index, 2);
    lua_setfield(state, -2, "__index");
    lua_setmetatable(state, -3);
    lua_pop(state, 1);              // removed names (held by the closure)
    lua_setfield(state, -3, name);  // env[name] = copy
    lua_pop(state, 1);              // the original library
}

// ---- The host API: the `mitigate` table ---------------------------------------------

int host_now(lua_State* state) {
    char text[40];
    std::snprintf(text, sizeof text, "%s", format_rfc3339(context_of(state).call->now).c_str());
    lua_pushstring(state, text);
    return 1;
}

int host_duration(lua_State* state) {
    std::size_t length = 0;
    const char* text = luaL_checklstring(state, 1, &length);
    bool valid = false;
    double seconds = 0;
    {
        const auto parsed = parse_duration(std::string_view(text, length));
        if (parsed) {
            valid = true;
            seconds = static_cast<double>(parsed->count()) / 1000.0;
        }
    }
    if (!valid) {
        return luaL_error(state, "mitigate.duration: \"%s\" is not a duration such as 30m", text);
    }
    lua_pushnumber(state, seconds);
    return 1;
}

// mitigate.log(...): strings, numbers and booleans, joined by spaces; bounded.
int host_log(lua_State* state) {
    Context& context = context_of(state);
    if (context.log.size() >= context.limits.max_log_lines) {
        return 0;
    }
    const int count = lua_gettop(state);  // before luaL_buffinit, which may push a box
    luaL_Buffer buffer;
    luaL_buffinit(state, &buffer);
    for (int i = 1; i <= count; ++i) {
        if (i > 1) {
            luaL_addchar(&buffer, ' ');
        }
        switch (lua_type(state, i)) {
            case LUA_TSTRING:
            case LUA_TNUMBER:
                lua_pushvalue(state, i);
                luaL_addvalue(&buffer);
                break;
            case LUA_TBOOLEAN:
                luaL_addstring(&buffer, lua_toboolean(state, i) ? "true" : "false");
                break;
            default: luaL_addstring(&buffer, luaL_typename(state, i)); break;
        }
    }
    luaL_pushresult(&buffer);
    std::size_t length = 0;
    const char* line = lua_tolstring(state, -1, &length);
    // Cut on a character boundary, so that a cut line is still the UTF-8 it was.
    context.log.push_back(cut_on_character_boundary(
        std::string(line, std::min(length, context.limits.max_log_line_bytes + 4)),
        context.limits.max_log_line_bytes));
    return 0;
}

void push_json(lua_State* state, const json& value);

// mitigate.state(provider, target): read-only provider state through the host.
// Arguments go to the runtime as JSON strings: one with a NUL would be cut there and one
// that is not UTF-8 would be altered, so both are refused rather than changed.
const char* checked_state_argument(lua_State* state, int index, const char* name,
                                   std::size_t max_bytes) {
    std::size_t length = 0;
    const char* text = luaL_checklstring(state, index, &length);
    if (length > max_bytes) {
        luaL_error(state, "mitigate.state: the %s is %d bytes, more than %d", name,
                   static_cast<int>(length), static_cast<int>(max_bytes));
    }
    if (std::memchr(text, '\0', length) != nullptr) {
        luaL_error(state, "mitigate.state: the %s contains a NUL byte", name);
    }
    if (first_invalid_utf8(std::string_view(text, length))) {
        luaL_error(state, "mitigate.state: the %s is not valid UTF-8", name);
    }
    return text;
}

int host_state(lua_State* state) {
    Context& context = context_of(state);
    const char* provider = checked_state_argument(state, 1, "provider", 64);
    const char* target = checked_state_argument(state, 2, "target", 4096);
    if (++context.state_calls > max_state_calls) {
        return luaL_error(state, "mitigate.state: more than %d calls in one evaluation",
                          max_state_calls);
    }
    if (!context.call->host.state) {
        lua_pushnil(state);
        return 1;
    }
    // The answer is pushed with the memory limit paused (pushing can fail mid-way, and the
    // JSON value must be destroyed before any Lua error unwinds this frame); it is charged
    // first, so that a script cannot grow past its limit by asking for state.
    bool too_large = false;
    {
        const std::optional<json> answer = context.call->host.state(provider, target);
        if (!answer) {
            lua_pushnil(state);
            return 1;
        }
        const std::size_t estimate = answer->dump().size() * 4;
        too_large = context.memory_used + estimate > context.limits.memory_bytes;
        if (!too_large) {
            context.limits_active = false;
            push_json(state, *answer);
            context.limits_active = true;
        }
    }
    if (too_large) {
        context.memory_refused = true;
        return luaL_error(state, "mitigate.state: the answer does not fit in the memory limit");
    }
    return 1;
}

// ---- JSON <-> Lua -------------------------------------------------------------------

// Only for trusted, host-made JSON, with the memory limit paused.
void push_json(lua_State* state, const json& value) {
    luaL_checkstack(state, 3, "JSON too deep");
    switch (value.type()) {
        case json::value_t::null: lua_pushnil(state); break;
        case json::value_t::boolean: lua_pushboolean(state, value.get<bool>()); break;
        case json::value_t::number_integer:
        case json::value_t::number_unsigned:
            lua_pushinteger(state, value.get<lua_Integer>());
            break;
        case json::value_t::number_float: lua_pushnumber(state, value.get<double>()); break;
        case json::value_t::string: {
            const auto& text = value.get_ref<const std::string&>();
            lua_pushlstring(state, text.data(), text.size());
            break;
        }
        case json::value_t::array: {
            lua_createtable(state, static_cast<int>(value.size()), 0);
            lua_Integer index = 1;
            for (const auto& item : value) {
                push_json(state, item);
                lua_rawseti(state, -2, index++);
            }
            break;
        }
        case json::value_t::object: {
            lua_createtable(state, 0, static_cast<int>(value.size()));
            for (const auto& [key, item] : value.items()) {
                lua_pushlstring(state, key.data(), key.size());
                push_json(state, item);
                lua_rawset(state, -3);
            }
            break;
        }
        default: lua_pushnil(state); break;
    }
}

// Converts the value at `index` without running any script code: raw reads only, no
// metamethods, no tostring. Returns false with `error` set (naming the path) on anything
// that is not plain data.
class LuaToJson {
  public:
    LuaToJson(lua_State* state, const LuaLimits& limits) : state_(state), limits_(limits) {}

    bool convert(int index, json& out, const std::string& path, int depth = 0) {
        index = lua_absindex(state_, index);
        if (++nodes_ > 100'000) {
            return fail(path, "more than 100000 values");
        }
        if (!charge(path, 8)) {  // a number, a literal, brackets and separators at most
            return false;
        }
        switch (lua_type(state_, index)) {
            case LUA_TNIL: out = nullptr; return true;
            case LUA_TBOOLEAN: out = lua_toboolean(state_, index) != 0; return true;
            case LUA_TNUMBER:
                if (lua_isinteger(state_, index)) {
                    out = static_cast<std::int64_t>(lua_tointeger(state_, index));
                    return true;
                } else {
                    const double number = lua_tonumber(state_, index);
                    if (!std::isfinite(number)) {
                        return fail(path, "NaN and infinity are not data");
                    }
                    out = number;
                    return true;
                }
            case LUA_TSTRING: {
                std::size_t length = 0;
                const char* text = lua_tolstring(state_, index, &length);  // no conversion
                if (!charge(path, length + 2)) {
                    return false;
                }
                if (auto invalid = first_invalid_utf8(std::string_view(text, length))) {
                    return fail(path, "is not valid UTF-8 (byte " + std::to_string(*invalid) +
                                          "); text must be UTF-8, binary data is not returned");
                }
                out = std::string(text, length);
                return true;
            }
            case LUA_TTABLE: return convert_table(index, out, path, depth);
            default:
                return fail(path, std::string("a ") + luaL_typename(state_, index) +
                                      " is not data and cannot be returned");
        }
    }

    const std::string& error() const { return error_; }
    bool output_exceeded() const { return output_exceeded_; }

    // A record key, counted against the output and checked to be UTF-8 text.
    bool accept_key(const std::string& name, const std::string& path = "") {
        return charge(path, name.size() + 3) &&
               (!first_invalid_utf8(name) ||
                fail(path, "a key is not valid UTF-8; keys must be UTF-8 text"));
    }

  private:
    // Counts the JSON the value will become as it is built, so that a value that would be
    // too large (one big string referenced thousands of times) is refused early, before
    // the whole of it exists.
    bool charge(const std::string& path, std::size_t bytes) {
        bytes_ += bytes;
        if (bytes_ <= limits_.output_bytes) {
            return true;
        }
        output_exceeded_ = true;
        return fail(path, "the returned value is more than the limit of " +
                              std::to_string(limits_.output_bytes) + " bytes of JSON");
    }

    bool fail(const std::string& path, const std::string& why) {
        error_ = (path.empty() ? std::string("the returned value") : path) + ": " + why;
        return false;
    }

    bool convert_table(int index, json& out, const std::string& path, int depth) {
        if (depth >= limits_.max_depth) {
            return fail(path,
                        "nested deeper than " + std::to_string(limits_.max_depth) + " levels");
        }
        const void* identity = lua_topointer(state_, index);
        if (!ancestors_.insert(identity).second) {
            return fail(path, "refers back to itself (a cycle)");
        }
        if (!lua_checkstack(state_, 4)) {
            return fail(path, "nested too deeply for the Lua stack");
        }
        // Keys all integers 1..n: an array. Keys all strings: an object. Anything else is
        // refused rather than guessed at.
        std::size_t integer_keys = 0;
        std::size_t string_keys = 0;
        lua_Integer largest = 0;
        lua_pushnil(state_);
        while (lua_next(state_, index) != 0) {
            lua_pop(state_, 1);
            if (lua_type(state_, -1) == LUA_TSTRING) {
                ++string_keys;
            } else if (lua_isinteger(state_, -1) && lua_tointeger(state_, -1) >= 1) {
                ++integer_keys;
                largest = std::max(largest, lua_tointeger(state_, -1));
            } else {
                lua_pop(state_, 1);
                return fail(path, "table keys must be strings or 1, 2, 3, ...");
            }
        }
        if (integer_keys > 0 && string_keys > 0) {
            return fail(path,
                        "a table is either a list (1, 2, 3, ...) or a record (names), not both");
        }
        if (integer_keys > 0) {
            if (static_cast<std::size_t>(largest) != integer_keys) {
                return fail(path, "a list has holes (nil in the middle)");
            }
            out = json::array();
            for (lua_Integer i = 1; i <= largest; ++i) {
                lua_rawgeti(state_, index, i);
                json item;
                const bool converted =
                    convert(-1, item, path + "[" + std::to_string(i) + "]", depth + 1);
                lua_pop(state_, 1);
                if (!converted) {
                    return false;
                }
                out.push_back(std::move(item));
            }
        } else {
            out = json::object();
            lua_pushnil(state_);
            while (lua_next(state_, index) != 0) {
                std::size_t length = 0;
                const char* key = lua_tolstring(state_, -2, &length);  // a string: no conversion
                const std::string name(key, length);
                if (!accept_key(name, path)) {
                    lua_pop(state_, 2);
                    return false;
                }
                json item;
                if (!convert(-1, item, path.empty() ? name : path + "." + name, depth + 1)) {
                    lua_pop(state_, 2);
                    return false;
                }
                lua_pop(state_, 1);
                out[name] = std::move(item);
            }
        }
        ancestors_.erase(identity);
        return true;
    }

    lua_State* state_;
    const LuaLimits& limits_;
    std::unordered_set<const void*> ancestors_;
    std::size_t nodes_ = 0;
    std::size_t bytes_ = 0;
    bool output_exceeded_ = false;
    std::string error_;
};

// ---- The evaluation -----------------------------------------------------------------

// Builds the environment table and leaves it on the stack. Runs before limits apply.
void build_environment(lua_State* state) {
    luaL_requiref(state, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(state, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(state, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(state, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(state, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    luaL_requiref(state, LUA_COLIBNAME, luaopen_coroutine, 1);
    lua_pop(state, 6);

    lua_newtable(state);  // the environment
    for (const char* name :
         {"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawlen",
          "select", "tonumber", "type", "getmetatable", "_VERSION"}) {
        lua_getglobal(state, name);
        lua_setfield(state, -2, name);
    }
    lua_pushcfunction(state, safe_tostring);
    lua_setfield(state, -2, "tostring");
    lua_getglobal(state, "xpcall");
    lua_pushcclosure(state, safe_xpcall, 1);
    lua_setfield(state, -2, "xpcall");
    lua_getglobal(state, "setmetatable");
    lua_newtable(state);  // the guard every metatable gets (safe_setmetatable)
    lua_pushcfunction(state, metatable_newindex);
    lua_setfield(state, -2, "__newindex");
    lua_pushliteral(state, "protected");
    lua_setfield(state, -2, "__metatable");
    lua_pushcclosure(state, safe_setmetatable, 2);
    lua_setfield(state, -2, "setmetatable");
    lua_pushcfunction(state, safe_rawset);
    lua_setfield(state, -2, "rawset");
    copy_library(state, LUA_STRLIBNAME, {"dump"});
    lua_getfield(state, -1, LUA_STRLIBNAME);  // the copy
    lua_getglobal(state, LUA_STRLIBNAME);
    lua_getfield(state, -1, "format");
    lua_pushcclosure(state, safe_format, 1);
    lua_setfield(state, -3, "format");
    lua_pop(state, 2);
    copy_library(state, LUA_TABLIBNAME, {});
    copy_library(state, LUA_MATHLIBNAME, {"random", "randomseed"});
    copy_library(state, LUA_UTF8LIBNAME, {});
    // coroutine.close: Lua 5.4.4's "C-stack overflow with deep nesting of coroutine.close"
    // segfaults the worker; a playbook has no need to close a coroutine early.
    copy_library(state, LUA_COLIBNAME, {"close"});

    // Method calls on strings ("x"):upper() go through the string metatable: point it at
    // the sanitized copy, and hide the metatable itself from getmetatable.
    lua_pushliteral(state, "");
    lua_getmetatable(state, -1);
    lua_getfield(state, -3, LUA_STRLIBNAME);
    lua_setfield(state, -2, "__index");
    lua_pushliteral(state, "protected");
    lua_setfield(state, -2, "__metatable");
    lua_pop(state, 2);

    static const luaL_Reg host_functions[] = {{"now", host_now},
                                              {"duration", host_duration},
                                              {"log", host_log},
                                              {"state", host_state},
                                              {nullptr, nullptr}};
    luaL_newlib(state, host_functions);
    lua_setfield(state, -2, "mitigate");

    lua_pushvalue(state, -1);
    lua_setfield(state, -2, "_G");  // _G is the environment itself: nothing more to reach
    lua_newtable(state);
    lua_pushcfunction(state, environment_index);
    lua_setfield(state, -2, "__index");
    lua_setmetatable(state, -2);
}

// Skips what Lua's lexer skips between two tokens: white space and comments ("--" to the
// end of the line, "--[[ ]]" and "--[==[ ]==]").
std::size_t skip_between_tokens(std::string_view source, std::size_t at) {
    while (at < source.size()) {
        if (std::isspace(static_cast<unsigned char>(source[at]))) {
            ++at;
        } else if (source.substr(at, 2) == "--") {
            at += 2;
            if (at < source.size() && source[at] == '[') {
                std::size_t open = at + 1;
                while (open < source.size() && source[open] == '=') {
                    ++open;
                }
                if (open < source.size() && source[open] == '[') {
                    const std::string close = "]" + std::string(open - at - 1, '=') + "]";
                    const std::size_t end = source.find(close, open + 1);
                    at = end == std::string_view::npos ? source.size() : end + close.size();
                    continue;
                }
            }
            const std::size_t end = source.find('\n', at);
            at = end == std::string_view::npos ? source.size() : end + 1;
        } else {
            break;
        }
    }
    return at;
}

// Whether the source declares a to-be-closed variable ("local x <close> = ..."). Checked
// on the text because a __close metamethod can be added to a metatable after
// setmetatable saw it. Text inside a string or comment that looks the same is refused
// too: a false alarm the author can always avoid, where a miss would not be.
bool declares_to_be_closed(std::string_view source) {
    for (std::size_t at = source.find('<'); at != std::string_view::npos;
         at = source.find('<', at + 1)) {
        std::size_t next = skip_between_tokens(source, at + 1);
        if (source.substr(next, 5) != "close") {
            continue;
        }
        next = skip_between_tokens(source, next + 5);
        if (next < source.size() && source[next] == '>') {
            return true;
        }
    }
    return false;
}

// Error objects are read without running script code: a string, or a description.
void copy_error(lua_State* state, std::string& message) {
    if (lua_type(state, -1) == LUA_TSTRING) {
        message = lua_tostring(state, -1);
    } else {
        message = std::string("(error object is a ") + luaL_typename(state, -1) + ")";
    }
}

}  // namespace

std::string_view to_string(LuaFailure failure) {
    switch (failure) {
        case LuaFailure::syntax: return "syntax";
        case LuaFailure::runtime: return "runtime";
        case LuaFailure::memory: return "memory";
        case LuaFailure::instructions: return "instructions";
        case LuaFailure::time: return "time";
        case LuaFailure::forbidden: return "forbidden";
        case LuaFailure::bad_return: return "bad_return";
        case LuaFailure::output: return "output";
        case LuaFailure::crashed: return "crashed";
    }
    return "runtime";
}

LuaOutcome run_sandboxed(const LuaCall& call, const LuaLimits& limits) {
    LuaOutcome outcome;
    Context context;
    context.call = &call;
    context.limits = limits;
    lua_State* state = lua_newstate(limited_allocate, &context);
    if (state == nullptr) {
        outcome.failure = LuaFailure::memory;
        outcome.message = "cannot create a Lua state";
        return outcome;
    }
    // The extra space of every thread holds a pointer to this evaluation's Context.
    Context* pointer = &context;
    std::memcpy(lua_getextraspace(state), &pointer,
                sizeof(Context*));  // NOLINT(bugprone-sizeof-expression)

    auto fail = [&](LuaFailure failure, std::string message) {
        // A limit reached anywhere decides the type, even if the script caught the error.
        if (context.memory_refused) {
            failure = LuaFailure::memory;
            message = "memory limit of " + std::to_string(limits.memory_bytes) +
                      " bytes reached: " + message;
        } else if (context.instructions_spent) {
            failure = LuaFailure::instructions;
            message = "instruction budget of " + std::to_string(limits.instructions) +
                      " exhausted: " + message;
        } else if (context.time_spent) {
            failure = LuaFailure::time;
            message = "wall-clock limit of " + format_duration(limits.wall_clock) +
                      " exceeded: " + message;
        } else if (context.forbidden) {
            failure = LuaFailure::forbidden;
            message = std::string("forbidden: ") + context.forbidden_what +
                      " is not available to playbooks (" + message + ")";
        }
        outcome.failure = failure;
        if (message.size() > max_message_bytes) {
            const std::string note =
                " [cut: the message was " + std::to_string(message.size()) + " bytes]";
            message = cut_on_character_boundary(std::move(message), max_message_bytes) + note;
        }
        outcome.message = std::move(message);
    };

    build_environment(state);         // [env]
    push_json(state, call.argument);  // [env, argument]
    lua_insert(state, -2);            // [argument, env]

    context.limits_active = true;
    context.deadline = SteadyClock::now() + limits.wall_clock;
    lua_sethook(state, count_hook, LUA_MASKCOUNT, hook_interval);

    // Libraries first: each runs like a playbook chunk and its table becomes lib.<name>.
    // Stack here: [argument, env].
    int status = LUA_OK;
    lua_newtable(state);  // [argument, env, lib]
    lua_pushvalue(state, -1);
    lua_setfield(state, -3, "lib");
    for (const auto& [name, library_source] : call.libraries) {
        const std::string library_chunk = "@lib/" + name + ".lua";
        if (declares_to_be_closed(library_source)) {
            context.forbidden = true;
            std::snprintf(context.forbidden_what, sizeof context.forbidden_what,
                          "a <close> variable");
            fail(LuaFailure::forbidden, "library " + name + " declares a <close> variable");
            break;
        }
        status = luaL_loadbufferx(state, library_source.data(), library_source.size(),
                                  library_chunk.c_str(), "t");
        if (status == LUA_OK) {
            lua_pushvalue(state, -3);      // env
            lua_setupvalue(state, -2, 1);  // the library's _ENV
            status = lua_pcall(state, 0, 1, 0);
        }
        if (status != LUA_OK) {
            std::string message;
            copy_error(state, message);
            fail(status == LUA_ERRSYNTAX ? LuaFailure::syntax
                 : status == LUA_ERRMEM  ? LuaFailure::memory
                                         : LuaFailure::runtime,
                 "library " + name + ": " + message);
            lua_pop(state, 1);  // the error value
            break;
        }
        if (!lua_istable(state, -1)) {
            fail(LuaFailure::bad_return, "library " + name + " must return a table");
            lua_pop(state, 1);
            break;
        }
        lua_setfield(state, -2, name.c_str());  // lib[name] = the table
    }
    lua_pop(state, 1);  // [argument, env]

    const std::string chunk_name = "@" + call.chunk_name;
    if (!outcome.failure && declares_to_be_closed(call.source)) {
        context.forbidden = true;
        std::snprintf(context.forbidden_what, sizeof context.forbidden_what, "a <close> variable");
        fail(LuaFailure::forbidden, call.chunk_name + " declares a <close> variable");
    }
    if (!outcome.failure) {
        status = luaL_loadbufferx(state, call.source.data(), call.source.size(), chunk_name.c_str(),
                                  "t");  // text only, never bytecode
    }
    if (outcome.failure) {
        // A library failed; the playbook does not run.
    } else if (status != LUA_OK) {
        std::string message;
        copy_error(state, message);
        const bool bytecode = message.find("binary chunk") != std::string::npos;
        if (bytecode) {
            context.forbidden = true;
            std::snprintf(context.forbidden_what, sizeof context.forbidden_what, "bytecode");
        }
        fail(status == LUA_ERRMEM ? LuaFailure::memory : LuaFailure::syntax, message);
    } else {
        lua_pushvalue(state, -2);            // [argument, env, chunk, env]
        lua_setupvalue(state, -2, 1);        // chunk's _ENV = env
        status = lua_pcall(state, 0, 1, 0);  // [argument, env, module]
        std::string message;
        if (status != LUA_OK) {
            copy_error(state, message);
            fail(status == LUA_ERRMEM ? LuaFailure::memory : LuaFailure::runtime, message);
        } else if (!lua_istable(state, -1)) {
            fail(LuaFailure::bad_return,
                 call.chunk_name + ": the chunk must return a table (the playbook), not " +
                     luaL_typename(state, -1));
        } else if (call.function.empty()) {
            lua_pushnil(state);  // [argument, env, module, nil]: no call, no result
        } else if (lua_pushstring(state, call.function.c_str()),
                   lua_rawget(state, -2) != LUA_TFUNCTION) {
            // Raw: a metamethod of the returned table would run script code here, outside
            // any protected call.
            fail(
                LuaFailure::bad_return,
                call.chunk_name + ": the returned table has no function \"" + call.function + "\"");
        } else {
            lua_pushvalue(state, -4);            // [argument, env, module, fn, argument]
            status = lua_pcall(state, 1, 1, 0);  // [argument, env, module, result]
            if (status != LUA_OK) {
                copy_error(state, message);
                fail(status == LUA_ERRMEM ? LuaFailure::memory : LuaFailure::runtime, message);
            }
        }
        if (!outcome.failure && (context.memory_refused || context.instructions_spent ||
                                 context.time_spent || context.forbidden)) {
            // fail() names the limit; an allocation refused and then satisfied after Lua's
            // emergency collection lands here too, with nothing caught by the script.
            fail(LuaFailure::runtime, "the evaluation went on after reaching the limit");
        }
        if (!outcome.failure) {
            lua_sethook(state, nullptr, 0, 0);  // conversion runs no script code
            LuaToJson converter(state, limits);
            json module = json::object();
            json result;
            bool converted = converter.convert(-1, result, "");
            if (converted) {
                // The module's data fields (metadata); functions are the code, not data.
                lua_pushnil(state);
                while (converted && lua_next(state, -3) != 0) {
                    if (lua_type(state, -2) == LUA_TSTRING &&
                        lua_type(state, -1) != LUA_TFUNCTION) {
                        std::size_t length = 0;
                        const char* key = lua_tolstring(state, -2, &length);  // a string
                        const std::string name(key, length);
                        converted =
                            converter.accept_key(name) && converter.convert(-1, module[name], name);
                    }
                    lua_pop(state, 1);
                }
            }
            if (!converted) {
                fail(converter.output_exceeded() ? LuaFailure::output : LuaFailure::bad_return,
                     call.chunk_name + ": " + converter.error());
            } else {
                json value{{"module", std::move(module)}, {"result", std::move(result)}};
                const std::size_t size =
                    value.dump(-1, ' ', false, json::error_handler_t::replace).size();
                if (size > limits.output_bytes) {
                    fail(LuaFailure::output, call.chunk_name + ": returned " +
                                                 std::to_string(size) +
                                                 " bytes of JSON, more than the limit of " +
                                                 std::to_string(limits.output_bytes));
                } else {
                    outcome.value = std::move(value);
                }
            }
        }
    }
    outcome.instructions = context.instructions;
    outcome.log = std::move(context.log);
    context.limits_active = false;
    lua_close(state);
    return outcome;
}

}  // namespace mitigate
