// Signals in, durably and at the rate a webhook sender needs: group commit.
//
// Every webhook hands its signals to submit() and is answered later, from this class's own
// thread, once they are committed. That thread takes whatever arrived meanwhile (many
// webhooks) and records and groups it in one transaction, so concurrent senders share one
// fsync; nobody is told "accepted" before the commit that makes their signals durable.
//
// Backpressure: more than `backlog_limit` signals waiting for a commit are refused at
// once (the sender retries, Alertmanager does), never queued without bound. A batch the
// store cannot write fails whole: nothing of it is stored, every sender in it is told.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/core/clock.h"
#include "runtime/core/model.h"
#include "runtime/store/incident_store.h"

namespace mitigate {

class IncidentGrouping;
class Metrics;
struct GroupingBatch;
struct SignalIntake;

struct SignalIntakeOptions {
    std::size_t backlog_limit = 50000;
    // At most this many signals per transaction (whole webhooks are never split).
    std::size_t batch_limit = 5000;
};

class SignalCommitter {
  public:
    // Called on the committing thread after each committed batch that stored anything.
    using BatchListener = std::function<void(const GroupingBatch& batch)>;

    SignalCommitter(IncidentStore& store, IncidentGrouping& grouping, const Clock& clock,
                    Metrics& metrics, SignalIntakeOptions options, BatchListener listener);
    ~SignalCommitter();  // stop()s
    SignalCommitter(const SignalCommitter&) = delete;
    SignalCommitter& operator=(const SignalCommitter&) = delete;

    void start();
    // Commits what is queued, answers it, then joins.
    void stop();

    void submit(std::vector<Signal> signals, std::function<void(SignalIntake)> done);

    // Groups what an older mitigate stored but never grouped; before start().
    void group_leftovers();

    std::size_t queued() const;
    bool idle() const;

  private:
    struct Waiting {
        std::vector<EncodedSignal> signals;  // encoded on the sender's thread
        std::function<void(SignalIntake)> done;
    };
    void run();
    void commit(std::vector<Waiting>& batch);
    void after_commit(const GroupingBatch* grouped, const std::vector<const Signal*>& fresh,
                      std::size_t received);

    IncidentStore& store_;
    IncidentGrouping& grouping_;
    const Clock& clock_;
    Metrics& metrics_;
    SignalIntakeOptions options_;
    BatchListener listener_;

    mutable std::mutex mutex_;
    std::condition_variable arrived_;
    std::deque<Waiting> waiting_;
    std::size_t queued_signals_ = 0;
    bool committing_ = false;
    bool started_ = false;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace mitigate
