// Time for everything that decides: TTLs, approval expiry, windows, cooldowns.
// Code takes a Clock& instead of calling system_clock::now() so that tests and the
// playbook sandbox can freeze or advance time deterministically.
#pragma once

#include <chrono>

namespace mitigate {

using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;
using Duration = std::chrono::milliseconds;

class Clock {
  public:
    virtual ~Clock() = default;
    virtual TimePoint now() const = 0;
};

// The wall clock, truncated to milliseconds (the resolution of stored timestamps).
class SystemClock final : public Clock {
  public:
    TimePoint now() const override;
};

// A clock that only moves when told to. For tests and deterministic evaluation.
class ManualClock final : public Clock {
  public:
    explicit ManualClock(TimePoint start) : now_(start) {}
    TimePoint now() const override { return now_; }
    void advance(Duration by) { now_ += by; }
    void set(TimePoint to) { now_ = to; }

  private:
    TimePoint now_;
};

}  // namespace mitigate
