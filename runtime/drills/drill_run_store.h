// Where drill runs are kept: beside the runtime's other state, in the same database
// (runtime/store/sqlite_database.h for SQLite), by this library's own queries.
#pragma once

#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "runtime/drills/drill_run.h"

namespace mitigate {

class SqliteDatabase;

class DrillRunStore {
  public:
    virtual ~DrillRunStore() = default;

    // Inserts, or replaces the run with that id. Throws StoreError.
    virtual void save(const DrillRun& run) = 0;
    virtual std::optional<DrillRun> find(std::string_view id) = 0;
    // Newest first; `drill` empty for every drill, `statuses` empty for any.
    virtual std::vector<DrillRun> list(std::string_view drill,
                                       const std::vector<DrillRunStatus>& statuses,
                                       std::size_t limit) = 0;
    // How far each drill's schedule has been looked at, so that a restart neither replays
    // starts nor silently skips them.
    virtual std::optional<TimePoint> schedule_position(std::string_view drill) = 0;
    virtual void set_schedule_position(std::string_view drill, TimePoint at) = 0;
};

std::unique_ptr<DrillRunStore> sqlite_drill_run_store(SqliteDatabase& database);

}  // namespace mitigate
