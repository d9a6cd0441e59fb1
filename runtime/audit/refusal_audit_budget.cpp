#include "runtime/audit/refusal_audit_budget.h"

#include <chrono>
#include <utility>

namespace mitigate {

std::optional<std::int64_t> RefusalAuditBudget::admit(TimePoint now) {
    std::lock_guard lock(mutex_);
    const std::int64_t minute =
        std::chrono::duration_cast<std::chrono::minutes>(now.time_since_epoch()).count();
    if (minute != minute_) {
        minute_ = minute;
        audited_ = 0;
    }
    if (audited_ >= per_minute_) {
        ++unaudited_;
        return std::nullopt;
    }
    ++audited_;
    return std::exchange(unaudited_, 0);
}

}  // namespace mitigate
