#include "runtime/engine/open_mitigations.h"

#include "runtime/engine/resource_claims.h"

namespace mitigate {

std::string target_key(const Action& action) {
    // The unit separator cannot appear in the names a plan is checked against.
    return action.provider + '\x1f' + action.action + '\x1f' + action.target;
}

bool OpenMitigations::update(const Mitigation& mitigation) {
    std::lock_guard lock(mutex_);
    std::optional<std::uint64_t> arrival;
    const auto found = by_id_.find(mitigation.id);
    if (found != by_id_.end()) {
        if (found->second.snapshot->version >= mitigation.version) {
            return false;
        }
        arrival = found->second.arrival;  // a new version keeps its place in the queue
        erase_locked(found->second);
    }
    if (is_final(mitigation.state)) {
        return true;
    }
    if (!arrival) {
        arrival = next_arrival_++;
    }
    const Order order{mitigation.created_at, *arrival, mitigation.id};
    by_age_.insert(order);
    by_target_[target_key(mitigation.proposal.action)].insert(order);
    if (mitigation.plan) {
        by_resource_[resource_key(mitigation.proposal.action, *mitigation.plan)].insert(order);
    }
    if (!mitigation.proposal.incident_id.empty()) {
        by_incident_[mitigation.proposal.incident_id].insert(mitigation.id);
    }
    by_id_.emplace(mitigation.id, Entry{std::make_shared<const Mitigation>(mitigation), *arrival});
    return true;
}

void OpenMitigations::erase_locked(const Entry& entry) {
    const Mitigation& mitigation = *entry.snapshot;
    const Order order{mitigation.created_at, entry.arrival, mitigation.id};
    by_age_.erase(order);
    const std::string key = target_key(mitigation.proposal.action);
    if (auto target = by_target_.find(key); target != by_target_.end()) {
        target->second.erase(order);
        if (target->second.empty()) {
            by_target_.erase(target);
        }
    }
    if (mitigation.plan) {
        const std::string resource = resource_key(mitigation.proposal.action, *mitigation.plan);
        if (auto held = by_resource_.find(resource); held != by_resource_.end()) {
            held->second.erase(order);
            if (held->second.empty()) {
                by_resource_.erase(held);
            }
        }
    }
    if (auto incident = by_incident_.find(mitigation.proposal.incident_id);
        incident != by_incident_.end()) {
        incident->second.erase(mitigation.id);
        if (incident->second.empty()) {
            by_incident_.erase(incident);
        }
    }
    // Last: `entry` lives in by_id_.
    const std::string id = mitigation.id;
    by_id_.erase(id);
}

MitigationSnapshot OpenMitigations::find(const std::string& id) const {
    std::lock_guard lock(mutex_);
    const auto found = by_id_.find(id);
    return found == by_id_.end() ? nullptr : found->second.snapshot;
}

std::vector<MitigationSnapshot> OpenMitigations::all() const {
    std::lock_guard lock(mutex_);
    std::vector<MitigationSnapshot> result;
    result.reserve(by_age_.size());
    for (const auto& [created_at, arrival, id] : by_age_) {
        result.push_back(by_id_.at(id).snapshot);
    }
    return result;
}

std::vector<MitigationSnapshot> OpenMitigations::on_target(const std::string& key) const {
    std::lock_guard lock(mutex_);
    std::vector<MitigationSnapshot> result;
    if (const auto target = by_target_.find(key); target != by_target_.end()) {
        for (const auto& [created_at, arrival, id] : target->second) {
            result.push_back(by_id_.at(id).snapshot);
        }
    }
    return result;
}

std::vector<MitigationSnapshot> OpenMitigations::on_resource(const std::string& key) const {
    std::lock_guard lock(mutex_);
    std::vector<MitigationSnapshot> result;
    if (const auto held = by_resource_.find(key); held != by_resource_.end()) {
        for (const auto& [created_at, arrival, id] : held->second) {
            result.push_back(by_id_.at(id).snapshot);
        }
    }
    return result;
}

std::vector<std::string> OpenMitigations::of_incident(const std::string& incident_id) const {
    std::lock_guard lock(mutex_);
    const auto found = by_incident_.find(incident_id);
    return found == by_incident_.end()
               ? std::vector<std::string>{}
               : std::vector<std::string>(found->second.begin(), found->second.end());
}

std::vector<std::string> OpenMitigations::in_state(MitigationState state) const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> result;
    for (const auto& [created_at, arrival, id] : by_age_) {
        if (by_id_.at(id).snapshot->state == state) {
            result.push_back(id);
        }
    }
    return result;
}

std::map<MitigationState, std::size_t> OpenMitigations::count_by_state() const {
    std::lock_guard lock(mutex_);
    std::map<MitigationState, std::size_t> counts;
    for (const auto& [id, entry] : by_id_) {
        ++counts[entry.snapshot->state];
    }
    return counts;
}

std::size_t OpenMitigations::size() const {
    std::lock_guard lock(mutex_);
    return by_id_.size();
}

}  // namespace mitigate
