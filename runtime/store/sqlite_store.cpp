#include "runtime/store/sqlite_store.h"

#include <algorithm>
#include <set>

#include "runtime/core/time_format.h"
#include "runtime/store/sqlite_database.h"

namespace mitigate {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::int64_t to_millis(TimePoint time) {
    return time.time_since_epoch().count();
}

TimePoint from_millis(std::int64_t millis) {
    return TimePoint{Duration{millis}};
}

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

// Incident rows are read as `id, body, alert_count, firing_count, signal_count`: the body
// is what the incident was when it opened or resolved, the counters are current.
constexpr std::string_view incident_columns =
    "SELECT id, body, alert_count, firing_count, signal_count FROM incidents";

Incident incident_from_row(const SqliteStatement& row) {
    const json parsed = json::parse(row.text(1), nullptr, false);
    Incident incident = value_or_throw(parse_incident(parsed), "stored incident " + row.text(0) +
                                                                   " does not parse (the store "
                                                                   "is damaged)");
    incident.counters = {row.integer(2), row.integer(3), row.integer(4)};
    return incident;
}

// The body as stored: the counters live in their columns only.
std::string incident_body(const Incident& incident) {
    Incident body = incident;
    body.counters = {};
    return json(body).dump();
}

constexpr std::string_view api_token_columns =
    "SELECT name, role, groups, token_sha256, created_at_ms, revoked_at_ms FROM api_tokens";

ApiToken api_token_from_row(const SqliteStatement& row) {
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
    token.created_at = from_millis(row.integer(4));
    if (!row.is_null(5)) {
        token.revoked_at = from_millis(row.integer(5));
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

class SqliteStoreImplementation final : public SqliteStore {
  public:
    SqliteStoreImplementation(const fs::path& path, const SqliteStoreOptions& options)
        : database_(path, {options.read_only, options.create_if_missing}), options_(options) {}

    SqliteDatabase& database() override { return database_; }

    // ---- MitigationStore -----------------------------------------------------------

    void create_mitigation(const Mitigation& mitigation, std::string_view actor,
                           std::string_view reason) override {
        if (mitigation.version != 1 || mitigation.state != MitigationState::proposed) {
            throw std::invalid_argument("a new mitigation starts as proposed, version 1");
        }
        database_.write([&](SqliteConnection& connection) {
            {
                auto exists = connection.statement("SELECT 1 FROM mitigations WHERE id = ?");
                exists->bind(1, mitigation.id);
                if (exists->step()) {
                    throw StoreError("a mitigation with id " + mitigation.id + " already exists");
                }
            }
            write_mitigation(connection, mitigation, /*insert=*/true, 0);
            fault("create.mitigation_written");
            write_journal(connection,
                          {mitigation.id, 1, std::nullopt, mitigation.state, mitigation.created_at,
                           std::string(actor), std::string(reason)});
            const Action& action = mitigation.proposal.action;
            connection.append_audit({mitigation.created_at,
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
        });
    }

    TransitionResult transition(const TransitionRequest& request) override {
        return transition_chain({request});
    }

    TransitionResult transition_chain(const std::vector<TransitionRequest>& chain) override {
        // A step of the chain that is refused rolls back the steps before it.
        struct Refused {};
        TransitionResult result;
        std::vector<MitigationState> entered;
        try {
            database_.write([&](SqliteConnection& connection) {
                for (const TransitionRequest& request : chain) {
                    result = transition_in(connection, request);
                    if (result.outcome != TransitionOutcome::done) {
                        throw Refused{};
                    }
                    entered.push_back(result.current->state);
                }
            });
        } catch (const Refused&) {
            if (chain.size() > 1) {
                result.current = find_mitigation(chain.front().next.id);  // as it is, rolled back
            }
            return result;
        }
        for (MitigationState state : entered) {
            fault("transition.committed:" + std::string(to_string(state)));
        }
        return result;
    }

    std::optional<Mitigation> find_mitigation(std::string_view id) override {
        std::optional<Mitigation> found;
        database_.read([&](SqliteConnection& connection) { found = find_in(connection, id); });
        return found;
    }

    std::vector<Mitigation> list_mitigations(const MitigationFilter& filter) override {
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
        if (filter.updated_after) {
            sql += " AND updated_at_ms >= ?";
        }
        // Ties (one millisecond) in the order they were stored: ids are random after the second.
        sql += " ORDER BY created_at_ms DESC, rowid DESC LIMIT ?";
        std::vector<Mitigation> result;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(sql);
            int index = 1;
            for (MitigationState state : filter.states) {
                statement->bind(index++, to_string(state));
            }
            if (!filter.incident_id.empty()) {
                statement->bind(index++, filter.incident_id);
            }
            if (filter.created_after) {
                statement->bind(index++, to_millis(*filter.created_after));
            }
            if (filter.updated_after) {
                statement->bind(index++, to_millis(*filter.updated_after));
            }
            statement->bind(index, static_cast<std::int64_t>(filter.limit));
            while (statement->step()) {
                result.push_back(mitigation_from_body(statement->text(0), statement->text(1)));
            }
        });
        return result;
    }

    std::vector<JournalEntry> journal(std::string_view mitigation_id) override {
        std::vector<JournalEntry> entries;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(
                "SELECT version, from_state, to_state, at_ms, actor, reason "
                "FROM transitions WHERE mitigation_id = ? ORDER BY version");
            statement->bind(1, mitigation_id);
            while (statement->step()) {
                JournalEntry entry;
                entry.mitigation_id = std::string(mitigation_id);
                entry.version = statement->integer(0);
                if (!statement->is_null(1)) {
                    entry.from = parse_mitigation_state(statement->text(1));
                }
                entry.to =
                    parse_mitigation_state(statement->text(2)).value_or(MitigationState::failed);
                entry.at = from_millis(statement->integer(3));
                entry.actor = statement->text(4);
                entry.reason = statement->text(5);
                entries.push_back(std::move(entry));
            }
        });
        return entries;
    }

    void record_circuit_breaker_reset(TimePoint at, std::string_view actor,
                                      std::string_view reason) override {
        database_.write([&](SqliteConnection& connection) {
            auto insert = connection.statement(
                "INSERT INTO circuit_breaker_resets (at_ms, actor, reason) VALUES (?, ?, ?)");
            insert->bind(1, to_millis(at));
            insert->bind(2, actor);
            insert->bind(3, reason);
            insert->step();
            connection.append_audit({at,
                                     std::string(actor),
                                     "policy.circuit_breaker_reset",
                                     "",
                                     {{"reason", std::string(reason)}}});
        });
    }

    std::optional<TimePoint> last_circuit_breaker_reset() override {
        std::optional<TimePoint> latest;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement("SELECT max(at_ms) FROM circuit_breaker_resets");
            if (statement->step() && !statement->is_null(0)) {
                latest = from_millis(statement->integer(0));
            }
        });
        return latest;
    }

    // ---- IncidentStore -------------------------------------------------------------

    std::vector<const Signal*> record_signals(const std::vector<EncodedSignal>& signals,
                                              const SignalGrouping& group) override {
        std::vector<const Signal*> fresh;
        database_.write([&](SqliteConnection& connection) {
            fresh.clear();
            // Inserted first: the primary key says whether the id is new, in the one index
            // lookup the insert makes anyway. Which incident each joined is written after
            // grouping, to the row just inserted (by rowid: its page is in the cache).
            std::vector<std::int64_t> rows;
            {
                auto insert = connection.statement(
                    "INSERT INTO signals (id, received_at_ms, processed, incident_id, body) "
                    "VALUES (?, ?, 1, '', ?) ON CONFLICT (id) DO NOTHING");
                for (const EncodedSignal& encoded : signals) {
                    insert->bind(1, encoded.signal.id)
                        .bind(2, to_millis(encoded.signal.received_at))
                        .bind(3, encoded.json);
                    insert->run();
                    insert->reset();
                    if (connection.changes() == 1) {
                        fresh.push_back(&encoded.signal);
                        rows.push_back(connection.last_insert_rowid());
                    }
                }
            }
            if (fresh.empty()) {
                return;
            }
            const GroupedSignals grouped = group(fresh);
            check_grouping(fresh.size(), grouped);
            auto joined =
                connection.statement("UPDATE signals SET incident_id = ? WHERE rowid = ?");
            for (std::size_t i = 0; i < fresh.size(); ++i) {
                if (grouped.signal_incidents[i].empty()) {
                    continue;
                }
                joined->bind(1, grouped.signal_incidents[i]).bind(2, rows[i]);
                joined->run();
                joined->reset();
            }
            write_grouping(connection, grouped);
        });
        return fresh;
    }

    std::vector<Signal> ungrouped_signals(std::size_t limit) override {
        std::vector<Signal> result;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(
                "SELECT id, body FROM signals WHERE processed = 0 "
                "ORDER BY received_at_ms, rowid LIMIT ?");
            statement->bind(1, static_cast<std::int64_t>(limit));
            while (statement->step()) {
                result.push_back(signal_from_body(statement->text(0), statement->text(1)));
            }
        });
        return result;
    }

    void group_stored_signals(const std::vector<Signal>& signals,
                              const SignalGrouping& group) override {
        database_.write([&](SqliteConnection& connection) {
            std::vector<const Signal*> pointers;
            for (const Signal& signal : signals) {
                pointers.push_back(&signal);
            }
            const GroupedSignals grouped = group(pointers);
            check_grouping(signals.size(), grouped);
            auto mark = connection.statement(
                "UPDATE signals SET processed = 1, incident_id = ? WHERE id = ?");
            for (std::size_t i = 0; i < signals.size(); ++i) {
                mark->bind(1, grouped.signal_incidents[i]).bind(2, signals[i].id);
                mark->run();
                mark->reset();
            }
            write_grouping(connection, grouped);
        });
    }

    std::vector<Signal> find_signals(const std::vector<std::string>& ids) override {
        std::vector<Signal> result;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement("SELECT id, body FROM signals WHERE id = ?");
            for (const std::string& id : ids) {
                statement->bind(1, id);
                if (statement->step()) {
                    result.push_back(signal_from_body(statement->text(0), statement->text(1)));
                }
                statement->reset();
            }
        });
        return result;
    }

    std::vector<Signal> incident_signals(std::string_view incident_id, std::size_t limit) override {
        std::vector<Signal> result;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(
                "SELECT signals.id, signals.body FROM incident_alerts AS alerts "
                "JOIN signals ON signals.id = alerts.last_signal_id "
                "WHERE alerts.incident_id = ? ORDER BY alerts.firing DESC, alerts.fingerprint "
                "LIMIT ?");
            statement->bind(1, incident_id).bind(2, static_cast<std::int64_t>(limit));
            while (statement->step()) {
                result.push_back(signal_from_body(statement->text(0), statement->text(1)));
            }
        });
        return result;
    }

    std::optional<Incident> find_incident(std::string_view id) override {
        std::optional<Incident> found;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(std::string(incident_columns) + " WHERE id = ?");
            statement->bind(1, id);
            if (statement->step()) {
                found = incident_from_row(*statement);
            }
        });
        return found;
    }

    std::vector<Incident> list_incidents(const IncidentFilter& filter) override {
        std::string sql(incident_columns);
        if (filter.status) {
            sql += " WHERE status = ?";
        }
        sql += " ORDER BY opened_at_ms DESC, id DESC LIMIT ?";
        std::vector<Incident> result;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(sql);
            int index = 1;
            if (filter.status) {
                statement->bind(index++, to_string(*filter.status));
            }
            statement->bind(index, static_cast<std::int64_t>(filter.limit));
            while (statement->step()) {
                result.push_back(incident_from_row(*statement));
            }
        });
        return result;
    }

    std::vector<IncidentAlert> incident_alerts(std::string_view incident_id,
                                               std::size_t limit) override {
        std::vector<IncidentAlert> result;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(
                "SELECT fingerprint, firing, last_signal_id, updated_at_ms FROM incident_alerts "
                "WHERE incident_id = ? ORDER BY firing DESC, fingerprint LIMIT ?");
            statement->bind(1, incident_id).bind(2, static_cast<std::int64_t>(limit));
            while (statement->step()) {
                result.push_back({statement->text(0), statement->integer(1) == 1,
                                  statement->text(2), from_millis(statement->integer(3))});
            }
        });
        return result;
    }

    std::vector<std::pair<std::string, IncidentAlert>> open_incident_alerts() override {
        std::vector<std::pair<std::string, IncidentAlert>> result;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(
                "SELECT alerts.incident_id, alerts.fingerprint, alerts.firing, "
                "alerts.last_signal_id, alerts.updated_at_ms FROM incident_alerts AS alerts "
                "JOIN incidents ON incidents.id = alerts.incident_id "
                "WHERE incidents.status = 'open'");
            while (statement->step()) {
                result.emplace_back(
                    statement->text(0),
                    IncidentAlert{statement->text(1), statement->integer(2) == 1,
                                  statement->text(3), from_millis(statement->integer(4))});
            }
        });
        return result;
    }

    std::vector<Incident> incidents_awaiting_playbooks(std::size_t limit) override {
        std::vector<Incident> result;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(
                std::string(incident_columns) +
                " WHERE playbooks_run_at_ms IS NULL ORDER BY opened_at_ms, id LIMIT ?");
            statement->bind(1, static_cast<std::int64_t>(limit));
            while (statement->step()) {
                result.push_back(incident_from_row(*statement));
            }
        });
        return result;
    }

    void mark_playbooks_run(std::string_view incident_id, TimePoint at) override {
        database_.write([&](SqliteConnection& connection) {
            auto update =
                connection.statement("UPDATE incidents SET playbooks_run_at_ms = ? WHERE id = ?");
            update->bind(1, to_millis(at)).bind(2, incident_id);
            update->run();
        });
    }

    // ---- TokenStore ----------------------------------------------------------------

    void create_api_token(const ApiToken& token, std::string_view actor) override {
        database_.write([&](SqliteConnection& connection) {
            {
                auto exists = connection.statement("SELECT 1 FROM api_tokens WHERE name = ?");
                exists->bind(1, token.name);
                if (exists->step()) {
                    throw StoreError("an API token named " + token.name + " already exists");
                }
            }
            auto insert = connection.statement(
                "INSERT INTO api_tokens (name, role, groups, token_sha256, "
                "created_at_ms) VALUES (?, ?, ?, ?, ?)");
            insert->bind(1, token.name)
                .bind(2, token.role)
                .bind(3, json(token.groups).dump())
                .bind(4, token.token_sha256)
                .bind(5, to_millis(token.created_at));
            insert->run();
            connection.append_audit({token.created_at,
                                     std::string(actor),
                                     "api_token.created",
                                     token.name,
                                     {{"role", token.role}, {"groups", token.groups}}});
        });
    }

    std::optional<ApiToken> find_api_token(std::string_view token_sha256) override {
        std::optional<ApiToken> found;
        database_.read([&](SqliteConnection& connection) {
            auto statement =
                connection.statement(std::string(api_token_columns) + " WHERE token_sha256 = ?");
            statement->bind(1, token_sha256);
            if (statement->step()) {
                found = api_token_from_row(*statement);
            }
        });
        return found;
    }

    std::vector<ApiToken> list_api_tokens() override {
        std::vector<ApiToken> result;
        database_.read([&](SqliteConnection& connection) {
            auto statement =
                connection.statement(std::string(api_token_columns) + " ORDER BY name");
            while (statement->step()) {
                result.push_back(api_token_from_row(*statement));
            }
        });
        return result;
    }

    bool revoke_api_token(std::string_view name, TimePoint at, std::string_view actor) override {
        bool revoked = false;
        database_.write([&](SqliteConnection& connection) {
            auto update = connection.statement(
                "UPDATE api_tokens SET revoked_at_ms = ? "
                "WHERE name = ? AND revoked_at_ms IS NULL");
            update->bind(1, to_millis(at)).bind(2, name);
            update->run();
            if (connection.changes() != 1) {
                return;
            }
            connection.append_audit(
                {at, std::string(actor), "api_token.revoked", std::string(name), {}});
            revoked = true;
        });
        return revoked;
    }

    std::int64_t api_token_generation() override {
        std::int64_t generation = 0;
        database_.read([&](SqliteConnection& connection) {
            auto statement =
                connection.statement("SELECT value FROM generations WHERE name = 'api_tokens'");
            generation = statement->step() ? statement->integer(0) : 0;
        });
        return generation;
    }

    // ---- AuditLog ------------------------------------------------------------------

    AuditRecord append_audit(const AuditEntry& entry) override {
        AuditRecord record;
        database_.write(
            [&](SqliteConnection& connection) { record = connection.append_audit(entry); });
        return record;
    }

    std::vector<AuditRecord> audit_records(std::int64_t after_sequence,
                                           std::size_t limit) override {
        std::vector<AuditRecord> records;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(
                "SELECT sequence, record, hash FROM audit_log "
                "WHERE sequence > ? ORDER BY sequence LIMIT ?");
            statement->bind(1, after_sequence).bind(2, static_cast<std::int64_t>(limit));
            while (statement->step()) {
                records.push_back(audit_record_from_row(statement->integer(0), statement->text(1),
                                                        statement->text(2)));
            }
        });
        return records;
    }

    std::vector<AuditRecord> audit_tail(std::size_t count) override {
        std::vector<AuditRecord> records;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(
                "SELECT sequence, record, hash FROM audit_log ORDER BY sequence DESC LIMIT ?");
            statement->bind(1, static_cast<std::int64_t>(count));
            while (statement->step()) {
                records.push_back(audit_record_from_row(statement->integer(0), statement->text(1),
                                                        statement->text(2)));
            }
        });
        std::reverse(records.begin(), records.end());
        return records;
    }

    AuditHead audit_head() override {
        AuditHead head;
        database_.read([&](SqliteConnection& connection) {
            head = connection.audit_head().value_or(AuditHead{});
        });
        return head;
    }

    AuditChainVerifier verify_audit_chain() override {
        AuditChainVerifier verifier;
        database_.snapshot([&](SqliteConnection& connection) {
            // A one-off walk: not kept among the prepared statements.
            SqliteStatement statement(connection.handle(),
                                      "SELECT sequence, record, hash FROM audit_log ORDER BY "
                                      "sequence");
            while (statement.step()) {
                if (!verifier.add(statement.integer(0), statement.text(1), statement.text(2))) {
                    return;
                }
            }
            verifier.finish(connection.audit_head());
        });
        return verifier;
    }

  private:
    // One transition inside the caller's write transaction.
    TransitionResult transition_in(SqliteConnection& connection, const TransitionRequest& request) {
        TransitionResult result;
        auto current = find_in(connection, request.next.id);
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
        write_mitigation(connection, next, /*insert=*/false, current->version);
        fault("transition.mitigation_written");
        write_journal(connection, {next.id, next.version, current->state, next.state, request.at,
                                   request.actor, request.reason});
        fault("transition.journal_written");
        json details = request.audit_details.is_null() ? json::object() : request.audit_details;
        details["from"] = to_string(current->state);
        details["to"] = to_string(next.state);
        details["version"] = next.version;
        details["reason"] = request.reason;
        if (next.drill) {
            details["drill"] = true;  // marked everywhere: the audit log too
        }
        connection.append_audit(
            {request.at, request.actor, "mitigation.transition", next.id, std::move(details)});
        fault("transition.before_commit");
        fault("transition.writing:" + std::string(to_string(next.state)));
        result.outcome = TransitionOutcome::done;
        result.current = std::move(next);
        return result;
    }

    void fault(std::string_view point) const {
        if (options_.fault_point) {
            options_.fault_point(point);
        }
    }

    static std::optional<Mitigation> find_in(SqliteConnection& connection, std::string_view id) {
        auto statement = connection.statement("SELECT id, body FROM mitigations WHERE id = ?");
        statement->bind(1, id);
        if (!statement->step()) {
            return std::nullopt;
        }
        return mitigation_from_body(statement->text(0), statement->text(1));
    }

    static void write_mitigation(SqliteConnection& connection, const Mitigation& mitigation,
                                 bool insert, std::int64_t old_version) {
        const std::string body = json(mitigation).dump();
        auto statement = connection.statement(
            insert ? "INSERT INTO mitigations (state, version, incident_id, created_at_ms, "
                     "updated_at_ms, expires_at_ms, body, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                   : "UPDATE mitigations SET state = ?, version = ?, incident_id = ?, "
                     "created_at_ms = ?, updated_at_ms = ?, expires_at_ms = ?, body = ? "
                     "WHERE id = ? AND version = ?");
        statement->bind(1, to_string(mitigation.state))
            .bind(2, mitigation.version)
            .bind(3, mitigation.proposal.incident_id)
            .bind(4, to_millis(mitigation.created_at))
            .bind(5, to_millis(mitigation.updated_at));
        if (mitigation.expires_at) {
            statement->bind(6, to_millis(*mitigation.expires_at));
        } else {
            statement->bind_null(6);
        }
        statement->bind(7, body).bind(8, mitigation.id);
        if (!insert) {
            statement->bind(9, old_version);
        }
        statement->run();
        if (connection.changes() != 1) {
            throw StoreError("mitigation " + mitigation.id + " changed during its transition");
        }
    }

    static void write_journal(SqliteConnection& connection, const JournalEntry& entry) {
        auto statement = connection.statement(
            "INSERT INTO transitions (mitigation_id, version, from_state, "
            "to_state, at_ms, actor, reason) VALUES (?, ?, ?, ?, ?, ?, ?)");
        statement->bind(1, entry.mitigation_id).bind(2, entry.version);
        if (entry.from) {
            statement->bind(3, to_string(*entry.from));
        } else {
            statement->bind_null(3);
        }
        statement->bind(4, to_string(entry.to))
            .bind(5, to_millis(entry.at))
            .bind(6, entry.actor)
            .bind(7, entry.reason);
        statement->run();
    }

    // A grouping that does not say where each signal went is a bug in the caller.
    static void check_grouping(std::size_t signals, const GroupedSignals& grouped) {
        if (grouped.signal_incidents.size() != signals) {
            throw std::logic_error("grouping returned " +
                                   std::to_string(grouped.signal_incidents.size()) +
                                   " incident ids for " + std::to_string(signals) + " signals");
        }
    }

    void write_grouping(SqliteConnection& connection, const GroupedSignals& grouped) {
        for (const auto& write : grouped.incidents) {
            const Incident& incident = write.incident;
            auto statement = connection.statement(
                write.create ? "INSERT INTO incidents (group_key, status, opened_at_ms, body, id) "
                               "VALUES (?, ?, ?, ?, ?)"
                             : "UPDATE incidents SET group_key = ?, status = ?, opened_at_ms = ?, "
                               "body = ? WHERE id = ?");
            statement->bind(1, incident.group_key)
                .bind(2, to_string(incident.status))
                .bind(3, to_millis(incident.opened_at))
                .bind(4, incident_body(incident))
                .bind(5, incident.id);
            try {
                statement->run();
            } catch (const StoreError& failure) {
                throw StoreError("incident " + incident.id +
                                 " cannot be written: " + failure.what());
            }
            if (connection.changes() != 1) {
                throw StoreError("incident " + incident.id + " does not exist");
            }
        }
        {
            auto upsert = connection.statement(
                "INSERT INTO incident_alerts (incident_id, fingerprint, firing, last_signal_id, "
                "updated_at_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (incident_id, fingerprint) "
                "DO UPDATE SET firing = excluded.firing, last_signal_id = excluded.last_signal_id, "
                "updated_at_ms = excluded.updated_at_ms");
            for (const auto& write : grouped.alerts) {
                upsert->bind(1, write.incident_id)
                    .bind(2, write.alert.fingerprint)
                    .bind(3, std::int64_t{write.alert.firing ? 1 : 0})
                    .bind(4, write.alert.last_signal_id)
                    .bind(5, to_millis(write.alert.updated_at));
                upsert->run();
                upsert->reset();
            }
        }
        {
            auto counters = connection.statement(
                "UPDATE incidents SET alert_count = ?, firing_count = ?, signal_count = ? "
                "WHERE id = ?");
            for (const auto& [id, counts] : grouped.counters) {
                counters->bind(1, counts.alerts)
                    .bind(2, counts.firing)
                    .bind(3, counts.signals)
                    .bind(4, id);
                counters->run();
                counters->reset();
            }
        }
        for (const AuditEntry& entry : grouped.audit) {
            connection.append_audit(entry);
        }
    }

    SqliteDatabase database_;
    SqliteStoreOptions options_;
};

}  // namespace

std::vector<EncodedSignal> encode_signals(std::vector<Signal> signals) {
    std::vector<EncodedSignal> encoded;
    encoded.reserve(signals.size());
    for (Signal& signal : signals) {
        std::string text = json(signal).dump();
        encoded.push_back({std::move(signal), std::move(text)});
    }
    return encoded;
}

std::unique_ptr<SqliteStore> open_sqlite_store(const fs::path& path,
                                               const SqliteStoreOptions& options) {
    return std::make_unique<SqliteStoreImplementation>(path, options);
}

}  // namespace mitigate
