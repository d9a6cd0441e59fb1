// A thread that runs one step function over and over: after each step it sleeps until the
// time the step says something is next due, or until wake() says something arrived. The
// lifecycle engine, the chat notifier and the chat request queue each run on one.
//
// Deadlines are read from the injected Clock, so a test with a ManualClock advances the
// clock and calls wake() instead of sleeping. The sleep is bounded (longest_sleep) as a
// backstop for a clock that jumps.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "runtime/core/clock.h"

namespace mitigate {

class WakeableLoop {
  public:
    // Returns when the next step is due, or nothing when only a wake() brings work. A step
    // that throws is logged by the caller's `on_error` and retried after `retry_after`.
    using Step = std::function<std::optional<TimePoint>()>;

    WakeableLoop(const Clock& clock, Step step, std::function<void(const std::exception&)> on_error,
                 std::chrono::milliseconds retry_after = std::chrono::seconds(5),
                 std::chrono::milliseconds longest_sleep = std::chrono::seconds(60));
    ~WakeableLoop();  // stop()s
    WakeableLoop(const WakeableLoop&) = delete;
    WakeableLoop& operator=(const WakeableLoop&) = delete;

    void start();
    // Lets the step in progress finish, then joins. Idempotent.
    void stop();
    void wake();

  private:
    void run();

    const Clock& clock_;
    Step step_;
    std::function<void(const std::exception&)> on_error_;
    std::chrono::milliseconds retry_after_;
    std::chrono::milliseconds longest_sleep_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable signal_;
    bool woken_ = false;
    bool stopping_ = false;
};

}  // namespace mitigate
