#include "runtime/engine/signal_intake.h"

#include <spdlog/spdlog.h>

#include <iterator>
#include <map>
#include <unordered_set>

#include "runtime/engine/engine.h"
#include "runtime/engine/incident_grouping.h"
#include "runtime/metrics/metrics.h"
#include "runtime/store/incident_store.h"

namespace mitigate {

SignalCommitter::SignalCommitter(IncidentStore& store, IncidentGrouping& grouping,
                                 const Clock& clock, Metrics& metrics, SignalIntakeOptions options,
                                 BatchListener listener)
    : store_(store),
      grouping_(grouping),
      clock_(clock),
      metrics_(metrics),
      options_(options),
      listener_(std::move(listener)) {}

SignalCommitter::~SignalCommitter() {
    stop();
}

void SignalCommitter::start() {
    std::lock_guard lock(mutex_);
    if (thread_.joinable()) {
        return;
    }
    stopping_ = false;
    started_ = true;
    thread_ = std::thread([this] { run(); });
}

void SignalCommitter::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    arrived_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
    // Anything submitted after the thread ended is answered, not dropped.
    std::deque<Waiting> left;
    {
        std::lock_guard lock(mutex_);
        left.swap(waiting_);
        queued_signals_ = 0;
    }
    for (Waiting& waiting : left) {
        SignalIntake answer;
        answer.failed = true;
        answer.message = "the daemon is stopping; nothing was stored, send again";
        waiting.done(answer);
    }
}

std::size_t SignalCommitter::queued() const {
    std::lock_guard lock(mutex_);
    return queued_signals_;
}

bool SignalCommitter::idle() const {
    std::lock_guard lock(mutex_);
    return waiting_.empty() && !committing_;
}

void SignalCommitter::submit(std::vector<Signal> signals, std::function<void(SignalIntake)> done) {
    const std::size_t count = signals.size();
    std::vector<EncodedSignal> encoded = encode_signals(std::move(signals));
    bool accepting = false;
    std::size_t queued_now = 0;
    {
        std::lock_guard lock(mutex_);
        accepting = started_ && !stopping_;
        queued_now = queued_signals_;
        // A webhook larger than the whole backlog is still taken when nothing waits: it
        // would be refused forever otherwise (its size is bounded by the body limit).
        if (accepting &&
            (queued_signals_ == 0 || queued_signals_ + count <= options_.backlog_limit)) {
            queued_signals_ += count;
            waiting_.push_back({std::move(encoded), std::move(done)});
            arrived_.notify_one();
            return;
        }
    }
    SignalIntake answer;
    if (!accepting) {
        answer.failed = true;
        answer.message =
            "the daemon is not accepting signals now (starting or stopping); send again";
    } else {
        answer.refused = true;
        answer.message = "the signal backlog is full (" + std::to_string(queued_now) +
                         " waiting to be stored, limit " + std::to_string(options_.backlog_limit) +
                         "); retry later";
        metrics_.increment("mitigate_signals_refused_total", {}, static_cast<double>(count));
    }
    done(answer);
}

void SignalCommitter::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        arrived_.wait(lock, [this] { return stopping_ || !waiting_.empty(); });
        if (waiting_.empty()) {
            return;  // stopping, and everything queued was committed
        }
        std::vector<Waiting> batch;
        std::size_t count = 0;
        while (!waiting_.empty() &&
               (batch.empty() || count + waiting_.front().signals.size() <= options_.batch_limit)) {
            count += waiting_.front().signals.size();
            batch.push_back(std::move(waiting_.front()));
            waiting_.pop_front();
        }
        committing_ = true;
        lock.unlock();
        commit(batch);
        lock.lock();
        queued_signals_ -= std::min(queued_signals_, count);
        committing_ = false;
    }
}

void SignalCommitter::commit(std::vector<Waiting>& batch) {
    std::vector<EncodedSignal> all;
    std::vector<std::size_t> ends;  // where each waiting sender's signals end in `all`
    for (Waiting& waiting : batch) {
        std::move(waiting.signals.begin(), waiting.signals.end(), std::back_inserter(all));
        ends.push_back(all.size());
    }
    const TimePoint now = clock_.now();
    std::unique_ptr<GroupingBatch> grouped;
    std::vector<const Signal*> fresh;
    try {
        fresh = store_.record_signals(all, [&](const std::vector<const Signal*>& new_signals) {
            grouped = grouping_.group(new_signals, now);
            return std::move(grouped->writes);
        });
    } catch (const std::exception& failure) {
        spdlog::error("{} signals were not stored: {}", all.size(), failure.what());
        metrics_.increment("mitigate_signals_failed_total", {}, static_cast<double>(all.size()));
        for (Waiting& waiting : batch) {
            SignalIntake answer;
            answer.failed = true;
            answer.message = "the store cannot write signals now; nothing was stored, send again";
            waiting.done(answer);
        }
        return;
    }
    // Committed: from here every sender is answered 2xx whatever else fails, and nothing
    // may escape this thread.
    try {
        after_commit(grouped.get(), fresh, all.size());
    } catch (const std::exception& failure) {
        spdlog::error("after storing {} signals: {}", fresh.size(), failure.what());
    }
    const std::unordered_set<const Signal*> stored(fresh.begin(), fresh.end());
    std::size_t begin = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        SignalIntake answer;
        for (std::size_t at = begin; at < ends[i]; ++at) {
            if (stored.contains(&all[at].signal)) {
                ++answer.accepted;
            } else {
                ++answer.duplicates;
            }
        }
        begin = ends[i];
        try {
            batch[i].done(answer);
        } catch (const std::exception& failure) {
            spdlog::error("answering a sender of signals: {}", failure.what());
        }
    }
}

// The index takes the batch, metrics count it, and the engine is told.
void SignalCommitter::after_commit(const GroupingBatch* grouped,
                                   const std::vector<const Signal*>& fresh, std::size_t received) {
    if (grouped != nullptr) {
        grouping_.apply(*grouped);
    }
    std::map<SignalSource, double> by_source;
    for (const Signal* signal : fresh) {
        by_source[signal->source] += 1;
    }
    for (const auto& [source, count] : by_source) {
        metrics_.increment("mitigate_signals_received_total",
                           {{"source", std::string(to_string(source))}}, count);
    }
    if (fresh.size() < received) {
        metrics_.increment("mitigate_signals_duplicate_total", {},
                           static_cast<double>(received - fresh.size()));
    }
    if (grouped != nullptr && listener_) {
        listener_(*grouped);
    }
}

void SignalCommitter::group_leftovers() {
    for (;;) {
        const std::vector<Signal> signals = store_.ungrouped_signals(2000);
        if (signals.empty()) {
            return;
        }
        std::unique_ptr<GroupingBatch> grouped;
        store_.group_stored_signals(signals, [&](const std::vector<const Signal*>& stored) {
            grouped = grouping_.group(stored, clock_.now());
            return std::move(grouped->writes);
        });
        grouping_.apply(*grouped);
        if (listener_) {
            listener_(*grouped);
        }
        spdlog::info("grouped {} signals an earlier run had stored but not grouped",
                     signals.size());
    }
}

}  // namespace mitigate
