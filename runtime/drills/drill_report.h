// A drill run's report, in the forms `mitigate drill` prints and the API serves: JSON (the
// stored run, flattened), and Markdown for a ticket or a review.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "runtime/store/store.h"

namespace mitigate {

// {"id", "drill", "status", "started_at", "dry_run", "trigger", "reason", "times",
//  "durations_seconds", "expectations", "cleanup", "incident_id", "mitigations"}; the
// definition as run is under "definition".
nlohmann::json drill_run_json(const DrillRun& run);
// The same, from that JSON (what the CLI gets from the API).
std::string drill_report_markdown(const nlohmann::json& run);

}  // namespace mitigate
