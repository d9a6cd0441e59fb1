// Carries out the step next_step() chose for one mitigation: the provider calls, the policy
// decision, and each transition, journaled before the effect it announces.
//
//   plan          proposed -> planned (the provider reads and plans; the plan is read as
//                 strictly as any input) -> a decision at once; or failed
//   decide        planned -> denied | dry_run | pending_approval | approved, and when
//                 approved -> applying and apply; planned, decided and applying are
//                 committed together (no effect between them: one fsync, not three)
//   apply         approved -> policy decided again now (a changed policy or approvals that
//                 no longer suffice end it denied or dry_run, nothing applied) ->
//                 applying (journaled, with its expiry and the policy hash) -> provider apply ->
//                 verifying -> provider check; a mitigation with no incident is then
//                 active, one with an incident waits in verifying for its alerts
//   settle_apply  applying: apply again (idempotent: the provider recognises its own
//                 change) and finish as above; a refusal by the provider ends it failed,
//                 a plugin that cannot be called leaves it applying, retried
//   check         verifying, unchecked in this process: the provider confirms the change
//   confirm       verifying -> active: the incident's alerts resolved
//   revert        active | verifying -> reverting (journaled) -> finish_revert
//   finish_revert reverting -> provider revert -> reverted, or conflict when someone
//                 changed the target since (a person decides)
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
#include <string>
#include <unordered_set>

#include "runtime/config/config.h"
#include "runtime/core/model.h"
#include "runtime/engine/next_step.h"
#include "runtime/engine/transitions.h"
#include "runtime/policy/policy_engine.h"
#include "runtime/policy/policy_set.h"

namespace mitigate {

class Providers;
class Metrics;
class RecentHistory;

struct StepResult {
    bool failed = false;  // retry with backoff
    std::string error;
    std::int64_t version = 0;  // of the mitigation where the failed step left it
    std::string failed_part;   // what failed: "apply", "check", "revert"; empty: the step
};

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
};

class MitigationSteps {
  public:
    explicit MitigationSteps(MitigationStepsSetup setup);

    StepResult run(const Mitigation& snapshot, const NextStep& step);

    // This process has seen the provider confirm the change of a verifying mitigation.
    bool checked(const std::string& id) const;
    // It left verifying (whoever moved it): nothing to remember.
    void forget(const std::string& id) { set_checked(id, false); }

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
    // `again`: an earlier attempt may have been sent (the mitigation was already applying).
    StepResult finish_apply(const Mitigation& applying, bool again);
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

    MitigationStepsSetup setup_;
    std::mutex decisions_mutex_;  // one decision at a time against the recent history
    mutable std::mutex checked_mutex_;
    std::unordered_set<std::string> checked_;
};

}  // namespace mitigate
