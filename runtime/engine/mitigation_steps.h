// Carries out the step next_step() chose for one mitigation: the provider calls, the policy
// decision, and each transition, journaled before the effect it announces.
//
//   plan          proposed -> planned (the provider reads and plans; the plan is read as
//                 strictly as any input) -> a decision at once; or failed; or, when the
//                 plan names a resource another open mitigation holds, the plan is dropped
//                 and it waits as proposed (resource_claims.h)
//   decide        planned -> denied | dry_run | pending_approval | approved, and when
//                 approved -> applying and apply; planned, decided and applying are
//                 committed together (no effect between them: one fsync, not three)
//   apply         approved -> policy decided again now (a changed policy or approvals that
//                 no longer suffice end it denied or dry_run, nothing applied) ->
//                 applying (journaled, with its expiry and the policy hash) -> provider apply ->
//                 verifying -> provider check; a mitigation with no incident is then
//                 active, one with an incident waits in verifying for its alerts
//   settle_apply  applying, once a write that may be in flight can no longer land
//                 (writes_settle_at): read back; the change is there -> verifying; it is
//                 not, after an apply of unknown outcome in this process -> failed (nothing
//                 changed, and nothing can any more); it is not, after a restart (the apply
//                 may never have been sent) -> apply again as above
//   check         verifying, unchecked in this process: the provider confirms the change
//   confirm       verifying -> active: the incident's alerts resolved
//   revert        active | verifying -> reverting (journaled) -> finish_revert
//   finish_revert reverting -> provider revert -> reverted, or conflict when someone
//                 changed the target since (a person decides)
//
// Unknown outcomes: a call that ends without an answer (a timeout, a crash, a 503 after
// retries) may have sent a write that lands later. Until the plan's settle margin after
// that call returned (or after this process started, for calls of a process that died),
// nothing more is written to the target and nothing read back is believed: a read made
// before a slow write lands would say "nothing changed", and a second write could land
// after the revert.
//
// A step works on a snapshot and commits with compare-and-set: if anything moved the
// mitigation meanwhile (a person's request), the step stops at its first commit, before
// any effect, and the reconciler looks again. A step that could not finish (a provider
// unavailable, an unknown outcome) says so in its result and is retried with backoff;
// the mitigation stays where it was journaled.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/core/model.h"
#include "runtime/engine/next_step.h"
#include "runtime/engine/transitions.h"
#include "runtime/policy/policy_engine.h"
#include "runtime/policy/policy_set.h"

namespace mitigate {

class AuditLog;
class Providers;
class Metrics;
class RecentHistory;
class ResourceClaims;

struct StepResult {
    bool failed = false;  // retry with backoff
    std::string error;
    std::int64_t version = 0;  // of the mitigation where the failed step left it
    std::string failed_part;   // what failed: "apply", "check", "revert"; empty: the step
    // Not retried before this, whatever the backoff says (an outcome that must settle).
    std::optional<TimePoint> not_before;

    // A step that could not finish, retried with backoff.
    static StepResult retry(std::string error, std::int64_t version, std::string failed_part = "",
                            std::optional<TimePoint> not_before = std::nullopt) {
        return {true, std::move(error), version, std::move(failed_part), not_before};
    }
};

// What a plan without a settle margin (from a plugin older than ABI 1.2) is given: longer
// than the write paths of the services mitigate knows take, short next to a TTL.
inline constexpr Duration undeclared_settle_margin = std::chrono::seconds(30);

struct MitigationStepsSetup {
    Transitions& transitions;
    Providers& providers;
    const Clock& clock;
    Metrics& metrics;
    RecentHistory& history;
    EngineConfig engine;
    std::shared_ptr<const PolicySet> policies;
    // The mitigation's incident as last known, or null.
    std::function<std::shared_ptr<const Incident>(const std::string& id)> incident;
    ResourceClaims& resources;
    AuditLog& audit;
    // Has these mitigations looked at again (they wait for a resource a claim released).
    std::function<void(const std::vector<std::string>& ids)> wake;
};

class MitigationSteps {
  public:
    explicit MitigationSteps(MitigationStepsSetup setup);

    StepResult run(const Mitigation& snapshot, const NextStep& step);

    // This process has seen the provider confirm the change of a verifying mitigation.
    bool checked(const std::string& id) const;
    // A mitigation this process found open when it started (the engine loads each).
    void inherit(const Mitigation& mitigation);
    // For one applying or reverting: when a write an earlier call (of this process, or of
    // the one before it) may have sent can no longer land, so that the next call may be
    // made. Nothing for other states, or when no call can be in flight.
    std::optional<TimePoint> writes_settle_at(const Mitigation& mitigation) const;
    // `after` was committed (whoever moved it): forgets what no longer applies to it.
    void forget(const Mitigation& after);

  private:
    StepResult plan(const Mitigation& proposed);
    StepResult decide(const Mitigation& planned);
    StepResult decide_and_apply(const Mitigation& current, std::vector<Transitions::Step> steps);
    Transitions::Step applying_step(const Mitigation& approved, const std::string& policy_hash,
                                    TimePoint now) const;
    // What policy decides on for `mitigation`; `incident` is set to its incident, if known.
    PolicyInput policy_input(const Mitigation& mitigation,
                             std::shared_ptr<const Incident>& incident) const;
    void started(const Mitigation& applying, const Incident* incident, TimePoint now);
    StepResult apply(const Mitigation& approved);
    // The plan's writes from part `first` on (one part, or each step); `again`: an earlier
    // attempt may have been sent (the mitigation was already applying).
    StepResult finish_apply(const Mitigation& applying, std::size_t first, bool again);
    StepResult settle_apply(const Mitigation& applying);
    // Part `index` of the plan did not land: failed, or the steps before it undone.
    StepResult refused_at_step(const Mitigation& applying, std::size_t index,
                               const std::string& why);
    // The provider answered that the change is there: applying -> verifying, then check.
    StepResult applied_and_verify(const Mitigation& applying, const std::string& reason);
    StepResult verify(const Mitigation& verifying);
    StepResult revert(const Mitigation& mitigation, const NextStep& step);
    StepResult finish_revert(const Mitigation& reverting);
    // Commits; a refusal (someone moved it first) ends the step quietly.
    std::optional<Mitigation> move(const Mitigation& current, Mitigation next,
                                   const std::string& reason,
                                   nlohmann::json details = nlohmann::json::object(),
                                   const std::string& actor = "runtime");
    void count_end(const Mitigation& mitigation);
    // Tells the policy history (circuit breaker) that automation failed on it at `at`.
    void record_failure(const Mitigation& mitigation, TimePoint at);
    // Ends one that has not touched its target: its incident resolved.
    StepResult withdraw_resolved(const Mitigation& mitigation, const Incident& incident);
    // `mitigation` moved to `state`, marked failed for the circuit breaker (not a drill's).
    Mitigation failing(const Mitigation& mitigation, MitigationState state) const;
    void set_checked(const std::string& id, bool checked);
    // A write an earlier call of this process made may land until `until`.
    struct Unsettled {
        TimePoint until;
        // The call answered with a failure of unknown outcome (rather than never
        // answering: an exception; or a call of the process before this one).
        bool answer_lost = false;
    };
    void set_unsettled(const std::string& id, std::optional<Unsettled> unsettled);
    std::optional<Unsettled> unsettled(const std::string& id) const;
    Duration settle_margin(const Mitigation& mitigation) const;
    // Makes a provider call that writes. An exception out of it says nothing of what was
    // sent: a write may land until the margin after it, so that is remembered first.
    template <class Call>
    auto unsettled_call(const Mitigation& mitigation, Call call) {
        try {
            return call();
        } catch (...) {
            set_unsettled(mitigation.id, Unsettled{setup_.clock.now() + settle_margin(mitigation)});
            throw;
        }
    }

    MitigationStepsSetup setup_;
    const TimePoint started_at_;       // calls of an earlier process ended before this
    std::mutex decisions_mutex_;       // one decision at a time against the recent history
    mutable std::mutex memory_mutex_;  // checked_ and unsettled_
    std::unordered_set<std::string> checked_;
    // Mitigations whose last call in this process may have left a write in flight, and
    // until when.
    std::unordered_map<std::string, Unsettled> unsettled_;
};

}  // namespace mitigate
