// Runs chaos drills inside the daemon: on their schedule and on demand (the API, `mitigate
// drill run`). A run goes through the same engine and policy as everything else; it only
// differs in where its signal comes from (isolated: grouped only with its own signals),
// and everything it causes is marked drill.
//
//   start     stop conditions checked (a real alert on the drill's service and
//             environment, a freeze); the synthetic alert is stored as a drill signal
//   waiting   the runner watches the incident and its mitigations: detected, proposed,
//             approved, applied; with resolve: after_apply it resolves the alert once a
//             mitigation is applied, and watches for recovery. It stops waiting when the
//             expectations are met, a deadline passes (applied_within, recovered_within,
//             max_duration), or a stop condition fires (the run is then aborted)
//   cleaning  every mitigation the drill caused is reverted (applied) or withdrawn (not
//             applied), and the alert resolved; until all of them are final
//   done      passed, failed or aborted, with a report: each expectation, and the time to
//             detect, propose, approve, apply, recover and revert
//
// Every phase is stored before it acts, so a daemon that dies mid-drill finds the run at
// its next start (recover()) and cleans up. Scheduled runs never overlap a run of the same
// drill (the start is recorded as skipped), and runs missed while the daemon was down are
// recorded as missed, not replayed in a burst.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/clock.h"
#include "runtime/drills/drill_definition.h"
#include "runtime/drills/drill_run_store.h"

namespace mitigate {

class Engine;
class Metrics;
class Store;

struct DrillRunnerHooks {
    std::function<void()> wake_runner;  // after a run was started from another thread
};

struct DrillStart {
    std::optional<DrillRun> run;  // the run, even when it was aborted before it began
    std::string refusal;          // why nothing was started (a run of that drill is going)
};

class DrillRunner {
  public:
    // `scheduled`: the drills of directories.drills; those with a schedule run on it.
    // A client of the engine like any other: it sends signals, proposes its fault, reverts
    // and withdraws through `engine`, and reads what happened from `store`.
    DrillRunner(Store& store, DrillRunStore& runs, Engine& engine, const Clock& clock,
                Metrics& metrics, std::shared_ptr<const PolicySet> policies,
                std::vector<DrillDefinition> scheduled, DrillRunnerHooks hooks);
    ~DrillRunner();
    DrillRunner(const DrillRunner&) = delete;
    DrillRunner& operator=(const DrillRunner&) = delete;

    // A run now. `dry_run` (or the drill's own dry_run) keeps policy deciding but applies
    // nothing. `trigger` is who asked ("api:alice", "schedule").
    DrillStart start(const DrillDefinition& drill, bool dry_run, const std::string& trigger);

    // Advances every run and starts the scheduled ones that are due. Returns when
    // something is next due (a deadline, the next scheduled start).
    std::optional<TimePoint> step();

    // On daemon start, before step(): a run the previous process left going is aborted
    // ("the daemon restarted during the drill") and cleaned up; a schedule never seen
    // before counts from now.
    void recover();

  private:
    struct State;
    std::unique_ptr<State> state_;
};

// Names the drill metrics (declared on `metrics`).
void declare_drill_metrics(Metrics& metrics);

}  // namespace mitigate
