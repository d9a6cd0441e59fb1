// The engine's parts, wired, and its threads.
//
// Threads (the daemon adds its HTTP, chat and drill threads; runtime/server/daemon.cpp):
//   signal intake   one thread: records and groups signals, one transaction per batch of
//                   webhooks (group commit), then answers them      signal_intake.h
//   playbooks       one thread: runs the playbooks of each incident opened, in the
//                   confined Lua worker                              playbook_runner.h
//   reconciler      EngineSetup::workers threads, worker 0 reserved for reverts and steps
//                   that call no provider; each runs one step of one mitigation at a time
//                                                                    reconciler.h
//   callers         HTTP, chat and drill threads call propose/approve/revert/keep/withdraw
//                   and accept_signals directly: a request is one compare-and-set
//                   transition, never a provider call, never a wait on another thread
//
// Locks, each held only for memory work (none across a provider call, a Lua evaluation,
// or another of these), in the only order they nest (reconciler, then the others):
//   Reconciler::mutex_          the schedule: timers, ready steps, busy providers
//   OpenMitigations::mutex_     the index of open mitigations
//   IncidentGrouping::known_mutex_  the incidents a reader may look up
//   SignalCommitter::mutex_     the queue of webhooks waiting for a commit
//   PlaybookRunner::mutex_      the queue of incidents waiting for playbooks
//   Proposals::mutex_           one proposal at a time, so equal ones merge
//   ResourceClaims::mutex_      claims on resources between a plan and its commit
//   MitigationSteps::memory_mutex_, RecentHistory::mutex_, State::gauge_mutex
// The store serializes its own writes (one writer connection) and reads on a second
// connection (runtime/store/sqlite_database.h); ProviderRegistry serializes the calls to
// each plugin process. Correctness never rests on these locks: every transition is
// compare-and-set on the version in the store.
#include "runtime/engine/engine.h"

#include <future>
#include <thread>

#include "runtime/engine/engine_state.h"

namespace mitigate {
const std::vector<MitigationState>& open_states() {
    using enum MitigationState;
    static const std::vector<MitigationState> states = {proposed, planned,   pending_approval,
                                                        approved, applying,  verifying,
                                                        active,   reverting, conflict};
    return states;
}

void declare_engine_metrics(Metrics& metrics) {
    metrics.declare_counter("mitigate_signals_received_total",
                            "Signals accepted and stored, by source.");
    metrics.declare_counter("mitigate_signals_duplicate_total",
                            "Signals received again (retries), stored once.");
    metrics.declare_counter("mitigate_signals_refused_total",
                            "Signals refused because the backlog was full (the sender retries).");
    metrics.declare_counter("mitigate_signals_failed_total",
                            "Signals not stored because the store failed (the sender retries).");
    metrics.declare_gauge("mitigate_signals_pending",
                          "Signals received and waiting for the commit that stores them.");
    metrics.declare_counter("mitigate_incidents_opened_total", "Incidents opened.");
    metrics.declare_counter("mitigate_incidents_resolved_total", "Incidents resolved.");
    metrics.declare_counter("mitigate_proposals_total", "Proposals made, by playbook.");
    metrics.declare_counter("mitigate_proposals_merged_total",
                            "Proposals equal to an open mitigation, merged into it.");
    metrics.declare_counter("mitigate_playbook_failures_total",
                            "Playbook evaluations that failed, by playbook.");
    metrics.declare_counter("mitigate_decisions_total", "Policy decisions, by effect.");
    metrics.declare_counter("mitigate_approvals_total", "Approvals recorded, by verdict.");
    metrics.declare_counter("mitigate_approvals_refused_total",
                            "Approvals refused (self-approval, group, twice, wrong state).");
    metrics.declare_counter("mitigate_applies_total", "Mitigations applied and checked.");
    metrics.declare_counter("mitigate_reverts_total", "Reverts started, by cause.");
    metrics.declare_counter("mitigate_failures_total",
                            "Mitigations that ended failed or in conflict, by state.");
    metrics.declare_counter("mitigate_step_failures_total",
                            "Steps of a mitigation that failed and will be retried, by step.");
    metrics.declare_counter("mitigate_revert_failures_total",
                            "Revert attempts that failed and will be retried, by provider and "
                            "action.");
    metrics.declare_gauge("mitigate_mitigations", "Open mitigations, by state.");
    metrics.declare_histogram(
        "mitigate_signal_to_applied_seconds",
        "From the first signal of an incident to its mitigation applied and checked.",
        {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300});
    metrics.declare_histogram(
        "mitigate_provider_step_seconds", "Duration of plan, apply and revert, by step.",
        {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
}

Engine::Engine(Store& store, Providers& providers, const Clock& clock, Metrics& metrics,
               EngineSetup setup) {
    if (!setup.policies) {
        throw std::invalid_argument("the engine needs a policy set");
    }
    declare_engine_metrics(metrics);
    state_ = std::make_unique<State>(store, providers, clock, metrics, std::move(setup));
}

Engine::~Engine() {
    stop();
}

void Engine::on_change(std::function<void()> listener) {
    state_->listeners.push_back(std::move(listener));
}

void Engine::start() {
    State& state = *state_;
    if (state.started) {
        return;
    }
    state.load();
    // Incidents an earlier run opened and never ran playbooks for, then the ones grouped now
    // from signals it left ungrouped (queued as they open): each incident once.
    state.playbooks.recover();
    state.intake.group_leftovers();
    std::vector<std::string> ids;
    for (const MitigationSnapshot& mitigation : state.open.all()) {
        ids.push_back(mitigation->id);
    }
    state.reconciler.touch(ids);
    state.intake.start();
    state.playbooks.start();
    state.reconciler.start();
    state.started = true;
    spdlog::info("engine: {} open mitigations, {} open incidents, {} workers", ids.size(),
                 state.grouping.open_incidents(), state.setup.workers);
}

void Engine::stop() {
    State& state = *state_;
    if (!state.started) {
        return;
    }
    state.started = false;
    state.intake.stop();
    state.playbooks.stop();
    state.reconciler.stop();
}

void Engine::wake() {
    state_->reconciler.wake();
}

bool Engine::settle(std::chrono::milliseconds timeout) {
    State& state = *state_;
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    int quiet = 0;
    while (std::chrono::steady_clock::now() < give_up) {
        state.reconciler.wake();
        const bool idle = state.intake.idle() && state.playbooks.idle() && state.reconciler.idle();
        quiet = idle ? quiet + 1 : 0;
        if (quiet >= 3) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    return false;
}

void Engine::accept_signals(std::vector<Signal> signals, std::function<void(SignalIntake)> done) {
    state_->intake.submit(std::move(signals), std::move(done));
}

SignalIntake Engine::accept_signals(std::vector<Signal> signals) {
    std::promise<SignalIntake> answered;
    auto answer = answered.get_future();
    state_->intake.submit(std::move(signals),
                          [&answered](SignalIntake intake) { answered.set_value(intake); });
    return answer.get();
}

std::optional<StepRetry> Engine::retry_of(const std::string& id) const {
    return state_->reconciler.retry(id);
}

std::size_t Engine::queued_signals() const {
    return state_->intake.queued();
}

}  // namespace mitigate
