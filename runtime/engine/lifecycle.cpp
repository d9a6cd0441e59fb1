#include "runtime/engine/lifecycle.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "runtime/core/ids.h"
#include "runtime/core/time_format.h"
#include "runtime/engine/mitigation_engine.h"
#include "runtime/metrics/metrics.h"
#include "runtime/policy/policy_engine.h"
#include "runtime/providers/provider_registry.h"
#include "runtime/store/store.h"

namespace mitigate {
namespace {

using nlohmann::json;

constexpr std::size_t signal_batch = 2000;
constexpr Duration retry_interval = std::chrono::seconds(30);
constexpr std::size_t every_open_mitigation = 100000;

const std::vector<MitigationState>& open_states() {
    using enum MitigationState;
    static const std::vector<MitigationState> states = {proposed, planned,   pending_approval,
                                                        approved, applying,  verifying,
                                                        active,   reverting, conflict};
    return states;
}

bool same_target(const Action& a, const Action& b) {
    return a.provider == b.provider && a.action == b.action && a.target == b.target;
}

std::string group_key_of(const Signal& signal, const std::vector<std::string>& group_by) {
    std::string key;
    for (const std::string& label : group_by) {
        const auto found = signal.labels.find(label);
        if (found != signal.labels.end()) {
            key += (key.empty() ? "" : ",") + label + "=" + found->second;
        }
    }
    key = key.empty() ? "fingerprint=" + signal.fingerprint : key;
    // A drill's signals are their own incident, never merged with a real one on the same
    // service: cleanup must find exactly what the drill caused, and a real alert on the
    // drill's target is a reason to stop the drill, not part of it.
    if (signal.source == SignalSource::drill) {
        const auto run = signal.labels.find(std::string(drill_run_label));
        key = "drill:" + (run == signal.labels.end() ? std::string() : run->second) + "|" + key;
    }
    return key;
}

double seconds_between(TimePoint from, TimePoint to) {
    return std::chrono::duration<double>(to - from).count();
}

RequestResult result_of(RequestStatus status, std::optional<Mitigation> mitigation,
                        std::string message) {
    return {status, std::move(mitigation), std::move(message)};
}

}  // namespace

void declare_lifecycle_metrics(Metrics& metrics) {
    metrics.declare_counter("mitigate_signals_received_total",
                            "Signals accepted and stored, by source.");
    metrics.declare_counter("mitigate_signals_duplicate_total",
                            "Signals received again (retries), stored once.");
    metrics.declare_counter("mitigate_signals_refused_total",
                            "Signals refused because the backlog was full (the sender retries).");
    metrics.declare_gauge("mitigate_signals_pending", "Signals stored but not yet grouped.");
    metrics.declare_counter("mitigate_incidents_opened_total", "Incidents opened.");
    metrics.declare_counter("mitigate_incidents_resolved_total", "Incidents resolved.");
    metrics.declare_counter("mitigate_proposals_total", "Proposals made, by playbook.");
    metrics.declare_counter("mitigate_proposals_merged_total",
                            "Proposals equal to an open mitigation, merged into it.");
    metrics.declare_counter("mitigate_playbook_failures_total",
                            "Playbook evaluations that failed, by playbook.");
    metrics.declare_counter("mitigate_decisions_total", "Policy decisions, by effect.");
    metrics.declare_counter("mitigate_approvals_total", "Approvals recorded, by verdict.");
    metrics.declare_counter("mitigate_approvals_refused_total",
                            "Approvals refused (self-approval, group, twice, wrong state).");
    metrics.declare_counter("mitigate_applies_total", "Mitigations applied and checked.");
    metrics.declare_counter("mitigate_reverts_total", "Reverts started, by cause.");
    metrics.declare_counter("mitigate_failures_total",
                            "Mitigations that ended failed or in conflict, by state.");
    metrics.declare_gauge("mitigate_mitigations", "Open mitigations, by state.");
    metrics.declare_histogram(
        "mitigate_signal_to_applied_seconds",
        "From the first signal of an incident to its mitigation applied and checked.",
        {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300});
    metrics.declare_histogram(
        "mitigate_provider_step_seconds", "Duration of plan, apply and revert, by step.",
        {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
}

struct Lifecycle::State {
    Store& store;
    ProviderRegistry& providers;
    const Clock& clock;
    Metrics& metrics;
    LifecycleSetup setup;
    MitigationEngine engine;
    std::atomic<std::size_t> pending;
    TimePoint last_retry{};

    State(Store& store_, ProviderRegistry& providers_, const Clock& clock_, Metrics& metrics_,
          LifecycleSetup setup_)
        : store(store_),
          providers(providers_),
          clock(clock_),
          metrics(metrics_),
          setup(std::move(setup_)),
          engine(store_, providers_, clock_, MitigationEngineOptions{true}),
          pending(store_.count_pending_signals()) {}

    Duration verification_window() const { return Duration{setup.engine.verification_window_ms}; }

    std::vector<Mitigation> open_mitigations() {
        auto list = store.list_mitigations(in_states(open_states(), every_open_mitigation));
        std::reverse(list.begin(), list.end());  // oldest first: queues are fair
        return list;
    }

    // ---- 1. signals -> incidents -----------------------------------------------------

    // Returns the incidents opened by this batch, for the playbooks.
    std::vector<std::pair<Incident, std::vector<Signal>>> group_signals() {
        std::vector<std::pair<Incident, std::vector<Signal>>> opened;
        for (;;) {
            const std::vector<Signal> signals = store.pending_signals(signal_batch);
            if (signals.empty()) {
                return opened;
            }
            const TimePoint now = clock.now();
            std::map<std::string, IncidentWrite> writes;  // by group key
            std::map<std::string, std::vector<Signal>> first_signals;
            std::vector<std::string> untracked;
            for (const Signal& signal : signals) {
                const std::string key = group_key_of(signal, setup.engine.group_by);
                auto found = writes.find(key);
                if (found == writes.end()) {
                    if (auto stored = store.find_open_incident(key)) {
                        found = writes.emplace(key, IncidentWrite{*stored, false, {}, {}}).first;
                    }
                }
                if (signal.status == SignalStatus::resolved) {
                    if (found == writes.end() ||
                        found->second.incident.status == IncidentStatus::resolved) {
                        untracked.push_back(signal.id);  // nothing open to resolve
                        continue;
                    }
                    Incident& incident = found->second.incident;
                    std::erase(incident.firing, signal.fingerprint);
                    incident.signal_ids.push_back(signal.id);
                    found->second.processed_signal_ids.push_back(signal.id);
                    if (incident.firing.empty()) {
                        incident.status = IncidentStatus::resolved;
                        incident.resolved_at = now;
                        found->second.audit =
                            AuditEntry{now,
                                       "runtime",
                                       "incident.resolved",
                                       incident.id,
                                       {{"group_key", key}, {"signal", signal.id}}};
                        metrics.increment("mitigate_incidents_resolved_total");
                    }
                    continue;
                }
                if (found == writes.end() ||
                    found->second.incident.status == IncidentStatus::resolved) {
                    if (found != writes.end()) {
                        // Resolved and firing again within one batch: the resolution is
                        // written first, then a new incident opens.
                        write_batch({found->second});
                        writes.erase(found);
                    }
                    Incident incident;
                    incident.id = new_id("inc", now);
                    incident.group_key = key;
                    incident.title = signal.name;
                    if (const auto service = signal.labels.find("service");
                        service != signal.labels.end()) {
                        incident.service = service->second;
                        incident.title += " on " + service->second;
                    }
                    if (const auto environment = signal.labels.find("environment");
                        environment != signal.labels.end()) {
                        incident.environment = environment->second;
                        incident.title += " (" + environment->second + ")";
                    }
                    incident.labels = signal.labels;
                    incident.opened_at = signal.received_at;
                    incident.drill = signal.source == SignalSource::drill;
                    found =
                        writes
                            .emplace(key, IncidentWrite{incident,
                                                        true,
                                                        {},
                                                        AuditEntry{now,
                                                                   "runtime",
                                                                   "incident.opened",
                                                                   incident.id,
                                                                   {{"group_key", key},
                                                                    {"title", incident.title},
                                                                    {"signal", signal.id},
                                                                    {"drill", incident.drill}}}})
                            .first;
                    first_signals[key] = {signal};
                    metrics.increment("mitigate_incidents_opened_total");
                }
                Incident& incident = found->second.incident;
                if (std::find(incident.firing.begin(), incident.firing.end(), signal.fingerprint) ==
                    incident.firing.end()) {
                    incident.firing.push_back(signal.fingerprint);
                }
                incident.signal_ids.push_back(signal.id);
                found->second.processed_signal_ids.push_back(signal.id);
            }
            std::vector<IncidentWrite> batch;
            for (auto& [key, write] : writes) {
                if (write.create) {
                    opened.emplace_back(write.incident, first_signals[key]);
                }
                batch.push_back(std::move(write));
            }
            write_batch(batch);
            if (!untracked.empty()) {
                store.mark_signals_processed(untracked);
            }
            const std::size_t done = signals.size();
            pending.fetch_sub(std::min(done, pending.load()));
        }
    }

    void write_batch(const std::vector<IncidentWrite>& batch) {
        // An incident can hold many signals over its life; keep the last 1000 ids.
        std::vector<IncidentWrite> trimmed = batch;
        for (IncidentWrite& write : trimmed) {
            auto& ids = write.incident.signal_ids;
            if (ids.size() > 1000) {
                ids.erase(ids.begin(), ids.end() - 1000);
            }
        }
        store.write_incidents(trimmed);
        // Incidents change only here: the cache the other phases read stays exact.
        for (const IncidentWrite& write : trimmed) {
            incident_cache[write.incident.id] = write.incident;
        }
    }

    // ---- 2. playbooks -> proposals ---------------------------------------------------

    void run_playbooks(const Incident& incident, const std::vector<Signal>& signals) {
        LuaHostApi host;
        // mitigate.state(): the provider's read-only "state" operation. A provider that
        // fails or offers none gives nil, which playbooks treat as "nothing known".
        host.state = [this, &incident](const std::string& provider,
                                       const std::string& target) -> std::optional<json> {
            const PluginCallResult result =
                providers.call(provider, {{"operation", "state"}, {"target", target}});
            if (!result.ok()) {
                spdlog::warn("incident {}: mitigate.state({}, {}) is nil: {}", incident.id,
                             provider, target, result.error);
                return std::nullopt;
            }
            return result.response.value("state", json());
        };
        load_playbooks_once();
        for (std::size_t i = 0; i < setup.playbooks.size(); ++i) {
            const auto& [file, source] = setup.playbooks[i];
            if (!playbook_infos[i]) {
                continue;  // its metadata did not load: reported once, at first use
            }
            const PlaybookOutcome outcome =
                run_loaded_playbook(*playbook_infos[i], file, source, incident, signals,
                                    clock.now(), host, setup.playbook_environment);
            const std::string name = outcome.info ? outcome.info->name : file;
            if (outcome.failure) {
                metrics.increment("mitigate_playbook_failures_total", {{"playbook", name}});
                store.append_audit({clock.now(),
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
                submit(action, incident.id, name, "playbook:" + name, incident.drill);
            }
        }
    }

    // Playbooks do not change while the runtime runs: their metadata (what they match)
    // is read once, so an incident costs one evaluation per matching playbook.
    std::vector<std::optional<PlaybookInfo>> playbook_infos;
    bool playbooks_loaded = false;

    void load_playbooks_once() {
        if (playbooks_loaded) {
            return;
        }
        playbooks_loaded = true;
        for (const auto& [file, source] : setup.playbooks) {
            PlaybookOutcome loaded = load_playbook(file, source, setup.playbook_environment);
            if (loaded.failure) {
                metrics.increment("mitigate_playbook_failures_total", {{"playbook", file}});
                store.append_audit({clock.now(),
                                    "runtime",
                                    "playbook.failed",
                                    "",
                                    {{"playbook", file},
                                     {"failure", *loaded.failure},
                                     {"message", loaded.message}}});
                spdlog::error("playbook {} does not load and will not run: {}: {}", file,
                              *loaded.failure, loaded.message);
            }
            playbook_infos.push_back(std::move(loaded.info));
        }
    }

    // Creates the mitigation, or merges into an equal open one. Returns its id.
    std::optional<Mitigation> submit(const Action& action, const std::string& incident_id,
                                     const std::string& playbook, const std::string& proposed_by,
                                     bool drill, const std::string& environment = "",
                                     const std::string& service = "") {
        const TimePoint now = clock.now();
        for (const Mitigation& open : open_mitigations()) {
            const Action& existing = open.proposal.action;
            // Never across the drill line: a drill's mitigation is withdrawn or reverted by
            // the drill's cleanup, and a real incident's answer must not go with it.
            if (same_target(existing, action) && existing.parameters == action.parameters &&
                open.drill == drill) {
                metrics.increment("mitigate_proposals_merged_total");
                store.append_audit({now,
                                    proposed_by,
                                    "proposal.merged",
                                    open.id,
                                    {{"incident", incident_id},
                                     {"playbook", playbook},
                                     {"target", action.target},
                                     {"reason", "an equal mitigation is already " +
                                                    std::string(to_string(open.state))}}});
                return open;
            }
        }
        Mitigation mitigation;
        mitigation.id = new_id("mit", now);
        mitigation.proposal.id = new_id("prop", now);
        mitigation.proposal.incident_id = incident_id;
        mitigation.proposal.playbook = playbook;
        mitigation.proposal.proposed_by = proposed_by;
        mitigation.proposal.action = action;
        mitigation.proposal.created_at = now;
        mitigation.proposal.environment = environment;
        mitigation.proposal.service = service;
        mitigation.created_at = mitigation.updated_at = now;
        mitigation.drill = drill;
        store.create_mitigation(
            mitigation, proposed_by,
            incident_id.empty() ? "proposed by hand" : "proposed for incident " + incident_id);
        metrics.increment("mitigate_proposals_total",
                          {{"playbook", playbook.empty() ? "(person)" : playbook}});
        return mitigation;
    }

    // ---- 3. proposed -> planned -> decided -------------------------------------------

    bool target_busy(const Mitigation& mitigation, const std::vector<Mitigation>& open) const {
        return std::any_of(open.begin(), open.end(), [&](const Mitigation& other) {
            return other.id != mitigation.id && other.state != MitigationState::proposed &&
                   !is_final(other.state) &&
                   same_target(other.proposal.action, mitigation.proposal.action);
        });
    }

    // Rate limits, cooldowns and the circuit breaker look back over their own windows: the
    // history a decision needs is the longest of them, not the whole store.
    Duration history_window() const {
        Duration longest = std::chrono::hours(1);
        for (const RateLimit& limit : setup.policies->rate_limits) {
            longest = std::max(longest, limit.per);
        }
        if (setup.policies->cooldown) {
            longest = std::max(longest, setup.policies->cooldown->after);
        }
        if (setup.policies->circuit_breaker) {
            longest = std::max(longest, setup.policies->circuit_breaker->window);
        }
        return longest;
    }

    PolicyHistory history() {
        PolicyHistory result;
        MitigationFilter filter;
        filter.created_after = clock.now() - history_window();
        filter.limit = 10000;
        for (const Mitigation& past : store.list_mitigations(filter)) {
            if (past.state == MitigationState::proposed || past.state == MitigationState::planned ||
                past.state == MitigationState::denied || past.state == MitigationState::dry_run ||
                past.state == MitigationState::pending_approval ||
                past.state == MitigationState::rejected || past.state == MitigationState::expired ||
                past.state == MitigationState::failed || past.state == MitigationState::approved) {
                continue;  // never touched a target
            }
            PastMitigation entry;
            entry.provider = past.proposal.action.provider;
            entry.action = past.proposal.action.action;
            entry.target = past.proposal.action.target;
            if (const auto incident = cached_incident(past.proposal.incident_id)) {
                entry.service = incident->service;
                entry.environment = incident->environment;
            }
            entry.started_at = past.created_at;
            result.mitigations.push_back(std::move(entry));
        }
        return result;
    }

    std::map<std::string, Incident> incident_cache;
    std::optional<Incident> cached_incident(const std::string& id) {
        if (id.empty()) {
            return std::nullopt;
        }
        if (const auto found = incident_cache.find(id); found != incident_cache.end()) {
            return found->second;
        }
        auto incident = store.find_incident(id);
        if (incident) {
            incident_cache[id] = *incident;
        }
        return incident;
    }

    void plan_and_decide(const Mitigation& proposed) {
        const TimePoint started = clock.now();
        const EngineOutcome planned = engine.plan(proposed.id);
        metrics.observe("mitigate_provider_step_seconds", seconds_between(started, clock.now()),
                        {{"step", "plan"}});
        if (!planned.ok || planned.mitigation.state != MitigationState::planned) {
            count_failure(planned.mitigation);
            return;
        }
        decide(planned.mitigation);
    }

    // planned -> a decision. Also for a mitigation a crash left planned but undecided.
    void decide(const Mitigation& mitigation) {
        PolicyInput input;
        input.action = mitigation.proposal.action;
        input.playbook = mitigation.proposal.playbook;
        input.proposed_by = mitigation.proposal.proposed_by;
        if (const auto incident = cached_incident(mitigation.proposal.incident_id)) {
            input.environment = incident->environment;
            input.service = incident->service;
            input.labels = incident->labels;
        } else {
            input.environment = mitigation.proposal.environment;
            input.service = mitigation.proposal.service;
        }
        input.plan = mitigation.plan;
        Decision decision = evaluate_policy(*setup.policies, input, history(), clock.now());
        // A drill run as a dry run: policy decides as always (a denial stays a denial), but
        // what it would let through is recorded as dry_run and never applied.
        if (mitigation.drill && input.labels.contains(std::string(drill_dry_run_label)) &&
            (decision.effect == DecisionEffect::allow ||
             decision.effect == DecisionEffect::require_approval)) {
            decision.summary = "drill dry run; policy would have said " +
                               std::string(to_string(decision.effect)) + ": " + decision.summary;
            decision.effect = DecisionEffect::dry_run;
        }
        metrics.increment("mitigate_decisions_total",
                          {{"effect", std::string(to_string(decision.effect))}});
        const EngineOutcome decided = engine.decide(mitigation.id, decision);
        if (!decided.ok) {
            spdlog::error("mitigation {}: decision not recorded: {}", mitigation.id,
                          decided.message);
        }
    }

    void count_failure(const Mitigation& mitigation) {
        if (mitigation.state == MitigationState::failed ||
            mitigation.state == MitigationState::conflict) {
            metrics.increment("mitigate_failures_total",
                              {{"state", std::string(to_string(mitigation.state))}});
        }
    }

    // ---- 4. apply and verify ---------------------------------------------------------

    void apply(const Mitigation& approved) {
        const TimePoint started = clock.now();
        const EngineOutcome outcome = engine.apply(approved.id);
        metrics.observe("mitigate_provider_step_seconds", seconds_between(started, clock.now()),
                        {{"step", "apply"}});
        if (outcome.mitigation.state == MitigationState::verifying ||
            outcome.mitigation.state == MitigationState::active) {
            metrics.increment("mitigate_applies_total");
            if (const auto incident = cached_incident(approved.proposal.incident_id)) {
                metrics.observe("mitigate_signal_to_applied_seconds",
                                seconds_between(incident->opened_at, clock.now()));
            }
        } else {
            count_failure(outcome.mitigation);
        }
        if (!outcome.ok) {
            spdlog::warn("mitigation {}: {}", approved.id, outcome.message);
        }
    }

    void revert(const Mitigation& mitigation, const std::string& actor, const std::string& cause,
                const std::string& reason) {
        const TimePoint started = clock.now();
        metrics.increment("mitigate_reverts_total", {{"cause", cause}});
        const EngineOutcome outcome = engine.revert(mitigation.id, actor, reason);
        metrics.observe("mitigate_provider_step_seconds", seconds_between(started, clock.now()),
                        {{"step", "revert"}});
        count_failure(outcome.mitigation);
        if (!outcome.ok) {
            spdlog::warn("mitigation {}: {}", mitigation.id, outcome.message);
        }
    }

    TimePoint approval_expiry(const Mitigation& mitigation) const {
        return *mitigate::approval_expiry(mitigation, setup.engine);
    }

    // The pass over open mitigations; returns the earliest next deadline.
    std::optional<TimePoint> advance() {
        std::optional<TimePoint> next;
        auto due_at = [&next](TimePoint at) {
            if (!next || at < *next) {
                next = at;
            }
        };
        // Queued proposals first, oldest first: each one planned may make a newer one wait.
        std::vector<Mitigation> open = open_mitigations();
        for (Mitigation& mitigation : open) {
            if (mitigation.state == MitigationState::planned) {
                decide(mitigation);  // planned by a process that died before deciding
                continue;
            }
            if (mitigation.state != MitigationState::proposed || target_busy(mitigation, open)) {
                continue;  // not a proposal, or waits for the mitigation on its target to end
            }
            plan_and_decide(mitigation);
            refresh(mitigation);  // it holds its target from now on, for the newer ones
        }
        // One snapshot for the whole pass (parsing every open mitigation again for each
        // phase was most of a step's cost); whatever a phase moves is read back.
        bool stuck = false;
        for (Mitigation& mitigation : open) {
            const TimePoint now = clock.now();
            switch (mitigation.state) {
                case MitigationState::planned: refresh(mitigation); break;
                case MitigationState::approved:
                    apply(mitigation);
                    refresh(mitigation);
                    break;
                case MitigationState::pending_approval: {
                    const TimePoint expiry = approval_expiry(mitigation);
                    if (now >= expiry) {
                        Mitigation expired = mitigation;
                        expired.state = MitigationState::expired;
                        store.transition({expired,
                                          mitigation.version,
                                          now,
                                          "runtime",
                                          "approvals did not arrive by " + format_rfc3339(expiry),
                                          {}});
                        refresh(mitigation);
                    } else {
                        due_at(expiry);
                    }
                    break;
                }
                case MitigationState::applying:
                case MitigationState::reverting: stuck = true; break;
                default: break;
            }
        }
        // Applied ones: verification, resolution, TTL.
        for (Mitigation& mitigation : open) {
            if (is_final(mitigation.state)) {
                continue;
            }
            const TimePoint now = clock.now();
            const auto incident = cached_incident(mitigation.proposal.incident_id);
            const bool resolved = incident && incident->status == IncidentStatus::resolved;
            if (mitigation.expires_at && *mitigation.expires_at <= now &&
                (mitigation.state == MitigationState::active ||
                 mitigation.state == MitigationState::verifying)) {
                revert(mitigation, "runtime", "ttl",
                       "TTL expired at " + format_rfc3339(*mitigation.expires_at));
                refresh(mitigation);
                continue;
            }
            if (mitigation.state == MitigationState::verifying) {
                const TimePoint window_end = mitigation.updated_at + verification_window();
                if (resolved) {
                    const EngineOutcome confirmed = engine.confirm(
                        mitigation.id, "verified: the incident's alerts resolved at " +
                                           format_rfc3339(*incident->resolved_at));
                    if (confirmed.ok && mitigation.expires_at) {
                        due_at(*mitigation.expires_at);
                    }
                    refresh(mitigation);
                } else if (now >= window_end) {
                    revert(mitigation, "runtime", "verification",
                           "verification failed: the incident's alerts still fire " +
                               format_duration(verification_window()) + " after apply");
                    refresh(mitigation);
                } else {
                    due_at(window_end);
                    if (mitigation.expires_at) {
                        due_at(*mitigation.expires_at);
                    }
                }
                continue;
            }
            if (mitigation.state == MitigationState::active) {
                if (resolved && setup.engine.revert_when_incident_resolves) {
                    revert(mitigation, "runtime", "incident_resolved",
                           "the incident resolved; engine.revert_when_incident_resolves is on");
                    refresh(mitigation);
                } else if (mitigation.expires_at) {
                    due_at(*mitigation.expires_at);
                }
            }
        }
        if (stuck) {
            const TimePoint now = clock.now();
            if (now - last_retry >= retry_interval) {
                last_retry = now;
                for (const EngineOutcome& outcome : engine.reconcile()) {
                    if (!outcome.ok) {
                        spdlog::warn("retry of {}: {}", outcome.mitigation.id, outcome.message);
                    }
                }
            }
            due_at(last_retry + retry_interval);
        }
        update_gauges(open);
        return next;
    }

    void refresh(Mitigation& mitigation) {
        if (auto stored = store.find_mitigation(mitigation.id)) {
            mitigation = std::move(*stored);
        }
    }

    void update_gauges(const std::vector<Mitigation>& open) {
        std::map<std::string, double> counts;
        for (MitigationState state : open_states()) {
            counts[std::string(to_string(state))] = 0;
        }
        for (const Mitigation& mitigation : open) {
            if (!is_final(mitigation.state)) {
                counts[std::string(to_string(mitigation.state))] += 1;
            }
        }
        for (const auto& [state, count] : counts) {
            metrics.set("mitigate_mitigations", count, {{"state", state}});
        }
        metrics.set("mitigate_signals_pending", static_cast<double>(pending.load()));
    }

    RequestResult refuse_approval(const Mitigation& mitigation, const ApprovalRequest& request,
                                  RequestStatus status, const std::string& why) {
        metrics.increment("mitigate_approvals_refused_total");
        nlohmann::json details = {{"verdict", to_string(request.verdict)},
                                  {"channel", to_string(request.channel)},
                                  {"reason", why}};
        if (!request.via.empty()) {
            details["via"] = request.via;
        }
        store.append_audit(
            {clock.now(), request.identity, "approval.refused", mitigation.id, std::move(details)});
        return result_of(status, mitigation, why);
    }
};

std::optional<TimePoint> approval_expiry(const Mitigation& mitigation, const EngineConfig& engine) {
    if (!mitigation.decision) {
        return std::nullopt;
    }
    const Decision& decision = *mitigation.decision;
    return decision.decided_at +
           decision.approval_timeout.value_or(Duration{engine.approval_expiry_ms});
}

Lifecycle::Lifecycle(Store& store, ProviderRegistry& providers, const Clock& clock,
                     Metrics& metrics, LifecycleSetup setup)
    : state_(std::make_unique<State>(store, providers, clock, metrics, std::move(setup))) {
    if (!state_->setup.policies) {
        throw std::invalid_argument("the lifecycle needs a policy set");
    }
}

Lifecycle::~Lifecycle() = default;

std::size_t Lifecycle::pending_signals() const {
    return state_->pending.load();
}

SignalIntake Lifecycle::accept_signals(const std::vector<Signal>& signals) {
    SignalIntake intake;
    const auto limit = static_cast<std::size_t>(state_->setup.engine.pending_signal_limit);
    if (state_->pending.load() + signals.size() > limit) {
        intake.refused = true;
        intake.message = "the signal backlog is full (" + std::to_string(state_->pending.load()) +
                         " pending, limit " + std::to_string(limit) + "); retry later";
        state_->metrics.increment("mitigate_signals_refused_total", {},
                                  static_cast<double>(signals.size()));
        return intake;
    }
    const std::vector<Signal> recorded = state_->store.record_signals(signals);
    state_->pending += recorded.size();
    intake.accepted = recorded.size();
    intake.duplicates = signals.size() - recorded.size();
    for (const Signal& signal : recorded) {
        state_->metrics.increment("mitigate_signals_received_total",
                                  {{"source", std::string(to_string(signal.source))}});
    }
    if (intake.duplicates > 0) {
        state_->metrics.increment("mitigate_signals_duplicate_total", {},
                                  static_cast<double>(intake.duplicates));
    }
    return intake;
}

std::optional<TimePoint> Lifecycle::step() {
    std::lock_guard lock(mutex_);
    State& state = *state_;
    if (state.incident_cache.size() > 10000) {
        state.incident_cache.clear();  // a bound, not an invalidation: entries stay correct
    }
    for (const auto& [incident, signals] : state.group_signals()) {
        state.run_playbooks(incident, signals);
    }
    return state.advance();
}

void Lifecycle::reconcile() {
    std::lock_guard lock(mutex_);
    for (const EngineOutcome& outcome : state_->engine.reconcile()) {
        spdlog::info("reconciled {}: {}{}", outcome.mitigation.id,
                     to_string(outcome.mitigation.state),
                     outcome.ok ? "" : " (" + outcome.message + ")");
    }
}

RequestResult Lifecycle::propose(const Action& action, const std::string& incident_id,
                                 const std::string& identity) {
    std::lock_guard lock(mutex_);
    State& state = *state_;
    if (action.provider.empty() || action.action.empty() || action.target.empty()) {
        return result_of(RequestStatus::invalid, std::nullopt,
                         "action.provider, action.action and action.target are required");
    }
    bool drill = false;
    if (!incident_id.empty()) {
        const auto incident = state.store.find_incident(incident_id);
        if (!incident) {
            return result_of(RequestStatus::not_found, std::nullopt, "no incident " + incident_id);
        }
        drill = incident->drill;
    }
    const auto mitigation = state.submit(action, incident_id, "", identity, drill);
    return result_of(RequestStatus::done, mitigation, "proposed");
}

RequestResult Lifecycle::propose_drill_fault(const Action& action, const std::string& environment,
                                             const std::string& service, const std::string& actor) {
    std::lock_guard lock(mutex_);
    if (action.provider.empty() || action.action.empty() || action.target.empty()) {
        return result_of(RequestStatus::invalid, std::nullopt,
                         "action.provider, action.action and action.target are required");
    }
    const auto mitigation =
        state_->submit(action, "", "", actor, /*drill=*/true, environment, service);
    return result_of(RequestStatus::done, mitigation, "proposed");
}

RequestResult Lifecycle::approve(const ApprovalRequest& request) {
    std::lock_guard lock(mutex_);
    State& state = *state_;
    const auto found = state.store.find_mitigation(request.mitigation_id);
    if (!found) {
        return result_of(RequestStatus::not_found, std::nullopt,
                         "no mitigation " + request.mitigation_id);
    }
    const Mitigation& mitigation = *found;
    const char* verb = request.verdict == ApprovalVerdict::approve ? "approved" : "rejected";
    if (mitigation.state != MitigationState::pending_approval || !mitigation.decision) {
        return state.refuse_approval(mitigation, request, RequestStatus::conflict,
                                     mitigation.id + " is " +
                                         std::string(to_string(mitigation.state)) +
                                         "; only a mitigation pending approval can be " + verb);
    }
    const Decision& decision = *mitigation.decision;
    const TimePoint now = state.clock.now();
    if (now >= state.approval_expiry(mitigation)) {
        return state.refuse_approval(
            mitigation, request, RequestStatus::conflict,
            "the approval window closed at " + format_rfc3339(state.approval_expiry(mitigation)));
    }
    if (request.identity == mitigation.proposal.proposed_by && !decision.self_approval_allowed) {
        return state.refuse_approval(
            mitigation, request, RequestStatus::forbidden,
            request.identity + " proposed this mitigation and cannot also decide on it");
    }
    if (!decision.approver_groups.empty() &&
        std::none_of(decision.approver_groups.begin(), decision.approver_groups.end(),
                     [&](const std::string& group) {
                         return std::find(request.groups.begin(), request.groups.end(), group) !=
                                request.groups.end();
                     })) {
        std::string groups;
        for (const auto& group : decision.approver_groups) {
            groups += (groups.empty() ? "" : ", ") + group;
        }
        return state.refuse_approval(
            mitigation, request, RequestStatus::forbidden,
            request.identity + " is not in a group that may decide (" + groups + ")");
    }
    const auto counts = [&](const Approval& approval) {
        return approval.verdict == ApprovalVerdict::approve &&
               (!decision.approval_timeout || now - approval.at <= *decision.approval_timeout);
    };
    std::set<std::string> approvers;
    for (const Approval& approval : mitigation.approvals) {
        if (counts(approval)) {
            approvers.insert(approval.approver);
        }
    }
    if (approvers.contains(request.identity)) {
        return state.refuse_approval(mitigation, request, RequestStatus::conflict,
                                     request.identity + " has already approved " + mitigation.id +
                                         "; approvals must come from distinct people");
    }
    Mitigation next = mitigation;
    next.approvals.push_back(
        {request.identity, request.groups, request.verdict, request.channel, request.comment, now});
    std::string reason;
    if (request.verdict == ApprovalVerdict::reject) {
        next.state = MitigationState::rejected;
        reason = "rejected by " + request.identity;
    } else {
        approvers.insert(request.identity);
        const auto have = static_cast<int>(approvers.size());
        next.state = have >= decision.approvals_required ? MitigationState::approved
                                                         : MitigationState::pending_approval;
        reason = "approved by " + request.identity + " (" + std::to_string(have) + " of " +
                 std::to_string(decision.approvals_required) + ")";
    }
    if (!request.comment.empty()) {
        reason += ": " + request.comment;
    }
    nlohmann::json details = {{"channel", to_string(request.channel)},
                              {"groups", request.groups},
                              {"verdict", to_string(request.verdict)}};
    if (!request.via.empty()) {
        details["via"] = request.via;
    }
    const TransitionResult written = state.store.transition(
        {next, mitigation.version, now, request.identity, reason, std::move(details)});
    if (written.outcome != TransitionOutcome::done) {
        return result_of(RequestStatus::conflict, written.current, written.message);
    }
    state.metrics.increment("mitigate_approvals_total",
                            {{"verdict", std::string(to_string(request.verdict))}});
    return result_of(RequestStatus::done, written.current, reason);
}

RequestResult Lifecycle::withdraw(const std::string& id, const std::string& actor,
                                  const std::string& reason) {
    std::lock_guard lock(mutex_);
    State& state = *state_;
    const auto found = state.store.find_mitigation(id);
    if (!found) {
        return result_of(RequestStatus::not_found, std::nullopt, "no mitigation " + id);
    }
    Mitigation next = *found;
    switch (found->state) {
        case MitigationState::pending_approval: next.state = MitigationState::rejected; break;
        case MitigationState::proposed:
        case MitigationState::planned:
        case MitigationState::approved: next.state = MitigationState::failed; break;
        default:
            return result_of(RequestStatus::conflict, found,
                             id + " is " + std::string(to_string(found->state)) +
                                 "; only a mitigation that has not been applied is withdrawn");
    }
    const TransitionResult written = state.store.transition(
        {next, found->version, state.clock.now(), actor, "withdrawn: " + reason, {}});
    if (written.outcome != TransitionOutcome::done) {
        return result_of(RequestStatus::conflict, written.current, written.message);
    }
    return result_of(RequestStatus::done, written.current, "withdrawn");
}

RequestResult Lifecycle::revert(const std::string& id, const std::string& identity,
                                const std::string& reason) {
    std::lock_guard lock(mutex_);
    State& state = *state_;
    const auto found = state.store.find_mitigation(id);
    if (!found) {
        return result_of(RequestStatus::not_found, std::nullopt, "no mitigation " + id);
    }
    const MitigationState current = found->state;
    if (current != MitigationState::active && current != MitigationState::verifying &&
        current != MitigationState::conflict) {
        return result_of(RequestStatus::conflict, found,
                         id + " is " + std::string(to_string(current)) +
                             "; only an active, verifying or conflicting mitigation reverts");
    }
    state.revert(*found, identity, "human", reason.empty() ? "reverted by " + identity : reason);
    const auto after = state.store.find_mitigation(id);
    if (after && after->state == MitigationState::reverted) {
        return result_of(RequestStatus::done, after, "reverted");
    }
    if (after && after->state == MitigationState::conflict) {
        const auto journal = state.store.journal(id);
        return result_of(RequestStatus::conflict, after,
                         (journal.empty() ? std::string("not reverted") : journal.back().reason) +
                             ". Restore the target and revert again, or keep it");
    }
    return result_of(RequestStatus::failed, after,
                     "revert did not complete; the mitigation is " +
                         std::string(to_string(after ? after->state : current)));
}

RequestResult Lifecycle::keep(const std::string& id, const std::string& identity,
                              const std::string& reason) {
    std::lock_guard lock(mutex_);
    State& state = *state_;
    if (reason.empty()) {
        return result_of(RequestStatus::invalid, std::nullopt,
                         "keeping a mitigation needs a reason (it will never revert)");
    }
    const auto found = state.store.find_mitigation(id);
    if (!found) {
        return result_of(RequestStatus::not_found, std::nullopt, "no mitigation " + id);
    }
    if (found->state != MitigationState::active && found->state != MitigationState::conflict) {
        return result_of(RequestStatus::conflict, found,
                         id + " is " + std::string(to_string(found->state)) +
                             "; only an active or conflicting mitigation can be kept");
    }
    Mitigation next = *found;
    next.state = MitigationState::kept;
    next.expires_at.reset();
    const TransitionResult written = state.store.transition(
        {next, found->version, state.clock.now(), identity, "kept: " + reason, {}});
    if (written.outcome != TransitionOutcome::done) {
        return result_of(RequestStatus::conflict, written.current, written.message);
    }
    return result_of(RequestStatus::done, written.current, "kept");
}

}  // namespace mitigate
