#include "runtime/engine/transitions.h"

#include "runtime/engine/open_mitigations.h"

namespace mitigate {

Transitions::Transitions(MitigationStore& store, OpenMitigations& open, const Clock& clock)
    : store_(store), open_(open), clock_(clock) {}

void Transitions::create(const Mitigation& mitigation, const std::string& actor,
                         const std::string& reason) {
    store_.create_mitigation(mitigation, actor, reason);
    open_.update(mitigation);
    if (listener_) {
        listener_(mitigation, mitigation);
    }
}

TransitionResult Transitions::move(const Mitigation& current, Mitigation next,
                                   const std::string& actor, const std::string& reason,
                                   nlohmann::json details) {
    TransitionResult result = store_.transition(
        {std::move(next), current.version, clock_.now(), actor, reason, std::move(details)});
    if (result.current) {
        // Also after a refusal: the row that won is newer than what the index held.
        open_.update(*result.current);
    }
    if (result.outcome == TransitionOutcome::done && listener_) {
        listener_(current, *result.current);
    }
    return result;
}

TransitionResult Transitions::move_chain(const Mitigation& current, std::vector<Step> steps) {
    std::vector<TransitionRequest> chain;
    std::int64_t version = current.version;
    const TimePoint now = clock_.now();
    for (Step& step : steps) {
        chain.push_back({std::move(step.next), version++, now, step.actor, step.reason,
                         std::move(step.details)});
    }
    TransitionResult result = store_.transition_chain(chain);
    if (result.current) {
        open_.update(*result.current);
    }
    if (result.outcome == TransitionOutcome::done && listener_) {
        listener_(current, *result.current);
    }
    return result;
}

}  // namespace mitigate
