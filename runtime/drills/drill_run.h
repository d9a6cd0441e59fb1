// One run of a chaos drill, as the runner keeps it and the API shows it, and where runs
// are stored (drill_run_store.h). Stored as JSON and read back through one strict reader:
// a stored run that does not read is reported, never half-used.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/core/clock.h"
#include "runtime/core/validation.h"

namespace mitigate {

// running and cleaning while it goes; then passed, failed or aborted. A scheduled run that
// did not start is stored as skipped or missed, so the history says so.
enum class DrillRunStatus { running, cleaning, passed, failed, aborted, skipped, missed };

enum class DrillPhase { starting, faulting, waiting, cleaning, done };

std::string_view to_string(DrillRunStatus status);
std::optional<DrillRunStatus> parse_drill_run_status(std::string_view text);
std::string_view to_string(DrillPhase phase);
std::optional<DrillPhase> parse_drill_phase(std::string_view text);

// Still going: it may have caused something that must be cleaned up.
bool is_unfinished(DrillRunStatus status);

struct DrillExpectationResult {
    std::string expectation;  // "detected", "proposes playbook=x", "applied within 2m"
    bool passed = false;
    std::string detail;
    bool operator==(const DrillExpectationResult&) const = default;
};

// What cleanup did to one mitigation the drill caused.
struct DrillCleanupStep {
    std::string mitigation;
    std::string state;
    std::string done;
    bool operator==(const DrillCleanupStep&) const = default;
};

// When each step of a run happened; each is set once, the first time it is seen.
struct DrillRunTimes {
    std::optional<TimePoint> started;
    std::optional<TimePoint> fault_applied;
    std::optional<TimePoint> injected;
    std::optional<TimePoint> detected;
    std::optional<TimePoint> proposed;
    std::optional<TimePoint> approved;
    std::optional<TimePoint> applied;
    std::optional<TimePoint> resolved_signal;
    std::optional<TimePoint> recovered;
    std::optional<TimePoint> cleanup_started;
    std::optional<TimePoint> finished;
    bool operator==(const DrillRunTimes&) const = default;
};

struct DrillRun {
    std::string id;
    std::string drill;
    DrillRunStatus status = DrillRunStatus::running;
    TimePoint started_at;
    // The definition as run (its YAML) and the file it came from: a restart or an edited
    // file never changes a run under way.
    std::string definition;
    std::string source;
    bool dry_run = false;
    std::string trigger;  // "api:alice", "schedule"
    DrillPhase phase = DrillPhase::starting;
    DrillRunTimes times;
    std::vector<DrillExpectationResult> expectations;
    std::vector<DrillCleanupStep> cleanup;
    std::string fault_mitigation;  // the drill's own fault, when it has one
    std::string incident_id;
    std::vector<std::string> mitigations;
    // The verdict, fixed before cleanup starts (passed, failed or aborted).
    std::optional<DrillRunStatus> result;
    std::string reason;
    std::map<std::string, double> durations_seconds;  // detect, propose, approve, ...
    // For a `missed` record: how many scheduled starts passed, the first and the last.
    std::int64_t missed = 0;
    std::optional<TimePoint> first_missed;
    std::optional<TimePoint> last_missed;
    bool operator==(const DrillRun&) const = default;
};

// The whole run as one JSON object (what the API serves and the store keeps).
nlohmann::json drill_run_json(const DrillRun& run);
Parsed<DrillRun> parse_drill_run(const nlohmann::json& in, std::string path = "run");

}  // namespace mitigate
