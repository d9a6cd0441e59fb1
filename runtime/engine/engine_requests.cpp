// What people ask of the engine, through the API, the CLI and chat. Each request is
// checked against the mitigation as last committed and recorded as one compare-and-set
// transition, then answered: nothing here calls a provider or waits for the reconciler,
// which carries out whatever the transition asked for (an apply after the last approval,
// the revert after `reverting`).
#include <algorithm>
#include <set>

#include "runtime/core/time_format.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/engine_state.h"

namespace mitigate {
namespace {

RequestResult result_of(RequestStatus status, std::optional<Mitigation> mitigation,
                        std::string message) {
    return {status, std::move(mitigation), std::move(message)};
}

std::string state_words(const Mitigation& mitigation) {
    return std::string(to_string(mitigation.state));
}

}  // namespace

std::optional<Mitigation> Engine::State::current(const std::string& id) {
    if (const MitigationSnapshot open_one = open.find(id)) {
        return *open_one;
    }
    return store.find_mitigation(id);  // final ones are only in the store
}

RequestResult Engine::State::refuse_approval(const Mitigation& mitigation,
                                             const ApprovalRequest& request, RequestStatus status,
                                             const std::string& why) {
    metrics.increment("mitigate_approvals_refused_total");
    nlohmann::json details = {{"verdict", to_string(request.verdict)},
                              {"channel", to_string(request.channel)},
                              {"reason", why}};
    if (!request.via.empty()) {
        details["via"] = request.via;
    }
    store.append_audit(
        {clock.now(), request.identity, "approval.refused", mitigation.id, std::move(details)});
    return result_of(status, mitigation, why);
}

RequestResult Engine::propose(const ProposalRequest& request) {
    State& state = *state_;
    // Read back through the one strict reader, as the store will read it: what cannot be
    // read back is refused now, not found "damaged" later.
    const Parsed<Action> checked_action = parse_action(nlohmann::json(request.action));
    if (!checked_action) {
        return result_of(RequestStatus::invalid, std::nullopt, describe(checked_action.errors));
    }
    ProposalRequest checked = request;
    if (!request.incident_id.empty()) {
        const auto incident = state.incident(request.incident_id);
        if (!incident) {
            return result_of(RequestStatus::not_found, std::nullopt,
                             "no incident " + request.incident_id);
        }
        if (incident->status == IncidentStatus::resolved) {
            return result_of(
                RequestStatus::conflict, std::nullopt,
                "incident " + request.incident_id + " resolved at " +
                    format_rfc3339(incident->resolved_at.value_or(incident->opened_at)) +
                    "; nothing is proposed for an incident that is over");
        }
        checked.drill = incident->drill;
    }
    const Mitigation mitigation = state.proposals.submit(checked, "");
    return result_of(RequestStatus::done, mitigation, "proposed");
}

RequestResult Engine::approve(const ApprovalRequest& request) {
    State& state = *state_;
    // The index may trail a commit by a moment, and the engine moves mitigations on its
    // own: a request that loses the race is decided again on the row that won.
    for (int attempt = 0;; ++attempt) {
        const auto found = attempt == 0 ? state.current(request.mitigation_id)
                                        : state.store.find_mitigation(request.mitigation_id);
        if (!found) {
            return result_of(RequestStatus::not_found, std::nullopt,
                             "no mitigation " + request.mitigation_id);
        }
        const Mitigation& mitigation = *found;
        const char* verb = request.verdict == ApprovalVerdict::approve ? "approved" : "rejected";
        if (mitigation.state != MitigationState::pending_approval || !mitigation.decision) {
            if (attempt == 0) {
                continue;  // the index may not show a commit of a moment ago: ask the store
            }
            return state.refuse_approval(mitigation, request, RequestStatus::conflict,
                                         mitigation.id + " is " + state_words(mitigation) +
                                             "; only a mitigation pending approval can be " + verb);
        }
        const Decision& decision = *mitigation.decision;
        const TimePoint now = state.clock.now();
        const TimePoint expiry = *approval_expiry(mitigation, state.setup.engine);
        if (now >= expiry) {
            return state.refuse_approval(mitigation, request, RequestStatus::conflict,
                                         "the approval window closed at " + format_rfc3339(expiry));
        }
        if (request.identity == mitigation.proposal.proposed_by &&
            !decision.self_approval_allowed) {
            return state.refuse_approval(
                mitigation, request, RequestStatus::forbidden,
                request.identity + " proposed this mitigation and cannot also decide on it");
        }
        if (!decision.approver_groups.empty() &&
            std::none_of(decision.approver_groups.begin(), decision.approver_groups.end(),
                         [&](const std::string& group) {
                             return std::find(request.groups.begin(), request.groups.end(),
                                              group) != request.groups.end();
                         })) {
            std::string groups;
            for (const auto& group : decision.approver_groups) {
                groups += (groups.empty() ? "" : ", ") + group;
            }
            return state.refuse_approval(
                mitigation, request, RequestStatus::forbidden,
                request.identity + " is not in a group that may decide (" + groups + ")");
        }
        std::set<std::string> approvers = counted_approvers(mitigation, decision, now);
        if (approvers.contains(request.identity)) {
            return state.refuse_approval(mitigation, request, RequestStatus::conflict,
                                         request.identity + " has already approved " +
                                             mitigation.id +
                                             "; approvals must come from distinct people");
        }
        Mitigation next = mitigation;
        next.approvals.push_back({request.identity, request.groups, request.verdict,
                                  request.channel, request.comment, now});
        std::string reason;
        if (request.verdict == ApprovalVerdict::reject) {
            next.state = MitigationState::rejected;
            reason = "rejected by " + request.identity;
        } else {
            approvers.insert(request.identity);
            const auto have = static_cast<int>(approvers.size());
            next.state = have >= decision.approvals_required ? MitigationState::approved
                                                             : MitigationState::pending_approval;
            reason = "approved by " + request.identity + " (" + std::to_string(have) + " of " +
                     std::to_string(decision.approvals_required) + ")";
        }
        if (!request.comment.empty()) {
            reason += ": " + request.comment;
        }
        nlohmann::json details = {{"channel", to_string(request.channel)},
                                  {"groups", request.groups},
                                  {"verdict", to_string(request.verdict)}};
        if (!request.via.empty()) {
            details["via"] = request.via;
        }
        const TransitionResult written =
            state.transitions.move(mitigation, next, request.identity, reason, std::move(details));
        if (written.outcome == TransitionOutcome::version_conflict && attempt < 4) {
            continue;
        }
        if (written.outcome != TransitionOutcome::done) {
            return result_of(RequestStatus::conflict, written.current, written.message);
        }
        state.metrics.increment("mitigate_approvals_total",
                                {{"verdict", std::string(to_string(request.verdict))}});
        return result_of(RequestStatus::done, written.current, reason);
    }
}

RequestResult Engine::withdraw(const std::string& id, const std::string& actor,
                               const std::string& reason) {
    State& state = *state_;
    // The index may trail a commit by a moment, and the engine moves mitigations on its
    // own: a request that loses the race is decided again on the row that won.
    for (int attempt = 0;; ++attempt) {
        const auto found = attempt == 0 ? state.current(id) : state.store.find_mitigation(id);
        if (!found) {
            return result_of(RequestStatus::not_found, std::nullopt, "no mitigation " + id);
        }
        Mitigation next = *found;
        switch (found->state) {
            case MitigationState::pending_approval: next.state = MitigationState::rejected; break;
            case MitigationState::proposed:
            case MitigationState::planned:
            case MitigationState::approved: next.state = MitigationState::failed; break;
            default:
                if (attempt == 0) {
                    continue;  // the index may not show a commit of a moment ago
                }
                return result_of(RequestStatus::conflict, found,
                                 id + " is " + state_words(*found) +
                                     "; only a mitigation that has not been applied is withdrawn");
        }
        const TransitionResult written =
            state.transitions.move(*found, next, actor, "withdrawn: " + reason);
        if (written.outcome == TransitionOutcome::version_conflict && attempt < 4) {
            continue;
        }
        if (written.outcome != TransitionOutcome::done) {
            return result_of(RequestStatus::conflict, written.current, written.message);
        }
        return result_of(RequestStatus::done, written.current, "withdrawn");
    }
}

namespace {

// Whether a person in `groups` may do what needs one of `required` (empty: anyone).
bool in_one_of(const std::vector<std::string>& groups, const std::vector<std::string>& required) {
    return required.empty() || std::any_of(groups.begin(), groups.end(), [&](const auto& group) {
               return std::find(required.begin(), required.end(), group) != required.end();
           });
}

}  // namespace

std::optional<RequestResult> Engine::State::refuse_person(const PersonRequest& request,
                                                          std::string_view verb) {
    const auto found = current(request.mitigation_id);
    if (!found || !found->decision) {
        return std::nullopt;  // not found, or nothing decided: the request itself says so
    }
    const std::vector<std::string>& required =
        verb == "keep" ? found->decision->keep_groups : found->decision->revert_groups;
    if (in_one_of(request.groups, required)) {
        return std::nullopt;
    }
    std::string groups;
    for (const std::string& group : required) {
        groups += (groups.empty() ? "" : ", ") + group;
    }
    const std::string why = request.identity + " is not in a group that may " + std::string(verb) +
                            " it (" + groups + ", from the policy rule that decided it)";
    nlohmann::json details = {{"reason", why}, {"asked_reason", request.reason}};
    if (!request.via.empty()) {
        details["via"] = request.via;
    }
    store.append_audit({clock.now(), request.identity, std::string(verb) + ".refused",
                        request.mitigation_id, std::move(details)});
    return result_of(RequestStatus::forbidden, found, why);
}

RequestResult Engine::revert(const PersonRequest& request) {
    if (auto refused = state_->refuse_person(request, "revert")) {
        return *refused;
    }
    return revert(request.mitigation_id, request.identity, request.reason);
}

RequestResult Engine::keep(const PersonRequest& request) {
    if (auto refused = state_->refuse_person(request, "keep")) {
        return *refused;
    }
    return keep(request.mitigation_id, request.identity, request.reason);
}

RequestResult Engine::revert(const std::string& id, const std::string& identity,
                             const std::string& reason) {
    State& state = *state_;
    // The index may trail a commit by a moment, and the engine moves mitigations on its
    // own: a request that loses the race is decided again on the row that won.
    for (int attempt = 0;; ++attempt) {
        const auto found = attempt == 0 ? state.current(id) : state.store.find_mitigation(id);
        if (!found) {
            return result_of(RequestStatus::not_found, std::nullopt, "no mitigation " + id);
        }
        const MitigationState current = found->state;
        if (current != MitigationState::active && current != MitigationState::verifying &&
            current != MitigationState::conflict) {
            if (attempt == 0) {
                continue;  // the index may not show a commit of a moment ago: ask the store
            }
            return result_of(RequestStatus::conflict, found,
                             id + " is " + state_words(*found) +
                                 "; only an active, verifying or conflicting mitigation reverts");
        }
        Mitigation reverting = *found;
        reverting.state = MitigationState::reverting;
        const TransitionResult written = state.transitions.move(
            *found, reverting, identity, reason.empty() ? "reverted by " + identity : reason);
        if (written.outcome == TransitionOutcome::version_conflict && attempt < 4) {
            continue;
        }
        if (written.outcome != TransitionOutcome::done) {
            return result_of(RequestStatus::conflict, written.current, written.message);
        }
        state.metrics.increment("mitigate_reverts_total", {{"cause", "human"}});
        return result_of(RequestStatus::accepted, written.current,
                         "reverting: the engine restores the state from before the mitigation");
    }
}

RequestResult Engine::keep(const std::string& id, const std::string& identity,
                           const std::string& reason) {
    State& state = *state_;
    if (reason.empty()) {
        return result_of(RequestStatus::invalid, std::nullopt,
                         "keeping a mitigation needs a reason (it will never revert)");
    }
    // The index may trail a commit by a moment, and the engine moves mitigations on its
    // own: a request that loses the race is decided again on the row that won.
    for (int attempt = 0;; ++attempt) {
        const auto found = attempt == 0 ? state.current(id) : state.store.find_mitigation(id);
        if (!found) {
            return result_of(RequestStatus::not_found, std::nullopt, "no mitigation " + id);
        }
        if (found->state != MitigationState::active && found->state != MitigationState::conflict) {
            if (attempt == 0) {
                continue;  // the index may not show a commit of a moment ago: ask the store
            }
            return result_of(RequestStatus::conflict, found,
                             id + " is " + state_words(*found) +
                                 "; only an active or conflicting mitigation can be kept");
        }
        Mitigation next = *found;
        next.state = MitigationState::kept;
        next.expires_at.reset();
        const TransitionResult written =
            state.transitions.move(*found, next, identity, "kept: " + reason);
        if (written.outcome == TransitionOutcome::version_conflict && attempt < 4) {
            continue;
        }
        if (written.outcome != TransitionOutcome::done) {
            return result_of(RequestStatus::conflict, written.current, written.message);
        }
        return result_of(RequestStatus::done, written.current, "kept");
    }
}

}  // namespace mitigate

namespace mitigate {

RequestResult Engine::reset_circuit_breaker(const std::string& identity,
                                            const std::string& reason) {
    State& state = *state_;
    if (reason.empty()) {
        return result_of(RequestStatus::invalid, std::nullopt,
                         "a reason is required to reset the circuit breaker");
    }
    const TimePoint now = state.clock.now();
    state.store.record_circuit_breaker_reset(now, identity, reason);
    state.history.reset_breaker(now);
    spdlog::info("circuit breaker reset by {}: {}", identity, reason);
    return result_of(
        RequestStatus::done, std::nullopt,
        "circuit breaker reset at " + format_rfc3339(now) + "; failures before it no longer count");
}

}  // namespace mitigate
