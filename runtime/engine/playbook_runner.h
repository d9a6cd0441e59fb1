// Playbooks, once per incident, on a thread of their own: an evaluation runs in a confined
// Lua worker and may ask providers for state, and neither may hold up anything else.
//
// Each incident opened is queued here by the signal intake; the playbooks that match it
// propose, and the proposals become mitigations (proposals.h). The store marks the
// incident once its playbooks ran, so an incident whose playbooks a crash interrupted is
// run again at the next start (recover()); a proposal made twice that way merges into the
// first. An incident that resolved before its turn is not run: its alerts are gone.
//
// Playbooks run by `priority`, highest first (file order among equals), so that on a
// target several of them propose for, the higher one's mitigation is first in line. A
// matching playbook with a `cooldown` whose proposal for another real incident was tried
// within it is not run (audited as playbook.skipped); drills neither wait for nor start a
// cooldown.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/core/clock.h"
#include "runtime/core/model.h"
#include "runtime/playbook/playbook.h"

namespace mitigate {

class IncidentStore;
class AuditLog;
class Providers;
class Metrics;

struct PlaybookRunnerSetup {
    IncidentStore& incidents;
    AuditLog& audit;
    Providers& providers;
    const Clock& clock;
    Metrics& metrics;
    std::vector<std::pair<std::string, std::string>> playbooks;  // {file, source}
    PlaybookEnvironment environment;
    // The incident as it is now (it may have resolved since it was queued).
    std::function<std::shared_ptr<const Incident>(const std::string& id)> incident;
    // Turns one proposal of playbook `playbook` for `incident` into a mitigation.
    std::function<void(const Action& action, const Incident& incident, const std::string& playbook)>
        propose;
    // When a mitigation proposed by `playbook` for another incident than `incident_id` (not
    // a drill's, and not one that ended without being tried) was last created at or after
    // `since`, from the store: a playbook's cooldown outlives a restart.
    std::function<std::optional<TimePoint>(const std::string& playbook,
                                           const std::string& incident_id, TimePoint since)>
        last_proposed;
};

class PlaybookRunner {
  public:
    explicit PlaybookRunner(PlaybookRunnerSetup setup);
    ~PlaybookRunner();  // stop()s
    PlaybookRunner(const PlaybookRunner&) = delete;
    PlaybookRunner& operator=(const PlaybookRunner&) = delete;

    void start();
    void stop();

    // An incident just opened, with the signal(s) that opened it.
    void opened(const Incident& incident, std::vector<Signal> signals);
    // Before start(): the incidents a previous run opened and never ran playbooks for.
    void recover();

    bool idle() const;

  private:
    struct Queued {
        Incident incident;
        std::vector<Signal> signals;
    };
    void run();
    void run_playbooks(const Queued& queued);
    void load_playbooks_once();
    // Still cooling down at `now` for `incident`: the end of the cooldown; else nothing.
    std::optional<TimePoint> cooling_down_until(const PlaybookInfo& info, const Incident& incident,
                                                TimePoint now);

    PlaybookRunnerSetup setup_;
    // Playbooks do not change while the runtime runs: their metadata (what they match) is
    // read once, so an incident costs one evaluation per matching playbook.
    std::vector<std::optional<PlaybookInfo>> infos_;
    std::vector<std::size_t> by_priority_;  // indexes into playbooks, highest priority first
    bool loaded_ = false;

    // At most this many incidents wait in memory; beyond it they wait in the store (not yet
    // marked as having run their playbooks) and are read back when the queue drains.
    static constexpr std::size_t queue_limit = 10000;
    mutable std::mutex mutex_;
    std::condition_variable queued_;
    std::deque<Queued> queue_;
    std::unordered_set<std::string> queued_ids_;  // each incident once, however it came
    bool overflowed_ = false;
    bool running_ = false;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace mitigate
