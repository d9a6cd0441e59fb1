// The embedded store: one SQLite file in WAL mode (readers never block the writer),
// synchronous=FULL (a committed transition survives power loss), every write in
// BEGIN IMMEDIATE so that concurrent writers queue instead of failing half-way
// (sqlite_database.h).
//
// Opening never damages what is there: a file that is not a SQLite database, a SQLite
// database of another application, a corrupt one, or one written by a newer mitigate is
// refused with a clear StoreError before anything is written to it.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>

#include "runtime/store/store.h"

namespace mitigate {

class SqliteDatabase;

struct SqliteStoreOptions {
    // Read-only: no migration, no write; for `mitigate audit verify/tail` on a live store.
    bool read_only = false;
    // Create the file if missing (read_only excludes it).
    bool create_if_missing = true;
    // Called at named points inside a write transaction, for crash tests and drills
    // ("transition.mitigation_written", "transition.journal_written",
    // "transition.before_commit", then "transition.writing:STATE" just before the commit
    // and "transition.committed:STATE" just after it, STATE being the state entered).
    // Empty in production.
    std::function<void(std::string_view point)> fault_point;
};

class SqliteStore : public Store {
  public:
    // The file's handle, for the libraries that keep their own tables in it (drill runs,
    // chat state).
    virtual SqliteDatabase& database() = 0;
};

std::unique_ptr<SqliteStore> open_sqlite_store(const std::filesystem::path& path,
                                               const SqliteStoreOptions& options = {});

// Schema version this build writes, and the SQLite application_id that marks a file as
// mitigate's ("MITG").
inline constexpr int sqlite_schema_version = 7;
inline constexpr int sqlite_application_id = 0x4D495447;

}  // namespace mitigate
