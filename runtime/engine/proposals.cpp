#include "runtime/engine/proposals.h"

#include "runtime/core/ids.h"
#include "runtime/engine/open_mitigations.h"
#include "runtime/engine/transitions.h"
#include "runtime/metrics/metrics.h"
#include "runtime/store/audit_log.h"

namespace mitigate {

Proposals::Proposals(Transitions& transitions, OpenMitigations& open, AuditLog& audit,
                     const Clock& clock, Metrics& metrics)
    : transitions_(transitions), open_(open), audit_(audit), clock_(clock), metrics_(metrics) {}

Mitigation Proposals::submit(const ProposalRequest& request, const std::string& playbook) {
    std::lock_guard lock(mutex_);
    const TimePoint now = clock_.now();
    const Action& action = request.action;
    for (const MitigationSnapshot& open : open_.on_target(target_key(action))) {
        // Not into one on its way out (reverting) or stuck (conflict): that one is ending,
        // and this proposal waits its turn to run after it.
        if (open->state == MitigationState::reverting || open->state == MitigationState::conflict) {
            continue;
        }
        // Into one of another incident only once it has had its effect: one not applied
        // yet is withdrawn when its own incident resolves, and this incident would be left
        // with nothing. Until then this proposal waits its turn behind it instead.
        const bool same_incident = open->proposal.incident_id == request.incident_id;
        if (open->proposal.action.parameters == action.parameters && open->drill == request.drill &&
            (same_incident || may_have_effect(open->state))) {
            metrics_.increment("mitigate_proposals_merged_total");
            audit_.append_audit({now,
                                 request.proposed_by,
                                 "proposal.merged",
                                 open->id,
                                 {{"incident", request.incident_id},
                                  {"playbook", playbook},
                                  {"target", action.target},
                                  {"reason", "an equal mitigation is already " +
                                                 std::string(to_string(open->state))}}});
            return *open;
        }
    }
    Mitigation mitigation;
    mitigation.id = new_id("mit", now);
    mitigation.proposal.id = new_id("prop", now);
    mitigation.proposal.incident_id = request.incident_id;
    mitigation.proposal.playbook = playbook;
    mitigation.proposal.proposed_by = request.proposed_by;
    mitigation.proposal.action = action;
    mitigation.proposal.created_at = now;
    mitigation.proposal.environment = request.environment;
    mitigation.proposal.service = request.service;
    mitigation.created_at = mitigation.updated_at = now;
    mitigation.drill = request.drill;
    transitions_.create(mitigation, request.proposed_by,
                        request.incident_id.empty()
                            ? "proposed by hand"
                            : "proposed for incident " + request.incident_id);
    metrics_.increment("mitigate_proposals_total",
                       {{"playbook", playbook.empty() ? "(person)" : playbook}});
    return mitigation;
}

}  // namespace mitigate
