// Confines the calling process before it runs untrusted code, in the order
// ../shared/reference/sandbox.md gives: new namespaces where the kernel allows (network,
// IPC, and a mount namespace whose root is an empty tmpfs holding only the read-only
// paths), an unprivileged uid when started as root, every capability dropped, the
// parent-death signal set again, rlimits, no_new_privs, Landlock, and a seccomp
// allowlist last. Irreversible: call it in a worker process, never in the runtime.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace mitigate {

struct ConfinementPolicy {
    // Directories the worker may read beneath (a plugin's own directory). Nothing else of
    // the filesystem is reachable; empty means no filesystem at all (Lua workers: their
    // code arrives over the socket).
    std::vector<std::filesystem::path> read_only_paths;
    // The file the worker loads once confined (a plugin), and a descriptor of the bytes
    // the runtime checked (read at explicit offsets: the runtime shares it). Where the
    // empty root can be built, the read-only path that holds the file is not bound: the
    // root holds a directory of that name with only a copy of those bytes in it, owned by
    // root and readable by all, so that an unprivileged uid can load it and what it loads
    // is exactly what was checked. Elsewhere the file is loaded from its own path.
    std::filesystem::path loaded_file;
    int loaded_file_descriptor = -1;
    // Whether a worker started as root takes the uid and gid below once its root is built
    // (the runtime asks for it only when it could still kill a worker of another uid:
    // may_give_workers_away in worker_process.h). Not a user namespace: a runtime that is
    // root can simply give its worker away.
    bool give_up_root = false;
    unsigned unprivileged_user = 65534;  // nobody
    unsigned unprivileged_group = 65534;
    // Lets open() through seccomp so that the paths above can be read (a plugin host
    // loads its plugin after confinement). Landlock still decides what may be opened.
    bool allow_file_reads = false;
    std::size_t address_space_bytes = 1u << 30;  // RLIMIT_AS; skipped under ASan
    int cpu_seconds = 60;                        // RLIMIT_CPU, a backstop to the runtime's kill
    // Landlock ABI 4 adds TCP bind/connect control, which "no network" relies on. Below it
    // the worker refuses to start unless the operator allows weaker confinement.
    int minimum_landlock_abi = 4;
    bool allow_weaker_landlock = false;
};

struct ConfinementReport {
    bool applied = false;
    std::string error;  // why not, when not applied
    int landlock_abi = 0;
    std::vector<std::string> namespaces;   // those that could be created
    bool landlock = false;                 // a Landlock ruleset is enforced
    bool weaker_landlock_allowed = false;  // ran below minimum_landlock_abi by override
    bool capabilities_dropped = false;     // all five sets empty, read back
    unsigned user = 0;                     // the uid the worker runs as, once confined
    bool seccomp = false;
    std::vector<std::string> rlimits;  // "as=1073741824", "nofile=16", ...
};

ConfinementReport confine_this_process(const ConfinementPolicy& policy);

// The Landlock ABI the running kernel offers (0: none).
int landlock_abi_version();

}  // namespace mitigate
