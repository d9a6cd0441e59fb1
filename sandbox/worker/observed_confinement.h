// A worker's confinement as the runtime itself sees it in /proc, whatever the worker
// says about itself. Read after the worker reported its confinement and before any
// untrusted code runs in it, so that a report the worker could have forged is checked
// against the kernel's view.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace mitigate {

struct ObservedConfinement {
    bool status_readable = false;       // /proc/PID/status could be read
    bool no_new_privs = false;          // NoNewPrivs: 1
    bool seccomp_filter = false;        // Seccomp: 2
    bool capabilities_dropped = false;  // CapEff, CapPrm and CapBnd all zero
    long user = -1;                     // the effective uid (Uid:), -1 when unread
    // Namespaces the worker does not share with the runtime ("user", "net", "ipc"), when
    // /proc/PID/ns could be read (it needs ptrace-read access to the worker).
    std::vector<std::string> namespaces;
};

ObservedConfinement observe_confinement(pid_t worker);

// Why a worker seen this way must not be given untrusted code, or nothing.
std::optional<std::string> unconfined_reason(const ObservedConfinement& observed);

}  // namespace mitigate
