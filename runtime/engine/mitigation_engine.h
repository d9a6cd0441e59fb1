// The steps of a mitigation's life that touch a provider, each journaled before it has
// an effect (../shared/DESIGN.md: "every arrow is a state transition written to the store
// before the side effect it announces").
//
//   plan      proposed -> planned             the provider reads and plans; the plan is
//                                              checked as strictly as any input
//   decide    planned -> denied | dry_run | pending_approval | approved
//   apply     approved -> applying (journaled, with its expiry) -> provider apply
//             -> verifying -> provider check -> active; or, when the engine awaits
//             signal recovery and the mitigation answers an incident, it stays verifying
//             (check confirmed) until confirm() or a revert
//   confirm   verifying -> active: the triggering signal recovered
//   revert    active | verifying | conflict -> reverting (journaled) -> provider revert
//             -> reverted, or conflict when someone changed the target since
//   reconcile after a crash, for every mitigation caught between two steps: applying
//             asks the provider whether the change is there (check) and finishes or
//             repeats the idempotent apply; verifying checks again; reverting repeats
//             the compare-and-set revert. Nothing is applied twice, nothing is lost.
//   revert_expired  reverts every active mitigation whose TTL has passed.
//
// Signals, incidents, approvals, queueing and timing are runtime/engine/lifecycle.h's.
#pragma once

#include <string>
#include <vector>

#include "runtime/core/clock.h"
#include "runtime/core/model.h"

namespace mitigate {

class Store;
class ProviderRegistry;

struct EngineOutcome {
    bool ok = false;
    Mitigation mitigation;  // as stored after the step (or as found, when nothing moved)
    std::string message;    // why, when not ok
};

struct MitigationEngineOptions {
    // Leave a confirmed mitigation of an incident in verifying, for the caller to confirm
    // once the incident's signal recovers (runtime/engine/lifecycle.h does).
    bool await_signal_recovery = false;
};

class MitigationEngine {
  public:
    MitigationEngine(Store& store, ProviderRegistry& providers, const Clock& clock,
                     MitigationEngineOptions options = {});

    EngineOutcome plan(const std::string& id);
    EngineOutcome decide(const std::string& id, const Decision& decision);
    EngineOutcome apply(const std::string& id);
    EngineOutcome confirm(const std::string& id, const std::string& reason);
    EngineOutcome revert(const std::string& id, const std::string& actor,
                         const std::string& reason);
    std::vector<EngineOutcome> revert_expired();
    std::vector<EngineOutcome> reconcile();

  private:
    EngineOutcome move(const Mitigation& current, Mitigation next, const std::string& actor,
                       const std::string& reason,
                       const nlohmann::json& details = nlohmann::json::object());
    EngineOutcome finish_apply(Mitigation applying);
    EngineOutcome finish_revert(Mitigation reverting);
    EngineOutcome verify(Mitigation verifying);

    Store& store_;
    ProviderRegistry& providers_;
    const Clock& clock_;
    MitigationEngineOptions options_;
};

}  // namespace mitigate
