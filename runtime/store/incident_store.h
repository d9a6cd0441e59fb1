// Signals and the incidents they are grouped into.
//
// A signal is stored and grouped in one durable transaction, before anyone is told
// "accepted": the grouping itself is the engine's (runtime/engine/incident_grouping.h),
// which hands the store what to write. Membership is a row per alert of an incident, so
// adding an alert writes that row and the incident's counters, never the whole incident:
// the cost of an alert does not grow with the size of its incident.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/model.h"
#include "runtime/store/audit_log.h"

namespace mitigate {

// One alert of an incident: the last signal seen for its fingerprint.
struct IncidentAlert {
    std::string fingerprint;
    bool firing = true;
    std::string last_signal_id;
    TimePoint updated_at;
    bool operator==(const IncidentAlert&) const = default;
};

// What grouping one batch of new signals decided, in the order it decided it.
struct GroupedSignals {
    struct IncidentWrite {
        Incident incident;  // as it is at the end of the batch (counters aside)
        bool create = false;
    };
    struct AlertWrite {
        std::string incident_id;
        IncidentAlert alert;
    };
    // Incidents opened (create) or resolved, in order: a group resolved and opened again in
    // one batch resolves the old incident before the new one is inserted.
    std::vector<IncidentWrite> incidents;
    std::vector<AlertWrite> alerts;  // inserted, or replacing the row of that fingerprint
    // Every incident this batch touched, with its counters after the batch.
    std::map<std::string, Incident::Counters> counters;
    // Parallel to the signals grouped: the incident each joined, empty for none (the
    // resolution of an alert nobody tracks).
    std::vector<std::string> signal_incidents;
    std::vector<AuditEntry> audit;
};

// Decides, for the signals that are new (a redelivered one never reaches it), what to
// write. Called inside the store's transaction; must not touch the store.
using SignalGrouping = std::function<GroupedSignals(const std::vector<const Signal*>& new_signals)>;

// A signal with the JSON it is stored as, encoded by the caller: encoding costs about as
// much as the rest of storing it, and the callers' threads are many while the store's
// writer is one.
struct EncodedSignal {
    Signal signal;
    std::string json;
};

std::vector<EncodedSignal> encode_signals(std::vector<Signal> signals);

struct IncidentFilter {
    std::optional<IncidentStatus> status;
    std::size_t limit = 100;
};

class IncidentStore {
  public:
    virtual ~IncidentStore() = default;

    // Stores the signals whose id is new and what `group` decides for them, atomically
    // and durably, and returns the new ones (pointing into `signals`). A redelivered
    // signal (same id) is skipped, which is what makes webhook retries harmless. Throws
    // StoreError: nothing written.
    virtual std::vector<const Signal*> record_signals(const std::vector<EncodedSignal>& signals,
                                                      const SignalGrouping& group) = 0;
    // Signals recorded but never grouped (only an older mitigate left such), oldest
    // first; group_stored_signals() groups them as record_signals() would have.
    virtual std::vector<Signal> ungrouped_signals(std::size_t limit) = 0;
    virtual void group_stored_signals(const std::vector<Signal>& signals,
                                      const SignalGrouping& group) = 0;

    virtual std::vector<Signal> find_signals(const std::vector<std::string>& ids) = 0;
    // The last signal of each alert of an incident, firing alerts first.
    virtual std::vector<Signal> incident_signals(std::string_view incident_id,
                                                 std::size_t limit) = 0;
    virtual std::optional<Incident> find_incident(std::string_view id) = 0;
    // Newest first.
    virtual std::vector<Incident> list_incidents(const IncidentFilter& filter) = 0;
    // Its alerts, firing first, then by fingerprint.
    virtual std::vector<IncidentAlert> incident_alerts(std::string_view incident_id,
                                                       std::size_t limit) = 0;
    // The fingerprints of every open incident's alerts, firing or not, for the engine to
    // rebuild its grouping index at start: {incident id, alert}.
    virtual std::vector<std::pair<std::string, IncidentAlert>> open_incident_alerts() = 0;

    // Playbooks run once per incident, after it opened; a crash in between leaves the
    // incident here and the engine runs them at its next start. Oldest first.
    virtual std::vector<Incident> incidents_awaiting_playbooks(std::size_t limit) = 0;
    virtual void mark_playbooks_run(std::string_view incident_id, TimePoint at) = 0;
};

}  // namespace mitigate
