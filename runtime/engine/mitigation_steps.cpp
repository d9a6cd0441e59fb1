#include "runtime/engine/mitigation_steps.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "runtime/core/time_format.h"
#include "runtime/engine/recent_history.h"
#include "runtime/engine/resource_claims.h"
#include "runtime/engine/transitions.h"
#include "runtime/metrics/metrics.h"
#include "runtime/policy/policy_engine.h"
#include "runtime/providers/providers.h"
#include "runtime/store/audit_log.h"

namespace mitigate {
namespace {

using nlohmann::json;
using Steady = std::chrono::steady_clock;

std::optional<Duration> ttl_of(const Mitigation& mitigation) {
    if (mitigation.decision && mitigation.decision->ttl) {
        return mitigation.decision->ttl;
    }
    return mitigation.proposal.action.ttl;
}

// The call never reached the plugin: its process was not started or not called.
bool never_called(PluginCallStatus status) {
    return status == PluginCallStatus::refused || status == PluginCallStatus::backoff ||
           status == PluginCallStatus::circuit_open;
}

std::string status_words(PluginCallStatus status) {
    return "(" + std::string(to_string(status)) + ")";
}

// A mitigation past planned always has a plan; one without is a bug, contained to it.
const Plan& plan_of(const Mitigation& mitigation) {
    if (!mitigation.plan) {
        throw std::logic_error("mitigation " + mitigation.id + " is " +
                               std::string(to_string(mitigation.state)) + " without a plan");
    }
    return *mitigation.plan;
}

// What is missing for the approvals `mitigation` has to count under `decision` at `at` (the
// rules of a person's approve request: counted_approvers); empty when they are enough.
std::string approvals_missing(const Mitigation& mitigation, const Decision& decision,
                              TimePoint at) {
    const std::size_t counted = counted_approvers(mitigation, decision, at).size();
    if (static_cast<int>(counted) >= decision.approvals_required) {
        return "";
    }
    std::string groups;
    for (const std::string& group : decision.approver_groups) {
        groups += (groups.empty() ? " from " : ", ") + group;
    }
    return "it now needs " + std::to_string(decision.approvals_required) + " approval" +
           (decision.approvals_required == 1 ? "" : "s") + groups + " and has " +
           std::to_string(counted) + " that count";
}

// A plan made of several writes goes step by step; one of a single step is one write.
bool in_steps(const Plan& plan) {
    return plan.steps.size() > 1;
}

// How many writes an apply makes: its steps, or the one write of the whole plan.
std::size_t parts_of(const Plan& plan) {
    return in_steps(plan) ? plan.steps.size() : 1;
}

// What part `index` alone writes and restores: the plan sent for that step (the whole plan
// when there are no steps). For an apply, its inverse also holds the fields of the steps
// still to come, as they were planned from: the provider then refuses the step (conflict)
// when someone changed them since the plan, as it would have refused the whole change, and
// writes only the step's own fields.
Plan part_plan(const Plan& plan, std::size_t index, bool with_later_preconditions = false) {
    if (!in_steps(plan)) {
        return plan;
    }
    Plan part = plan;
    part.steps.clear();
    part.forward = json::object();
    part.inverse = json::object();
    for (const std::string& field : plan.steps.at(index).fields) {
        part.forward[field] = plan.forward.value(field, json());
    }
    const std::size_t last = with_later_preconditions ? plan.steps.size() : index + 1;
    for (std::size_t step = index; step < last; ++step) {
        for (const std::string& field : plan.steps[step].fields) {
            part.inverse[field] = plan.inverse.value(field, json());
        }
    }
    return part;
}

std::string step_words(const Plan& plan, std::size_t index) {
    return "step " + std::to_string(index + 1) + " of " + std::to_string(plan.steps.size()) + " (" +
           plan.steps.at(index).name + ")";
}

// " step 2 of 2 (desired_count)" in the journal's words, or nothing for a single write.
std::string part_words(const Plan& plan, std::size_t index) {
    return in_steps(plan) ? " " + step_words(plan, index) : std::string();
}

// "autoscaling_range, desired_count": the names of steps [first, last], in that order.
std::string step_names(const Plan& plan, std::size_t first, std::size_t last) {
    std::string names;
    for (std::size_t index = first; index <= last && index < plan.steps.size(); ++index) {
        names += (names.empty() ? "" : ", ") + plan.steps[index].name;
    }
    return names;
}

double seconds_since(Steady::time_point start) {
    return std::chrono::duration<double>(Steady::now() - start).count();
}

}  // namespace

MitigationSteps::MitigationSteps(MitigationStepsSetup setup)
    : setup_(std::move(setup)), started_at_(setup_.clock.now()) {}

bool MitigationSteps::checked(const std::string& id) const {
    std::lock_guard lock(memory_mutex_);
    return checked_.contains(id);
}

void MitigationSteps::set_checked(const std::string& id, bool checked) {
    std::lock_guard lock(memory_mutex_);
    if (checked) {
        checked_.insert(id);
    } else {
        checked_.erase(id);
    }
}

void MitigationSteps::set_unsettled(const std::string& id, std::optional<Unsettled> unsettled) {
    std::lock_guard lock(memory_mutex_);
    if (unsettled) {
        unsettled_[id] = *unsettled;
    } else {
        unsettled_.erase(id);
    }
}

std::optional<MitigationSteps::Unsettled> MitigationSteps::unsettled(const std::string& id) const {
    std::lock_guard lock(memory_mutex_);
    const auto found = unsettled_.find(id);
    return found == unsettled_.end() ? std::nullopt : std::optional<Unsettled>(found->second);
}

void MitigationSteps::forget(const Mitigation& after) {
    if (after.state != MitigationState::verifying) {
        set_checked(after.id, false);
    }
    if (after.state != MitigationState::applying && after.state != MitigationState::reverting) {
        set_unsettled(after.id, std::nullopt);
    }
}

Duration MitigationSteps::settle_margin(const Mitigation& mitigation) const {
    return mitigation.plan && mitigation.plan->settle_margin ? *mitigation.plan->settle_margin
                                                             : undeclared_settle_margin;
}

void MitigationSteps::inherit(const Mitigation& mitigation) {
    if (mitigation.state == MitigationState::applying ||
        mitigation.state == MitigationState::reverting) {
        // The process that journaled it may have sent a write just before it died: that
        // write lands by the margin after this process started, at the latest.
        set_unsettled(mitigation.id, Unsettled{started_at_ + settle_margin(mitigation)});
    }
}

std::optional<TimePoint> MitigationSteps::writes_settle_at(const Mitigation& mitigation) const {
    if (mitigation.state != MitigationState::applying &&
        mitigation.state != MitigationState::reverting) {
        return std::nullopt;
    }
    const auto earlier = unsettled(mitigation.id);
    return earlier ? std::optional<TimePoint>(earlier->until) : std::nullopt;
}

StepResult MitigationSteps::run(const Mitigation& snapshot, const NextStep& step) {
    switch (step.kind) {
        case StepKind::plan: return plan(snapshot);
        case StepKind::decide: return decide(snapshot);
        case StepKind::expire: {
            Mitigation expired = snapshot;
            expired.state = MitigationState::expired;
            move(snapshot, expired, step.reason);
            return {};
        }
        case StepKind::apply: return apply(snapshot);
        case StepKind::settle_apply: return settle_apply(snapshot);
        case StepKind::check: return verify(snapshot);
        case StepKind::confirm: {
            Mitigation active = snapshot;
            active.state = MitigationState::active;
            move(snapshot, active,
                 step.reason + (active.expires_at
                                    ? "; reverts at " + format_rfc3339(*active.expires_at)
                                    : std::string()));
            set_checked(snapshot.id, false);
            return {};
        }
        case StepKind::revert: return revert(snapshot, step);
        case StepKind::finish_revert: return finish_revert(snapshot);
        case StepKind::none: return {};
    }
    return {};
}

std::optional<Mitigation> MitigationSteps::move(const Mitigation& current, Mitigation next,
                                                const std::string& reason, json details,
                                                const std::string& actor) {
    const TransitionResult result =
        setup_.transitions.move(current, std::move(next), actor, reason, std::move(details));
    if (result.outcome != TransitionOutcome::done) {
        spdlog::debug("mitigation {}: {} (the step stops; it is looked at again)", current.id,
                      result.message);
        return std::nullopt;
    }
    count_end(*result.current);
    if (result.current->failed_at && !current.failed_at) {
        record_failure(*result.current, *result.current->failed_at);
    }
    return result.current;
}

void MitigationSteps::record_failure(const Mitigation& mitigation, TimePoint at) {
    std::string service = mitigation.proposal.service;
    std::string environment = mitigation.proposal.environment;
    if (const auto incident = setup_.incident(mitigation.proposal.incident_id)) {
        service = incident->service;
        environment = incident->environment;
    }
    setup_.history.failed(mitigation, service, environment, at);
}

StepResult MitigationSteps::withdraw_resolved(const Mitigation& mitigation,
                                              const Incident& incident) {
    Mitigation expired = mitigation;
    expired.state = MitigationState::expired;
    move(mitigation, expired,
         "withdrawn before any effect: its incident resolved at " +
             format_rfc3339(incident.resolved_at.value_or(setup_.clock.now())));
    return {};
}

// Automation failed on a mitigation that started: the circuit breaker counts it once.
Mitigation MitigationSteps::failing(const Mitigation& mitigation, MitigationState state) const {
    Mitigation next = mitigation;
    next.state = state;
    // A drill fails on purpose (a verification that is meant to fail, to drill the revert):
    // it never stops real automation.
    if (!next.failed_at && !next.drill) {
        next.failed_at = setup_.clock.now();
    }
    return next;
}

void MitigationSteps::count_end(const Mitigation& mitigation) {
    if (mitigation.state == MitigationState::failed ||
        mitigation.state == MitigationState::conflict) {
        setup_.metrics.increment("mitigate_failures_total",
                                 {{"state", std::string(to_string(mitigation.state))}});
    }
}

StepResult MitigationSteps::plan(const Mitigation& proposed) {
    const Action& action = proposed.proposal.action;
    const auto started = Steady::now();
    const ProviderAnswer<Plan> answer = setup_.providers.plan(action);
    setup_.metrics.observe("mitigate_provider_step_seconds", seconds_since(started),
                           {{"step", "plan"}});
    Mitigation next = proposed;
    if (!answer.ok()) {
        next.state = MitigationState::failed;
        move(proposed, next, "cannot plan " + status_words(answer.status) + ": " + answer.error);
        return {};
    }
    next.plan = answer.value;
    next.plan->planned_at = setup_.clock.now();
    next.state = MitigationState::planned;
    // One change at a time per resource, however the target is spelled: a plan read from a
    // state another mitigation is changing is worthless; it is planned again once free.
    const std::string resource = resource_key(action, *next.plan);
    const auto awaited_before = setup_.resources.awaited_by(proposed.id);
    if (const auto holder = setup_.resources.claim(proposed.id, resource)) {
        if (awaited_before != resource) {
            const std::string named =
                next.plan->resource.empty() ? action.target : next.plan->resource;
            spdlog::info("mitigation {}: waits for {} to finish with {}", proposed.id, *holder,
                         named);
            setup_.audit.append_audit(
                {setup_.clock.now(),
                 "runtime",
                 "mitigation.waiting",
                 proposed.id,
                 {{"resource", named}, {"target", action.target}, {"held_by", *holder}}});
        }
        return {};
    }
    // Released when this step ends, committed or not: by then the index says who holds it,
    // and whoever waited behind the claim looks again.
    struct Release {
        const MitigationStepsSetup& setup;
        const std::string& id;
        const std::string& key;
        ~Release() {
            const std::vector<std::string> waiting = setup.resources.release(id, key);
            if (!waiting.empty() && setup.wake) {
                setup.wake(waiting);
            }
        }
    } release{setup_, proposed.id, resource};
    std::vector<Transitions::Step> steps;
    steps.push_back(
        {next,
         "runtime",
         "planned by provider " + action.provider + ": " + next.plan->blast_radius.description,
         {{"idempotency_key", next.plan->idempotency_key}}});
    return decide_and_apply(proposed, std::move(steps));
}

StepResult MitigationSteps::decide(const Mitigation& planned) {
    return decide_and_apply(planned, {});
}

PolicyInput MitigationSteps::policy_input(const Mitigation& mitigation,
                                          std::shared_ptr<const Incident>& incident) const {
    PolicyInput input;
    input.action = mitigation.proposal.action;
    input.playbook = mitigation.proposal.playbook;
    input.proposed_by = mitigation.proposal.proposed_by;
    input.environment = mitigation.proposal.environment;
    input.service = mitigation.proposal.service;
    if (!mitigation.proposal.incident_id.empty()) {
        incident = setup_.incident(mitigation.proposal.incident_id);
        if (incident) {
            input.environment = incident->environment;
            input.service = incident->service;
            input.labels = incident->labels;
            input.dry_run = incident->dry_run;
        }
    }
    input.plan = mitigation.plan;
    return input;
}

// Policy decides on the last of `steps` (or on `current` when there are none); when it
// allows, the mitigation is journaled applying in the same commit and applied at once. A
// decision has no effect of its own, so planned, decided and applying go to the store in
// one transaction: one fsync on the way from a proposal to its apply instead of three.
StepResult MitigationSteps::decide_and_apply(const Mitigation& current,
                                             std::vector<Transitions::Step> steps) {
    const Mitigation& planned = steps.empty() ? current : steps.back().next;
    std::shared_ptr<const Incident> incident;
    const PolicyInput input = policy_input(planned, incident);
    if (incident && incident->status == IncidentStatus::resolved) {
        // It resolved while the provider planned: nothing starts for it.
        return withdraw_resolved(current, *incident);
    }
    const TimePoint now = setup_.clock.now();
    // Deciding reads the history that rate limits and cooldowns count, and a decision that
    // applies adds to it: both under one lock, or two decisions made at once would each
    // see the other's start missing.
    std::unique_lock deciding(decisions_mutex_);
    const Decision decision =
        evaluate_policy(*setup_.policies, input, setup_.history.history(now), now);
    if (decision.effect == DecisionEffect::allow) {
        started(planned, incident.get(), now);  // reserved; forgotten if the commit is refused
    }
    deciding.unlock();
    setup_.metrics.increment("mitigate_decisions_total",
                             {{"effect", std::string(to_string(decision.effect))}});
    Mitigation decided = planned;
    decided.decision = decision;
    switch (decision.effect) {
        case DecisionEffect::deny: decided.state = MitigationState::denied; break;
        case DecisionEffect::dry_run: decided.state = MitigationState::dry_run; break;
        case DecisionEffect::require_approval:
            decided.state = MitigationState::pending_approval;
            break;
        case DecisionEffect::allow: decided.state = MitigationState::approved; break;
    }
    steps.push_back(
        {decided,
         "policy",
         decision.summary,
         {{"effect", to_string(decision.effect)}, {"policy_hash", decision.policy_hash}}});
    const bool applies = decided.state == MitigationState::approved;
    if (applies) {
        steps.push_back(applying_step(decided, decision.policy_hash, now));
    }
    TransitionResult result;
    try {
        result = setup_.transitions.move_chain(current, std::move(steps));
    } catch (...) {
        if (applies) {
            setup_.history.forget(current.id);  // the reserved start never happened
        }
        throw;
    }
    if (result.outcome != TransitionOutcome::done) {
        if (applies) {
            setup_.history.forget(current.id);
        }
        spdlog::debug("mitigation {}: {} (the step stops; it is looked at again)", current.id,
                      result.message);
        return {};
    }
    count_end(*result.current);
    if (!applies) {
        return {};
    }
    return finish_apply(*result.current, 0, /*again=*/false);
}

// Journaled before the provider is touched, with the expiry already fixed: a crash from
// here on leaves a mitigation that is finished at the next start and reverts on time.
// `policy_hash`: the policy set that allowed this apply, at the moment of the apply.
Transitions::Step MitigationSteps::applying_step(const Mitigation& approved,
                                                 const std::string& policy_hash,
                                                 TimePoint now) const {
    Mitigation applying = approved;
    applying.state = MitigationState::applying;
    if (const auto ttl = ttl_of(approved)) {
        applying.expires_at = now + *ttl;
    }
    const std::string key = approved.plan ? approved.plan->idempotency_key : std::string();
    return {applying,
            "runtime",
            "applying " + key,
            {{"idempotency_key", key}, {"policy_hash", policy_hash}}};
}

// The policy history counts it from here: it may change its target.
void MitigationSteps::started(const Mitigation& applying, const Incident* incident, TimePoint now) {
    std::string service = applying.proposal.service;
    std::string environment = applying.proposal.environment;
    if (incident != nullptr) {
        service = incident->service;
        environment = incident->environment;
    }
    setup_.history.started(applying, service, environment, now);
}

// An approval may be hours old: the policy may have changed since (a freeze, a deny, more
// approvals required) and the daemon restarted with it. The decision that counts is the
// one made now, with the current policy set and history; the approvals recorded must
// satisfy it, or nothing is applied.
StepResult MitigationSteps::apply(const Mitigation& approved) {
    if (!approved.plan) {
        Mitigation failed = approved;
        failed.state = MitigationState::failed;
        move(approved, failed, "approved without a plan; nothing applied");
        return {};
    }
    std::shared_ptr<const Incident> incident;
    const PolicyInput input = policy_input(approved, incident);
    if (incident && incident->status == IncidentStatus::resolved) {
        return withdraw_resolved(approved, *incident);
    }
    const TimePoint now = setup_.clock.now();
    // Approved long ago and never applied (the daemon was down for days): its approvals
    // are not a decision about now.
    const Duration approval_window{setup_.engine.approval_expiry_ms};
    if (now >= approved.updated_at + approval_window) {
        Mitigation expired = approved;
        expired.state = MitigationState::expired;
        move(approved, expired,
             "not applied: approved at " + format_rfc3339(approved.updated_at) +
                 " and not applied within engine.approval_expiry (" +
                 format_duration(approval_window) + ")");
        return {};
    }
    std::unique_lock deciding(decisions_mutex_);
    const Decision decision =
        evaluate_policy(*setup_.policies, input, setup_.history.history(now), now);
    std::string refused;
    switch (decision.effect) {
        case DecisionEffect::allow: break;
        case DecisionEffect::require_approval:
            // Approvals are as old as they were when the quorum was met (the approved
            // transition): an apply that waited for a busy provider does not age them.
            refused = approvals_missing(approved, decision, approved.updated_at);
            break;
        case DecisionEffect::deny:
        case DecisionEffect::dry_run: refused = decision.summary; break;
    }
    if (refused.empty()) {
        started(approved, incident.get(), now);  // reserved; forgotten if the commit is refused
    }
    deciding.unlock();
    if (!refused.empty()) {
        setup_.metrics.increment("mitigate_decisions_total",
                                 {{"effect", std::string(to_string(decision.effect))}});
        Mitigation ended = approved;
        ended.decision = decision;
        ended.state = decision.effect == DecisionEffect::dry_run ? MitigationState::dry_run
                                                                 : MitigationState::denied;
        const std::string previous_hash =
            approved.decision ? approved.decision->policy_hash : std::string();
        move(approved, ended,
             "not applied: policy decided again at the moment of effect (" +
                 std::string(to_string(decision.effect)) + "): " + refused,
             {{"effect", to_string(decision.effect)},
              {"policy_hash", decision.policy_hash},
              {"approved_under_policy_hash", previous_hash}},
             "policy");
        return {};
    }
    // The decision that allows it now is the one it runs under: its TTL, its hash.
    Mitigation decided = approved;
    decided.decision = decision;
    Transitions::Step step = applying_step(decided, decision.policy_hash, now);
    std::optional<Mitigation> moved;
    try {
        moved = move(approved, step.next, step.reason, step.details);
    } catch (...) {
        setup_.history.forget(approved.id);  // the start reserved above never happened
        throw;
    }
    if (!moved) {
        setup_.history.forget(approved.id);
        return {};
    }
    return finish_apply(*moved, 0, /*again=*/false);
}

// Applies the plan's writes from part `first` on: one for a plan without steps; each step,
// journaled (steps_started) before it is sent, for a plan of steps. A part refused undoes
// the ones before it; one whose answer was lost is settled before anything else is sent.
// `again`: an earlier attempt may have been sent (the mitigation was already applying).
StepResult MitigationSteps::finish_apply(const Mitigation& applying, std::size_t first,
                                         bool again) {
    const Plan& plan = plan_of(applying);
    const Action& action = applying.proposal.action;
    Mitigation current = applying;
    bool changed = false;
    for (std::size_t index = first; index < parts_of(plan); ++index) {
        const std::string words = part_words(plan, index);
        if (in_steps(plan) && current.steps_started < static_cast<int>(index) + 1) {
            Mitigation next = current;
            next.steps_started = static_cast<int>(index) + 1;
            const auto moved = move(current, next, "applying" + words);
            if (!moved) {
                return {};
            }
            current = *moved;
        }
        const Plan part = part_plan(plan, index, /*with_later_preconditions=*/true);
        const auto started = Steady::now();
        const ProviderAnswer<Applied> applied =
            unsettled_call(current, [&] { return setup_.providers.apply(action, part); });
        setup_.metrics.observe("mitigate_provider_step_seconds", seconds_since(started),
                               {{"step", "apply"}});
        const std::string answer = status_words(applied.status) + ": " + applied.error;
        if (!applied.ok() && outcome_unknown(applied.status)) {
            const Duration margin = settle_margin(current);
            const TimePoint settles = setup_.clock.now() + margin;
            set_unsettled(current.id, Unsettled{settles, /*answer_lost=*/true});
            if (margin > Duration::zero()) {
                return StepResult::retry("apply" + words + " outcome unknown " + answer +
                                             "; nothing more is sent until it is read back at " +
                                             format_rfc3339(settles) +
                                             ", when a lost write can no longer land",
                                         current.version, "apply", settles);
            }
            return settle_apply(current);
        }
        set_unsettled(current.id, std::nullopt);  // the call answered: nothing is in flight
        if (!applied.ok() && never_called(applied.status)) {
            // The plugin was not called (restart backoff, open circuit, not loadable). A
            // first attempt changed nothing; a later one cannot tell what an earlier attempt
            // did, so it waits for a plugin that answers.
            const std::string why = "apply" + words + " not sent " + answer;
            if (index == 0 && !again) {
                // Not an automation failure the breaker counts: the plugin was never called
                // (its host has a circuit of its own), and nothing changed.
                Mitigation failed = current;
                failed.state = MitigationState::failed;
                move(current, failed, why + "; nothing changed");
                return {};
            }
            return StepResult::retry(why, current.version, "apply");
        }
        if (!applied.ok()) {
            // The provider refused before changing anything (a conflict, bad parameters).
            return refused_at_step(
                current, index,
                "apply" + words + " refused " + answer + (index == 0 ? "; nothing changed" : ""));
        }
        changed = changed || applied.value.changed;
    }
    if (in_steps(plan)) {
        return applied_and_verify(current,
                                  "applied (" + std::to_string(plan.steps.size()) + " steps)");
    }
    return applied_and_verify(
        current, changed ? "applied" : "already applied (idempotent apply changed nothing)");
}

// Part `index` did not land (refused, or read back absent once it could no longer land):
// nothing changed if it was the first; else what the steps before it wrote is undone by
// the revert, and the mitigation ends reverted (or in conflict, naming what is left),
// never `failed` with a change in place.
StepResult MitigationSteps::refused_at_step(const Mitigation& applying, std::size_t index,
                                            const std::string& why) {
    if (index == 0) {
        move(applying, failing(applying, MitigationState::failed), why);
        return {};
    }
    const Plan& plan = plan_of(applying);
    Mitigation reverting = failing(applying, MitigationState::reverting);
    reverting.step_not_landed = static_cast<int>(index);
    const auto moved =
        move(applying, reverting,
             why + "; undoing what the steps before it applied: " + step_names(plan, 0, index - 1));
    if (!moved) {
        return {};
    }
    setup_.metrics.increment("mitigate_reverts_total", {{"cause", "partial_apply"}});
    return finish_revert(*moved);
}

// Applying, and no write can be in flight any more (writes_settle_at has passed): what the
// target holds now, for the last part started, is the outcome.
StepResult MitigationSteps::settle_apply(const Mitigation& applying) {
    const Plan& plan = plan_of(applying);
    if (in_steps(plan) && applying.steps_started == 0) {
        return finish_apply(applying, 0, /*again=*/true);  // journaled applying, nothing sent
    }
    const std::size_t index =
        in_steps(plan)
            ? std::min(static_cast<std::size_t>(applying.steps_started), plan.steps.size()) - 1
            : 0;
    const std::string words = part_words(plan, index);
    const auto earlier = unsettled(applying.id);
    const bool sent_and_lost = earlier && earlier->answer_lost;
    const ProviderAnswer<Checked> checked =
        setup_.providers.check(applying.proposal.action, part_plan(plan, index));
    if (!checked.ok()) {
        // Neither applied nor known not to be: stays applying, and is read again.
        return StepResult::retry("the outcome of the apply" + words +
                                     " is unknown and reading it back failed " +
                                     status_words(checked.status) + ": " + checked.error,
                                 applying.version, "check");
    }
    if (checked.value.applied && !in_steps(plan)) {
        // The record of the lost answer is forgotten once the outcome is committed
        // (forget()): if that commit fails, the next attempt must still know it was sent.
        return applied_and_verify(applying, sent_and_lost
                                                ? "applied (read back after its answer was lost)"
                                                : "already applied (read back after a restart)");
    }
    if (checked.value.applied) {
        set_unsettled(applying.id, std::nullopt);  // settled: it landed
        return finish_apply(applying, index + 1, /*again=*/true);
    }
    if (!sent_and_lost) {
        // A process that died after journaling (or an apply that ended in an exception) may
        // never have sent it; the target shows it did not land, and nothing is in flight
        // any more: send it (compare-and-set).
        return finish_apply(applying, index, /*again=*/true);
    }
    return refused_at_step(applying, index,
                           "the apply" + words +
                               ": its answer was lost; read back once a lost write could no "
                               "longer land, the provider shows " +
                               (index == 0 ? "nothing changed" : "it did not land"));
}

StepResult MitigationSteps::applied_and_verify(const Mitigation& applying,
                                               const std::string& reason) {
    Mitigation verifying = applying;
    verifying.state = MitigationState::verifying;
    const auto moved = move(applying, verifying, reason);
    if (!moved) {
        return {};
    }
    setup_.metrics.increment("mitigate_applies_total");
    if (const auto incident = setup_.incident(applying.proposal.incident_id)) {
        setup_.metrics.observe(
            "mitigate_signal_to_applied_seconds",
            std::chrono::duration<double>(setup_.clock.now() - incident->opened_at).count());
    }
    return verify(*moved);
}

StepResult MitigationSteps::verify(const Mitigation& verifying) {
    const ProviderAnswer<Checked> checked =
        setup_.providers.check(verifying.proposal.action, plan_of(verifying));
    if (!checked.ok()) {
        return StepResult::retry(
            "check failed " + status_words(checked.status) + ": " + checked.error,
            verifying.version, "check");
    }
    if (checked.value.applied) {
        if (!verifying.proposal.incident_id.empty()) {
            set_checked(verifying.id, true);  // its incident's alerts decide from here
            return {};
        }
        Mitigation active = verifying;
        active.state = MitigationState::active;
        move(verifying, active,
             "the provider confirms the change" +
                 (active.expires_at ? "; reverts at " + format_rfc3339(*active.expires_at)
                                    : std::string()));
        return {};
    }
    const auto moved = move(verifying, failing(verifying, MitigationState::reverting),
                            "the provider does not show the change after apply; reverting");
    return moved ? finish_revert(*moved) : StepResult{};
}

StepResult MitigationSteps::revert(const Mitigation& mitigation, const NextStep& step) {
    // Reverted because its incident's alerts kept firing: a failed verification.
    const Mitigation reverting =
        step.cause == "verification" ? failing(mitigation, MitigationState::reverting) : [&] {
            Mitigation next = mitigation;
            next.state = MitigationState::reverting;
            return next;
        }();
    const auto moved = move(mitigation, reverting, step.reason);
    if (!moved) {
        return {};
    }
    set_checked(mitigation.id, false);
    setup_.metrics.increment("mitigate_reverts_total", {{"cause", step.cause}});
    return finish_revert(*moved);
}

// Reverts the whole plan, or its steps from the last one started (in reverse, or in the
// order they were applied when the plan says so): each compare-and-set on its own fields,
// so a revert that stopped half way is finished by the next attempt (the steps already
// reverted write nothing), and only a step someone else changed is a conflict. A step that
// never landed is put back only where it shows the plan's change, and left as found
// otherwise.
StepResult MitigationSteps::finish_revert(const Mitigation& reverting) {
    const Action& action = reverting.proposal.action;
    const Plan& plan = plan_of(reverting);
    const bool steps = in_steps(plan);
    std::vector<std::size_t> order{0};
    if (steps) {
        const std::size_t started =
            reverting.steps_started > 0
                ? std::min(static_cast<std::size_t>(reverting.steps_started), plan.steps.size())
                : plan.steps.size();
        order.clear();
        for (std::size_t index = 0; index < started; ++index) {
            order.push_back(index);
        }
        if (!plan.revert_in_apply_order) {
            std::reverse(order.begin(), order.end());
        }
    }
    bool changed = false;
    std::string left_as_found;
    for (std::size_t position = 0; position < order.size(); ++position) {
        const std::size_t index = order[position];
        const std::string named = steps ? step_words(plan, index) + ": " : std::string();
        const Plan part = part_plan(plan, index);
        const auto started = Steady::now();
        const ProviderAnswer<Reverted> result =
            unsettled_call(reverting, [&] { return setup_.providers.revert(action, part); });
        setup_.metrics.observe("mitigate_provider_step_seconds", seconds_since(started),
                               {{"step", "revert"}});
        const Duration margin = settle_margin(reverting);
        std::optional<TimePoint> settles;
        if (!result.ok() && outcome_unknown(result.status) && margin > Duration::zero()) {
            settles = setup_.clock.now() + margin;
            set_unsettled(reverting.id, Unsettled{*settles, /*answer_lost=*/true});
        } else {
            set_unsettled(reverting.id, std::nullopt);
        }
        const bool not_ours = steps && reverting.step_not_landed &&
                              static_cast<std::size_t>(*reverting.step_not_landed) == index;
        if (result.status == PluginCallStatus::conflict && not_ours) {
            left_as_found = "; " + plan.steps[index].name +
                            " was left as found (mitigate never wrote it): " + result.error;
            continue;
        }
        if (result.status == PluginCallStatus::conflict) {
            std::string left;
            for (std::size_t rest = position; steps && rest < order.size(); ++rest) {
                left += (left.empty() ? "" : ", ") + plan.steps[order[rest]].name;
            }
            move(reverting, failing(reverting, MitigationState::conflict),
                 "not reverted: " + named + result.error +
                     (left.empty() ? std::string() : "; still in place: " + left) +
                     "; a person must decide (revert or keep)");
            return {};
        }
        if (!result.ok()) {
            // Stays reverting: the compare-and-set revert is repeated (after an unknown
            // outcome, only once its write can no longer land). Its first failure is
            // journaled with failed_at (reverting -> reverting), so that the breaker counts
            // it once, also after a restart; later attempts are only retried.
            std::string error =
                "revert " + named + "failed " + status_words(result.status) + ": " + result.error;
            if (settles) {
                error += "; tried again after " + format_rfc3339(*settles) +
                         ", when a lost write can no longer land";
            }
            std::int64_t version = reverting.version;
            if (!reverting.failed_at && !reverting.drill) {
                if (const auto marked =
                        move(reverting, failing(reverting, MitigationState::reverting),
                             error + "; retried until it succeeds")) {
                    version = marked->version;
                }
            }
            return StepResult::retry(error, version, "revert", settles);
        }
        changed = changed || result.value.changed;
    }
    Mitigation next = reverting;
    next.state = MitigationState::reverted;
    move(reverting, next,
         (changed ? "reverted" : "already reverted (nothing to write)") + left_as_found);
    return {};
}

}  // namespace mitigate
