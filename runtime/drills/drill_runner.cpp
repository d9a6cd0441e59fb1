#include "runtime/drills/drill_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "runtime/core/ids.h"
#include "runtime/core/mitigation_state.h"
#include "runtime/core/time_format.h"
#include "runtime/core/url_encoding.h"
#include "runtime/engine/lifecycle.h"
#include "runtime/ingest/signal_submission.h"
#include "runtime/metrics/metrics.h"
#include "runtime/policy/policy_engine.h"
#include "runtime/server/http_client.h"

namespace mitigate {
namespace {

using nlohmann::json;

// A scheduled start more than this late (the daemon was down, or busy) is reported as
// missed rather than run at an unexpected time.
constexpr auto schedule_grace = std::chrono::minutes(5);
// How far ahead the scheduler looks for the next start when nothing is due.
constexpr auto schedule_horizon = std::chrono::hours(24 * 8);

bool finished(const std::string& status) {
    return status != "running" && status != "cleaning";
}

std::optional<TimePoint> time_at(const json& body, const char* key) {
    const json times = body.value("times", json::object());
    if (!times.contains(key)) {
        return std::nullopt;
    }
    return parse_rfc3339(times[key].get<std::string>());
}

void set_time(json& body, const char* key, TimePoint at) {
    if (!body["times"].contains(key)) {
        body["times"][key] = format_rfc3339(at);
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
    Lifecycle& lifecycle;
    const Clock& clock;
    Metrics& metrics;
    std::shared_ptr<const PolicySet> policies;
    std::vector<DrillDefinition> scheduled;
    DrillRunnerHooks hooks;
    std::mutex mutex;                                    // one step or start at a time
    std::map<std::string, DrillDefinition> definitions;  // by run id, for runs under way
    // The last answer to each error-budget query, and when it was asked.
    std::map<std::string, std::pair<TimePoint, std::optional<std::string>>> error_budget_checks;

    State(Store& store_in, Lifecycle& lifecycle_in, const Clock& clock_in, Metrics& metrics_in,
          std::shared_ptr<const PolicySet> policies_in, std::vector<DrillDefinition> scheduled_in,
          DrillRunnerHooks hooks_in)
        : store(store_in),
          lifecycle(lifecycle_in),
          clock(clock_in),
          metrics(metrics_in),
          policies(std::move(policies_in)),
          scheduled(std::move(scheduled_in)),
          hooks(std::move(hooks_in)) {}

    std::string actor(const std::string& drill) const { return "drill:" + drill; }

    void save(DrillRun& run) { store.save_drill_run(run); }

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
            // Asked at most every 10 s per query: the runner steps after every engine step.
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
        const json answer = json::parse(response.body, nullptr, false);
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
        signal.labels[std::string(drill_run_label)] = run.id;
        if (run.body.value("dry_run", false)) {
            signal.labels[std::string(drill_dry_run_label)] = "true";
        }
        signal.annotations = drill.signal.annotations;
        signal.annotations["summary"] = "chaos drill " + drill.name + " (run " + run.id + ")";
        signal.starts_at = *parse_rfc3339(run.body["times"]["injected"].get<std::string>());
        if (status == SignalStatus::resolved) {
            signal.ends_at = clock.now();
        }
        signal.received_at = clock.now();
        signal.id = signal_id(signal.fingerprint, signal.starts_at, status);
        return signal;
    }

    void send(const DrillDefinition& drill, DrillRun& run, SignalStatus status) {
        const SignalIntake intake = lifecycle.accept_signals({drill_signal(drill, run, status)});
        if (intake.refused) {
            throw std::runtime_error("the signal backlog is full: " + intake.message);
        }
        if (hooks.wake_engine) {
            hooks.wake_engine();
        }
    }

    std::optional<Incident> incident_of(const DrillRun& run) {
        if (run.body.contains("incident_id")) {
            return store.find_incident(run.body["incident_id"].get<std::string>());
        }
        IncidentFilter all;
        all.limit = 200;
        for (const Incident& incident : store.list_incidents(all)) {
            const auto label = incident.labels.find(std::string(drill_run_label));
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

    DrillStart start_locked(const DrillDefinition& drill, bool dry_run,
                            const std::string& trigger) {
        if (!store.list_drill_runs(drill.name, {"running", "cleaning"}, 1).empty()) {
            return {std::nullopt, "a run of drill " + drill.name + " is still going"};
        }
        const TimePoint now = clock.now();
        DrillRun run;
        run.id = new_id("drl", now);
        run.drill = drill.name;
        run.status = "running";
        run.started_at = now;
        run.body = {{"definition", drill.text},
                    {"source", drill.source},
                    {"dry_run", dry_run || drill.dry_run},
                    {"trigger", trigger},
                    {"phase", "starting"},
                    {"times", {{"started", format_rfc3339(now)}}},
                    {"expectations", json::array()},
                    {"cleanup", json::array()}};
        metrics.increment("mitigate_drill_started_total", {{"drill", drill.name}});
        if (auto reason = stop_reason(drill)) {
            run.status = "aborted";
            run.body["phase"] = "done";
            run.body["reason"] = "not started: " + *reason;
            run.body["times"]["finished"] = format_rfc3339(now);
            finish_metrics(run);
            save(run);
            audit(run, "drill.aborted", {{"reason", run.body["reason"]}});
            return {run, ""};
        }
        audit(run, "drill.started",
              {{"trigger", trigger}, {"dry_run", run.body["dry_run"]}, {"source", drill.source}});
        if (drill.fault_action && !run.body["dry_run"].get<bool>()) {
            // The fault first, through policy like anything else; the alert follows once it
            // is applied (advance). A dry run applies no fault either.
            const RequestResult fault = lifecycle.propose_drill_fault(
                drill.fault_action->action, drill.environment, drill.service, actor(drill.name));
            run.body["phase"] = "faulting";
            if (fault.mitigation) {
                run.body["fault_mitigation"] = fault.mitigation->id;
            } else {
                run.body["result"] = "aborted";
                run.body["reason"] = "the fault was not proposed: " + fault.message;
                run.status = "cleaning";
            }
            save(run);
            if (hooks.wake_engine) {
                hooks.wake_engine();
            }
            return {run, ""};
        }
        inject(drill, run);
        return {run, ""};
    }

    // Stored before the signal, so a crash in between is cleaned up like any other.
    void inject(const DrillDefinition& drill, DrillRun& run) {
        run.body["phase"] = "waiting";
        run.body["times"]["injected"] = format_rfc3339(clock.now());
        save(run);
        send(drill, run, SignalStatus::firing);
    }

    // While the fault is on its way: true once the alert is raised; false to wait, or with
    // the run aborted when the fault did not apply in time.
    bool fault_applied(const DrillDefinition& drill, DrillRun& run) {
        const auto fault = store.find_mitigation(run.body["fault_mitigation"].get<std::string>());
        if (fault && (fault->state == MitigationState::verifying ||
                      fault->state == MitigationState::active)) {
            set_time(run.body, "fault_applied", clock.now());
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
        run.body["result"] = "aborted";
        run.body["reason"] = "the fault did not apply: " + why;
        run.status = "cleaning";
        run.body["phase"] = "cleaning";
        set_time(run.body, "cleanup_started", clock.now());
        return false;
    }

    // Records what happened so far; true when there is nothing more to wait for.
    bool observe(const DrillDefinition& drill, DrillRun& run) {
        json& body = run.body;
        const TimePoint now = clock.now();
        const TimePoint injected = *time_at(body, "injected");
        const bool dry_run = body.value("dry_run", false);
        const auto incident = incident_of(run);
        if (!incident) {
            return now >= injected + drill.applied_within;  // never detected
        }
        body["incident_id"] = incident->id;
        set_time(body, "detected", incident->opened_at);
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
        json ids = json::array();
        for (const Mitigation& mitigation : mitigations) {
            ids.push_back(mitigation.id);
            earliest(proposed, mitigation.created_at);
            const auto journal = store.journal(mitigation.id);
            earliest(approved, reached(journal, {MitigationState::approved}));
            earliest(applied, reached(journal, {MitigationState::verifying}));
        }
        body["mitigations"] = ids;
        for (const auto& [key, at] :
             {std::pair{"proposed", proposed}, std::pair{"approved", approved},
              std::pair{"applied", applied}}) {
            if (at) {
                set_time(body, key, *at);
            }
        }
        if (applied && drill.signal.resolve_after_apply &&
            !body["times"].contains("resolved_signal")) {
            send(drill, run, SignalStatus::resolved);
            set_time(body, "resolved_signal", now);
        }
        if (incident->resolved_at) {
            set_time(body, "recovered", *incident->resolved_at);
        }
        if (now >= injected + drill.max_duration) {
            return true;
        }
        if (dry_run) {
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
        json& body = run.body;
        const bool dry_run = body.value("dry_run", false);
        json expectations = json::array();
        const auto add = [&](const std::string& name, bool passed, const std::string& detail) {
            expectations.push_back({{"expectation", name}, {"passed", passed}, {"detail", detail}});
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
            if (dry_run || found == mitigations.end()) {
                if (dry_run && found != mitigations.end()) {
                    add("nothing applied (dry run)",
                        found->state == MitigationState::dry_run ||
                            found->state == MitigationState::denied,
                        std::string(to_string(found->state)));
                }
                continue;
            }
            const auto journal = store.journal(found->id);
            const auto applied_at = reached(journal, {MitigationState::verifying});
            const TimePoint injected = *time_at(body, "injected");
            const bool in_time = applied_at && *applied_at <= injected + drill.applied_within;
            add("applied within " + format_duration(drill.applied_within), in_time,
                applied_at ? "applied after " + format_duration(*applied_at - injected)
                           : "not applied: " + std::string(to_string(found->state)) +
                                 (found->decision ? " (" + found->decision->summary + ")" : ""));
        }
        if (!dry_run && drill.signal.resolve_after_apply) {
            const auto applied = time_at(body, "applied");
            const auto recovered = time_at(body, "recovered");
            const bool in_time =
                applied && recovered && *recovered <= *applied + drill.recovered_within;
            add("recovered within " + format_duration(drill.recovered_within), in_time,
                recovered && applied
                    ? "recovered " + format_duration(*recovered - *applied) + " after apply"
                    : "the incident did not resolve");
        }
        body["expectations"] = expectations;
        const bool passed = std::all_of(expectations.begin(), expectations.end(),
                                        [](const json& e) { return e["passed"].get<bool>(); });
        if (!body.contains("result")) {
            body["result"] = passed ? "passed" : "failed";
        }
    }

    // Reverts or withdraws what the drill caused; true when everything is final.
    bool clean(const DrillDefinition& drill, DrillRun& run) {
        json& body = run.body;
        if (!body["times"].contains("resolved_signal") && body["times"].contains("injected")) {
            send(drill, run, SignalStatus::resolved);
            set_time(body, "resolved_signal", clock.now());
        }
        bool all_final = true;
        std::vector<Mitigation> caused;  // the response first, then the fault it answered
        if (const auto incident = incident_of(run)) {
            caused = mitigations_of(incident->id);
        } else if (body["times"].contains("injected") && store.count_pending_signals() > 0) {
            all_final = false;  // the signal may still be waiting to be grouped
        }
        if (body.contains("fault_mitigation")) {
            if (auto fault = store.find_mitigation(body["fault_mitigation"].get<std::string>())) {
                caused.push_back(std::move(*fault));
            }
        }
        json cleanup = json::array();
        for (const Mitigation& mitigation : caused) {
            std::string done;
            const MitigationState state = mitigation.state;
            if (state == MitigationState::active || state == MitigationState::verifying ||
                state == MitigationState::conflict) {
                const RequestResult result =
                    lifecycle.revert(mitigation.id, actor(drill.name), "drill cleanup");
                done = "revert: " + result.message;
                all_final = all_final && result.status == RequestStatus::done;
            } else if (!is_final(state) && !may_have_effect(state)) {
                const RequestResult result =
                    lifecycle.withdraw(mitigation.id, actor(drill.name), "drill cleanup");
                done = "withdraw: " + result.message;
                all_final = all_final && result.status == RequestStatus::done;
            } else if (!is_final(state)) {
                done = "waiting for the engine (" + std::string(to_string(state)) + ")";
                all_final = false;
            }
            const auto after = store.find_mitigation(mitigation.id);
            cleanup.push_back({{"mitigation", mitigation.id},
                               {"state", to_string(after ? after->state : state)},
                               {"done", done.empty() ? "already final" : done}});
        }
        body["cleanup"] = cleanup;
        if (hooks.wake_engine) {
            hooks.wake_engine();
        }
        return all_final;
    }

    void finish_metrics(const DrillRun& run) {
        const std::string result = run.status;
        metrics.increment("mitigate_drill_runs_total", {{"drill", run.drill}, {"result", result}});
        const double value = result == "passed" ? 1 : result == "failed" ? 0 : -1;
        metrics.set("mitigate_drill_last_result", value, {{"drill", run.drill}});
        metrics.set("mitigate_drill_last_duration_seconds", seconds(run.started_at, clock.now()),
                    {{"drill", run.drill}});
    }

    void durations(DrillRun& run) {
        json& body = run.body;
        const auto span = [&](const char* name, const char* from, const char* to) {
            const auto start = time_at(body, from);
            const auto end = time_at(body, to);
            if (start && end) {
                body["durations_seconds"][name] = seconds(*start, *end);
            }
        };
        span("detect", "injected", "detected");
        span("propose", "detected", "proposed");
        span("approve", "proposed", "approved");
        span("apply", "approved", "applied");
        span("recover", "applied", "recovered");
        span("revert", "cleanup_started", "finished");
    }

    // The definition a run was started with, parsed once per run (the store keeps its text,
    // so a restart or an edited file does not change a run under way).
    const DrillDefinition& definition_of(const DrillRun& run) {
        auto found = definitions.find(run.id);
        if (found == definitions.end()) {
            DrillLoad load = load_drill_text(run.body["definition"].get<std::string>(),
                                             run.body.value("source", run.drill));
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
        if (run.status == "running" && !run.body["times"].contains("injected")) {
            if (!run.body.contains("fault_mitigation") || !fault_applied(drill, run)) {
                if (run.status == "running") {
                    if (auto reason = stop_reason(drill)) {
                        run.body["result"] = "aborted";
                        run.body["reason"] = "stopped: " + *reason;
                        run.status = "cleaning";
                        set_time(run.body, "cleanup_started", now);
                    }
                }
                if (run.status == "running") {
                    save(run);
                    return;
                }
            }
        }
        if (run.status == "running") {
            bool done = observe(drill, run);
            if (auto reason = stop_reason(drill)) {
                run.body["result"] = "aborted";
                run.body["reason"] = "stopped: " + *reason;
                done = true;
            }
            if (!done) {
                save(run);
                return;
            }
            judge(drill, run);
            run.status = "cleaning";
            run.body["phase"] = "cleaning";
            set_time(run.body, "cleanup_started", now);
            save(run);
        }
        if (!clean(drill, run)) {
            save(run);
            return;
        }
        run.status = run.body.value("result", std::string("failed"));
        run.body["phase"] = "done";
        set_time(run.body, "finished", clock.now());
        durations(run);
        finish_metrics(run);  // before the run is seen finished in the store
        save(run);
        audit(run, "drill.finished",
              {{"result", run.status}, {"reason", run.body.value("reason", "")}});
        spdlog::info("drill {} run {}: {}", run.drill, run.id, run.status);
        definitions.erase(run.id);
    }

    // Deadline of a run still going, so the loop wakes even when the engine does not.
    TimePoint deadline_of(const DrillRun& run) {
        const DrillDefinition& drill = definition_of(run);
        if (run.status == "cleaning") {
            return clock.now() + std::chrono::seconds(1);
        }
        if (!run.body["times"].contains("injected")) {  // waiting for the fault to apply
            return std::max(run.started_at + drill.applied_within, clock.now());
        }
        const TimePoint injected = *time_at(run.body, "injected");
        TimePoint due = injected + drill.max_duration;
        due = std::min(due, injected + drill.applied_within);
        if (const auto applied = time_at(run.body, "applied")) {
            due = std::max(
                due, std::min(injected + drill.max_duration, *applied + drill.recovered_within));
        }
        return std::max(due, clock.now());
    }

    void record_not_started(const DrillDefinition& drill, const std::string& status, TimePoint at,
                            json details) {
        DrillRun run;
        run.id = new_id("drl", at);
        run.drill = drill.name;
        run.status = status;
        run.started_at = at;
        run.body = std::move(details);
        run.body["trigger"] = "schedule";
        run.body["phase"] = "done";
        save(run);
        metrics.increment("mitigate_drill_runs_total", {{"drill", drill.name}, {"result", status}});
        audit(run, "drill." + status, run.body);
    }

    // Starts what the schedules say is due; returns the next scheduled start.
    std::optional<TimePoint> schedule() {
        const TimePoint now = clock.now();
        std::optional<TimePoint> next;
        for (const DrillDefinition& drill : scheduled) {
            if (!drill.schedule) {
                continue;
            }
            const std::string cursor = "drill.schedule." + drill.name;
            const auto last = store.read_cursor(cursor);
            if (!last) {
                store.write_cursor(cursor, now.time_since_epoch().count());  // from now on
            }
            const TimePoint from = last ? TimePoint{Duration{*last}} : now;
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
                store.write_cursor(cursor, due.back().time_since_epoch().count());
                const bool late = now - due.back() > schedule_grace;
                const std::size_t missed = due.size() - (late ? 0 : 1);
                if (missed > 0) {
                    record_not_started(drill, "missed", due.front(),
                                       {{"reason", std::to_string(missed) +
                                                       " scheduled start(s) passed while the "
                                                       "daemon was down or busy; not replayed"},
                                        {"missed", missed},
                                        {"first", format_rfc3339(due.front())},
                                        {"last", format_rfc3339(due[missed - 1])}});
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
        for (const PolicyWindow& window : drill.schedule->except) {
            if (is_window_active(window, at)) {
                record_not_started(drill, "skipped", at,
                                   {{"reason", "inside the excluded window " + window.name + " (" +
                                                   window.schedule.text() + ")"}});
                return;
            }
        }
        if (!store.list_drill_runs(drill.name, {"running", "cleaning"}, 1).empty()) {
            record_not_started(drill, "skipped", at,
                               {{"reason",
                                 "the previous run of this drill is still going; runs "
                                 "never overlap"}});
            return;
        }
        const DrillStart started = start_locked(drill, false, "schedule");
        if (!started.run) {
            record_not_started(drill, "skipped", at, {{"reason", started.refusal}});
        }
    }
};

DrillRunner::DrillRunner(Store& store, Lifecycle& lifecycle, const Clock& clock, Metrics& metrics,
                         std::shared_ptr<const PolicySet> policies,
                         std::vector<DrillDefinition> scheduled, DrillRunnerHooks hooks)
    : state_(std::make_unique<State>(store, lifecycle, clock, metrics, std::move(policies),
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
    for (DrillRun run : state.store.list_drill_runs("", {"running", "cleaning"}, 100)) {
        try {
            state.advance(run);
            if (!finished(run.status)) {
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
    for (const DrillRun& run :
         state.store.list_drill_runs("", {"passed", "failed", "aborted"}, 1000)) {
        if (seen.insert(run.drill).second) {
            state.metrics.set("mitigate_drill_last_result",
                              run.status == "passed"   ? 1
                              : run.status == "failed" ? 0
                                                       : -1,
                              {{"drill", run.drill}});
        }
    }
    for (DrillRun run : state.store.list_drill_runs("", {"running"}, 100)) {
        run.status = "cleaning";
        run.body["phase"] = "cleaning";
        run.body["result"] = "aborted";
        run.body["reason"] =
            "the daemon restarted during the drill; everything it caused is "
            "cleaned up";
        set_time(run.body, "cleanup_started", state.clock.now());
        state.save(run);
        state.audit(run, "drill.interrupted", {{"reason", run.body["reason"]}});
    }
}

}  // namespace mitigate
