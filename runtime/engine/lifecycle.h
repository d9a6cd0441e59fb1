// The whole life of a mitigation, from the signal that starts it to its revert: the
// data flow of ../shared/DESIGN.md, durable at every step.
//
//   accept_signals   signals stored (idempotent by id) before anyone is told "accepted"
//   step()           everything that is due, in order:
//     1. pending signals -> incidents (grouped by engine.group_by labels, else by
//        fingerprint; a resolved alert leaves the incident's firing set, the last one
//        resolves it)
//     2. a newly opened incident -> every playbook, each in a confined worker -> proposals
//        (a proposal equal to an open mitigation on the same target merges into it)
//     3. proposed -> plan -> policy decision, oldest first; a proposal whose target
//        already has an open mitigation of the same action waits its turn (one at a time
//        per provider, action and target)
//     4. approved -> apply -> check -> verifying; verifying -> active when the incident's
//        alerts resolve within engine.verification_window, else reverted
//     5. pending approvals past their expiry -> expired; active past its TTL -> reverted;
//        with engine.revert_when_incident_resolves, active whose incident resolved ->
//        reverted
//     6. applying or reverting left by a failed provider call -> retried every 30 s
//   approve/revert/keep/propose   what people do, through the API or the CLI
//   reconcile()      on start, for whatever a crash interrupted
//
// One mutex serializes every step and request that moves a mitigation, so the engine is
// single-writer by construction; the store's compare-and-set catches anything else.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/core/model.h"
#include "runtime/playbook/playbook.h"
#include "runtime/policy/policy_set.h"

namespace mitigate {

class Store;
class ProviderRegistry;
class Metrics;
class MitigationEngine;

// Labels a drill puts on its synthetic signals (runtime/drills): the run they belong to,
// which also keeps them in an incident of their own, and, for a dry run, the mark that
// turns whatever policy would allow into dry_run.
inline constexpr std::string_view drill_run_label = "mitigate_drill_run";
inline constexpr std::string_view drill_dry_run_label = "mitigate_drill_dry_run";

struct LifecycleSetup {
    EngineConfig engine;
    std::shared_ptr<const PolicySet> policies;
    std::vector<std::pair<std::string, std::string>> playbooks;  // {file, source}
    PlaybookEnvironment playbook_environment;
};

// How a request from a person ended; the server maps it to an HTTP status.
enum class RequestStatus {
    done,
    invalid,    // 400: the request itself is malformed
    not_found,  // 404
    forbidden,  // 403: a rule forbids this person (self-approval, not in the group)
    conflict,   // 409: not in a state that allows it (already applied, approved twice)
    failed,     // 502: a provider call failed; the mitigation says where it stands
};

struct RequestResult {
    RequestStatus status = RequestStatus::done;
    std::optional<Mitigation> mitigation;
    std::string message;
};

struct SignalIntake {
    std::size_t accepted = 0;    // new signals, stored
    std::size_t duplicates = 0;  // already stored (a retry)
    bool refused = false;        // the backlog is full: nothing stored, retry later
    std::string message;
};

struct ApprovalRequest {
    std::string mitigation_id;
    std::string identity;  // who, as authenticated
    std::vector<std::string> groups;
    ApprovalVerdict verdict = ApprovalVerdict::approve;
    ApprovalChannel channel = ApprovalChannel::api;
    std::string comment;
    // The account on the channel it came through ("slack:U024BE7LH"), audited beside the
    // identity it maps to; empty for the API and the CLI, where the identity is the token.
    std::string via;
};

class Lifecycle {
  public:
    Lifecycle(Store& store, ProviderRegistry& providers, const Clock& clock, Metrics& metrics,
              LifecycleSetup setup);
    ~Lifecycle();
    Lifecycle(const Lifecycle&) = delete;
    Lifecycle& operator=(const Lifecycle&) = delete;

    // Thread-safe without the engine lock: only stores. Counts toward the backlog limit.
    SignalIntake accept_signals(const std::vector<Signal>& signals);

    RequestResult propose(const Action& action, const std::string& incident_id,
                          const std::string& identity);
    // A drill's fault (runtime/drills): an action that degrades something on purpose,
    // marked drill, with no incident; policy decides on it with `environment` and
    // `service` like any other proposal, and it reverts at its TTL if nothing else does.
    RequestResult propose_drill_fault(const Action& action, const std::string& environment,
                                      const std::string& service, const std::string& actor);
    RequestResult approve(const ApprovalRequest& request);
    RequestResult revert(const std::string& id, const std::string& identity,
                         const std::string& reason);
    RequestResult keep(const std::string& id, const std::string& identity,
                       const std::string& reason);
    // Ends a mitigation that has not touched its target (proposed, planned, approved ->
    // failed; pending approval -> rejected), for the runtime's own cleanup (a drill's);
    // no approval rule applies, the actor and reason are journaled.
    RequestResult withdraw(const std::string& id, const std::string& actor,
                           const std::string& reason);

    // Does everything due now; returns when something next becomes due (a TTL, an
    // approval expiry, a verification window, a retry), if anything will.
    std::optional<TimePoint> step();
    // On start: finishes or undoes what a crash interrupted (see MitigationEngine).
    void reconcile();

    std::size_t pending_signals() const;

  private:
    struct State;
    std::unique_ptr<State> state_;
    mutable std::mutex mutex_;
};

// When a mitigation pending approval lapses: its decision's approval_timeout after the
// decision, else engine.approval_expiry. Nothing for a mitigation without a decision.
std::optional<TimePoint> approval_expiry(const Mitigation& mitigation, const EngineConfig& engine);

// Names every metric the lifecycle records (declared on `metrics`), for docs and tests.
void declare_lifecycle_metrics(Metrics& metrics);

}  // namespace mitigate
