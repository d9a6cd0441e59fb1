#include "runtime/engine/next_step.h"

#include <algorithm>

#include "runtime/core/time_format.h"

namespace mitigate {

std::string_view to_string(StepKind kind) {
    switch (kind) {
        case StepKind::none: return "none";
        case StepKind::plan: return "plan";
        case StepKind::decide: return "decide";
        case StepKind::expire: return "expire";
        case StepKind::apply: return "apply";
        case StepKind::settle_apply: return "settle_apply";
        case StepKind::check: return "check";
        case StepKind::confirm: return "confirm";
        case StepKind::revert: return "revert";
        case StepKind::finish_revert: return "finish_revert";
    }
    return "unknown";
}

bool NextStep::calls_provider() const {
    switch (kind) {
        case StepKind::plan:
        case StepKind::apply:
        case StepKind::settle_apply:
        case StepKind::check:
        case StepKind::revert:
        case StepKind::finish_revert: return true;
        default: return false;
    }
}

int NextStep::priority() const {
    switch (kind) {
        case StepKind::revert:
        case StepKind::finish_revert: return 0;
        case StepKind::decide:
        case StepKind::expire:
        case StepKind::confirm: return 1;
        case StepKind::check:
        case StepKind::settle_apply: return 2;
        default: return 3;
    }
}

std::optional<TimePoint> approval_expiry(const Mitigation& mitigation, const EngineConfig& engine) {
    if (!mitigation.decision) {
        return std::nullopt;
    }
    const Decision& decision = *mitigation.decision;
    return decision.decided_at +
           decision.approval_timeout.value_or(Duration{engine.approval_expiry_ms});
}

NextStep next_step(const Mitigation& mitigation, const StepContext& context) {
    NextStep step;
    const TimePoint now = context.now;
    const auto wait_until = [&step](std::optional<TimePoint> at) {
        if (at && (!step.due || *at < *step.due)) {
            step.due = at;
        }
    };
    const bool resolved =
        context.incident != nullptr && context.incident->status == IncidentStatus::resolved;
    const bool ttl_passed = mitigation.expires_at && *mitigation.expires_at <= now;
    // Nothing starts for an incident that is over: a mitigation that has not touched its
    // target yet is withdrawn once its incident resolved, whatever approvals it has.
    if (resolved && !may_have_effect(mitigation.state) && !is_final(mitigation.state)) {
        step.kind = StepKind::expire;
        step.reason = "withdrawn before any effect: its incident resolved at " +
                      format_rfc3339(context.incident->resolved_at.value_or(context.now));
        return step;
    }
    switch (mitigation.state) {
        case MitigationState::proposed:
            if (context.holds_target) {
                step.kind = StepKind::plan;
            }
            return step;
        case MitigationState::planned: step.kind = StepKind::decide; return step;
        case MitigationState::pending_approval: {
            const auto expiry = approval_expiry(mitigation, *context.engine);
            if (expiry && now >= *expiry) {
                step.kind = StepKind::expire;
                step.reason = "approvals did not arrive by " + format_rfc3339(*expiry);
            } else {
                wait_until(expiry);
            }
            return step;
        }
        case MitigationState::approved: step.kind = StepKind::apply; return step;
        case MitigationState::applying:
            if (context.writes_settle_at && now < *context.writes_settle_at) {
                wait_until(context.writes_settle_at);
                return step;
            }
            step.kind = StepKind::settle_apply;
            return step;
        case MitigationState::verifying: {
            if (ttl_passed) {
                step.kind = StepKind::revert;
                step.cause = "ttl";
                step.reason = "TTL expired at " + format_rfc3339(*mitigation.expires_at);
                return step;
            }
            if (!context.checked || mitigation.proposal.incident_id.empty()) {
                step.kind = StepKind::check;
                return step;
            }
            if (resolved) {
                step.kind = StepKind::confirm;
                step.reason = "verified: the incident's alerts resolved at " +
                              format_rfc3339(context.incident->resolved_at.value_or(context.now));
                return step;
            }
            const Duration window{context.engine->verification_window_ms};
            const TimePoint window_end = mitigation.updated_at + window;
            if (now >= window_end) {
                step.kind = StepKind::revert;
                step.cause = "verification";
                step.reason = "verification failed: the incident's alerts still fire " +
                              format_duration(window) + " after apply";
                return step;
            }
            wait_until(window_end);
            wait_until(mitigation.expires_at);
            return step;
        }
        case MitigationState::active:
            if (ttl_passed) {
                step.kind = StepKind::revert;
                step.cause = "ttl";
                step.reason = "TTL expired at " + format_rfc3339(*mitigation.expires_at);
                return step;
            }
            if (resolved && context.engine->revert_when_incident_resolves) {
                step.kind = StepKind::revert;
                step.cause = "incident_resolved";
                step.reason = "the incident resolved; engine.revert_when_incident_resolves is on";
                return step;
            }
            wait_until(mitigation.expires_at);
            return step;
        case MitigationState::reverting:
            if (context.writes_settle_at && now < *context.writes_settle_at) {
                wait_until(context.writes_settle_at);
                return step;
            }
            step.kind = StepKind::finish_revert;
            return step;
        default: return step;  // conflict waits for a person; final states have nothing
    }
}

std::set<std::string> counted_approvers(const Mitigation& mitigation, const Decision& decision,
                                        TimePoint at) {
    std::set<std::string> counted;
    for (const Approval& approval : mitigation.approvals) {
        const bool in_group =
            decision.approver_groups.empty() ||
            std::any_of(decision.approver_groups.begin(), decision.approver_groups.end(),
                        [&](const std::string& group) {
                            return std::find(approval.groups.begin(), approval.groups.end(),
                                             group) != approval.groups.end();
                        });
        if (approval.verdict == ApprovalVerdict::approve && in_group &&
            (decision.self_approval_allowed ||
             approval.approver != mitigation.proposal.proposed_by) &&
            (!decision.approval_timeout || at - approval.at <= *decision.approval_timeout)) {
            counted.insert(approval.approver);
        }
    }
    return counted;
}

}  // namespace mitigate
