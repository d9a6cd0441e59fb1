#include "runtime/engine/playbook_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "runtime/core/time_format.h"

#include "runtime/metrics/metrics.h"
#include "runtime/providers/providers.h"
#include "runtime/store/audit_log.h"
#include "runtime/store/incident_store.h"

namespace mitigate {

using nlohmann::json;

PlaybookRunner::PlaybookRunner(PlaybookRunnerSetup setup) : setup_(std::move(setup)) {}

PlaybookRunner::~PlaybookRunner() {
    stop();
}

void PlaybookRunner::start() {
    std::lock_guard lock(mutex_);
    if (thread_.joinable()) {
        return;
    }
    stopping_ = false;
    thread_ = std::thread([this] { run(); });
}

void PlaybookRunner::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    queued_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void PlaybookRunner::opened(const Incident& incident, std::vector<Signal> signals) {
    {
        std::lock_guard lock(mutex_);
        if (queued_ids_.contains(incident.id)) {
            return;
        }
        if (queue_.size() >= queue_limit) {
            overflowed_ = true;  // it waits in the store instead
            return;
        }
        queued_ids_.insert(incident.id);
        queue_.push_back({incident, std::move(signals)});
    }
    queued_.notify_one();
}

void PlaybookRunner::recover() {
    for (const Incident& incident : setup_.incidents.incidents_awaiting_playbooks(queue_limit)) {
        opened(incident, setup_.incidents.incident_signals(incident.id, 1));
    }
}

bool PlaybookRunner::idle() const {
    std::lock_guard lock(mutex_);
    return queue_.empty() && !running_ && !overflowed_;
}

void PlaybookRunner::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        queued_.wait(lock, [this] { return stopping_ || !queue_.empty() || overflowed_; });
        if (stopping_) {
            return;  // what is queued stays unmarked in the store: the next start runs it
        }
        if (queue_.empty()) {
            // What did not fit waited in the store: read it back now.
            overflowed_ = false;
            lock.unlock();
            try {
                recover();
            } catch (const std::exception& failure) {
                spdlog::error("incidents waiting for playbooks cannot be read: {}", failure.what());
            }
            lock.lock();
            continue;
        }
        Queued next = std::move(queue_.front());
        queue_.pop_front();
        running_ = true;
        lock.unlock();
        try {
            run_playbooks(next);
        } catch (const std::exception& failure) {
            // Left unmarked in the store: the next start runs its playbooks again.
            spdlog::error("incident {}: playbooks did not run: {}", next.incident.id,
                          failure.what());
            setup_.metrics.increment("mitigate_playbook_failures_total",
                                     {{"playbook", "(runner)"}});
        }
        lock.lock();
        queued_ids_.erase(next.incident.id);
        running_ = false;
    }
}

void PlaybookRunner::load_playbooks_once() {
    if (loaded_) {
        return;
    }
    loaded_ = true;
    std::map<std::string, std::string> named;  // playbook name -> the first file with it
    for (const auto& [file, source] : setup_.playbooks) {
        PlaybookOutcome loaded = load_playbook(file, source, setup_.environment);
        if (loaded.info) {
            const auto [first, unique] = named.emplace(loaded.info->name, file);
            if (!unique) {
                loaded.failure = "invalid";
                loaded.message = "the playbook name \"" + loaded.info->name +
                                 "\" is already used by " + first->second;
                loaded.info.reset();
            }
        }
        if (loaded.failure) {
            setup_.metrics.increment("mitigate_playbook_failures_total", {{"playbook", file}});
            setup_.audit.append_audit(
                {setup_.clock.now(),
                 "runtime",
                 "playbook.failed",
                 "",
                 {{"playbook", file}, {"failure", *loaded.failure}, {"message", loaded.message}}});
            spdlog::error("playbook {} does not load and will not run: {}: {}", file,
                          *loaded.failure, loaded.message);
        }
        infos_.push_back(std::move(loaded.info));
    }
    for (std::size_t i = 0; i < infos_.size(); ++i) {
        by_priority_.push_back(i);
    }
    std::stable_sort(
        by_priority_.begin(), by_priority_.end(), [this](std::size_t a, std::size_t b) {
            return (infos_[a] ? infos_[a]->priority : 0) > (infos_[b] ? infos_[b]->priority : 0);
        });
}

std::optional<TimePoint> PlaybookRunner::cooling_down_until(const PlaybookInfo& info,
                                                            const Incident& incident,
                                                            TimePoint now) {
    if (!info.cooldown || !setup_.last_proposed) {
        return std::nullopt;
    }
    const auto last = setup_.last_proposed(info.name, incident.id, now - *info.cooldown);
    if (last && *last + *info.cooldown > now) {
        return *last + *info.cooldown;
    }
    return std::nullopt;
}

void PlaybookRunner::run_playbooks(const Queued& queued) {
    const Incident& incident = queued.incident;
    const auto now_known = setup_.incident(incident.id);
    if (now_known && now_known->status != IncidentStatus::open) {
        setup_.incidents.mark_playbooks_run(incident.id, setup_.clock.now());
        spdlog::info("incident {} resolved before its playbooks ran; none run", incident.id);
        return;
    }
    LuaHostApi host;
    // mitigate.state(): the provider's read-only "state" operation. A provider that fails
    // or offers none gives nil, which playbooks treat as "nothing known".
    host.state = [this, &incident](const std::string& provider,
                                   const std::string& target) -> std::optional<json> {
        const ProviderAnswer<json> answer = setup_.providers.state(provider, target);
        if (!answer.ok()) {
            spdlog::warn("incident {}: mitigate.state({}, {}) is nil: {}", incident.id, provider,
                         target, answer.error);
            return std::nullopt;
        }
        return answer.value;
    };
    load_playbooks_once();
    for (const std::size_t i : by_priority_) {
        const auto& [file, source] = setup_.playbooks[i];
        if (!infos_[i]) {
            continue;  // its metadata did not load: reported once, at first use
        }
        const TimePoint now = setup_.clock.now();
        if (!incident.drill && playbook_matches(*infos_[i], incident, queued.signals)) {
            if (const auto until = cooling_down_until(*infos_[i], incident, now)) {
                setup_.audit.append_audit({now,
                                           "runtime",
                                           "playbook.skipped",
                                           incident.id,
                                           {{"playbook", infos_[i]->name},
                                            {"reason", "cooldown"},
                                            {"until", format_rfc3339(*until)}}});
                spdlog::info("playbook {} not run on incident {}: cooling down until {}",
                             infos_[i]->name, incident.id, format_rfc3339(*until));
                continue;
            }
        }
        const PlaybookOutcome outcome =
            run_loaded_playbook(*infos_[i], file, source, incident, queued.signals,
                                setup_.clock.now(), host, setup_.environment);
        const std::string name = outcome.info ? outcome.info->name : file;
        if (outcome.failure) {
            setup_.metrics.increment("mitigate_playbook_failures_total", {{"playbook", name}});
            setup_.audit.append_audit({setup_.clock.now(),
                                       "runtime",
                                       "playbook.failed",
                                       incident.id,
                                       {{"playbook", name},
                                        {"failure", *outcome.failure},
                                        {"message", outcome.message}}});
            spdlog::warn("playbook {} failed on incident {}: {}: {}", name, incident.id,
                         *outcome.failure, outcome.message);
            continue;
        }
        for (const Action& action : outcome.proposals) {
            setup_.propose(action, incident, name);
        }
    }
    setup_.incidents.mark_playbooks_run(incident.id, setup_.clock.now());
}

}  // namespace mitigate
