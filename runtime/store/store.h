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
    std::vector<MitigationState> states;  // empty: any state
    std::size_t limit = 100;
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
