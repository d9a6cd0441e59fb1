#include "runtime/drills/drill_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "runtime/core/ids.h"
#include "runtime/core/json_reader.h"
#include "runtime/core/mitigation_state.h"
#include "runtime/core/time_format.h"
#include "runtime/core/url_encoding.h"
#include "runtime/engine/engine.h"
#include "runtime/ingest/signal_submission.h"
#include "runtime/metrics/metrics.h"
#include "runtime/policy/policy_engine.h"
#include "runtime/server/http_client.h"
#include "runtime/store/store.h"

namespace mitigate {
namespace {

using nlohmann::json;

// A scheduled start more than this late (the daemon was down, or busy) is reported as
// missed rather than run at an unexpected time.
constexpr auto schedule_grace = std::chrono::minutes(5);
// How long cleanup may wait for the engine to finish what the drill caused (a revert
// against a provider that is down) before the run ends anyway: a run always ends. The
// engine goes on retrying the revert; the run says what was left.
constexpr auto cleanup_grace = std::chrono::minutes(5);
// How far ahead the scheduler looks for the next start when nothing is due.
constexpr auto schedule_horizon = std::chrono::hours(24 * 8);

// Each time of a run is set once, the first time it is seen.
void set_time(std::optional<TimePoint>& field, TimePoint at) {
    if (!field) {
        field = at;
    }
}

bool matches(const DrillExpectedProposal& expected, const Mitigation& mitigation) {
    const auto same = [](const std::string& wanted, const std::string& actual) {
        return wanted.empty() || wanted == actual;
    };
    return same(expected.playbook, mitigation.proposal.playbook) &&
           same(expected.provider, mitigation.proposal.action.provider) &&
           same(expected.action, mitigation.proposal.action.action) &&
           same(expected.target, mitigation.proposal.action.target);
}

std::string describe(const DrillExpectedProposal& expected) {
    std::string text;
    const auto add = [&](const char* what, const std::string& value) {
        if (!value.empty()) {
            text += (text.empty() ? "" : " ") + std::string(what) + "=" + value;
        }
    };
    add("playbook", expected.playbook);
    add("provider", expected.provider);
    add("action", expected.action);
    add("target", expected.target);
    return text.empty() ? "any proposal" : text;
}

// When a mitigation first reached one of `states`, from its journal.
std::optional<TimePoint> reached(const std::vector<JournalEntry>& journal,
                                 std::initializer_list<MitigationState> states) {
    for (const JournalEntry& entry : journal) {
        if (std::find(states.begin(), states.end(), entry.to) != states.end()) {
            return entry.at;
        }
    }
    return std::nullopt;
}

double seconds(TimePoint from, TimePoint to) {
    return std::chrono::duration<double>(to - from).count();
}

// The label on a drill's alert that names its run: how the runner finds its incident.
constexpr std::string_view run_label = "mitigate_drill_run";

double result_value(DrillRunStatus status) {
    return status == DrillRunStatus::passed ? 1 : status == DrillRunStatus::failed ? 0 : -1;
}

}  // namespace

void declare_drill_metrics(Metrics& metrics) {
    metrics.declare_counter("mitigate_drill_runs_total",
                            "Drill runs by drill and result (passed, failed, aborted, skipped, "
                            "missed).");
    metrics.declare_gauge("mitigate_drill_last_result",
                          "The last finished run of each drill: 1 passed, 0 failed, -1 aborted.");
    metrics.declare_gauge("mitigate_drill_last_duration_seconds",
                          "How long the last finished run of each drill took, cleanup included.");
}

struct DrillRunner::State {
    Store& store;
    DrillRunStore& runs;
    Engine& engine;
    const Clock& clock;
    Metrics& metrics;
    std::shared_ptr<const PolicySet> policies;
    std::vector<DrillDefinition> scheduled;
    DrillRunnerHooks hooks;
    std::mutex mutex;                                    // one step or start at a time
    std::map<std::string, DrillDefinition> definitions;  // by run id, for runs under way
    // When this process started: a cleanup grace never runs out before this process
    // could try (a run left cleaning by an earlier process).
    TimePoint runner_started_at = clock.now();
    // The last answer to each error-budget query, and when it was asked.
    std::map<std::string, std::pair<TimePoint, std::optional<std::string>>> error_budget_checks;

    State(Store& store_in, DrillRunStore& runs_in, Engine& engine_in, const Clock& clock_in,
          Metrics& metrics_in, std::shared_ptr<const PolicySet> policies_in,
          std::vector<DrillDefinition> scheduled_in, DrillRunnerHooks hooks_in)
        : store(store_in),
          runs(runs_in),
          engine(engine_in),
          clock(clock_in),
          metrics(metrics_in),
          policies(std::move(policies_in)),
          scheduled(std::move(scheduled_in)),
          hooks(std::move(hooks_in)) {}

    std::string actor(const std::string& drill) const { return "drill:" + drill; }

    // The drill label of the metrics: a drill of the drills directory by its name, any
    // other (a definition sent to POST /v1/drills/runs) as "adhoc", so that callers
    // cannot add series by inventing names.
    std::string metric_label(const std::string& drill) const {
        const bool known = std::any_of(scheduled.begin(), scheduled.end(),
                                       [&](const DrillDefinition& d) { return d.name == drill; });
        return known ? drill : "adhoc";
    }

    void save(const DrillRun& run) { runs.save(run); }

    void audit(const DrillRun& run, const std::string& event, json details) {
        details["drill"] = run.drill;
        store.append_audit({clock.now(), actor(run.drill), event, run.id, std::move(details)});
    }

    // Why the drill must not run (or go on) now, if it must not.
    std::optional<std::string> stop_reason(const DrillDefinition& drill) {
        const TimePoint now = clock.now();
        if (drill.stop_on_freeze) {
            if (auto freeze = active_freeze(*policies, drill.environment, now)) {
                return "the freeze " + *freeze + " covers " + drill.environment;
            }
        }
        if (drill.error_budget) {
            // Asked at most every 10 s per query: the runner steps after every engine change.
            const std::string key =
                drill.error_budget->prometheus_url + "\n" + drill.error_budget->query;
            auto cached = error_budget_checks.find(key);
            if (cached == error_budget_checks.end() ||
                now - cached->second.first >= std::chrono::seconds(10)) {
                cached = error_budget_checks
                             .insert_or_assign(
                                 key, std::pair{now, error_budget_reason(*drill.error_budget)})
                             .first;
            }
            if (cached->second.second) {
                return cached->second.second;
            }
        }
        if (drill.stop_on_real_alerts) {
            IncidentFilter open;
            open.status = IncidentStatus::open;
            open.limit = 1000;
            for (const Incident& incident : store.list_incidents(open)) {
                if (!incident.drill && incident.service == drill.service &&
                    incident.environment == drill.environment) {
                    return "a real incident is open on " + drill.service + " in " +
                           drill.environment + " (" + incident.id + ": " + incident.title + ")";
                }
            }
        }
        return std::nullopt;
    }

    // The error budget stop condition, asked of Prometheus (GET /api/v1/query).
    std::optional<std::string> error_budget_reason(const DrillErrorBudget& budget) {
        HttpClientRequest request;
        request.url = budget.prometheus_url + "/api/v1/query?query=" + percent_encode(budget.query);
        request.timeout = std::chrono::seconds(5);
        const HttpClientResponse response = http_request(request);
        const std::string cannot =
            "cannot check the error budget at " + budget.prometheus_url + ": ";
        if (response.status == 0) {
            return cannot + response.error;
        }
        std::string unreadable;
        const json answer =
            parse_json_within(response.body, JsonTextLimits{}, unreadable).value_or(json());
        if (!answer.is_object() || answer.value("status", "") != "success") {
            return cannot + "HTTP " + std::to_string(response.status) + " " +
                   (answer.is_object() ? answer.value("error", std::string()) : response.body);
        }
        const json data = answer.value("data", json::object());
        const std::string type = data.value("resultType", "");
        std::vector<json> values;
        if (type == "vector") {
            for (const json& sample : data.value("result", json::array())) {
                values.push_back(sample.value("value", json::array()));
            }
        } else if (type == "scalar") {
            values.push_back(data.value("result", json::array()));
        } else {
            return cannot + "the query returns a " + type + ", not an instant vector or scalar";
        }
        for (const json& value : values) {
            if (!value.is_array() || value.size() != 2 || !value[1].is_string()) {
                return cannot + "a sample is not [time, \"value\"]";
            }
            const double burn = std::strtod(value[1].get<std::string>().c_str(), nullptr);
            if (burn > budget.above) {
                return "the error budget burn (" + budget.query + ") is " +
                       value[1].get<std::string>() + ", above " + format_number(budget.above);
            }
        }
        return std::nullopt;
    }

    static std::string format_number(double value) {
        std::ostringstream out;
        out << value;
        return out.str();
    }

    // The drill's alert. Isolated (the engine groups it only with the run's own signals, so
    // it is never merged with a real incident on the same service), dry-run when the run is
    // (policy decides, nothing applies), and marked drill everywhere.
    Signal drill_signal(const DrillDefinition& drill, const DrillRun& run, SignalStatus status) {
        Signal signal;
        signal.source = SignalSource::drill;
        signal.name = drill.signal.alertname;
        signal.status = status;
        signal.fingerprint = "drill-" + run.id;
        signal.labels = drill.signal.labels;
        signal.labels["alertname"] = drill.signal.alertname;
        signal.labels["service"] = drill.service;
        signal.labels["environment"] = drill.environment;
        signal.labels["mitigate_drill"] = drill.name;
        signal.labels[std::string(run_label)] = run.id;
        signal.isolation = "drill:" + run.id;
        signal.dry_run = run.dry_run;
        signal.annotations = drill.signal.annotations;
        signal.annotations["summary"] = "chaos drill " + drill.name + " (run " + run.id + ")";
        signal.starts_at = run.times.injected.value_or(run.started_at);
        if (status == SignalStatus::resolved) {
            signal.ends_at = clock.now();
        }
        signal.received_at = clock.now();
        signal.id = signal_id(signal.fingerprint, signal.starts_at, status);
        return signal;
    }

    void send(const DrillDefinition& drill, const DrillRun& run, SignalStatus status) {
        const SignalIntake intake = engine.accept_signals({drill_signal(drill, run, status)});
        if (intake.refused || intake.failed) {
            throw std::runtime_error("the drill's signal was not stored: " + intake.message);
        }
    }

    std::optional<Incident> incident_of(const DrillRun& run) {
        if (!run.incident_id.empty()) {
            return store.find_incident(run.incident_id);
        }
        IncidentFilter all;
        all.limit = 200;
        for (const Incident& incident : store.list_incidents(all)) {
            const auto label = incident.labels.find(std::string(run_label));
            if (incident.drill && label != incident.labels.end() && label->second == run.id) {
                return incident;
            }
        }
        return std::nullopt;
    }

    std::vector<Mitigation> mitigations_of(const std::string& incident_id) {
        MitigationFilter filter;
        filter.incident_id = incident_id;
        filter.limit = 1000;
        return store.list_mitigations(filter);
    }

    bool running_already(const std::string& drill) {
        return !runs.list(drill, {DrillRunStatus::running, DrillRunStatus::cleaning}, 1).empty();
    }

    void begin_cleanup(DrillRun& run, DrillRunStatus result, const std::string& reason) {
        run.result = result;
        run.reason = reason;
        run.status = DrillRunStatus::cleaning;
        run.phase = DrillPhase::cleaning;
        set_time(run.times.cleanup_started, clock.now());
    }

    DrillStart start_locked(const DrillDefinition& drill, bool dry_run,
                            const std::string& trigger) {
        if (running_already(drill.name)) {
            return {std::nullopt, "a run of drill " + drill.name + " is still going"};
        }
        const TimePoint now = clock.now();
        DrillRun run;
        run.id = new_id("drl", now);
        run.drill = drill.name;
        run.status = DrillRunStatus::running;
        run.started_at = now;
        run.definition = drill.text;
        run.source = drill.source;
        run.dry_run = dry_run || drill.dry_run;
        run.trigger = trigger;
        run.phase = DrillPhase::starting;
        run.times.started = now;
        metrics.increment("mitigate_drill_started_total", {{"drill", metric_label(drill.name)}});
        if (auto reason = stop_reason(drill)) {
            run.status = DrillRunStatus::aborted;
            run.phase = DrillPhase::done;
            run.reason = "not started: " + *reason;
            run.times.finished = now;
            finish_metrics(run);
            save(run);
            audit(run, "drill.aborted", {{"reason", run.reason}});
            return {run, ""};
        }
        audit(run, "drill.started",
              {{"trigger", trigger}, {"dry_run", run.dry_run}, {"source", drill.source}});
        if (drill.fault_action && !run.dry_run) {
            // The fault first, through policy like anything else; the alert follows once it
            // is applied (advance). A dry run applies no fault either.
            ProposalRequest fault;
            fault.action = drill.fault_action->action;
            fault.proposed_by = actor(drill.name);
            fault.environment = drill.environment;
            fault.service = drill.service;
            fault.drill = true;
            const RequestResult proposed = engine.propose(fault);
            run.phase = DrillPhase::faulting;
            if (proposed.mitigation) {
                run.fault_mitigation = proposed.mitigation->id;
            } else {
                begin_cleanup(run, DrillRunStatus::aborted,
                              "the fault was not proposed: " + proposed.message);
            }
            save(run);
            return {run, ""};
        }
        inject(drill, run);
        return {run, ""};
    }

    // Stored before the signal, so a crash in between is cleaned up like any other.
    void inject(const DrillDefinition& drill, DrillRun& run) {
        run.phase = DrillPhase::waiting;
        run.times.injected = clock.now();
        save(run);
        send(drill, run, SignalStatus::firing);
    }

    // While the fault is on its way: true once the alert is raised; false to wait, or with
    // the run moved to cleanup when the fault did not apply in time.
    bool fault_applied(const DrillDefinition& drill, DrillRun& run) {
        const auto fault = store.find_mitigation(run.fault_mitigation);
        if (fault && (fault->state == MitigationState::verifying ||
                      fault->state == MitigationState::active)) {
            set_time(run.times.fault_applied, clock.now());
            inject(drill, run);
            return true;
        }
        std::string why;
        if (!fault) {
            why = "the fault mitigation is gone";
        } else if (is_final(fault->state)) {
            why = "the fault ended " + std::string(to_string(fault->state)) +
                  (fault->decision ? " (" + fault->decision->summary + ")" : "");
        } else if (clock.now() >= run.started_at + drill.applied_within) {
            why = "the fault was not applied within " + format_duration(drill.applied_within) +
                  "; it is " + std::string(to_string(fault->state));
        } else {
            return false;
        }
        begin_cleanup(run, DrillRunStatus::aborted, "the fault did not apply: " + why);
        return false;
    }

    // Records what happened so far; true when there is nothing more to wait for.
    bool observe(const DrillDefinition& drill, DrillRun& run) {
        const TimePoint now = clock.now();
        const TimePoint injected = run.times.injected.value_or(run.started_at);
        const auto incident = incident_of(run);
        if (!incident) {
            return now >= injected + drill.applied_within;  // never detected
        }
        run.incident_id = incident->id;
        set_time(run.times.detected, incident->opened_at);
        const auto mitigations = mitigations_of(incident->id);
        bool all_expected_seen = true;
        bool all_expected_settled = true;  // applied, or ended without effect
        for (const DrillExpectedProposal& expected : drill.expected_proposals) {
            const auto found = std::find_if(
                mitigations.begin(), mitigations.end(),
                [&](const Mitigation& mitigation) { return matches(expected, mitigation); });
            if (found == mitigations.end()) {
                all_expected_seen = false;
                all_expected_settled = false;
            } else if (!is_final(found->state) && found->state != MitigationState::verifying &&
                       found->state != MitigationState::active) {
                all_expected_settled = false;
            }
        }
        // The earliest of each step over every mitigation of the incident.
        std::optional<TimePoint> proposed;
        std::optional<TimePoint> approved;
        std::optional<TimePoint> applied;
        const auto earliest = [](std::optional<TimePoint>& into, std::optional<TimePoint> at) {
            if (at && (!into || *at < *into)) {
                into = at;
            }
        };
        run.mitigations.clear();
        for (const Mitigation& mitigation : mitigations) {
            run.mitigations.push_back(mitigation.id);
            earliest(proposed, mitigation.created_at);
            const auto journal = store.journal(mitigation.id);
            earliest(approved, reached(journal, {MitigationState::approved}));
            earliest(applied, reached(journal, {MitigationState::verifying}));
        }
        if (proposed) {
            set_time(run.times.proposed, *proposed);
        }
        if (approved) {
            set_time(run.times.approved, *approved);
        }
        if (applied) {
            set_time(run.times.applied, *applied);
        }
        if (applied && drill.signal.resolve_after_apply && !run.times.resolved_signal) {
            send(drill, run, SignalStatus::resolved);
            set_time(run.times.resolved_signal, now);
        }
        if (incident->resolved_at) {
            set_time(run.times.recovered, *incident->resolved_at);
        }
        if (now >= injected + drill.max_duration) {
            return true;
        }
        if (run.dry_run) {
            return all_expected_seen && std::all_of(mitigations.begin(), mitigations.end(),
                                                    [](const Mitigation& mitigation) {
                                                        return is_final(mitigation.state);
                                                    });
        }
        if (!all_expected_seen) {
            return now >= injected + drill.applied_within;
        }
        if (!applied) {
            return all_expected_settled || now >= injected + drill.applied_within;
        }
        if (!drill.signal.resolve_after_apply) {
            // The alert stays: the engine's verification fails and it reverts on its own.
            return std::all_of(
                       mitigations.begin(), mitigations.end(),
                       [](const Mitigation& mitigation) { return is_final(mitigation.state); }) ||
                   now >= *applied + drill.recovered_within;
        }
        return incident->resolved_at.has_value() || now >= *applied + drill.recovered_within;
    }

    void judge(const DrillDefinition& drill, DrillRun& run) {
        std::vector<DrillExpectationResult> expectations;
        const auto add = [&](const std::string& name, bool passed, const std::string& detail) {
            expectations.push_back({name, passed, detail});
        };
        const auto incident = incident_of(run);
        const auto mitigations =
            incident ? mitigations_of(incident->id) : std::vector<Mitigation>{};
        add("detected", incident.has_value(),
            incident ? "incident " + incident->id : "no incident was opened for the drill's alert");
        for (const DrillExpectedProposal& expected : drill.expected_proposals) {
            const auto found =
                std::find_if(mitigations.begin(), mitigations.end(),
                             [&](const Mitigation& m) { return matches(expected, m); });
            std::string seen;
            for (const Mitigation& mitigation : mitigations) {
                seen += (seen.empty() ? "" : "; ") + mitigation.proposal.playbook + " " +
                        mitigation.proposal.action.provider + " " +
                        mitigation.proposal.action.action + " " + mitigation.proposal.action.target;
            }
            add("proposes " + describe(expected), found != mitigations.end(),
                found != mitigations.end()
                    ? found->id + " (" + std::string(to_string(found->state)) + ")"
                    : "not proposed; proposed: " + (seen.empty() ? "nothing" : seen));
            if (run.dry_run || found == mitigations.end()) {
                if (run.dry_run && found != mitigations.end()) {
                    add("nothing applied (dry run)",
                        found->state == MitigationState::dry_run ||
                            found->state == MitigationState::denied,
                        std::string(to_string(found->state)));
                }
                continue;
            }
            const auto journal = store.journal(found->id);
            const auto applied_at = reached(journal, {MitigationState::verifying});
            const TimePoint injected = run.times.injected.value_or(run.started_at);
            const bool in_time = applied_at && *applied_at <= injected + drill.applied_within;
            add("applied within " + format_duration(drill.applied_within), in_time,
                applied_at ? "applied after " + format_duration(*applied_at - injected)
                           : "not applied: " + std::string(to_string(found->state)) +
                                 (found->decision ? " (" + found->decision->summary + ")" : ""));
        }
        if (!run.dry_run && drill.signal.resolve_after_apply) {
            const auto& applied = run.times.applied;
            const auto& recovered = run.times.recovered;
            const bool in_time =
                applied && recovered && *recovered <= *applied + drill.recovered_within;
            add("recovered within " + format_duration(drill.recovered_within), in_time,
                recovered && applied
                    ? "recovered " + format_duration(*recovered - *applied) + " after apply"
                    : "the incident did not resolve");
        }
        run.expectations = expectations;
        const bool passed =
            std::all_of(expectations.begin(), expectations.end(),
                        [](const DrillExpectationResult& result) { return result.passed; });
        if (!run.result) {
            run.result = passed ? DrillRunStatus::passed : DrillRunStatus::failed;
        }
    }

    // Reverts or withdraws what the drill caused; true when everything is final.
    bool clean(const DrillDefinition& drill, DrillRun& run) {
        if (!run.times.resolved_signal && run.times.injected) {
            send(drill, run, SignalStatus::resolved);
            set_time(run.times.resolved_signal, clock.now());
        }
        bool all_final = true;
        std::vector<Mitigation> caused;  // the response first, then the fault it answered
        if (const auto incident = incident_of(run)) {
            caused = mitigations_of(incident->id);
        }
        if (!run.fault_mitigation.empty()) {
            if (auto fault = store.find_mitigation(run.fault_mitigation)) {
                caused.push_back(std::move(*fault));
            }
        }
        std::vector<DrillCleanupStep> cleanup;
        for (const Mitigation& mitigation : caused) {
            std::string done;
            const MitigationState state = mitigation.state;
            if (state == MitigationState::conflict) {
                // Someone changed the target since the drill's change: reverting again would
                // only conflict again. That is the answer for this mitigation; a person
                // decides (revert or keep), and the run ends.
                done =
                    "conflict: not reverted, someone changed the target since; a person "
                    "must revert or keep it";
                // Reported once: by the pass that first found it in conflict (a revert this
                // runner asked for may have ended in conflict within its own pass).
                if (std::none_of(run.cleanup.begin(), run.cleanup.end(),
                                 [&](const DrillCleanupStep& step) {
                                     return step.mitigation == mitigation.id && step.done == done;
                                 })) {
                    audit(run, "drill.cleanup_conflict",
                          {{"mitigation", mitigation.id}, {"reason", done}});
                }
            } else if (state == MitigationState::active || state == MitigationState::verifying) {
                const RequestResult result =
                    engine.revert(mitigation.id, actor(drill.name), "drill cleanup");
                done = "revert: " + result.message;
                all_final = false;  // the engine carries the revert out; seen at a later step
            } else if (!is_final(state) && !may_have_effect(state)) {
                const RequestResult result =
                    engine.withdraw(mitigation.id, actor(drill.name), "drill cleanup");
                done = "withdraw: " + result.message;
                all_final = all_final && result.status == RequestStatus::done;
            } else if (!is_final(state)) {
                done = "waiting for the engine (" + std::string(to_string(state)) + ")";
                all_final = false;
            }
            const auto after = store.find_mitigation(mitigation.id);
            cleanup.push_back({mitigation.id, std::string(to_string(after ? after->state : state)),
                               done.empty() ? "already final" : done});
        }
        run.cleanup = cleanup;
        return all_final;
    }

    void finish_metrics(const DrillRun& run) {
        const std::string result(to_string(run.status));
        const std::string label = metric_label(run.drill);
        metrics.increment("mitigate_drill_runs_total", {{"drill", label}, {"result", result}});
        metrics.set("mitigate_drill_last_result", result_value(run.status), {{"drill", label}});
        metrics.set("mitigate_drill_last_duration_seconds", seconds(run.started_at, clock.now()),
                    {{"drill", label}});
    }

    void durations(DrillRun& run) {
        const DrillRunTimes& times = run.times;
        const auto span = [&](const char* name, const std::optional<TimePoint>& from,
                              const std::optional<TimePoint>& to) {
            if (from && to) {
                run.durations_seconds[name] = seconds(*from, *to);
            }
        };
        span("detect", times.injected, times.detected);
        span("propose", times.detected, times.proposed);
        span("approve", times.proposed, times.approved);
        span("apply", times.approved, times.applied);
        span("recover", times.applied, times.recovered);
        span("revert", times.cleanup_started, times.finished);
    }

    // The definition a run was started with, parsed once per run (the store keeps its text,
    // so a restart or an edited file does not change a run under way).
    const DrillDefinition& definition_of(const DrillRun& run) {
        auto found = definitions.find(run.id);
        if (found == definitions.end()) {
            DrillLoad load =
                load_drill_text(run.definition, run.source.empty() ? run.drill : run.source);
            if (load.drills.empty()) {
                throw std::runtime_error("drill run " + run.id +
                                         ": its stored definition no longer loads");
            }
            found = definitions.emplace(run.id, std::move(load.drills.front())).first;
        }
        return found->second;
    }

    void advance(DrillRun& run) {
        const DrillDefinition& drill = definition_of(run);
        const TimePoint now = clock.now();
        if (run.status == DrillRunStatus::running && !run.times.injected) {
            if (run.fault_mitigation.empty() || !fault_applied(drill, run)) {
                if (run.status == DrillRunStatus::running) {
                    if (auto reason = stop_reason(drill)) {
                        begin_cleanup(run, DrillRunStatus::aborted, "stopped: " + *reason);
                    }
                }
                if (run.status == DrillRunStatus::running) {
                    save(run);
                    return;
                }
            }
        }
        if (run.status == DrillRunStatus::running) {
            bool done = observe(drill, run);
            if (auto reason = stop_reason(drill)) {
                run.result = DrillRunStatus::aborted;
                run.reason = "stopped: " + *reason;
                done = true;
            }
            if (!done) {
                save(run);
                return;
            }
            judge(drill, run);
            run.status = DrillRunStatus::cleaning;
            run.phase = DrillPhase::cleaning;
            set_time(run.times.cleanup_started, now);
            save(run);
        }
        if (!clean(drill, run)) {
            // The grace counts from when this process could first clean (a run left
            // cleaning by an earlier process gets the whole grace again), and ends a run
            // only when all that is left are reverts the engine keeps retrying: a change
            // still being applied is reverted once it lands, so that is waited for.
            const TimePoint started_cleaning =
                std::max(run.times.cleanup_started.value_or(now), runner_started_at);
            const bool only_reverts_left =
                std::all_of(run.cleanup.begin(), run.cleanup.end(), [](const auto& step) {
                    return step.state == "reverting" || step.state == "reverted" ||
                           step.state == "conflict" || step.state == "kept" ||
                           step.state == "failed" || step.state == "rejected" ||
                           step.state == "expired" || step.state == "denied" ||
                           step.state == "dry_run";
                });
            if (now < started_cleaning + cleanup_grace || !only_reverts_left) {
                save(run);
                return;
            }
            std::string left;
            for (const DrillCleanupStep& step : run.cleanup) {
                if (step.state == "reverting") {
                    left += (left.empty() ? "" : "; ") + step.mitigation + " reverting";
                }
            }
            if (run.result != DrillRunStatus::aborted) {
                run.result = DrillRunStatus::failed;
            }
            run.reason = (run.reason.empty() ? "" : run.reason + "; ") +
                         "cleanup did not finish within " + format_duration(cleanup_grace) +
                         " (the engine keeps retrying the revert): " + left;
            audit(run, "drill.cleanup_incomplete", {{"left", left}});
        }
        run.status = run.result.value_or(DrillRunStatus::failed);
        run.phase = DrillPhase::done;
        set_time(run.times.finished, clock.now());
        durations(run);
        finish_metrics(run);  // before the run is seen finished in the store
        save(run);
        audit(run, "drill.finished", {{"result", to_string(run.status)}, {"reason", run.reason}});
        spdlog::info("drill {} run {}: {}", run.drill, run.id, to_string(run.status));
        definitions.erase(run.id);
    }

    // Deadline of a run still going, so the loop wakes even when the engine does not.
    TimePoint deadline_of(const DrillRun& run) {
        const DrillDefinition& drill = definition_of(run);
        if (run.status == DrillRunStatus::cleaning) {
            return clock.now() + std::chrono::seconds(1);
        }
        if (!run.times.injected) {  // waiting for the fault to apply
            return std::max(run.started_at + drill.applied_within, clock.now());
        }
        const TimePoint injected = *run.times.injected;
        TimePoint due = injected + drill.max_duration;
        due = std::min(due, injected + drill.applied_within);
        if (const auto& applied = run.times.applied) {
            due = std::max(
                due, std::min(injected + drill.max_duration, *applied + drill.recovered_within));
        }
        return std::max(due, clock.now());
    }

    void record_not_started(const DrillDefinition& drill, DrillRunStatus status, TimePoint at,
                            DrillRun details) {
        DrillRun run = std::move(details);
        run.id = new_id("drl", at);
        run.drill = drill.name;
        run.status = status;
        run.started_at = at;
        run.trigger = "schedule";
        run.phase = DrillPhase::done;
        save(run);
        metrics.increment(
            "mitigate_drill_runs_total",
            {{"drill", metric_label(drill.name)}, {"result", std::string(to_string(status))}});
        json audited = drill_run_json(run);
        audited.erase("definition");
        audit(run, "drill." + std::string(to_string(status)), std::move(audited));
    }

    // Starts what the schedules say is due; returns the next scheduled start.
    std::optional<TimePoint> schedule() {
        const TimePoint now = clock.now();
        std::optional<TimePoint> next;
        for (const DrillDefinition& drill : scheduled) {
            if (!drill.schedule) {
                continue;
            }
            const auto last = runs.schedule_position(drill.name);
            if (!last) {
                runs.set_schedule_position(drill.name, now);  // from now on
            }
            const TimePoint from = last.value_or(now);
            std::vector<TimePoint> due;
            for (auto at =
                     next_schedule_time(drill.schedule->cron, drill.schedule->time_zone, from, now);
                 at; at = next_schedule_time(drill.schedule->cron, drill.schedule->time_zone, *at,
                                             now)) {
                due.push_back(*at);
                if (due.size() > 100000) {
                    break;
                }
            }
            if (!due.empty()) {
                runs.set_schedule_position(drill.name, due.back());
                const bool late = now - due.back() > schedule_grace;
                const std::size_t missed = due.size() - (late ? 0 : 1);
                if (missed > 0) {
                    DrillRun record;
                    record.reason = std::to_string(missed) +
                                    " scheduled start(s) passed while the daemon was down or "
                                    "busy; not replayed";
                    record.missed = static_cast<std::int64_t>(missed);
                    record.first_missed = due.front();
                    record.last_missed = due[missed - 1];
                    record_not_started(drill, DrillRunStatus::missed, due.front(), record);
                }
                if (!late) {
                    start_scheduled(drill, due.back());
                }
            }
            if (const auto upcoming = next_schedule_time(
                    drill.schedule->cron, drill.schedule->time_zone, now, now + schedule_horizon)) {
                next = next ? std::min(*next, *upcoming) : *upcoming;
            }
        }
        return next;
    }

    void start_scheduled(const DrillDefinition& drill, TimePoint at) {
        const auto skipped = [&](std::string reason) {
            DrillRun record;
            record.reason = std::move(reason);
            record_not_started(drill, DrillRunStatus::skipped, at, record);
        };
        for (const PolicyWindow& window : drill.schedule->except) {
            if (is_window_active(window, at)) {
                skipped("inside the excluded window " + window.name + " (" +
                        window.schedule.text() + ")");
                return;
            }
        }
        if (running_already(drill.name)) {
            skipped("the previous run of this drill is still going; runs never overlap");
            return;
        }
        const DrillStart started = start_locked(drill, false, "schedule");
        if (!started.run) {
            skipped(started.refusal);
        }
    }
};

DrillRunner::DrillRunner(Store& store, DrillRunStore& runs, Engine& engine, const Clock& clock,
                         Metrics& metrics, std::shared_ptr<const PolicySet> policies,
                         std::vector<DrillDefinition> scheduled, DrillRunnerHooks hooks)
    : state_(std::make_unique<State>(store, runs, engine, clock, metrics, std::move(policies),
                                     std::move(scheduled), std::move(hooks))) {
    declare_drill_metrics(metrics);
    metrics.declare_counter("mitigate_drill_started_total", "Drill runs started, by drill.");
}

DrillRunner::~DrillRunner() = default;

DrillStart DrillRunner::start(const DrillDefinition& drill, bool dry_run,
                              const std::string& trigger) {
    DrillStart started;
    {
        std::lock_guard lock(state_->mutex);
        started = state_->start_locked(drill, dry_run, trigger);
    }
    if (started.run && state_->hooks.wake_runner) {
        state_->hooks.wake_runner();
    }
    return started;
}

std::optional<TimePoint> DrillRunner::step() {
    State& state = *state_;
    std::lock_guard lock(state.mutex);
    std::optional<TimePoint> next = state.schedule();
    for (DrillRun run :
         state.runs.list("", {DrillRunStatus::running, DrillRunStatus::cleaning}, 100)) {
        try {
            state.advance(run);
            if (is_unfinished(run.status)) {
                const TimePoint due = state.deadline_of(run);
                next = next ? std::min(*next, due) : due;
            }
        } catch (const std::exception& failure) {
            spdlog::error("drill run {}: {}", run.id, failure.what());
        }
    }
    return next;
}

void DrillRunner::recover() {
    State& state = *state_;
    std::lock_guard lock(state.mutex);
    // The last result per drill survives a restart: /metrics says it from the start.
    std::set<std::string> seen;
    for (const DrillRun& run : state.runs.list(
             "", {DrillRunStatus::passed, DrillRunStatus::failed, DrillRunStatus::aborted}, 1000)) {
        const std::string label = state.metric_label(run.drill);
        if (seen.insert(label).second) {
            state.metrics.set("mitigate_drill_last_result", result_value(run.status),
                              {{"drill", label}});
        }
    }
    // A schedule new to this store counts from the daemon's start, not from whenever the
    // runner's thread first looks: a start due in between is not lost.
    const TimePoint now = state.clock.now();
    for (const DrillDefinition& drill : state.scheduled) {
        if (drill.schedule && !state.runs.schedule_position(drill.name)) {
            state.runs.set_schedule_position(drill.name, now);
        }
    }
    for (DrillRun run : state.runs.list("", {DrillRunStatus::running}, 100)) {
        state.begin_cleanup(run, DrillRunStatus::aborted,
                            "the daemon restarted during the drill; everything it caused is "
                            "cleaned up");
        state.save(run);
        state.audit(run, "drill.interrupted", {{"reason", run.reason}});
    }
}

}  // namespace mitigate
