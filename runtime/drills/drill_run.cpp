#include "runtime/drills/drill_run.h"

#include <array>
#include <limits>
#include <utility>

#include "runtime/core/json_reader.h"
#include "runtime/core/time_format.h"

namespace mitigate {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<DrillRunStatus, std::string_view>, 7> statuses{{
    {DrillRunStatus::running, "running"},
    {DrillRunStatus::cleaning, "cleaning"},
    {DrillRunStatus::passed, "passed"},
    {DrillRunStatus::failed, "failed"},
    {DrillRunStatus::aborted, "aborted"},
    {DrillRunStatus::skipped, "skipped"},
    {DrillRunStatus::missed, "missed"},
}};

constexpr std::array<std::pair<DrillPhase, std::string_view>, 5> phases{{
    {DrillPhase::starting, "starting"},
    {DrillPhase::faulting, "faulting"},
    {DrillPhase::waiting, "waiting"},
    {DrillPhase::cleaning, "cleaning"},
    {DrillPhase::done, "done"},
}};

// The times of a run, by the names they have in JSON.
constexpr std::array<std::pair<std::string_view, std::optional<TimePoint> DrillRunTimes::*>, 11>
    time_fields{{
        {"started", &DrillRunTimes::started},
        {"fault_applied", &DrillRunTimes::fault_applied},
        {"injected", &DrillRunTimes::injected},
        {"detected", &DrillRunTimes::detected},
        {"proposed", &DrillRunTimes::proposed},
        {"approved", &DrillRunTimes::approved},
        {"applied", &DrillRunTimes::applied},
        {"resolved_signal", &DrillRunTimes::resolved_signal},
        {"recovered", &DrillRunTimes::recovered},
        {"cleanup_started", &DrillRunTimes::cleanup_started},
        {"finished", &DrillRunTimes::finished},
    }};

template <class Enum, std::size_t size>
std::optional<Enum> value_of(const std::array<std::pair<Enum, std::string_view>, size>& names,
                             std::string_view text) {
    for (const auto& [value, name] : names) {
        if (name == text) {
            return value;
        }
    }
    return std::nullopt;
}

template <class Enum, std::size_t size>
std::string_view name_of(const std::array<std::pair<Enum, std::string_view>, size>& names,
                         Enum value) {
    for (const auto& [candidate, name] : names) {
        if (candidate == value) {
            return name;
        }
    }
    return "unknown";
}

}  // namespace

std::string_view to_string(DrillRunStatus status) {
    return name_of(statuses, status);
}
std::optional<DrillRunStatus> parse_drill_run_status(std::string_view text) {
    return value_of(statuses, text);
}
std::string_view to_string(DrillPhase phase) {
    return name_of(phases, phase);
}
std::optional<DrillPhase> parse_drill_phase(std::string_view text) {
    return value_of(phases, text);
}

bool is_unfinished(DrillRunStatus status) {
    return status == DrillRunStatus::running || status == DrillRunStatus::cleaning;
}

json drill_run_json(const DrillRun& run) {
    json times = json::object();
    for (const auto& [name, field] : time_fields) {
        if (const auto& at = run.times.*field) {
            times[std::string(name)] = format_rfc3339(*at);
        }
    }
    json expectations = json::array();
    for (const auto& expectation : run.expectations) {
        expectations.push_back({{"expectation", expectation.expectation},
                                {"passed", expectation.passed},
                                {"detail", expectation.detail}});
    }
    json cleanup = json::array();
    for (const auto& step : run.cleanup) {
        cleanup.push_back(
            {{"mitigation", step.mitigation}, {"state", step.state}, {"done", step.done}});
    }
    json out = {{"id", run.id},
                {"drill", run.drill},
                {"status", to_string(run.status)},
                {"started_at", format_rfc3339(run.started_at)},
                {"definition", run.definition},
                {"source", run.source},
                {"dry_run", run.dry_run},
                {"trigger", run.trigger},
                {"phase", to_string(run.phase)},
                {"times", times},
                {"expectations", expectations},
                {"cleanup", cleanup}};
    // Absent rather than empty: what a run has not reached yet is not there.
    if (!run.fault_mitigation.empty()) {
        out["fault_mitigation"] = run.fault_mitigation;
    }
    if (!run.incident_id.empty()) {
        out["incident_id"] = run.incident_id;
    }
    if (!run.mitigations.empty()) {
        out["mitigations"] = run.mitigations;
    }
    if (run.result) {
        out["result"] = to_string(*run.result);
    }
    if (!run.reason.empty()) {
        out["reason"] = run.reason;
    }
    if (!run.durations_seconds.empty()) {
        out["durations_seconds"] = run.durations_seconds;
    }
    if (run.missed > 0) {
        out["missed"] = run.missed;
    }
    if (run.first_missed) {
        out["first"] = format_rfc3339(*run.first_missed);
    }
    if (run.last_missed) {
        out["last"] = format_rfc3339(*run.last_missed);
    }
    return out;
}

Parsed<DrillRun> parse_drill_run(const json& in, std::string path) {
    Parsed<DrillRun> result;
    std::vector<FieldError>& errors = result.errors;
    JsonObjectReader reader(in, std::move(path), errors);
    DrillRun run;
    run.id = reader.string("id");
    run.drill = reader.string("drill");
    run.status = reader.enumeration(
        "status", [](std::string_view text) { return parse_drill_run_status(text); },
        DrillRunStatus::aborted, "running, cleaning, passed, failed, aborted, skipped, missed");
    run.started_at = reader.time("started_at").value_or(TimePoint{});
    run.definition = reader.string("definition", Presence::optional);
    run.source = reader.string("source", Presence::optional);
    run.dry_run = reader.boolean("dry_run", false);
    run.trigger = reader.string("trigger", Presence::optional);
    run.phase = reader.enumeration(
        "phase", [](std::string_view text) { return parse_drill_phase(text); }, DrillPhase::done,
        "starting, faulting, waiting, cleaning, done");
    if (const json* times = reader.member("times", Presence::optional)) {
        JsonObjectReader times_reader(*times, reader.path_of("times"), errors);
        for (const auto& [name, field] : time_fields) {
            run.times.*field = times_reader.time(name, Presence::optional);
        }
        times_reader.reject_unknown_fields();
    }
    if (const json* list = reader.member("expectations", Presence::optional)) {
        if (!list->is_array()) {
            reader.add_error("expectations", "must be a list");
        } else {
            for (std::size_t i = 0; i < list->size(); ++i) {
                JsonObjectReader item(
                    (*list)[i], reader.path_of("expectations") + "[" + std::to_string(i) + "]",
                    errors);
                DrillExpectationResult expectation;
                expectation.expectation = item.string("expectation");
                expectation.passed = item.boolean("passed", false);
                expectation.detail = item.string("detail", Presence::optional);
                item.reject_unknown_fields();
                run.expectations.push_back(std::move(expectation));
            }
        }
    }
    if (const json* list = reader.member("cleanup", Presence::optional)) {
        if (!list->is_array()) {
            reader.add_error("cleanup", "must be a list");
        } else {
            for (std::size_t i = 0; i < list->size(); ++i) {
                JsonObjectReader item(
                    (*list)[i], reader.path_of("cleanup") + "[" + std::to_string(i) + "]", errors);
                DrillCleanupStep step;
                step.mitigation = item.string("mitigation");
                step.state = item.string("state", Presence::optional);
                step.done = item.string("done", Presence::optional);
                item.reject_unknown_fields();
                run.cleanup.push_back(std::move(step));
            }
        }
    }
    run.fault_mitigation = reader.string("fault_mitigation", Presence::optional);
    run.incident_id = reader.string("incident_id", Presence::optional);
    run.mitigations = reader.string_list("mitigations");
    if (reader.member("result", Presence::optional) != nullptr) {
        run.result = reader.enumeration(
            "result", [](std::string_view text) { return parse_drill_run_status(text); },
            DrillRunStatus::aborted, "passed, failed, aborted");
    }
    run.reason = reader.string("reason", Presence::optional);
    if (const json* durations = reader.member("durations_seconds", Presence::optional)) {
        JsonObjectReader durations_reader(*durations, reader.path_of("durations_seconds"), errors);
        if (durations->is_object()) {
            for (const auto& [step, value] : durations->items()) {
                run.durations_seconds[step] = durations_reader.number(step, 0, 1e9);
            }
        }
    }
    run.missed = reader.integer("missed", 0, std::numeric_limits<std::int64_t>::max(), 0);
    run.first_missed = reader.time("first", Presence::optional);
    run.last_missed = reader.time("last", Presence::optional);
    reader.reject_unknown_fields();
    if (errors.empty()) {
        result.value = std::move(run);
    }
    return result;
}

}  // namespace mitigate
