// Building blocks for store tests: a valid mitigation, a walk through the lifecycle, raw
// SQL for tampering with a database the way an attacker with file access would, and a
// consistency check that every test ending in a crash or a kill runs.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/core/model.h"
#include "runtime/store/store.h"

namespace mitigate::testing {

Mitigation make_mitigation(const std::string& id, TimePoint now);

// The happy path of a mitigation, from proposed to reverted.
const std::vector<MitigationState>& lifecycle_path();

// Moves `id` one step along lifecycle_path(); returns the outcome.
TransitionOutcome advance(Store& store, const std::string& id, TimePoint now);

// Runs SQL directly on the file, bypassing the store (and its triggers when told to).
void execute_sql(const std::filesystem::path& database, const std::string& sql);
std::string query_text(const std::filesystem::path& database, const std::string& sql);

// Holds the database's write lock from another connection, as a slow writer (a backup,
// `mitigate token revoke`) would: the store's own writes wait until it is released.
class StoreWriteLock {
  public:
    explicit StoreWriteLock(const std::filesystem::path& database);
    ~StoreWriteLock();  // releases
    StoreWriteLock(const StoreWriteLock&) = delete;
    StoreWriteLock& operator=(const StoreWriteLock&) = delete;
    void release();

  private:
    void* connection_ = nullptr;
};

// Every mitigation's row agrees with its journal, versions have no gaps, the audit chain
// is intact and has one record per journal entry. Returns problems, empty when consistent.
std::vector<std::string> consistency_problems(const std::filesystem::path& database);

}  // namespace mitigate::testing
