#include "runtime/core/wakeable_loop.h"

#include <algorithm>

namespace mitigate {

WakeableLoop::WakeableLoop(const Clock& clock, Step step,
                           std::function<void(const std::exception&)> on_error,
                           std::chrono::milliseconds retry_after,
                           std::chrono::milliseconds longest_sleep)
    : clock_(clock),
      step_(std::move(step)),
      on_error_(std::move(on_error)),
      retry_after_(retry_after),
      longest_sleep_(longest_sleep) {}

WakeableLoop::~WakeableLoop() {
    stop();
}

void WakeableLoop::start() {
    if (thread_.joinable()) {
        return;
    }
    {
        std::lock_guard lock(mutex_);
        stopping_ = false;
    }
    thread_ = std::thread([this] { run(); });
}

void WakeableLoop::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    signal_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void WakeableLoop::wake() {
    {
        std::lock_guard lock(mutex_);
        woken_ = true;
    }
    signal_.notify_one();
}

void WakeableLoop::run() {
    while (true) {
        std::optional<TimePoint> next;
        try {
            next = step_();
        } catch (const std::exception& failure) {
            on_error_(failure);
            next = clock_.now() + retry_after_;
        }
        std::unique_lock lock(mutex_);
        if (stopping_) {
            return;
        }
        if (!woken_) {
            auto sleep = longest_sleep_;
            if (next) {
                sleep = std::clamp(
                    std::chrono::duration_cast<std::chrono::milliseconds>(*next - clock_.now()),
                    std::chrono::milliseconds(0), longest_sleep_);
            }
            signal_.wait_for(lock, sleep, [this] { return woken_ || stopping_; });
        }
        woken_ = false;
        if (stopping_) {
            return;
        }
    }
}

}  // namespace mitigate
