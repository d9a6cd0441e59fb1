// Mitigations and their transition journal: the durable half of the engine.
//
// The contract every implementation keeps:
// - A transition is atomic: the mitigation row, its journal entry and its audit record
//   are written together or not at all, and durably before transition() returns.
// - A transition is compare-and-set: it names the version it read and is refused if the
//   row has moved on, so two writers never both win.
// - The journal is append-only.
// - Failure to reach or write the store throws StoreError.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/model.h"
#include "runtime/store/audit_log.h"

namespace mitigate {

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
    std::optional<TimePoint> updated_after;  // only those last changed at or after
    std::size_t limit = 100;
};

// The common filter: mitigations in any of `states`.
inline MitigationFilter in_states(std::vector<MitigationState> states, std::size_t limit = 100) {
    MitigationFilter filter;
    filter.states = std::move(states);
    filter.limit = limit;
    return filter;
}

class MitigationStore {
  public:
    virtual ~MitigationStore() = default;

    // Inserts a new mitigation (its version must be 1) with its first journal entry and an
    // audit record, atomically. Throws StoreError if the id exists.
    virtual void create_mitigation(const Mitigation& mitigation, std::string_view actor,
                                   std::string_view reason) = 0;
    virtual TransitionResult transition(const TransitionRequest& request) = 0;
    // Several transitions of one mitigation, each starting from the version the one before
    // left, committed together or not at all (one fsync for steps that have no effect in
    // between: planned, decided, applying). The result is the last step's, or the refused
    // step's with the mitigation as it is (nothing of the chain written).
    virtual TransitionResult transition_chain(const std::vector<TransitionRequest>& chain) = 0;

    virtual std::optional<Mitigation> find_mitigation(std::string_view id) = 0;
    // Newest first.
    virtual std::vector<Mitigation> list_mitigations(const MitigationFilter& filter) = 0;
    virtual std::vector<JournalEntry> journal(std::string_view mitigation_id) = 0;

    // A person reset the policy's circuit breaker: failures before `at` no longer count.
    // Stored with an audit record (policy.circuit_breaker_reset), atomically.
    virtual void record_circuit_breaker_reset(TimePoint at, std::string_view actor,
                                              std::string_view reason) = 0;
    // The latest reset, if any.
    virtual std::optional<TimePoint> last_circuit_breaker_reset() = 0;
};

}  // namespace mitigate
