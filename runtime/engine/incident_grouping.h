// Signals into incidents, decided in memory so that grouping an alert costs the same
// whatever the size of its incident: each open incident is held with the set of its
// alerts (fingerprints) and of those still firing.
//
//   group key   the engine.group_by labels present on the signal ("service=checkout"),
//               else its fingerprint; a signal with an isolation key (a drill's) is
//               grouped only with signals of the same key
//   firing      joins the open incident of its key, or opens one
//   resolved    its alert stops firing; the incident resolves with its last firing alert;
//               the resolution of an alert no open incident holds changes nothing
//
// The signal intake (signal_intake.h) is the only writer: group() decides for a batch
// without changing anything, the store writes what it decided in the batch's transaction,
// and apply() takes it into the index once committed. find() may be called from any
// thread: it answers for open incidents and every incident a batch touched since start.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/core/model.h"
#include "runtime/store/incident_store.h"

namespace mitigate {

struct GroupingBatch;

class IncidentGrouping {
  public:
    explicit IncidentGrouping(std::vector<std::string> group_by);
    ~IncidentGrouping();
    IncidentGrouping(const IncidentGrouping&) = delete;
    IncidentGrouping& operator=(const IncidentGrouping&) = delete;

    // At start: every open incident and the alerts of each.
    void load(const std::vector<Incident>& open,
              const std::vector<std::pair<std::string, IncidentAlert>>& alerts);

    // Decides for `signals`, in order, without changing the index.
    std::unique_ptr<GroupingBatch> group(const std::vector<const Signal*>& signals,
                                         TimePoint now) const;
    // Takes a batch the store has committed into the index.
    void apply(const GroupingBatch& batch);

    // The incident as the last committed batch left it; null when it was neither open at
    // start nor touched since (read it from the store, then remember() it).
    std::shared_ptr<const Incident> find(const std::string& id) const;
    // An incident read from the store. Kept only if nothing newer is known: a batch may have
    // moved it on between the read and this call.
    void remember(const Incident& incident);
    std::size_t open_incidents() const;

    std::string group_key(const Signal& signal) const;

  private:
    struct OpenIncident;
    std::vector<std::string> group_by_;
    // Touched only by the writer (group, apply, load).
    std::unordered_map<std::string, std::unique_ptr<OpenIncident>> open_by_key_;
    // Takes what a committed batch left (newer than anything known).
    void know(const Incident& incident);
    void know_locked(const Incident& incident);

    // Every open incident, and the most recent resolved ones (at most
    // resolved_remembered, the oldest forgotten first): bounded, and O(1) to keep.
    static constexpr std::size_t resolved_remembered = 10000;
    mutable std::mutex known_mutex_;
    std::unordered_map<std::string, std::shared_ptr<const Incident>> known_;
    std::deque<std::string> resolved_order_;
};

// What group() decided for one batch.
struct GroupingBatch {
    struct Draft;
    GroupedSignals writes;  // for the store
    // Incidents opened by the batch, each with the signal that opened it (for playbooks).
    std::vector<std::pair<Incident, std::vector<Signal>>> opened;
    std::vector<std::string> resolved;  // ids of incidents the batch resolved
    std::vector<std::unique_ptr<Draft>> drafts;

    GroupingBatch();
    ~GroupingBatch();
};

}  // namespace mitigate
