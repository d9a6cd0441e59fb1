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

// Incident membership as a row per alert, so that adding an alert to an incident costs
// the same whatever its size (the body, with its lists of fingerprints and signal ids,
// used to be rewritten on every batch); the counters live beside the body. Incidents
// remember whether their playbooks ran, so a crash between opening one and running them is
// finished at the next start. Existing incidents keep their firing alerts, and are marked
// as having run their playbooks (they did, under the older engine). A generation counter,
// moved by triggers on every token change from any process, lets the daemon cache tokens
// and still honour a revocation at once.
constexpr std::string_view migration_6 = R"sql(
CREATE TABLE incident_alerts (
    incident_id    TEXT NOT NULL REFERENCES incidents (id),
    fingerprint    TEXT NOT NULL,
    firing         INTEGER NOT NULL CHECK (firing IN (0, 1)),
    last_signal_id TEXT NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (incident_id, fingerprint)
) STRICT, WITHOUT ROWID;

ALTER TABLE incidents ADD COLUMN alert_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN firing_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN signal_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN playbooks_run_at_ms INTEGER;

INSERT INTO incident_alerts (incident_id, fingerprint, firing, last_signal_id, updated_at_ms)
SELECT DISTINCT incidents.id, firing.value, 1, '', incidents.opened_at_ms
FROM incidents, json_each(incidents.body, '$.firing') AS firing;
UPDATE incidents SET
    alert_count = (SELECT count(*) FROM incident_alerts WHERE incident_id = incidents.id),
    firing_count = (SELECT count(*) FROM incident_alerts WHERE incident_id = incidents.id),
    signal_count = coalesce(json_array_length(body, '$.signal_ids'), 0),
    playbooks_run_at_ms = opened_at_ms;
UPDATE incidents SET body = json_remove(body, '$.firing', '$.signal_ids');

CREATE INDEX incidents_awaiting_playbooks ON incidents (opened_at_ms)
WHERE playbooks_run_at_ms IS NULL;

CREATE TABLE generations (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO generations (name, value) VALUES ('api_tokens', 0);
CREATE TRIGGER api_tokens_inserted AFTER INSERT ON api_tokens
BEGIN UPDATE generations SET value = value + 1 WHERE name = 'api_tokens'; END;
CREATE TRIGGER api_tokens_updated AFTER UPDATE ON api_tokens
BEGIN UPDATE generations SET value = value + 1 WHERE name = 'api_tokens'; END;
CREATE TRIGGER api_tokens_deleted AFTER DELETE ON api_tokens
BEGIN UPDATE generations SET value = value + 1 WHERE name = 'api_tokens'; END;
)sql";

constexpr std::string_view migration_7 = R"sql(
CREATE TABLE circuit_breaker_resets (
    at_ms  INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    reason TEXT NOT NULL
) STRICT;
CREATE INDEX circuit_breaker_resets_by_time ON circuit_breaker_resets (at_ms);
CREATE INDEX mitigations_by_creation ON mitigations (created_at_ms);
CREATE INDEX mitigations_by_change ON mitigations (updated_at_ms);
)sql";

constexpr std::array<SqliteMigration, 7> migrations{{
    {1, "mitigations and their transition journal", migration_1},
    {2, "hash-chained audit log", migration_2},
    {3, "signals, incidents and API tokens", migration_3},
    {4, "chat messages and audit-log cursors", migration_4},
    {5, "drill runs", migration_5},
    {6, "incident membership, playbook runs and the API token generation", migration_6},
    {7, "circuit breaker resets; mitigations indexed by creation and change", migration_7},
}};

}  // namespace

std::span<const SqliteMigration> sqlite_migrations() {
    return migrations;
}

}  // namespace mitigate
