// Decides what may happen to one proposed action: evaluates a PolicySet against the
// action, its context and recent history, and explains the decision (every rule with
// whether it matched and why, every constraint with whether it held).
//
// Pure: no clock, no I/O. The caller passes `now` and the history, so a decision can be
// replayed exactly (`mitigate policy eval --now ... --history ...`).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runtime/core/model.h"
#include "runtime/core/validation.h"
#include "runtime/policy/policy_set.h"

namespace mitigate {

// What a decision is about: the action, who asked, where it would run, and the plan if
// one has been made (rules on blast radius and reversibility need it).
struct PolicyInput {
    Action action;
    std::string playbook;     // empty when a person proposed it
    std::string proposed_by;  // never counts as an approver
    std::string environment;
    std::string service;
    Labels labels;
    std::optional<Plan> plan;
    // Decide as always, but turn what would be allowed (or sent for approval) into dry_run:
    // a drill run as a dry run.
    bool dry_run = false;
};

// A mitigation that ran recently, for rate limits, cooldowns and the circuit breaker.
struct PastMitigation {
    std::string provider;
    std::string action;
    std::string target;
    std::string service;
    std::string environment;
    TimePoint started_at;
    std::optional<TimePoint> verification_failed_at;
};

struct PolicyHistory {
    std::vector<PastMitigation> mitigations;
    // The circuit breaker only counts failures after the last reset by a human.
    std::optional<TimePoint> circuit_breaker_reset_at;
};

// What a decision's `rules` lists. The engine records the rules that matched (they are
// what decided, with the constraints); why each other rule did not match is built on
// demand, by `mitigate policy eval` and `policy test`, since building it for every rule of
// every decision was most of what a decision cost.
enum class PolicyExplanation { matched_rules, every_rule };

Decision evaluate_policy(const PolicySet& policies, const PolicyInput& input,
                         const PolicyHistory& history, TimePoint now,
                         PolicyExplanation explanation = PolicyExplanation::matched_rules);

// True when the named window is active at `now` (exposed for tests and `policy eval`).
bool is_window_active(const PolicyWindow& window, TimePoint now);

// The first whole minute after `after`, up to `until`, at which `schedule` fires as a clock
// in `zone` reads it (a drill's schedule); nothing if none. Walks minutes: keep the span
// to days, not years.
std::optional<TimePoint> next_schedule_time(const CronSchedule& schedule,
                                            const cctz::time_zone& zone, TimePoint after,
                                            TimePoint until);

// True when a freeze of `policies` covers `environment` at `now`.
std::optional<std::string> active_freeze(const PolicySet& policies, const std::string& environment,
                                         TimePoint now);

// JSON forms, for the command line and fixtures. See docs/policies.md.
Parsed<PolicyInput> parse_policy_input(const nlohmann::json& in, std::string path = "input");
Parsed<PolicyHistory> parse_policy_history(const nlohmann::json& in, std::string path = "history");

}  // namespace mitigate
