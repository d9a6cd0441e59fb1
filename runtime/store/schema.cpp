#include "runtime/store/schema.h"

#include <array>

namespace mitigate {
namespace {

// Rows hold the full JSON body (the source of truth) plus the columns queries need;
// times in columns are Unix milliseconds so that they sort and compare as numbers.
// The triggers make "append-only" a property of the database, not only of this code;
// the audit chain catches whoever drops them.
constexpr std::string_view migration_1 = R"sql(
CREATE TABLE mitigations (
    id          TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    incident_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER,
    body        TEXT NOT NULL
) STRICT;
CREATE INDEX mitigations_by_state ON mitigations (state, updated_at_ms);

CREATE TABLE transitions (
    id            INTEGER PRIMARY KEY,
    mitigation_id TEXT NOT NULL REFERENCES mitigations (id),
    version       INTEGER NOT NULL,
    from_state    TEXT,
    to_state      TEXT NOT NULL,
    at_ms         INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    reason        TEXT NOT NULL,
    UNIQUE (mitigation_id, version)
) STRICT;
CREATE TRIGGER transitions_no_update BEFORE UPDATE ON transitions
BEGIN SELECT RAISE(ABORT, 'transitions are append-only'); END;
CREATE TRIGGER transitions_no_delete BEFORE DELETE ON transitions
BEGIN SELECT RAISE(ABORT, 'transitions are append-only'); END;
)sql";

constexpr std::string_view migration_2 = R"sql(
CREATE TABLE audit_log (
    sequence INTEGER PRIMARY KEY,
    record   TEXT NOT NULL,
    hash     TEXT NOT NULL
) STRICT;
CREATE TABLE audit_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    sequence INTEGER NOT NULL,
    hash     TEXT NOT NULL
) STRICT;
INSERT INTO audit_head (id, sequence, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN SELECT RAISE(ABORT, 'the audit head cannot be deleted'); END;
)sql";

// Signals are stored as they arrive, before the API answers, so that an acknowledged
// alert survives a crash; `processed` marks the ones already grouped into an incident.
// At most one open incident per group key: a second one would split an incident in two.
// API tokens are kept as SHA-256 digests only; the token itself is shown once.
constexpr std::string_view migration_3 = R"sql(
CREATE TABLE signals (
    id             TEXT PRIMARY KEY,
    received_at_ms INTEGER NOT NULL,
    processed      INTEGER NOT NULL DEFAULT 0 CHECK (processed IN (0, 1)),
    incident_id    TEXT NOT NULL DEFAULT '',
    body           TEXT NOT NULL
) STRICT;
CREATE INDEX signals_pending ON signals (received_at_ms) WHERE processed = 0;

CREATE TABLE incidents (
    id            TEXT PRIMARY KEY,
    group_key     TEXT NOT NULL,
    status        TEXT NOT NULL,
    opened_at_ms  INTEGER NOT NULL,
    body          TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX incidents_open_by_group ON incidents (group_key) WHERE status = 'open';
CREATE INDEX incidents_by_time ON incidents (opened_at_ms);

CREATE TABLE api_tokens (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    groups        TEXT NOT NULL,
    token_sha256  TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
) STRICT;
)sql";

// Where each mitigation's chat message lives, so that every later state updates that
// message instead of posting a new one, across restarts. Cursors are positions in the
// audit log that a follower (the chat notifier) has handled, so a restart neither
// reposts history nor skips what happened while it was down.
constexpr std::string_view migration_4 = R"sql(
CREATE TABLE chat_messages (
    mitigation_id TEXT PRIMARY KEY,
    channel       TEXT NOT NULL,
    ts            TEXT NOT NULL
) STRICT;

CREATE TABLE cursors (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
) STRICT;
)sql";

// Drill runs: one row per run (and per skipped or missed scheduled run), rewritten as the
// run moves, so that a restart finds the runs it must still clean up.
constexpr std::string_view migration_5 = R"sql(
CREATE TABLE drill_runs (
    id            TEXT PRIMARY KEY,
    drill         TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_at_ms INTEGER NOT NULL,
    body          TEXT NOT NULL
) STRICT;
CREATE INDEX drill_runs_by_drill ON drill_runs (drill, started_at_ms);
CREATE INDEX drill_runs_unfinished ON drill_runs (status) WHERE status IN ('running', 'cleaning');
)sql";

constexpr std::array<SqliteMigration, 5> migrations{{
    {1, "mitigations and their transition journal", migration_1},
    {2, "hash-chained audit log", migration_2},
    {3, "signals, incidents and API tokens", migration_3},
    {4, "chat messages and audit-log cursors", migration_4},
    {5, "drill runs", migration_5},
}};

}  // namespace

std::span<const SqliteMigration> sqlite_migrations() {
    return migrations;
}

}  // namespace mitigate
