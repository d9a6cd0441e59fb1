// Where mitigations, their transition journal and the audit log live. An interface, so
// that a PostgreSQL store can later serve several runtime replicas; SQLite
// (sqlite_store.h) is the embedded default.
//
// The contract every implementation keeps:
// - A transition is atomic: the mitigation row, its journal entry and its audit record
//   are written together or not at all, and durably before transition() returns.
// - A transition is compare-and-set: it names the version it read and is refused if the
//   row has moved on, so two writers never both win.
// - The journal and the audit log are append-only.
// - Failure to reach or write the store throws StoreError: the caller must stop and not
//   perform the side effect the transition was announcing.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/audit/audit_chain.h"
#include "runtime/core/model.h"

namespace mitigate {

class StoreError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// What an audit record says before the store numbers and chains it.
struct AuditEntry {
    TimePoint at;
    std::string actor;
    std::string event;
    std::string subject;
    nlohmann::json details = nlohmann::json::object();
};

// One line of a mitigation's journal: the move to `version`.
struct JournalEntry {
    std::string mitigation_id;
    std::int64_t version = 0;
    std::optional<MitigationState> from;  // empty for the creation
    MitigationState to = MitigationState::proposed;
    TimePoint at;
    std::string actor;
    std::string reason;
    bool operator==(const JournalEntry&) const = default;
};

struct TransitionRequest {
    // The mitigation as it should be after the transition. The store sets its version
    // to expected_version + 1 and its updated_at to `at`.
    Mitigation next;
    std::int64_t expected_version = 0;
    TimePoint at;
    std::string actor;
    std::string reason;
    nlohmann::json audit_details = nlohmann::json::object();  // added to the audit record
};

enum class TransitionOutcome {
    done,              // written
    not_found,         // no mitigation with that id
    version_conflict,  // someone else moved it since expected_version
    not_allowed,       // no such edge in the state machine, or an immutable field changed
};

struct TransitionResult {
    TransitionOutcome outcome = TransitionOutcome::done;
    std::optional<Mitigation> current;  // the stored mitigation after the call
    std::string message;                // for everything but done
};

struct MitigationFilter {
    std::vector<MitigationState> states;     // empty: any state
    std::string incident_id;                 // empty: any incident
    std::optional<TimePoint> created_after;  // only those created at or after
    std::size_t limit = 100;
};

// The common filter: mitigations in any of `states`.
inline MitigationFilter in_states(std::vector<MitigationState> states, std::size_t limit = 100) {
    MitigationFilter filter;
    filter.states = std::move(states);
    filter.limit = limit;
    return filter;
}

// One step of grouping signals: the incident as it should be afterwards, the signals it
// consumed (marked processed in the same transaction) and the audit record, if the step
// is worth one (opened, resolved).
struct IncidentWrite {
    Incident incident;
    bool create = false;
    std::vector<std::string> processed_signal_ids;
    std::optional<AuditEntry> audit;
};

struct IncidentFilter {
    std::optional<IncidentStatus> status;
    std::size_t limit = 100;
};

// An API token as stored: never the token, only its SHA-256.
struct ApiToken {
    std::string name;                 // the identity requests made with it are recorded under
    std::string role;                 // viewer, approver, operator, admin (runtime/server decides)
    std::vector<std::string> groups;  // for approval rules
    std::string token_sha256;         // hex
    TimePoint created_at;
    std::optional<TimePoint> revoked_at;
    bool operator==(const ApiToken&) const = default;
};

// The chat message that shows a mitigation (runtime/chat): one per mitigation, updated
// in place as its state changes.
struct ChatMessage {
    std::string mitigation_id;
    std::string channel;  // the channel id the chat service answered with
    std::string ts;       // the chat service's message id (Slack's "ts")
    bool operator==(const ChatMessage&) const = default;
};

// One run of a chaos drill (runtime/drills), as stored. `status` is running or cleaning
// while it goes, then passed, failed or aborted; a scheduled run that did not start is
// stored as skipped or missed, so the history says so.
struct DrillRun {
    std::string id;
    std::string drill;
    std::string status;
    TimePoint started_at;
    nlohmann::json body = nlohmann::json::object();  // the definition, phase, timings, report
    bool operator==(const DrillRun&) const = default;
};

class Store {
  public:
    virtual ~Store() = default;

    // Inserts a new mitigation (its version must be 1) with its first journal entry and an
    // audit record, atomically. Throws StoreError if the id exists.
    virtual void create_mitigation(const Mitigation& mitigation, std::string_view actor,
                                   std::string_view reason) = 0;
    virtual TransitionResult transition(const TransitionRequest& request) = 0;

    virtual std::optional<Mitigation> find_mitigation(std::string_view id) = 0;
    // Newest first.
    virtual std::vector<Mitigation> list_mitigations(const MitigationFilter& filter) = 0;
    virtual std::vector<JournalEntry> journal(std::string_view mitigation_id) = 0;

    // ---- Signals and incidents ----
    // Stores the signals whose id is new, durably, and returns them; a redelivered signal
    // (same id) is skipped, which is what makes webhook retries harmless.
    virtual std::vector<Signal> record_signals(const std::vector<Signal>& signals) = 0;
    // Signals recorded but not yet grouped into an incident, oldest first.
    virtual std::vector<Signal> pending_signals(std::size_t limit) = 0;
    virtual std::size_t count_pending_signals() = 0;
    virtual std::vector<Signal> find_signals(const std::vector<std::string>& ids) = 0;
    // Atomic: every incident, processed mark and audit record, or nothing (one commit for
    // a whole batch of signals). Throws StoreError when `create` names an existing id or
    // a second open incident of a group.
    virtual void write_incidents(const std::vector<IncidentWrite>& writes) = 0;
    // Signals that change no incident (a resolution of an alert nobody tracks).
    virtual void mark_signals_processed(const std::vector<std::string>& ids) = 0;
    virtual std::optional<Incident> find_incident(std::string_view id) = 0;
    virtual std::optional<Incident> find_open_incident(std::string_view group_key) = 0;
    // Newest first.
    virtual std::vector<Incident> list_incidents(const IncidentFilter& filter) = 0;

    // ---- API tokens ----
    // Throws StoreError if the name is taken. Audited, without the digest.
    virtual void create_api_token(const ApiToken& token, std::string_view actor) = 0;
    virtual std::optional<ApiToken> find_api_token(std::string_view token_sha256) = 0;
    virtual std::vector<ApiToken> list_api_tokens() = 0;
    // False when no unrevoked token has that name.
    virtual bool revoke_api_token(std::string_view name, TimePoint at, std::string_view actor) = 0;

    // ---- Chat messages and cursors ----
    virtual std::optional<ChatMessage> find_chat_message(std::string_view mitigation_id) = 0;
    // Inserts, or replaces the one stored for that mitigation.
    virtual void save_chat_message(const ChatMessage& message) = 0;
    // A named position (an audit sequence) that a follower of the audit log has handled.
    virtual std::optional<std::int64_t> read_cursor(std::string_view name) = 0;
    virtual void write_cursor(std::string_view name, std::int64_t position) = 0;

    // ---- Drill runs ----
    // Inserts, or replaces the run with that id.
    virtual void save_drill_run(const DrillRun& run) = 0;
    virtual std::optional<DrillRun> find_drill_run(std::string_view id) = 0;
    // Newest first; `drill` empty for every drill, `statuses` empty for any.
    virtual std::vector<DrillRun> list_drill_runs(std::string_view drill,
                                                  const std::vector<std::string>& statuses,
                                                  std::size_t limit) = 0;

    // Audit events that are not transitions (config loaded, approval refused, ...).
    virtual AuditRecord append_audit(const AuditEntry& entry) = 0;
    // Up to `limit` records with sequence > after_sequence, in order.
    virtual std::vector<AuditRecord> audit_records(std::int64_t after_sequence,
                                                   std::size_t limit) = 0;
    // The last `count` records, oldest first.
    virtual std::vector<AuditRecord> audit_tail(std::size_t count) = 0;
    virtual AuditHead audit_head() = 0;

    // Walks the whole log, checking every link and the head.
    virtual AuditChainVerifier verify_audit_chain() = 0;
};

}  // namespace mitigate
