#include "runtime/store/sqlite_store.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <mutex>

#include "runtime/core/time_format.h"
#include "runtime/store/schema.h"

namespace mitigate {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::int64_t to_millis(TimePoint time) {
    return time.time_since_epoch().count();
}

// A prepared statement that finalizes itself. Binds are 1-based, as in SQLite.
class Statement {
  public:
    Statement(sqlite3* database, std::string_view sql) : database_(database) {
        if (sqlite3_prepare_v2(database, sql.data(), static_cast<int>(sql.size()), &statement_,
                               nullptr) != SQLITE_OK) {
            throw StoreError(std::string("SQLite cannot prepare a statement: ") +
                             sqlite3_errmsg(database));
        }
    }
    ~Statement() { sqlite3_finalize(statement_); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int index, std::string_view text) {
        check(sqlite3_bind_text(statement_, index, text.data(), static_cast<int>(text.size()),
                                SQLITE_TRANSIENT));
        return *this;
    }
    Statement& bind(int index, std::int64_t value) {
        check(sqlite3_bind_int64(statement_, index, value));
        return *this;
    }
    Statement& bind_null(int index) {
        check(sqlite3_bind_null(statement_, index));
        return *this;
    }

    // Ready to run again with new bindings.
    void reset() {
        sqlite3_reset(statement_);
        sqlite3_clear_bindings(statement_);
    }

    // True while there is a row to read.
    bool step() {
        const int result = sqlite3_step(statement_);
        if (result == SQLITE_ROW) {
            return true;
        }
        if (result == SQLITE_DONE) {
            return false;
        }
        throw StoreError(std::string("SQLite: ") + sqlite3_errmsg(database_));
    }
    void run() {
        while (step()) {
        }
    }

    std::int64_t integer(int column) const { return sqlite3_column_int64(statement_, column); }
    bool is_null(int column) const {
        return sqlite3_column_type(statement_, column) == SQLITE_NULL;
    }
    std::string text(int column) const {
        const auto* bytes = sqlite3_column_text(statement_, column);
        return bytes == nullptr
                   ? std::string()
                   : std::string(
                         reinterpret_cast<const char*>(bytes),
                         static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)));
    }

  private:
    void check(int result) {
        if (result != SQLITE_OK) {
            throw StoreError(std::string("SQLite cannot bind a value: ") +
                             sqlite3_errmsg(database_));
        }
    }
    sqlite3* database_;
    sqlite3_stmt* statement_ = nullptr;
};

void execute(sqlite3* database, const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(database, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
        std::string message = error != nullptr ? error : sqlite3_errmsg(database);
        sqlite3_free(error);
        throw StoreError("SQLite: " + message);
    }
}

std::int64_t pragma_integer(sqlite3* database, const char* name) {
    Statement statement(database, std::string("PRAGMA ") + name);
    return statement.step() ? statement.integer(0) : 0;
}

// Every write goes through one of these: BEGIN IMMEDIATE takes the write lock up front,
// so a busy database makes us wait (busy_timeout) instead of failing half-way through.
class WriteTransaction {
  public:
    explicit WriteTransaction(sqlite3* database) : database_(database) {
        execute(database_, "BEGIN IMMEDIATE");
    }
    ~WriteTransaction() {
        if (!committed_) {
            sqlite3_exec(database_, "ROLLBACK", nullptr, nullptr, nullptr);
        }
    }
    WriteTransaction(const WriteTransaction&) = delete;
    WriteTransaction& operator=(const WriteTransaction&) = delete;
    void commit() {
        execute(database_, "COMMIT");
        committed_ = true;
    }

  private:
    sqlite3* database_;
    bool committed_ = false;
};

// Read transactions see one snapshot even while the writer commits (WAL).
class ReadTransaction {
  public:
    explicit ReadTransaction(sqlite3* database) : database_(database) {
        execute(database_, "BEGIN");
    }
    ~ReadTransaction() { sqlite3_exec(database_, "COMMIT", nullptr, nullptr, nullptr); }
    ReadTransaction(const ReadTransaction&) = delete;
    ReadTransaction& operator=(const ReadTransaction&) = delete;

  private:
    sqlite3* database_;
};

Mitigation mitigation_from_body(const std::string& id, const std::string& body) {
    const json parsed = json::parse(body, nullptr, false);
    return value_or_throw(parse_mitigation(parsed),
                          "stored mitigation " + id + " does not parse (the store is damaged)");
}

Signal signal_from_body(const std::string& id, const std::string& body) {
    const json parsed = json::parse(body, nullptr, false);
    return value_or_throw(parse_signal(parsed),
                          "stored signal " + id + " does not parse (the store is damaged)");
}

Incident incident_from_body(const std::string& id, const std::string& body) {
    const json parsed = json::parse(body, nullptr, false);
    return value_or_throw(parse_incident(parsed),
                          "stored incident " + id + " does not parse (the store is damaged)");
}

constexpr std::string_view api_token_columns =
    "SELECT name, role, groups, token_sha256, created_at_ms, revoked_at_ms FROM api_tokens";

DrillRun drill_run_from_row(const Statement& row) {
    DrillRun run;
    run.id = row.text(0);
    run.drill = row.text(1);
    run.status = row.text(2);
    run.started_at = TimePoint{Duration{row.integer(3)}};
    run.body = json::parse(row.text(4));
    return run;
}

ApiToken api_token_from_row(const Statement& row) {
    ApiToken token;
    token.name = row.text(0);
    token.role = row.text(1);
    const json groups = json::parse(row.text(2), nullptr, false);
    if (groups.is_array()) {
        for (const auto& group : groups) {
            if (group.is_string()) {
                token.groups.push_back(group.get<std::string>());
            }
        }
    }
    token.token_sha256 = row.text(3);
    token.created_at = TimePoint{Duration{row.integer(4)}};
    if (!row.is_null(5)) {
        token.revoked_at = TimePoint{Duration{row.integer(5)}};
    }
    return token;
}

AuditRecord audit_record_from_row(std::int64_t sequence, const std::string& text,
                                  const std::string& hash) {
    const json parsed = json::parse(text, nullptr, false);
    auto record = parse_audit_record(parsed);
    if (!record) {
        throw StoreError("audit record " + std::to_string(sequence) +
                         " is unreadable; run `mitigate audit verify`");
    }
    AuditRecord result = std::move(*record.value);
    result.hash = hash;
    return result;
}

class SqliteStore final : public Store {
  public:
    SqliteStore(const fs::path& path, const SqliteStoreOptions& options)
        : path_(path), options_(options) {
        try {
            open();
        } catch (...) {
            // The destructor does not run for a half-built object: close here, so that a
            // refused file is left exactly as it was found (no -wal or -shm beside it).
            sqlite3_close_v2(database_);
            throw;
        }
    }
    ~SqliteStore() override { sqlite3_close_v2(database_); }
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

    void create_mitigation(const Mitigation& mitigation, std::string_view actor,
                           std::string_view reason) override {
        require_writable();
        if (mitigation.version != 1 || mitigation.state != MitigationState::proposed) {
            throw std::invalid_argument("a new mitigation starts as proposed, version 1");
        }
        std::lock_guard lock(mutex_);
        WriteTransaction transaction(database_);
        {
            Statement exists(database_, "SELECT 1 FROM mitigations WHERE id = ?");
            exists.bind(1, mitigation.id);
            if (exists.step()) {
                throw StoreError("a mitigation with id " + mitigation.id + " already exists");
            }
        }
        write_mitigation(mitigation, /*insert=*/true, 0);
        fault("create.mitigation_written");
        write_journal({mitigation.id, 1, std::nullopt, mitigation.state, mitigation.created_at,
                       std::string(actor), std::string(reason)});
        const Action& action = mitigation.proposal.action;
        append_audit_locked({mitigation.created_at,
                             std::string(actor),
                             "mitigation.created",
                             mitigation.id,
                             {{"state", to_string(mitigation.state)},
                              {"provider", action.provider},
                              {"action", action.action},
                              {"target", action.target},
                              {"incident_id", mitigation.proposal.incident_id},
                              {"drill", mitigation.drill},
                              {"reason", std::string(reason)}}});
        fault("create.before_commit");
        transaction.commit();
    }

    TransitionResult transition(const TransitionRequest& request) override {
        require_writable();
        std::lock_guard lock(mutex_);
        WriteTransaction transaction(database_);
        TransitionResult result;
        auto current = find_locked(request.next.id);
        if (!current) {
            result.outcome = TransitionOutcome::not_found;
            result.message = "no mitigation " + request.next.id;
            return result;
        }
        result.current = current;
        if (current->version != request.expected_version) {
            result.outcome = TransitionOutcome::version_conflict;
            result.message = "mitigation " + current->id + " is at version " +
                             std::to_string(current->version) + ", not " +
                             std::to_string(request.expected_version) + " (changed since read)";
            return result;
        }
        if (!is_transition_allowed(current->state, request.next.state)) {
            result.outcome = TransitionOutcome::not_allowed;
            result.message = "mitigation " + current->id + " cannot go from " +
                             std::string(to_string(current->state)) + " to " +
                             std::string(to_string(request.next.state));
            return result;
        }
        // What was proposed and decided on is fixed at creation: a transition that would
        // swap the action under an approval is a bug, and is refused.
        if (request.next.proposal != current->proposal ||
            request.next.created_at != current->created_at ||
            request.next.drill != current->drill) {
            result.outcome = TransitionOutcome::not_allowed;
            result.message = "mitigation " + current->id +
                             ": the proposal, creation time and drill mark cannot change";
            return result;
        }
        Mitigation next = request.next;
        next.version = current->version + 1;
        next.updated_at = request.at;
        write_mitigation(next, /*insert=*/false, current->version);
        fault("transition.mitigation_written");
        write_journal({next.id, next.version, current->state, next.state, request.at, request.actor,
                       request.reason});
        fault("transition.journal_written");
        json details = request.audit_details;
        details["from"] = to_string(current->state);
        details["to"] = to_string(next.state);
        details["version"] = next.version;
        details["reason"] = request.reason;
        if (next.drill) {
            details["drill"] = true;  // marked everywhere: the audit log too
        }
        append_audit_locked(
            {request.at, request.actor, "mitigation.transition", next.id, std::move(details)});
        fault("transition.before_commit");
        fault("transition.writing:" + std::string(to_string(next.state)));
        transaction.commit();
        fault("transition.committed:" + std::string(to_string(next.state)));
        result.outcome = TransitionOutcome::done;
        result.current = std::move(next);
        return result;
    }

    std::optional<Mitigation> find_mitigation(std::string_view id) override {
        std::lock_guard lock(mutex_);
        return find_locked(id);
    }

    std::vector<Mitigation> list_mitigations(const MitigationFilter& filter) override {
        std::lock_guard lock(mutex_);
        std::string sql = "SELECT id, body FROM mitigations WHERE 1 = 1";
        if (!filter.states.empty()) {
            sql += " AND state IN (";
            for (std::size_t i = 0; i < filter.states.size(); ++i) {
                sql += i == 0 ? "?" : ", ?";
            }
            sql += ")";
        }
        if (!filter.incident_id.empty()) {
            sql += " AND incident_id = ?";
        }
        if (filter.created_after) {
            sql += " AND created_at_ms >= ?";
        }
        sql += " ORDER BY created_at_ms DESC, id DESC LIMIT ?";
        Statement statement(database_, sql);
        int index = 1;
        for (MitigationState state : filter.states) {
            statement.bind(index++, to_string(state));
        }
        if (!filter.incident_id.empty()) {
            statement.bind(index++, filter.incident_id);
        }
        if (filter.created_after) {
            statement.bind(index++, to_millis(*filter.created_after));
        }
        statement.bind(index, static_cast<std::int64_t>(filter.limit));
        std::vector<Mitigation> result;
        while (statement.step()) {
            result.push_back(mitigation_from_body(statement.text(0), statement.text(1)));
        }
        return result;
    }

    std::vector<JournalEntry> journal(std::string_view mitigation_id) override {
        std::lock_guard lock(mutex_);
        Statement statement(database_,
                            "SELECT version, from_state, to_state, at_ms, actor, reason "
                            "FROM transitions WHERE mitigation_id = ? ORDER BY version");
        statement.bind(1, mitigation_id);
        std::vector<JournalEntry> entries;
        while (statement.step()) {
            JournalEntry entry;
            entry.mitigation_id = std::string(mitigation_id);
            entry.version = statement.integer(0);
            if (!statement.is_null(1)) {
                entry.from = parse_mitigation_state(statement.text(1));
            }
            entry.to = parse_mitigation_state(statement.text(2)).value_or(MitigationState::failed);
            entry.at = TimePoint{Duration{statement.integer(3)}};
            entry.actor = statement.text(4);
            entry.reason = statement.text(5);
            entries.push_back(std::move(entry));
        }
        return entries;
    }

    std::vector<Signal> record_signals(const std::vector<Signal>& signals) override {
        require_writable();
        std::lock_guard lock(mutex_);
        WriteTransaction transaction(database_);
        std::vector<Signal> recorded;
        Statement insert(database_,
                         "INSERT INTO signals (id, received_at_ms, body) VALUES (?, ?, ?) "
                         "ON CONFLICT (id) DO NOTHING");
        for (const Signal& signal : signals) {
            insert.reset();
            insert.bind(1, signal.id)
                .bind(2, to_millis(signal.received_at))
                .bind(3, json(signal).dump());
            insert.run();
            if (sqlite3_changes(database_) == 1) {
                recorded.push_back(signal);
            }
        }
        transaction.commit();
        return recorded;
    }

    std::vector<Signal> pending_signals(std::size_t limit) override {
        std::lock_guard lock(mutex_);
        Statement statement(database_,
                            "SELECT id, body FROM signals WHERE processed = 0 "
                            "ORDER BY received_at_ms, rowid LIMIT ?");
        statement.bind(1, static_cast<std::int64_t>(limit));
        std::vector<Signal> result;
        while (statement.step()) {
            result.push_back(signal_from_body(statement.text(0), statement.text(1)));
        }
        return result;
    }

    std::size_t count_pending_signals() override {
        std::lock_guard lock(mutex_);
        Statement statement(database_, "SELECT count(*) FROM signals WHERE processed = 0");
        return statement.step() ? static_cast<std::size_t>(statement.integer(0)) : 0;
    }

    std::vector<Signal> find_signals(const std::vector<std::string>& ids) override {
        std::lock_guard lock(mutex_);
        Statement statement(database_, "SELECT id, body FROM signals WHERE id = ?");
        std::vector<Signal> result;
        for (const std::string& id : ids) {
            statement.reset();
            statement.bind(1, id);
            if (statement.step()) {
                result.push_back(signal_from_body(statement.text(0), statement.text(1)));
            }
        }
        return result;
    }

    void write_incidents(const std::vector<IncidentWrite>& writes) override {
        require_writable();
        std::lock_guard lock(mutex_);
        WriteTransaction transaction(database_);
        for (const IncidentWrite& write : writes) {
            write_incident_locked(write);
        }
        transaction.commit();
    }

    void mark_signals_processed(const std::vector<std::string>& ids) override {
        require_writable();
        std::lock_guard lock(mutex_);
        WriteTransaction transaction(database_);
        Statement mark(database_, "UPDATE signals SET processed = 1 WHERE id = ?");
        for (const std::string& id : ids) {
            mark.reset();
            mark.bind(1, id);
            mark.run();
        }
        transaction.commit();
    }

    std::optional<Incident> find_incident(std::string_view id) override {
        std::lock_guard lock(mutex_);
        Statement statement(database_, "SELECT id, body FROM incidents WHERE id = ?");
        statement.bind(1, id);
        if (!statement.step()) {
            return std::nullopt;
        }
        return incident_from_body(statement.text(0), statement.text(1));
    }

    std::optional<Incident> find_open_incident(std::string_view group_key) override {
        std::lock_guard lock(mutex_);
        Statement statement(
            database_, "SELECT id, body FROM incidents WHERE group_key = ? AND status = 'open'");
        statement.bind(1, group_key);
        if (!statement.step()) {
            return std::nullopt;
        }
        return incident_from_body(statement.text(0), statement.text(1));
    }

    std::vector<Incident> list_incidents(const IncidentFilter& filter) override {
        std::lock_guard lock(mutex_);
        std::string sql = "SELECT id, body FROM incidents";
        if (filter.status) {
            sql += " WHERE status = ?";
        }
        sql += " ORDER BY opened_at_ms DESC, id DESC LIMIT ?";
        Statement statement(database_, sql);
        int index = 1;
        if (filter.status) {
            statement.bind(index++, to_string(*filter.status));
        }
        statement.bind(index, static_cast<std::int64_t>(filter.limit));
        std::vector<Incident> result;
        while (statement.step()) {
            result.push_back(incident_from_body(statement.text(0), statement.text(1)));
        }
        return result;
    }

    void create_api_token(const ApiToken& token, std::string_view actor) override {
        require_writable();
        std::lock_guard lock(mutex_);
        WriteTransaction transaction(database_);
        {
            Statement exists(database_, "SELECT 1 FROM api_tokens WHERE name = ?");
            exists.bind(1, token.name);
            if (exists.step()) {
                throw StoreError("an API token named " + token.name + " already exists");
            }
        }
        Statement insert(database_,
                         "INSERT INTO api_tokens (name, role, groups, token_sha256, "
                         "created_at_ms) VALUES (?, ?, ?, ?, ?)");
        insert.bind(1, token.name)
            .bind(2, token.role)
            .bind(3, json(token.groups).dump())
            .bind(4, token.token_sha256)
            .bind(5, to_millis(token.created_at));
        insert.run();
        append_audit_locked({token.created_at,
                             std::string(actor),
                             "api_token.created",
                             token.name,
                             {{"role", token.role}, {"groups", token.groups}}});
        transaction.commit();
    }

    std::optional<ApiToken> find_api_token(std::string_view token_sha256) override {
        std::lock_guard lock(mutex_);
        Statement statement(database_, std::string(api_token_columns) + " WHERE token_sha256 = ?");
        statement.bind(1, token_sha256);
        if (!statement.step()) {
            return std::nullopt;
        }
        return api_token_from_row(statement);
    }

    std::vector<ApiToken> list_api_tokens() override {
        std::lock_guard lock(mutex_);
        Statement statement(database_, std::string(api_token_columns) + " ORDER BY name");
        std::vector<ApiToken> result;
        while (statement.step()) {
            result.push_back(api_token_from_row(statement));
        }
        return result;
    }

    bool revoke_api_token(std::string_view name, TimePoint at, std::string_view actor) override {
        require_writable();
        std::lock_guard lock(mutex_);
        WriteTransaction transaction(database_);
        Statement update(database_,
                         "UPDATE api_tokens SET revoked_at_ms = ? "
                         "WHERE name = ? AND revoked_at_ms IS NULL");
        update.bind(1, to_millis(at)).bind(2, name);
        update.run();
        if (sqlite3_changes(database_) != 1) {
            return false;
        }
        append_audit_locked({at, std::string(actor), "api_token.revoked", std::string(name), {}});
        transaction.commit();
        return true;
    }

    void save_drill_run(const DrillRun& run) override {
        require_writable();
        std::lock_guard lock(mutex_);
        Statement upsert(database_,
                         "INSERT INTO drill_runs (id, drill, status, started_at_ms, body) "
                         "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                         "status = excluded.status, body = excluded.body");
        upsert.bind(1, run.id)
            .bind(2, run.drill)
            .bind(3, run.status)
            .bind(4, to_millis(run.started_at))
            .bind(5, run.body.dump());
        upsert.run();
    }

    std::optional<DrillRun> find_drill_run(std::string_view id) override {
        std::lock_guard lock(mutex_);
        Statement statement(
            database_,
            "SELECT id, drill, status, started_at_ms, body FROM drill_runs WHERE id = ?");
        statement.bind(1, id);
        if (!statement.step()) {
            return std::nullopt;
        }
        return drill_run_from_row(statement);
    }

    std::vector<DrillRun> list_drill_runs(std::string_view drill,
                                          const std::vector<std::string>& statuses,
                                          std::size_t limit) override {
        std::lock_guard lock(mutex_);
        std::string sql =
            "SELECT id, drill, status, started_at_ms, body FROM drill_runs "
            "WHERE (? = '' OR drill = ?)";
        if (!statuses.empty()) {
            sql += " AND status IN (";
            for (std::size_t i = 0; i < statuses.size(); ++i) {
                sql += i == 0 ? "?" : ", ?";
            }
            sql += ")";
        }
        sql += " ORDER BY started_at_ms DESC, id DESC LIMIT ?";
        Statement statement(database_, sql);
        int index = 1;
        statement.bind(1, drill).bind(2, drill);
        index = 3;
        for (const auto& status : statuses) {
            statement.bind(index++, status);
        }
        statement.bind(index, static_cast<std::int64_t>(limit));
        std::vector<DrillRun> runs;
        while (statement.step()) {
            runs.push_back(drill_run_from_row(statement));
        }
        return runs;
    }

    std::optional<ChatMessage> find_chat_message(std::string_view mitigation_id) override {
        std::lock_guard lock(mutex_);
        Statement statement(database_,
                            "SELECT channel, ts FROM chat_messages WHERE mitigation_id = ?");
        statement.bind(1, mitigation_id);
        if (!statement.step()) {
            return std::nullopt;
        }
        return ChatMessage{std::string(mitigation_id), statement.text(0), statement.text(1)};
    }

    void save_chat_message(const ChatMessage& message) override {
        require_writable();
        std::lock_guard lock(mutex_);
        Statement upsert(database_,
                         "INSERT INTO chat_messages (mitigation_id, channel, ts) VALUES (?, ?, ?) "
                         "ON CONFLICT (mitigation_id) DO UPDATE SET channel = excluded.channel, "
                         "ts = excluded.ts");
        upsert.bind(1, message.mitigation_id).bind(2, message.channel).bind(3, message.ts);
        upsert.run();
    }

    std::optional<std::int64_t> read_cursor(std::string_view name) override {
        std::lock_guard lock(mutex_);
        Statement statement(database_, "SELECT position FROM cursors WHERE name = ?");
        statement.bind(1, name);
        if (!statement.step()) {
            return std::nullopt;
        }
        return statement.integer(0);
    }

    void write_cursor(std::string_view name, std::int64_t position) override {
        require_writable();
        std::lock_guard lock(mutex_);
        Statement upsert(database_,
                         "INSERT INTO cursors (name, position) VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET position = excluded.position");
        upsert.bind(1, name).bind(2, position);
        upsert.run();
    }

    AuditRecord append_audit(const AuditEntry& entry) override {
        require_writable();
        std::lock_guard lock(mutex_);
        WriteTransaction transaction(database_);
        AuditRecord record = append_audit_locked(entry);
        transaction.commit();
        return record;
    }

    std::vector<AuditRecord> audit_records(std::int64_t after_sequence,
                                           std::size_t limit) override {
        std::lock_guard lock(mutex_);
        Statement statement(database_,
                            "SELECT sequence, record, hash FROM audit_log WHERE sequence > ? "
                            "ORDER BY sequence LIMIT ?");
        statement.bind(1, after_sequence).bind(2, static_cast<std::int64_t>(limit));
        std::vector<AuditRecord> records;
        while (statement.step()) {
            records.push_back(
                audit_record_from_row(statement.integer(0), statement.text(1), statement.text(2)));
        }
        return records;
    }

    std::vector<AuditRecord> audit_tail(std::size_t count) override {
        std::lock_guard lock(mutex_);
        Statement statement(database_,
                            "SELECT sequence, record, hash FROM audit_log "
                            "ORDER BY sequence DESC LIMIT ?");
        statement.bind(1, static_cast<std::int64_t>(count));
        std::vector<AuditRecord> records;
        while (statement.step()) {
            records.push_back(
                audit_record_from_row(statement.integer(0), statement.text(1), statement.text(2)));
        }
        std::reverse(records.begin(), records.end());
        return records;
    }

    AuditHead audit_head() override {
        std::lock_guard lock(mutex_);
        return read_head().value_or(AuditHead{});
    }

    AuditChainVerifier verify_audit_chain() override {
        std::lock_guard lock(mutex_);
        ReadTransaction snapshot(database_);
        AuditChainVerifier verifier;
        Statement statement(database_,
                            "SELECT sequence, record, hash FROM audit_log ORDER BY sequence");
        while (statement.step()) {
            if (!verifier.add(statement.integer(0), statement.text(1), statement.text(2))) {
                return verifier;
            }
        }
        verifier.finish(read_head());
        return verifier;
    }

  private:
    [[noreturn]] void refuse(const std::string& why) const {
        throw StoreError(path_.string() + ": " + why);
    }

    void open() {
        std::error_code error;
        const bool exists = fs::exists(path_, error);
        if (exists) {
            check_file_header();
        } else if (options_.read_only || !options_.create_if_missing) {
            refuse("no store here (the file does not exist)");
        }
        int flags = options_.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
        if (!exists && !options_.read_only) {
            flags |= SQLITE_OPEN_CREATE;
        }
        if (sqlite3_open_v2(path_.c_str(), &database_, flags | SQLITE_OPEN_NOMUTEX, nullptr) !=
            SQLITE_OK) {
            const std::string message =
                database_ != nullptr ? sqlite3_errmsg(database_) : "out of memory";
            refuse("cannot open: " + message);
        }
        sqlite3_busy_timeout(database_, 10'000);
        sqlite3_extended_result_codes(database_, 1);
        try {
            check_identity();
        } catch (const StoreError& failure) {
            // SQLite reports damage as "file is not a database" or "malformed".
            const std::string what = failure.what();
            if (what.starts_with(path_.string())) {
                throw;
            }
            refuse("the database is damaged and was not changed (" + what + ")");
        }
        if (options_.read_only) {
            execute(database_, "PRAGMA query_only = ON");
            if (pragma_integer(database_, "user_version") == 0) {
                refuse("the store is empty (never initialized)");
            }
            return;
        }
        {
            Statement journal_mode(database_, "PRAGMA journal_mode = WAL");
            if (!journal_mode.step() || journal_mode.text(0) != "wal") {
                refuse("cannot switch to WAL mode");
            }
        }
        execute(database_, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON");
        migrate();
    }

    // Before SQLite sees the file: anything that is not a SQLite database is refused
    // here, so nothing (not even a journal-mode change) can ever be written into it.
    void check_file_header() const {
        std::ifstream file(path_, std::ios::binary);
        if (!file) {
            refuse("cannot read the file");
        }
        std::array<char, 16> header{};
        file.read(header.data(), header.size());
        const auto got = file.gcount();
        if (got == 0) {
            return;  // an empty file: SQLite treats it as a new database
        }
        static constexpr std::string_view magic{"SQLite format 3\0", 16};
        if (got != 16 || std::string_view(header.data(), 16) != magic) {
            refuse("not a mitigate store: the file is not a SQLite database; it was not changed");
        }
    }

    void check_identity() {
        const auto application_id = pragma_integer(database_, "application_id");
        const auto version = pragma_integer(database_, "user_version");
        Statement tables(database_, "SELECT count(*) FROM sqlite_schema");
        const auto objects = tables.step() ? tables.integer(0) : 0;
        if (application_id == sqlite_application_id) {
            if (version > sqlite_schema_version) {
                refuse("written by a newer mitigate (schema " + std::to_string(version) +
                       ", this build knows up to " + std::to_string(sqlite_schema_version) +
                       "); upgrade mitigate, the file was not changed");
            }
        } else if (application_id != 0 || objects != 0) {
            refuse(
                "not a mitigate store: a SQLite database of another application "
                "(application_id " +
                std::to_string(application_id) + ", " + std::to_string(objects) +
                " schema objects); it was not changed");
        }
        Statement integrity(database_, "PRAGMA quick_check");
        if (!integrity.step() || integrity.text(0) != "ok") {
            refuse("the database is damaged (quick_check: " + integrity.text(0) +
                   "); it was not changed");
        }
    }

    void migrate() {
        // The common case, an up-to-date file, takes no write lock.
        if (pragma_integer(database_, "user_version") >= sqlite_schema_version) {
            return;
        }
        for (const SqliteMigration& migration : sqlite_migrations()) {
            WriteTransaction transaction(database_);
            // Re-read inside the lock: another process may have migrated meanwhile.
            if (pragma_integer(database_, "user_version") >= migration.version) {
                continue;
            }
            execute(database_, std::string(migration.sql));
            execute(database_, "PRAGMA application_id = " + std::to_string(sqlite_application_id));
            execute(database_, "PRAGMA user_version = " + std::to_string(migration.version));
            transaction.commit();
            spdlog::info("store {}: migrated to schema {} ({})", path_.string(), migration.version,
                         migration.description);
        }
    }

    void require_writable() const {
        if (options_.read_only) {
            throw std::logic_error("write to a store opened read-only");
        }
    }

    void write_incident_locked(const IncidentWrite& write) {
        const Incident& incident = write.incident;
        {
            Statement statement(
                database_,
                write.create ? "INSERT INTO incidents (group_key, status, opened_at_ms, body, id) "
                               "VALUES (?, ?, ?, ?, ?)"
                             : "UPDATE incidents SET group_key = ?, status = ?, opened_at_ms = ?, "
                               "body = ? WHERE id = ?");
            statement.bind(1, incident.group_key)
                .bind(2, to_string(incident.status))
                .bind(3, to_millis(incident.opened_at))
                .bind(4, json(incident).dump())
                .bind(5, incident.id);
            try {
                statement.run();
            } catch (const StoreError& failure) {
                throw StoreError("incident " + incident.id +
                                 " cannot be written: " + failure.what());
            }
            if (sqlite3_changes(database_) != 1) {
                throw StoreError("incident " + incident.id + " does not exist");
            }
        }
        Statement mark(database_, "UPDATE signals SET processed = 1, incident_id = ? WHERE id = ?");
        for (const std::string& id : write.processed_signal_ids) {
            mark.reset();
            mark.bind(1, incident.id).bind(2, id);
            mark.run();
        }
        if (write.audit) {
            append_audit_locked(*write.audit);
        }
    }

    void fault(std::string_view point) const {
        if (options_.fault_point) {
            options_.fault_point(point);
        }
    }

    std::optional<Mitigation> find_locked(std::string_view id) {
        Statement statement(database_, "SELECT id, body FROM mitigations WHERE id = ?");
        statement.bind(1, id);
        if (!statement.step()) {
            return std::nullopt;
        }
        return mitigation_from_body(statement.text(0), statement.text(1));
    }

    void write_mitigation(const Mitigation& mitigation, bool insert, std::int64_t old_version) {
        const std::string body = json(mitigation).dump();
        Statement statement(
            database_,
            insert ? "INSERT INTO mitigations (state, version, incident_id, created_at_ms, "
                     "updated_at_ms, expires_at_ms, body, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                   : "UPDATE mitigations SET state = ?, version = ?, incident_id = ?, "
                     "created_at_ms = ?, updated_at_ms = ?, expires_at_ms = ?, body = ? "
                     "WHERE id = ? AND version = ?");
        statement.bind(1, to_string(mitigation.state))
            .bind(2, mitigation.version)
            .bind(3, mitigation.proposal.incident_id)
            .bind(4, to_millis(mitigation.created_at))
            .bind(5, to_millis(mitigation.updated_at));
        if (mitigation.expires_at) {
            statement.bind(6, to_millis(*mitigation.expires_at));
        } else {
            statement.bind_null(6);
        }
        statement.bind(7, body).bind(8, mitigation.id);
        if (!insert) {
            statement.bind(9, old_version);
        }
        statement.run();
        if (sqlite3_changes(database_) != 1) {
            throw StoreError("mitigation " + mitigation.id + " changed during its transition");
        }
    }

    void write_journal(const JournalEntry& entry) {
        Statement statement(database_,
                            "INSERT INTO transitions (mitigation_id, version, from_state, "
                            "to_state, at_ms, actor, reason) VALUES (?, ?, ?, ?, ?, ?, ?)");
        statement.bind(1, entry.mitigation_id).bind(2, entry.version);
        if (entry.from) {
            statement.bind(3, to_string(*entry.from));
        } else {
            statement.bind_null(3);
        }
        statement.bind(4, to_string(entry.to))
            .bind(5, to_millis(entry.at))
            .bind(6, entry.actor)
            .bind(7, entry.reason);
        statement.run();
    }

    std::optional<AuditHead> read_head() {
        Statement statement(database_, "SELECT sequence, hash FROM audit_head WHERE id = 1");
        if (!statement.step()) {
            return std::nullopt;
        }
        return AuditHead{statement.integer(0), statement.text(1)};
    }

    // Inside a write transaction: numbers and chains the record after the current head.
    AuditRecord append_audit_locked(const AuditEntry& entry) {
        const auto head = read_head();
        if (!head) {
            throw StoreError("the audit head is missing; run `mitigate audit verify`");
        }
        AuditRecord record;
        record.sequence = head->sequence + 1;
        record.at = entry.at;
        record.actor = entry.actor;
        record.event = entry.event;
        record.subject = entry.subject;
        // `{}` in a braced AuditEntry is JSON null, not an empty object: normalize, so
        // that the record reads back exactly as it was hashed.
        record.details = entry.details.is_null() ? json::object() : entry.details;
        record.previous_hash = head->hash;
        const std::string text = canonical_audit_text(record);
        record.hash = audit_chain_hash(record.previous_hash, text);
        Statement insert(database_,
                         "INSERT INTO audit_log (sequence, record, hash) VALUES (?, ?, ?)");
        insert.bind(1, record.sequence).bind(2, text).bind(3, record.hash);
        insert.run();
        Statement update(database_, "UPDATE audit_head SET sequence = ?, hash = ? WHERE id = 1");
        update.bind(1, record.sequence).bind(2, record.hash);
        update.run();
        return record;
    }

    fs::path path_;
    SqliteStoreOptions options_;
    sqlite3* database_ = nullptr;
    std::mutex mutex_;
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const fs::path& path, const SqliteStoreOptions& options) {
    return std::make_unique<SqliteStore>(path, options);
}

}  // namespace mitigate
