#include "runtime/engine/mitigation_engine.h"

#include "runtime/core/time_format.h"
#include "runtime/core/validation.h"
#include "runtime/providers/provider_registry.h"
#include "runtime/store/store.h"

namespace mitigate {
namespace {

using nlohmann::json;

EngineOutcome refused(const Mitigation& mitigation, std::string message) {
    return {false, mitigation, std::move(message)};
}

json contract_request(const Mitigation& mitigation, const char* operation) {
    const Action& action = mitigation.proposal.action;
    json request{{"operation", operation}, {"action", action.action}, {"target", action.target}};
    if (mitigation.plan) {
        request["plan"] = *mitigation.plan;
    } else {
        request["parameters"] = action.parameters;
    }
    return request;
}

// A failure after which the change may or may not have happened: only the provider's
// own check can tell.
bool outcome_unknown(PluginCallStatus status) {
    return status == PluginCallStatus::crashed || status == PluginCallStatus::timeout ||
           status == PluginCallStatus::unavailable || status == PluginCallStatus::internal;
}

std::optional<Duration> ttl_of(const Mitigation& mitigation) {
    if (mitigation.decision && mitigation.decision->ttl) {
        return mitigation.decision->ttl;
    }
    return mitigation.proposal.action.ttl;
}

}  // namespace

MitigationEngine::MitigationEngine(Store& store, ProviderRegistry& providers, const Clock& clock,
                                   MitigationEngineOptions options)
    : store_(store), providers_(providers), clock_(clock), options_(options) {}

EngineOutcome MitigationEngine::move(const Mitigation& current, Mitigation next,
                                     const std::string& actor, const std::string& reason,
                                     const json& details) {
    const TransitionResult result =
        store_.transition({std::move(next), current.version, clock_.now(), actor, reason, details});
    if (result.outcome != TransitionOutcome::done) {
        return refused(result.current.value_or(current), result.message);
    }
    return {true, *result.current, ""};
}

EngineOutcome MitigationEngine::plan(const std::string& id) {
    const auto found = store_.find_mitigation(id);
    if (!found) {
        return refused({}, "no mitigation " + id);
    }
    if (found->state != MitigationState::proposed) {
        return refused(*found,
                       id + " is " + std::string(to_string(found->state)) + ", not proposed");
    }
    const PluginCallResult result =
        providers_.call(found->proposal.action.provider, contract_request(*found, "plan"));
    Mitigation next = *found;
    if (!result.ok()) {
        next.state = MitigationState::failed;
        return move(*found, next, "runtime",
                    "cannot plan (" + std::string(to_string(result.status)) + "): " + result.error);
    }
    json plan = result.response;
    plan["planned_at"] = format_rfc3339(clock_.now());
    const Parsed<Plan> parsed = parse_plan(plan);
    if (!parsed) {
        next.state = MitigationState::failed;
        return move(*found, next, "runtime",
                    "the " + found->proposal.action.provider +
                        " plugin returned an invalid plan: " + describe(parsed.errors));
    }
    next.plan = *parsed;
    next.state = MitigationState::planned;
    return move(*found, next, "runtime",
                "planned by provider " + found->proposal.action.provider + ": " +
                    parsed->blast_radius.description,
                {{"idempotency_key", parsed->idempotency_key}});
}

EngineOutcome MitigationEngine::decide(const std::string& id, const Decision& decision) {
    const auto found = store_.find_mitigation(id);
    if (!found) {
        return refused({}, "no mitigation " + id);
    }
    Mitigation next = *found;
    next.decision = decision;
    switch (decision.effect) {
        case DecisionEffect::deny: next.state = MitigationState::denied; break;
        case DecisionEffect::dry_run: next.state = MitigationState::dry_run; break;
        case DecisionEffect::require_approval:
            next.state = MitigationState::pending_approval;
            break;
        case DecisionEffect::allow: next.state = MitigationState::approved; break;
    }
    return move(*found, next, "policy", decision.summary,
                {{"effect", to_string(decision.effect)}, {"policy_hash", decision.policy_hash}});
}

EngineOutcome MitigationEngine::apply(const std::string& id) {
    const auto found = store_.find_mitigation(id);
    if (!found) {
        return refused({}, "no mitigation " + id);
    }
    if (found->state != MitigationState::approved || !found->plan) {
        return refused(*found, id + " is " + std::string(to_string(found->state)) +
                                   ", not approved with a plan");
    }
    // Journaled before the provider is touched, with the expiry already fixed: a crash
    // from here on leaves a mitigation that reconcile() finishes and that reverts on time.
    Mitigation applying = *found;
    applying.state = MitigationState::applying;
    if (const auto ttl = ttl_of(*found)) {
        applying.expires_at = clock_.now() + *ttl;
    }
    EngineOutcome moved =
        move(*found, applying, "runtime", "applying " + found->plan->idempotency_key,
             {{"idempotency_key", found->plan->idempotency_key}});
    if (!moved.ok) {
        return moved;
    }
    return finish_apply(moved.mitigation);
}

EngineOutcome MitigationEngine::finish_apply(Mitigation applying) {
    const std::string& provider = applying.proposal.action.provider;
    const PluginCallResult applied = providers_.call(provider, contract_request(applying, "apply"));
    if (!applied.ok() && !outcome_unknown(applied.status)) {
        // The provider refused before changing anything (a conflict, bad parameters).
        Mitigation failed = applying;
        failed.state = MitigationState::failed;
        return move(
            applying, failed, "runtime",
            "apply refused (" + std::string(to_string(applied.status)) + "): " + applied.error);
    }
    if (!applied.ok()) {
        const PluginCallResult checked =
            providers_.call(provider, contract_request(applying, "check"));
        if (!checked.ok()) {
            // Neither applied nor known not to be: stays applying; reconcile() asks again.
            return refused(applying, "apply failed (" + std::string(to_string(applied.status)) +
                                         "): " + applied.error +
                                         "; check failed too: " + checked.error);
        }
        if (!checked.response.value("applied", false)) {
            Mitigation failed = applying;
            failed.state = MitigationState::failed;
            return move(applying, failed, "runtime",
                        "apply failed (" + std::string(to_string(applied.status)) +
                            "): " + applied.error + "; the provider confirms nothing changed");
        }
    }
    Mitigation verifying = applying;
    verifying.state = MitigationState::verifying;
    EngineOutcome moved = move(applying, verifying, "runtime",
                               applied.ok() && !applied.response.value("changed", true)
                                   ? "already applied (idempotent apply changed nothing)"
                                   : "applied");
    if (!moved.ok) {
        return moved;
    }
    return verify(moved.mitigation);
}

EngineOutcome MitigationEngine::verify(Mitigation verifying) {
    const PluginCallResult checked =
        providers_.call(verifying.proposal.action.provider, contract_request(verifying, "check"));
    if (!checked.ok()) {
        return refused(verifying, "check failed (" + std::string(to_string(checked.status)) +
                                      "): " + checked.error);
    }
    Mitigation next = verifying;
    if (checked.response.value("applied", false)) {
        if (options_.await_signal_recovery && !verifying.proposal.incident_id.empty()) {
            return {true, verifying, "the provider confirms the change; awaiting the signal"};
        }
        next.state = MitigationState::active;
        return move(verifying, next, "runtime",
                    "the provider confirms the change" +
                        (next.expires_at ? "; reverts at " + format_rfc3339(*next.expires_at)
                                         : std::string()));
    }
    next.state = MitigationState::reverting;
    EngineOutcome moved = move(verifying, next, "runtime",
                               "the provider does not show the change after apply; reverting");
    return moved.ok ? finish_revert(moved.mitigation) : moved;
}

EngineOutcome MitigationEngine::confirm(const std::string& id, const std::string& reason) {
    const auto found = store_.find_mitigation(id);
    if (!found) {
        return refused({}, "no mitigation " + id);
    }
    if (found->state != MitigationState::verifying) {
        return refused(*found,
                       id + " is " + std::string(to_string(found->state)) + ", not verifying");
    }
    Mitigation next = *found;
    next.state = MitigationState::active;
    return move(*found, next, "runtime",
                reason + (next.expires_at ? "; reverts at " + format_rfc3339(*next.expires_at)
                                          : std::string()));
}

EngineOutcome MitigationEngine::revert(const std::string& id, const std::string& actor,
                                       const std::string& reason) {
    const auto found = store_.find_mitigation(id);
    if (!found) {
        return refused({}, "no mitigation " + id);
    }
    const MitigationState state = found->state;
    if (state != MitigationState::active && state != MitigationState::verifying &&
        state != MitigationState::conflict && state != MitigationState::applying) {
        return refused(*found, id + " is " + std::string(to_string(state)) + ": nothing to revert");
    }
    Mitigation reverting = *found;
    reverting.state = MitigationState::reverting;
    EngineOutcome moved = move(*found, reverting, actor, reason);
    return moved.ok ? finish_revert(moved.mitigation) : moved;
}

EngineOutcome MitigationEngine::finish_revert(Mitigation reverting) {
    const PluginCallResult result =
        providers_.call(reverting.proposal.action.provider, contract_request(reverting, "revert"));
    Mitigation next = reverting;
    if (result.status == PluginCallStatus::conflict) {
        next.state = MitigationState::conflict;
        return move(reverting, next, "runtime",
                    "not reverted: " + result.error + "; a person must decide (revert or keep)");
    }
    if (!result.ok()) {
        // Stays reverting: reconcile() or the next TTL pass repeats the compare-and-set.
        return refused(reverting, "revert failed (" + std::string(to_string(result.status)) +
                                      "): " + result.error);
    }
    next.state = MitigationState::reverted;
    return move(reverting, next, "runtime",
                result.response.value("changed", true) ? "reverted"
                                                       : "already reverted (nothing to write)");
}

std::vector<EngineOutcome> MitigationEngine::revert_expired() {
    std::vector<EngineOutcome> outcomes;
    const TimePoint now = clock_.now();
    for (const Mitigation& mitigation :
         store_.list_mitigations(in_states({MitigationState::active}, 10000))) {
        if (mitigation.expires_at && *mitigation.expires_at <= now) {
            outcomes.push_back(revert(mitigation.id, "runtime",
                                      "TTL expired at " + format_rfc3339(*mitigation.expires_at)));
        }
    }
    return outcomes;
}

std::vector<EngineOutcome> MitigationEngine::reconcile() {
    std::vector<EngineOutcome> outcomes;
    for (const Mitigation& mitigation : store_.list_mitigations(in_states(
             {MitigationState::applying, MitigationState::verifying, MitigationState::reverting},
             10000))) {
        switch (mitigation.state) {
            case MitigationState::applying: outcomes.push_back(finish_apply(mitigation)); break;
            case MitigationState::verifying: outcomes.push_back(verify(mitigation)); break;
            default: outcomes.push_back(finish_revert(mitigation)); break;
        }
    }
    return outcomes;
}

}  // namespace mitigate
