// Starting and ending a worker process: the part the Lua worker and the plugin host share.
// A worker is the mitigate binary itself in a hidden mode, started with an empty
// environment (the runtime's holds secrets), its end of a socketpair as descriptor 3,
// /dev/null as stdin, stdout and stderr, and SIGKILL as its parent-death signal: it never
// outlives the runtime, nor the runtime thread that started it (so start workers from
// long-lived threads only).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace mitigate {

struct WorkerProcess {
    pid_t pid = -1;
    int socket = -1;  // the runtime's end
    bool running() const { return pid > 0; }
};

// `arguments[0]` is the executable. `given`, when not -1, becomes the worker's descriptor
// 4 (a plugin host's sealed plugin bytes); nothing else of the runtime's is passed on.
// Empty `error` on success.
WorkerProcess spawn_worker(const std::vector<std::string>& arguments, std::string& error,
                           int given = -1);

// True when this runtime runs as root with CAP_KILL, CAP_SYS_PTRACE, CAP_SETUID and
// CAP_SETGID, in a user namespace that maps uid and gid 65534: only then may its workers
// give up root (`--unprivileged-uid`). Without CAP_KILL the runtime could no longer kill
// a worker of another uid (nor would the parent-death signal reach it); without
// CAP_SYS_PTRACE it could no longer read the worker's /proc entries.
bool may_give_workers_away();

// Kills (SIGKILL, our own child by its pid) and collects the worker; no-op when none.
void stop_worker(WorkerProcess& worker);

// After the socket failed: closes it, collects the exit status (killing the worker first
// if it is somehow still running: a worker the runtime cannot talk to is not trusted)
// and says how it ended, " (signal 9)" or " (exit 3)".
std::string reap_worker(WorkerProcess& worker);

}  // namespace mitigate
