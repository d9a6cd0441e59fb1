// Time for everything that decides: TTLs, approval expiry, windows, cooldowns.
// Code takes a Clock& instead of calling system_clock::now() so that tests and the
// playbook sandbox can freeze or advance time deterministically.
#pragma once

#include <atomic>

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
// Safe to move from a test thread while the runtime's threads read it.
class ManualClock final : public Clock {
  public:
    explicit ManualClock(TimePoint start) : now_(start.time_since_epoch().count()) {}
    TimePoint now() const override { return TimePoint{Duration{now_.load()}}; }
    void advance(Duration by) { now_ += by.count(); }
    void set(TimePoint to) { now_ = to.time_since_epoch().count(); }

  private:
    std::atomic<Duration::rep> now_;
};

}  // namespace mitigate
