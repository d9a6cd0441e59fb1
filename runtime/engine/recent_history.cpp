#include "runtime/engine/recent_history.h"

#include <algorithm>

namespace mitigate {
namespace {

PastMitigation past_of(const Mitigation& mitigation, const std::string& service,
                       const std::string& environment, TimePoint started_at) {
    PastMitigation entry;
    entry.provider = mitigation.proposal.action.provider;
    entry.action = mitigation.proposal.action.action;
    entry.target = mitigation.proposal.action.target;
    entry.service = service;
    entry.environment = environment;
    entry.started_at = started_at;
    entry.verification_failed_at = mitigation.failed_at;
    return entry;
}

}  // namespace

void RecentHistory::started(const Mitigation& mitigation, const std::string& service,
                            const std::string& environment, TimePoint at) {
    PastMitigation entry = past_of(mitigation, service, environment, at);
    std::lock_guard lock(mutex_);
    by_id_.insert_or_assign(mitigation.id, std::move(entry));
}

void RecentHistory::forget(const std::string& id) {
    std::lock_guard lock(mutex_);
    by_id_.erase(id);
}

void RecentHistory::failed(const Mitigation& mitigation, const std::string& service,
                           const std::string& environment, TimePoint at) {
    std::lock_guard lock(mutex_);
    // Counted once while it is open, however often its revert fails and however long: an
    // entry pruned from the window is not counted again by a later retry.
    const TimePoint first = mitigation.failed_at.value_or(at);
    if (!failed_once_.emplace(mitigation.id, first).second) {
        return;
    }
    auto found = by_id_.find(mitigation.id);
    if (found == by_id_.end()) {
        if (first < at - window_) {
            return;  // its first failure is already outside every window
        }
        // Outside any rate limit's window by now: its start is as old as its creation.
        PastMitigation entry = past_of(mitigation, service, environment, mitigation.created_at);
        found = by_id_.emplace(mitigation.id, std::move(entry)).first;
    }
    if (!found->second.verification_failed_at) {
        found->second.verification_failed_at = first;
    }
}

void RecentHistory::ended(const std::string& id) {
    std::lock_guard lock(mutex_);
    failed_once_.erase(id);
}

void RecentHistory::reset_breaker(TimePoint at) {
    std::lock_guard lock(mutex_);
    if (!breaker_reset_at_ || *breaker_reset_at_ < at) {
        breaker_reset_at_ = at;
    }
}

PolicyHistory RecentHistory::history(TimePoint now) const {
    PolicyHistory result;
    std::lock_guard lock(mutex_);
    // Kept while its start or its failure is within the window: a revert that conflicts
    // hours after the start still counts for the breaker.
    std::erase_if(by_id_, [&](const auto& entry) {
        const PastMitigation& past = entry.second;
        const TimePoint last =
            std::max(past.started_at, past.verification_failed_at.value_or(past.started_at));
        return last < now - window_;
    });
    result.circuit_breaker_reset_at = breaker_reset_at_;
    result.mitigations.reserve(by_id_.size());
    for (const auto& [id, past] : by_id_) {
        result.mitigations.push_back(past);
    }
    return result;
}

Duration history_window(const PolicySet& policies) {
    Duration longest = std::chrono::hours(1);
    for (const RateLimit& limit : policies.rate_limits) {
        longest = std::max(longest, limit.per);
    }
    if (policies.cooldown) {
        longest = std::max(longest, policies.cooldown->after);
    }
    if (policies.circuit_breaker) {
        longest = std::max(longest, policies.circuit_breaker->window);
    }
    return longest;
}

}  // namespace mitigate
