// A drill run's report, in the forms `mitigate drill` prints and the API serves: JSON (the
// stored run, flattened), and Markdown for a ticket or a review.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "runtime/drills/drill_run.h"

namespace mitigate {

// A run as Markdown, from its JSON (drill_run_json(): what the CLI gets from the API).
std::string drill_report_markdown(const nlohmann::json& run);

}  // namespace mitigate
