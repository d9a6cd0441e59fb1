// The engine's parts and how they call each other: shared by engine.cpp (wiring, threads)
// and engine_requests.cpp (what people ask). Not for use outside runtime/engine.
#pragma once

#include <spdlog/spdlog.h>

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/engine/engine.h"
#include "runtime/engine/incident_grouping.h"
#include "runtime/engine/mitigation_steps.h"
#include "runtime/engine/open_mitigations.h"
#include "runtime/engine/playbook_runner.h"
#include "runtime/engine/proposals.h"
#include "runtime/engine/recent_history.h"
#include "runtime/engine/reconciler.h"
#include "runtime/engine/resource_claims.h"
#include "runtime/engine/signal_intake.h"
#include "runtime/engine/transitions.h"
#include "runtime/metrics/metrics.h"
#include "runtime/providers/providers.h"
#include "runtime/store/store.h"

namespace mitigate {

// The states a mitigation is open in (not final), in lifecycle order.
const std::vector<MitigationState>& open_states();

// Everything the store can hold: a bound on reads that mean "all of them".
inline constexpr std::size_t every_row = 10'000'000;

struct Engine::State {
    Store& store;
    Providers& providers;
    const Clock& clock;
    Metrics& metrics;
    EngineSetup setup;

    OpenMitigations open;
    IncidentGrouping grouping;
    RecentHistory history;
    Transitions transitions;
    Proposals proposals;
    ResourceClaims resources;
    MitigationSteps steps;
    Reconciler reconciler;
    PlaybookRunner playbooks;
    SignalCommitter intake;

    std::vector<std::function<void()>> listeners;
    std::mutex gauge_mutex;
    std::array<std::int64_t, 16> open_by_state{};
    bool started = false;

    State(Store& store_in, Providers& providers_in, const Clock& clock_in, Metrics& metrics_in,
          EngineSetup setup_in)
        : store(store_in),
          providers(providers_in),
          clock(clock_in),
          metrics(metrics_in),
          setup(std::move(setup_in)),
          grouping(setup.engine.group_by),
          history(history_window(*setup.policies)),
          transitions(store, open, clock),
          proposals(transitions, open, store, clock, metrics),
          resources(open),
          steps(MitigationStepsSetup{
              transitions, providers, clock, metrics, history, setup.engine, setup.policies,
              [this](const std::string& id) { return incident(id); }, resources, store,
              // (the reconciler is built after, and only called once running)
              [this](const std::vector<std::string>& ids) { reconciler.touch(ids); }}),
          reconciler(
              clock, ReconcilerOptions{setup.workers, setup.first_retry, setup.longest_retry},
              ReconcilerCallbacks{
                  [this](const std::string& id) { return evaluate(id); },
                  [this](const std::string& id, const NextStep& step) { return run(id, step); },
                  [this](const std::string& id, const NextStep& step, const StepResult& result,
                         int attempt,
                         Duration retry_in) { step_failed(id, step, result, attempt, retry_in); }}),
          playbooks(PlaybookRunnerSetup{
              store, store, providers, clock, metrics, setup.playbooks, setup.playbook_environment,
              [this](const std::string& id) { return incident(id); },
              [this](const Action& action, const Incident& incident, const std::string& playbook) {
                  ProposalRequest request;
                  request.action = action;
                  request.incident_id = incident.id;
                  request.proposed_by = "playbook:" + playbook;
                  request.drill = incident.drill;
                  proposals.submit(request, playbook);
              },
              [this](const std::string& playbook, const std::string& incident_id, TimePoint since) {
                  MitigationFilter recent;
                  recent.created_after = since;
                  recent.limit = every_row;
                  std::optional<TimePoint> last;
                  for (const Mitigation& mitigation : store.list_mitigations(recent)) {
                      using enum MitigationState;
                      const MitigationState state = mitigation.state;
                      // Ended without ever being tried: it does not start a cooldown (an
                      // alert that flapped must not leave the next incident with nothing).
                      bool never_tried = state == denied || state == dry_run || state == rejected ||
                                         state == expired ||
                                         (state == failed && !mitigation.failed_at);
                      // Not applied yet and its incident is over: about to be withdrawn.
                      if (!never_tried && !is_final(state) && !may_have_effect(state)) {
                          const auto of = incident(mitigation.proposal.incident_id);
                          never_tried = of && of->status == IncidentStatus::resolved;
                      }
                      if (mitigation.proposal.playbook == playbook && !mitigation.drill &&
                          !never_tried && mitigation.proposal.incident_id != incident_id &&
                          (!last || *last < mitigation.created_at)) {
                          last = mitigation.created_at;
                      }
                  }
                  return last;
              }}),
          intake(store, grouping, clock, metrics,
                 SignalIntakeOptions{static_cast<std::size_t>(setup.engine.pending_signal_limit)},
                 [this](const GroupingBatch& batch) { grouped(batch); }) {
        transitions.on_committed([this](const Mitigation& before, const Mitigation& after) {
            committed(before, after);
        });
    }

    std::shared_ptr<const Incident> incident(const std::string& id) {
        if (id.empty()) {
            return nullptr;
        }
        if (auto known = grouping.find(id)) {
            return known;
        }
        auto stored = store.find_incident(id);
        if (!stored) {
            return nullptr;
        }
        grouping.remember(*stored);
        return std::make_shared<const Incident>(std::move(*stored));
    }

    // A proposed mitigation plans only once it is the oldest open one on its target and
    // nothing there has gone past proposed: one change at a time per target, in order. One
    // whose plan found its resource taken (under another spelling or action) waits until
    // that resource is free.
    bool holds_target(const Mitigation& mitigation) {
        if (const auto awaited = resources.awaited_by(mitigation.id);
            awaited && resources.held_by_another(mitigation.id, *awaited)) {
            return false;
        }
        bool older_proposal = false;
        bool seen_self = false;
        for (const MitigationSnapshot& other :
             open.on_target(target_key(mitigation.proposal.action))) {
            if (other->id == mitigation.id) {
                seen_self = true;
            } else if (other->state != MitigationState::proposed) {
                return false;  // held by one past proposed, older or newer
            } else if (!seen_self) {
                older_proposal = true;  // goes first
            }
        }
        return !older_proposal;
    }

    Evaluation evaluate(const std::string& id) {
        const MitigationSnapshot snapshot = open.find(id);
        if (!snapshot) {
            return {};
        }
        const auto known = incident(snapshot->proposal.incident_id);
        StepContext context;
        context.now = clock.now();
        context.engine = &setup.engine;
        context.incident = known.get();
        context.holds_target =
            snapshot->state != MitigationState::proposed || holds_target(*snapshot);
        context.checked = steps.checked(id);
        context.writes_settle_at = steps.writes_settle_at(*snapshot);
        Evaluation evaluation;
        evaluation.open = true;
        evaluation.version = snapshot->version;
        evaluation.step = next_step(*snapshot, context);
        if (evaluation.step.calls_provider()) {
            evaluation.provider = snapshot->proposal.action.provider;
        }
        return evaluation;
    }

    StepResult run(const std::string& id, const NextStep& step) {
        const MitigationSnapshot snapshot = open.find(id);
        if (!snapshot) {
            return {};  // it ended meanwhile
        }
        // The schedule chose the step from a snapshot that may have moved since (a person's
        // request): only the step the latest snapshot calls for is carried out.
        const Evaluation now = evaluate(id);
        if (now.step.kind != step.kind) {
            return {};
        }
        try {
            return steps.run(*snapshot, now.step);
        } catch (const std::exception& failure) {
            // A bug, contained to this mitigation. Its backoff counts from where it is now:
            // the step may have committed before it threw.
            const MitigationSnapshot after = open.find(id);
            return StepResult::retry(std::string("internal error: ") + failure.what(),
                                     after ? after->version : snapshot->version, "");
        }
    }

    void step_failed(const std::string& id, const NextStep& step, const StepResult& result,
                     int attempt, Duration retry_in) {
        const double seconds = std::chrono::duration<double>(retry_in).count();
        // Named by the part that failed (an apply inside a plan step), else by the step.
        const std::string part =
            result.failed_part.empty() ? std::string(to_string(step.kind)) : result.failed_part;
        spdlog::warn("mitigation {}: {} failed (attempt {}), retried in {:.0f} s: {}", id, part,
                     attempt, seconds, result.error);
        metrics.increment("mitigate_step_failures_total", {{"step", part}});
        if (part == "revert") {
            if (const MitigationSnapshot mitigation = open.find(id)) {
                metrics.increment("mitigate_revert_failures_total",
                                  {{"provider", mitigation->proposal.action.provider},
                                   {"action", mitigation->proposal.action.action}});
            }
        }
        // Every failure is logged and counted; the audit log gets the first three of a run
        // and then every tenth, so that a provider down for a day leaves a trace without
        // thousands of records per mitigation.
        if (attempt > 3 && attempt % 10 != 0) {
            return;
        }
        store.append_audit({clock.now(),
                            "runtime",
                            "mitigation.step_failed",
                            id,
                            {{"step", part},
                             {"error", result.error},
                             {"attempt", attempt},
                             {"retry_in_seconds", seconds}}});
        notify();  // chat tells the mitigation's thread
    }

    void committed(const Mitigation& before, const Mitigation& after) {
        steps.forget(after);
        if (is_final(after.state)) {
            history.ended(after.id);
        }
        if (after.state != MitigationState::proposed) {
            resources.forget(after.id);
        }
        std::vector<std::string> touched{after.id};
        // Whoever waits for this resource may go now (or must wait longer).
        if (after.plan) {
            for (const std::string& waiting :
                 resources.waiting_for(resource_key(after.proposal.action, *after.plan))) {
                touched.push_back(waiting);
            }
        }
        // Whoever waits for this target may go now (or must wait longer).
        for (const MitigationSnapshot& other : open.on_target(target_key(after.proposal.action))) {
            if (other->id != after.id && other->state == MitigationState::proposed) {
                touched.push_back(other->id);
            }
        }
        reconciler.touch(touched);
        {
            std::lock_guard lock(gauge_mutex);
            if (before.version != after.version && !is_final(before.state)) {
                --open_by_state[static_cast<std::size_t>(before.state)];
            }
            if (!is_final(after.state)) {
                ++open_by_state[static_cast<std::size_t>(after.state)];
            }
            for (MitigationState state : open_states()) {
                metrics.set("mitigate_mitigations",
                            static_cast<double>(open_by_state[static_cast<std::size_t>(state)]),
                            {{"state", std::string(to_string(state))}});
            }
        }
        notify();
    }

    void grouped(const GroupingBatch& batch) {
        for (const auto& [incident, signals] : batch.opened) {
            metrics.increment("mitigate_incidents_opened_total");
            playbooks.opened(incident, signals);
        }
        for (const std::string& id : batch.resolved) {
            metrics.increment("mitigate_incidents_resolved_total");
            reconciler.touch(open.of_incident(id));
        }
        metrics.set("mitigate_signals_pending", static_cast<double>(intake.queued()));
        notify();
    }

    void notify() {
        for (const auto& listener : listeners) {
            listener();
        }
    }

    void load() {
        // Oldest first (the store lists newest first): the order on a target is the order
        // they were stored, even within one millisecond.
        const std::vector<Mitigation> stored =
            store.list_mitigations(in_states(open_states(), every_row));
        for (auto mitigation = stored.rbegin(); mitigation != stored.rend(); ++mitigation) {
            open.update(*mitigation);
            steps.inherit(*mitigation);
            ++open_by_state[static_cast<std::size_t>(mitigation->state)];
        }
        for (MitigationState state : open_states()) {
            metrics.set("mitigate_mitigations",
                        static_cast<double>(open_by_state[static_cast<std::size_t>(state)]),
                        {{"state", std::string(to_string(state))}});
        }
        IncidentFilter open_incidents;
        open_incidents.status = IncidentStatus::open;
        open_incidents.limit = every_row;
        grouping.load(store.list_incidents(open_incidents), store.open_incident_alerts());
        // The mitigations changed within the history window: those that started within it,
        // as policy counts them, and those that failed within it (a revert that met a
        // conflict at a TTL hours after its start still counts for the breaker). A
        // mitigation may have waited for approvals before it started; its start is read
        // back from its expiry (fixed at the apply as start + TTL).
        MitigationFilter recent;
        recent.created_after =
            clock.now() - history.window() - Duration{setup.engine.approval_expiry_ms};
        recent.limit = every_row;
        for (const Mitigation& past : store.list_mitigations(recent)) {
            using enum MitigationState;
            const MitigationState state = past.state;
            const bool started_and_failed = state == failed && past.failed_at;
            if (state != applying && state != verifying && state != active && state != reverting &&
                state != reverted && state != conflict && state != kept && !started_and_failed) {
                continue;  // never touched a target
            }
            std::string service = past.proposal.service;
            std::string environment = past.proposal.environment;
            if (const auto known = incident(past.proposal.incident_id)) {
                service = known->service;
                environment = known->environment;
            }
            // Its start: the expiry was fixed at the apply as start + TTL. Without a TTL the
            // last change stands in (later than the start: stricter, never laxer).
            TimePoint started_at = past.updated_at;
            const std::optional<Duration> ttl =
                past.decision && past.decision->ttl ? past.decision->ttl : past.proposal.action.ttl;
            if (past.expires_at && ttl) {
                started_at = std::min(started_at, *past.expires_at - *ttl);
            }
            history.started(past, service, environment, started_at);
        }
        // Failures within the window of mitigations that started before it (a TTL revert
        // that met a conflict hours after its start): they count, their start does not.
        MitigationFilter changed;
        changed.updated_after = clock.now() - history.window();
        changed.limit = every_row;
        for (const Mitigation& past : store.list_mitigations(changed)) {
            if (!past.failed_at || past.drill) {
                continue;
            }
            std::string service = past.proposal.service;
            std::string environment = past.proposal.environment;
            if (const auto known = incident(past.proposal.incident_id)) {
                service = known->service;
                environment = known->environment;
            }
            history.failed(past, service, environment, *past.failed_at);
        }
        if (const auto reset = store.last_circuit_breaker_reset()) {
            history.reset_breaker(*reset);
        }
    }
    // The mitigation as last committed: from the index while open, else from the store.
    std::optional<Mitigation> current(const std::string& id);
    // A person's revert or keep that the decision's groups do not allow, audited; nullopt
    // when allowed (or when the request fails on its own: no such mitigation).
    std::optional<RequestResult> refuse_person(const PersonRequest& request, std::string_view verb);
    RequestResult refuse_approval(const Mitigation& mitigation, const ApprovalRequest& request,
                                  RequestStatus status, const std::string& why);
};

}  // namespace mitigate
