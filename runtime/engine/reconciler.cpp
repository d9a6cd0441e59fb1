#include "runtime/engine/reconciler.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace mitigate {

Reconciler::Reconciler(const Clock& clock, ReconcilerOptions options, ReconcilerCallbacks callbacks)
    : clock_(clock), options_(options), callbacks_(std::move(callbacks)) {
    options_.workers = std::max(1, options_.workers);
}

Reconciler::~Reconciler() {
    stop();
}

void Reconciler::start() {
    std::lock_guard lock(mutex_);
    if (!workers_.empty()) {
        return;
    }
    stopping_ = false;
    for (int index = 0; index < options_.workers; ++index) {
        workers_.emplace_back([this, index] { work(index); });
    }
}

void Reconciler::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    for (auto& worker : workers_) {
        worker.join();
    }
    workers_.clear();
}

void Reconciler::mark_dirty(const std::string& id) {
    if (dirty_set_.insert(id).second) {
        dirty_.push_back(id);
    }
}

void Reconciler::touch(const std::string& id) {
    {
        std::lock_guard lock(mutex_);
        mark_dirty(id);
    }
    changed_.notify_one();
}

void Reconciler::touch(const std::vector<std::string>& ids) {
    if (ids.empty()) {
        return;
    }
    {
        std::lock_guard lock(mutex_);
        for (const std::string& id : ids) {
            mark_dirty(id);
        }
    }
    changed_.notify_all();
}

void Reconciler::wake() {
    changed_.notify_all();
}

bool Reconciler::idle() {
    std::lock_guard lock(mutex_);
    return dirty_.empty() && ready_.empty() && running_ == 0 &&
           (timers_.empty() || timers_.begin()->first > clock_.now());
}

int Reconciler::failures(const std::string& id) {
    std::lock_guard lock(mutex_);
    const auto found = slots_.find(id);
    return found == slots_.end() ? 0 : found->second.failures;
}

std::optional<StepRetry> Reconciler::retry(const std::string& id) {
    std::lock_guard lock(mutex_);
    const auto found = slots_.find(id);
    if (found == slots_.end() || found->second.failures == 0 || !found->second.retry_at) {
        return std::nullopt;
    }
    const Slot& slot = found->second;
    return StepRetry{slot.failures, slot.failed_part, slot.last_error, *slot.retry_at};
}

Duration Reconciler::backoff(int failures) const {
    Duration delay = options_.first_retry;
    for (int i = 1; i < failures && delay < options_.longest_retry; ++i) {
        delay *= 2;
    }
    return std::min(delay, options_.longest_retry);
}

void Reconciler::set_timer(const std::string& id, Slot& slot, TimePoint at) {
    clear_timer(slot);
    slot.timer = timers_.emplace(at, id);
}

void Reconciler::clear_timer(Slot& slot) {
    if (slot.timer) {
        timers_.erase(*slot.timer);
        slot.timer.reset();
    }
}

void Reconciler::clear_ready(Slot& slot) {
    if (slot.ready_at) {
        ready_.erase(*slot.ready_at);
        slot.ready_at.reset();
    }
}

void Reconciler::promote_due_timers(TimePoint now) {
    while (!timers_.empty() && timers_.begin()->first <= now) {
        const std::string id = timers_.begin()->second;
        if (auto slot = slots_.find(id); slot != slots_.end()) {
            slot->second.timer.reset();
        }
        timers_.erase(timers_.begin());
        mark_dirty(id);
    }
}

void Reconciler::evaluate_dirty(TimePoint now) {
    std::vector<std::string> ids;
    ids.swap(dirty_);
    dirty_set_.clear();
    for (const std::string& id : ids) {
        Slot& slot = slots_[id];
        if (slot.running) {
            mark_dirty(id);  // looked at again when its step ends
            continue;
        }
        clear_ready(slot);
        clear_timer(slot);
        Evaluation evaluation;
        try {
            evaluation = callbacks_.evaluate(id);
        } catch (const std::exception& failure) {
            // Reading what it needs failed (the store): that mitigation waits and retries.
            spdlog::error("mitigation {}: cannot decide its next step: {}", id, failure.what());
            ++slot.failures;
            set_timer(id, slot, now + backoff(slot.failures));
            continue;
        }
        if (!evaluation.open) {
            slots_.erase(id);
            continue;
        }
        if (slot.failed_at_version && *slot.failed_at_version != evaluation.version) {
            // Someone moved it: earlier failures were another step's; they neither delay
            // this one nor count as its attempts.
            slot.failed_at_version.reset();
            slot.retry_at.reset();
            slot.failures = 0;
            slot.last_error.clear();
            slot.failed_part.clear();
        }
        slot.step = evaluation.step;
        slot.provider = evaluation.provider;
        slot.version = evaluation.version;
        if (evaluation.step.kind == StepKind::none) {
            if (evaluation.step.due) {
                set_timer(id, slot, *evaluation.step.due);
            }
            continue;
        }
        if (slot.retry_at && *slot.retry_at > now) {
            set_timer(id, slot, *slot.retry_at);
            continue;
        }
        const std::pair<int, std::uint64_t> key{evaluation.step.priority(), next_order_++};
        ready_.emplace(key, id);
        slot.ready_at = key;
    }
}

std::optional<std::string> Reconciler::take(bool reserved) {
    for (auto entry = ready_.begin(); entry != ready_.end(); ++entry) {
        if (reserved && entry->first.first > 1) {
            break;  // ordered by priority: nothing further is for the reserved worker
        }
        Slot& slot = slots_[entry->second];
        if (!slot.provider.empty() && busy_providers_.contains(slot.provider)) {
            continue;  // left for when that provider is free
        }
        std::string id = entry->second;
        slot.ready_at.reset();
        ready_.erase(entry);
        return id;
    }
    return std::nullopt;
}

void Reconciler::work(int index) {
    const bool reserved = index == 0 && options_.workers > 1;
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        const TimePoint now = clock_.now();
        promote_due_timers(now);
        evaluate_dirty(now);
        const auto id = take(reserved);
        if (!id) {
            auto sleep = options_.longest_sleep;
            if (!timers_.empty()) {
                const auto until = std::chrono::duration_cast<std::chrono::milliseconds>(
                    timers_.begin()->first - clock_.now());
                sleep = std::clamp(until, std::chrono::milliseconds(1), sleep);
            }
            changed_.wait_for(lock, sleep);
            continue;
        }
        Slot& slot = slots_[*id];
        slot.running = true;
        ++running_;
        const NextStep step = slot.step;
        const std::string provider = slot.provider;
        const std::int64_t version = slot.version;
        if (!provider.empty()) {
            busy_providers_.insert(provider);
        }
        lock.unlock();
        StepResult result;
        try {
            result = callbacks_.run(*id, step);
        } catch (const std::exception& failure) {
            result = StepResult::retry(std::string("internal error: ") + failure.what(), 0, "");
        } catch (...) {
            result = StepResult::retry("internal error: an unknown exception", 0, "");
        }
        lock.lock();
        Slot& after = slots_[*id];
        after.running = false;
        if (!provider.empty()) {
            busy_providers_.erase(provider);
        }
        mark_dirty(*id);
        if (result.failed) {
            ++after.failures;
            // Where the step left it; an exception says nothing, so where it started.
            after.failed_at_version = result.version != 0 ? result.version : version;
            Duration delay = backoff(after.failures);
            if (result.not_before) {
                delay = std::max(
                    delay, std::chrono::duration_cast<Duration>(*result.not_before - clock_.now()));
            }
            after.retry_at = clock_.now() + delay;
            after.last_error = result.error;
            after.failed_part =
                result.failed_part.empty() ? std::string(to_string(step.kind)) : result.failed_part;
            const int attempt = after.failures;
            lock.unlock();
            try {
                callbacks_.failed(*id, step, result, attempt, delay);
            } catch (const std::exception& failure) {
                spdlog::error("mitigation {}: reporting a failed step failed: {}", *id,
                              failure.what());
            }
            lock.lock();
        } else {
            after.failures = 0;
            after.failed_at_version.reset();
            after.retry_at.reset();
            after.last_error.clear();
            after.failed_part.clear();
        }
        // Counted as running until its failure is reported: settle() (and a test after it)
        // must not see the engine idle while the step_failed record is still being written.
        --running_;
        changed_.notify_all();
    }
}

}  // namespace mitigate
