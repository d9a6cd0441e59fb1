// How many refusals of requests from outside are written to the audit log each minute.
// Anyone who reaches the API or the Slack routes can cause refusals (a bad token, a bad
// signature), so auditing every one would let a flood grow the log without bound. Up to
// the budget each is audited; past it they are only counted, and the next one audited
// says how many were not ("unaudited_before"), so the log still shows that a flood
// happened. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>

#include "runtime/core/clock.h"

namespace mitigate {

class RefusalAuditBudget {
  public:
    explicit RefusalAuditBudget(int per_minute = 60) : per_minute_(per_minute) {}

    // Whether to audit a refusal at `now`: the number of refusals left unaudited since the
    // last audited one (0 if none), or nullopt when the minute's budget is spent.
    std::optional<std::int64_t> admit(TimePoint now);

  private:
    const int per_minute_;
    std::mutex mutex_;
    std::int64_t minute_ = 0;
    int audited_ = 0;
    std::int64_t unaudited_ = 0;
};

}  // namespace mitigate
