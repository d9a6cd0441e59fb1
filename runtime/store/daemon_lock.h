// One daemon per store. Two `mitigate serve` on one database would each run the engine:
// both would apply, revert and post to chat for the same mitigations. The CLI's short
// commands (token, audit, plugins) may still open the store beside a daemon; SQLite
// serializes their writes. The HA issue replaces this lock with a lease for PostgreSQL.
#pragma once

#include <filesystem>
#include <memory>

namespace mitigate {

// Held for as long as it lives. The kernel lets it go when the process ends in any way
// (flock on a descriptor that children do not inherit), so a crash never leaves a stale
// lock behind and a restart never needs a person to remove a file.
class DaemonLock {
  public:
    virtual ~DaemonLock() = default;
};

// Takes `store_path` + ".lock" (created beside the store, holding the holder's pid).
// Throws std::runtime_error naming the file and the holder's pid when another process
// holds it, or naming the file and errno when it cannot be created.
std::unique_ptr<DaemonLock> lock_store_for_daemon(const std::filesystem::path& store_path);

// The file lock_store_for_daemon takes for `store_path`.
std::filesystem::path daemon_lock_path(const std::filesystem::path& store_path);

}  // namespace mitigate
