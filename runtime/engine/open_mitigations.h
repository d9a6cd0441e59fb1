// Every open (not final) mitigation as last committed, kept in memory by the one owner of
// transitions (transitions.h) so that scheduling, queueing per target and merging equal
// proposals never read the store. Snapshots are shared and immutable: a reader keeps the
// one it got while the index moves on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/core/model.h"

namespace mitigate {

using MitigationSnapshot = std::shared_ptr<const Mitigation>;

// What one change at a time is serialized on: provider, action and target.
std::string target_key(const Action& action);

class OpenMitigations {
  public:
    // Takes `mitigation` if it is newer than the one held (by version); a final one leaves
    // the index. Mitigations created in the same millisecond are ordered as first given
    // here: load them oldest first. Returns false when an older version arrived late and was
    // ignored.
    bool update(const Mitigation& mitigation);

    MitigationSnapshot find(const std::string& id) const;
    // Oldest first.
    std::vector<MitigationSnapshot> all() const;
    // On one target_key(), oldest first.
    std::vector<MitigationSnapshot> on_target(const std::string& key) const;
    // With a plan on one resource_key() (resource_claims.h), oldest first.
    std::vector<MitigationSnapshot> on_resource(const std::string& key) const;
    std::vector<std::string> of_incident(const std::string& incident_id) const;
    // Ids of those in `state`.
    std::vector<std::string> in_state(MitigationState state) const;
    std::map<MitigationState, std::size_t> count_by_state() const;
    std::size_t size() const;

  private:
    // created_at, then the order this index first saw it (ids are random after the second,
    // and two proposals can share a millisecond): oldest first, and stable.
    using Order = std::tuple<TimePoint, std::uint64_t, std::string>;  // and the id
    struct Entry {
        MitigationSnapshot snapshot;
        std::uint64_t arrival = 0;
    };
    void erase_locked(const Entry& entry);

    mutable std::mutex mutex_;
    std::uint64_t next_arrival_ = 0;
    std::unordered_map<std::string, Entry> by_id_;
    std::set<Order> by_age_;
    std::unordered_map<std::string, std::set<Order>> by_target_;
    std::unordered_map<std::string, std::set<Order>> by_resource_;
    std::unordered_map<std::string, std::set<std::string>> by_incident_;
};

}  // namespace mitigate
