// Advances every open mitigation on its own: a pool of worker threads, each taking the
// most urgent step that is due, one step per mitigation at a time.
//
// Fairness and failure domains, which is what this is for:
//   - Steps are taken by priority (NextStep::priority): reverts, then steps that call no
//     provider, then the rest; oldest first within one. Worker 0 takes only the first two,
//     so a TTL revert never waits behind plans and applies, even when every other worker is
//     inside a slow provider call.
//   - A provider serves one call at a time, so a step for a provider that is busy is left
//     for later instead of occupying a worker that would only wait.
//   - A step that fails (an exception, a provider that cannot answer) is that
//     mitigation's alone: it is reported, and retried after first_retry, doubling up to
//     longest_retry; every other mitigation goes on.
// No lock of this class is held while a step runs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/core/clock.h"
#include "runtime/engine/mitigation_steps.h"
#include "runtime/engine/next_step.h"

namespace mitigate {

struct Evaluation {
    bool open = false;         // false: final or unknown; forgotten
    std::int64_t version = 0;  // of the snapshot it was decided from
    NextStep step;             // what it needs now
    std::string provider;      // the provider the step calls; empty for none
};

struct ReconcilerCallbacks {
    // What a mitigation needs now. Called with the reconciler's lock held: reads memory
    // (and at worst the store), never calls a provider.
    std::function<Evaluation(const std::string& id)> evaluate;
    // Carries the step out; may throw (a bug), which counts as a failure.
    std::function<StepResult(const std::string& id, const NextStep& step)> run;
    // A failed step, with when it is tried again.
    std::function<void(const std::string& id, const NextStep& step, const StepResult& result,
                       int attempt, Duration retry_in)>
        failed;
};

struct ReconcilerOptions {
    int workers = 4;
    Duration first_retry = std::chrono::seconds(1);
    Duration longest_retry = std::chrono::seconds(30);
    // A bound on any sleep, in case the clock jumps.
    std::chrono::milliseconds longest_sleep = std::chrono::seconds(60);
};

class Reconciler {
  public:
    Reconciler(const Clock& clock, ReconcilerOptions options, ReconcilerCallbacks callbacks);
    ~Reconciler();  // stop()s
    Reconciler(const Reconciler&) = delete;
    Reconciler& operator=(const Reconciler&) = delete;

    void start();
    // Steps in progress finish; then the workers join.
    void stop();

    // Look at these mitigations again (they changed, or something they wait on did).
    void touch(const std::string& id);
    void touch(const std::vector<std::string>& ids);
    // The clock moved: timers that are due now fire.
    void wake();

    // Nothing is due now, nothing is running.
    bool idle();
    // Steps that failed in a row for this mitigation (0 once one succeeds).
    int failures(const std::string& id);
    // What an operator sees on a mitigation whose step keeps failing: nothing once a step
    // succeeds.
    std::optional<StepRetry> retry(const std::string& id);

  private:
    struct Slot {
        bool running = false;
        int failures = 0;
        std::optional<TimePoint> retry_at;
        std::string last_error;
        std::string failed_part;
        std::optional<std::multimap<TimePoint, std::string>::iterator> timer;
        std::optional<std::pair<int, std::uint64_t>> ready_at;  // key in ready_
        NextStep step;
        std::string provider;
        std::int64_t version = 0;  // the snapshot `step` was decided from
        // The version a failed step left it at: until something else moves it, it waits for
        // its retry; a person's request that moves it is looked at at once.
        std::optional<std::int64_t> failed_at_version;
    };

    void work(int index);
    void promote_due_timers(TimePoint now);
    void evaluate_dirty(TimePoint now);
    void mark_dirty(const std::string& id);
    void set_timer(const std::string& id, Slot& slot, TimePoint at);
    void clear_timer(Slot& slot);
    void clear_ready(Slot& slot);
    // The id of the job this worker should take, if any.
    std::optional<std::string> take(bool reserved);
    Duration backoff(int failures) const;

    const Clock& clock_;
    ReconcilerOptions options_;
    ReconcilerCallbacks callbacks_;

    std::mutex mutex_;
    std::condition_variable changed_;
    std::unordered_map<std::string, Slot> slots_;
    std::vector<std::string> dirty_;
    std::unordered_set<std::string> dirty_set_;
    std::multimap<TimePoint, std::string> timers_;
    std::map<std::pair<int, std::uint64_t>, std::string> ready_;  // priority, order
    std::uint64_t next_order_ = 0;
    std::unordered_set<std::string> busy_providers_;
    int running_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

}  // namespace mitigate
