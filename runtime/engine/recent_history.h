// What policy's rate limits, cooldowns and circuit breaker look back at: the mitigations
// that started (reached applying) within the longest of their windows, kept in memory so
// that a decision never lists the store. Filled at start from the store, then by the owner
// of transitions as mitigations start.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "runtime/core/model.h"
#include "runtime/policy/policy_engine.h"

namespace mitigate {

class RecentHistory {
  public:
    explicit RecentHistory(Duration window) : window_(window) {}

    // A mitigation that started at `at`, with where it ran (and its failure, if it has one).
    void started(const Mitigation& mitigation, const std::string& service,
                 const std::string& environment, TimePoint at);
    // A start recorded for a decision whose commit was then refused.
    void forget(const std::string& id);
    // Automation failed on a started mitigation at `at` (its first failure counts; the
    // circuit breaker counts mitigations, not retries: a revert failing for hours counts at
    // its first failure, `mitigation.failed_at` if it has one, else `at`). One that started
    // before the window (a TTL revert hours later) is taken back in, its start as old as
    // its creation.
    void failed(const Mitigation& mitigation, const std::string& service,
                const std::string& environment, TimePoint at);
    // It reached a final state: a later failure of it cannot happen; forget that it failed.
    void ended(const std::string& id);
    // A person reset the circuit breaker at `at`: earlier failures no longer count.
    void reset_breaker(TimePoint at);
    PolicyHistory history(TimePoint now) const;
    Duration window() const { return window_; }

  private:
    Duration window_;
    mutable std::mutex mutex_;
    mutable std::map<std::string, PastMitigation> by_id_;  // pruned as it is read
    std::optional<TimePoint> breaker_reset_at_;
    // Open mitigations whose first failure was counted, and when: bounded by the open ones.
    std::map<std::string, TimePoint> failed_once_;
};

// The longest window any constraint of `policies` looks back over (at least an hour).
Duration history_window(const PolicySet& policies);

}  // namespace mitigate
