#include "runtime/drills/drill_report.h"

#include <cstdio>

#include "runtime/core/time_format.h"

namespace mitigate {

using nlohmann::json;

std::string drill_report_markdown(const json& run) {
    std::string out =
        "## Drill " + run.value("drill", "?") + ": " + run.value("status", "?") + "\n\n";
    out += "- run: `" + run.value("id", "?") + "`, started " + run.value("started_at", "?") +
           " by " + run.value("trigger", "?") + (run.value("dry_run", false) ? " (dry run)" : "") +
           "\n";
    if (run.contains("reason")) {
        out += "- reason: " + run["reason"].get<std::string>() + "\n";
    }
    if (run.contains("incident_id")) {
        out += "- incident: `" + run["incident_id"].get<std::string>() + "`\n";
    }
    const json expectations = run.value("expectations", json::array());
    if (!expectations.empty()) {
        out += "\n| expectation | result | detail |\n|---|---|---|\n";
        for (const json& expectation : expectations) {
            out += "| " + expectation.value("expectation", "") + " | " +
                   (expectation.value("passed", false) ? "pass" : "**FAIL**") + " | " +
                   expectation.value("detail", "") + " |\n";
        }
    }
    const json durations = run.value("durations_seconds", json::object());
    if (!durations.empty()) {
        out += "\n| step | seconds |\n|---|---|\n";
        for (const char* step : {"detect", "propose", "approve", "apply", "recover", "revert"}) {
            if (durations.contains(step)) {
                char seconds[32];
                std::snprintf(seconds, sizeof seconds, "%.3f", durations[step].get<double>());
                out += std::string("| ") + step + " | " + seconds + " |\n";
            }
        }
    }
    const json cleanup = run.value("cleanup", json::array());
    if (!cleanup.empty()) {
        out += "\nCleanup:\n\n";
        for (const json& step : cleanup) {
            out += "- `" + step.value("mitigation", "") + "`: " + step.value("state", "") + " (" +
                   step.value("done", "") + ")\n";
        }
    }
    return out;
}

}  // namespace mitigate
