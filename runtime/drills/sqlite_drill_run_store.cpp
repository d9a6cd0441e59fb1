#include <string>

#include "runtime/core/time_format.h"
#include "runtime/drills/drill_run_store.h"
#include "runtime/store/sqlite_database.h"

namespace mitigate {
namespace {

using nlohmann::json;

constexpr std::string_view run_columns =
    "SELECT id, drill, status, started_at_ms, body FROM drill_runs";

// The columns say which run it is; the body says everything else.
DrillRun run_from_row(const SqliteStatement& row) {
    json body = json::parse(row.text(4), nullptr, false);
    const std::string id = row.text(0);
    if (!body.is_object()) {
        throw StoreError("stored drill run " + id + " is not a JSON object (the store is damaged)");
    }
    body["id"] = id;
    body["drill"] = row.text(1);
    body["status"] = row.text(2);
    body["started_at"] = format_rfc3339(TimePoint{Duration{row.integer(3)}});
    Parsed<DrillRun> parsed = parse_drill_run(body);
    if (!parsed) {
        throw StoreError("stored drill run " + id +
                         " does not read (the store is damaged): " + describe(parsed.errors));
    }
    return std::move(*parsed.value);
}

std::string schedule_cursor(std::string_view drill) {
    return "drill.schedule." + std::string(drill);
}

class SqliteDrillRunStore final : public DrillRunStore {
  public:
    explicit SqliteDrillRunStore(SqliteDatabase& database) : database_(database) {}

    void save(const DrillRun& run) override {
        database_.write([&](SqliteConnection& connection) {
            auto upsert = connection.statement(
                "INSERT INTO drill_runs (id, drill, status, started_at_ms, body) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "status = excluded.status, body = excluded.body");
            upsert->bind(1, run.id)
                .bind(2, run.drill)
                .bind(3, to_string(run.status))
                .bind(4, static_cast<std::int64_t>(run.started_at.time_since_epoch().count()))
                .bind(5, drill_run_json(run).dump());
            upsert->run();
        });
    }

    std::optional<DrillRun> find(std::string_view id) override {
        std::optional<DrillRun> found;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(std::string(run_columns) + " WHERE id = ?");
            statement->bind(1, id);
            if (statement->step()) {
                found = run_from_row(*statement);
            }
        });
        return found;
    }

    std::vector<DrillRun> list(std::string_view drill, const std::vector<DrillRunStatus>& statuses,
                               std::size_t limit) override {
        std::string sql = std::string(run_columns) + " WHERE (? = '' OR drill = ?)";
        if (!statuses.empty()) {
            sql += " AND status IN (";
            for (std::size_t i = 0; i < statuses.size(); ++i) {
                sql += i == 0 ? "?" : ", ?";
            }
            sql += ")";
        }
        sql += " ORDER BY started_at_ms DESC, id DESC LIMIT ?";
        std::vector<DrillRun> runs;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(sql);
            statement->bind(1, drill).bind(2, drill);
            int index = 3;
            for (DrillRunStatus status : statuses) {
                statement->bind(index++, to_string(status));
            }
            statement->bind(index, static_cast<std::int64_t>(limit));
            while (statement->step()) {
                runs.push_back(run_from_row(*statement));
            }
        });
        return runs;
    }

    std::optional<TimePoint> schedule_position(std::string_view drill) override {
        std::optional<TimePoint> position;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement("SELECT position FROM cursors WHERE name = ?");
            statement->bind(1, schedule_cursor(drill));
            if (statement->step()) {
                position = TimePoint{Duration{statement->integer(0)}};
            }
        });
        return position;
    }

    void set_schedule_position(std::string_view drill, TimePoint at) override {
        database_.write([&](SqliteConnection& connection) {
            auto upsert = connection.statement(
                "INSERT INTO cursors (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position");
            upsert->bind(1, schedule_cursor(drill))
                .bind(2, static_cast<std::int64_t>(at.time_since_epoch().count()));
            upsert->run();
        });
    }

  private:
    SqliteDatabase& database_;
};

}  // namespace

std::unique_ptr<DrillRunStore> sqlite_drill_run_store(SqliteDatabase& database) {
    return std::make_unique<SqliteDrillRunStore>(database);
}

}  // namespace mitigate
