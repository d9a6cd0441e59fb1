// Lua evaluation in a separate, confined process. The runtime side (LuaWorker) starts
// `mitigate __lua-worker` over a socketpair, sends one evaluation at a time, answers the
// script's mitigate.state() calls, and enforces the wall clock from outside: a worker
// that does not answer in time (a C function that never returns) is killed with SIGKILL
// and replaced at the next evaluation; the evaluation fails with a typed error.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "sandbox/lua/lua_sandbox.h"
#include "sandbox/worker/confinement.h"
#include "sandbox/worker/worker_process.h"

namespace mitigate {

// The runtime's reading of a worker's "result" frame (already parsed by parse_frame):
// every field typed, required ones present, unknown ones refused; nullopt with the
// problems otherwise. Never throws.
std::optional<LuaOutcome> read_result_frame(const nlohmann::json& frame, std::string& problems);

// The worker side: confines itself, says so, then serves evaluations on `descriptor`
// until it is closed. Returns the process exit code.
int run_lua_worker(int descriptor, const ConfinementPolicy& policy);

// `mitigate __confinement-probe ATTEMPT` (read-file, write-file, socket, exec, fork):
// confines itself as a worker does, then tries that. Exit 0 and the error when refused;
// socket, exec and fork end the process with SIGSYS.
int run_confinement_probe(std::string_view attempt);

class LuaWorker {
  public:
    // `executable` is the mitigate binary (it has the hidden __lua-worker mode).
    LuaWorker(std::filesystem::path executable, ConfinementPolicy policy = {});
    ~LuaWorker();
    LuaWorker(const LuaWorker&) = delete;
    LuaWorker& operator=(const LuaWorker&) = delete;

    LuaOutcome evaluate(const LuaCall& call, const LuaLimits& limits = {});

    pid_t pid() const { return process_.pid; }
    int starts() const { return starts_; }  // how many processes were started so far
    const ConfinementReport& confinement() const { return confinement_; }

  private:
    bool start(std::string& error);
    void stop();
    std::string reap();

    std::filesystem::path executable_;
    ConfinementPolicy policy_;
    WorkerProcess process_;
    int starts_ = 0;
    ConfinementReport confinement_;
};

}  // namespace mitigate
