// A chaos drill, as written in scripts/drills/*.yaml (docs/drills.md has every key):
//
//   name: checkout-errors
//   schedule: {cron: "0 10 * * tue", timezone: Europe/Berlin,
//              except: [{schedule: "0 0 20 12 *", duration: 15d}]}
//   environment: stage
//   service: checkout
//   fault:
//     signal: {alertname: HighErrorRate, labels: {flag: checkout}, resolve: after_apply}
//   expect:
//     proposals: [{playbook: flag-off, provider: flags, action: flag.set, target: checkout}]
//     applied_within: 2m
//     recovered_within: 5m
//   stop_when: {real_alerts: true, freeze: true,
//               error_budget: {prometheus: "http://prometheus:9090",
//                              query: "slo:burn_rate:1h{service=\"checkout\"}", above: 2}}
//   dry_run: false
//   max_duration: 15m
//
// The fault is a synthetic alert, marked as a drill everywhere it goes; `resolve:
// after_apply` resolves it once the mitigation is applied (the mitigation "worked"), and
// `never` leaves it firing so that verification fails and the revert path is drilled.
// A fault may also degrade something first, with a provider action:
//   fault:
//     action: {provider: flags, action: flag.set, target: slow-search,
//              parameters: {variant: "on"}, ttl: 10m}
//     signal: {alertname: HighLatency}
// The action goes through policy as a drill mitigation; once it is applied the alert is
// raised, as monitoring would raise it; cleanup reverts it with everything else.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/core/model.h"
#include "runtime/policy/policy_set.h"

namespace mitigate {

struct DrillSchedule {
    CronSchedule cron;
    std::string time_zone_name = "UTC";
    cctz::time_zone time_zone;
    std::vector<PolicyWindow> except;  // no run starts while one of these is active
};

// A fault that is a provider action: something degraded on purpose before the alert is
// raised, itself a drill mitigation through policy, reverted by cleanup or at its TTL.
struct DrillFaultAction {
    Action action;  // provider, action, target, parameters, ttl (required), reason
};

struct DrillSignal {
    std::string alertname;
    Labels labels;  // besides alertname, service and environment, which the drill sets
    Labels annotations;
    bool resolve_after_apply = true;
};

// A proposal the drill expects; an empty field matches anything.
struct DrillExpectedProposal {
    std::string playbook;
    std::string provider;
    std::string action;
    std::string target;
};

// A stop condition on a Prometheus query: the drill stops (or does not start) while any
// sample of `query` is above `above`, and also when Prometheus cannot answer, since an
// unknown burn rate is no reason to go on.
struct DrillErrorBudget {
    std::string prometheus_url;  // "http://prometheus:9090"
    std::string query;           // "slo:error_budget_burn_rate:1h{service=\"checkout\"}"
    double above = 0;
};

struct DrillDefinition {
    std::string name;
    std::string description;
    std::string source;  // file name, for errors and reports
    std::optional<DrillSchedule> schedule;
    std::string environment;
    std::string service;
    std::optional<DrillFaultAction> fault_action;  // applied first, then the signal raised
    DrillSignal signal;
    std::vector<DrillExpectedProposal> expected_proposals;
    Duration applied_within{std::chrono::minutes(2)};
    Duration recovered_within{std::chrono::minutes(5)};
    bool stop_on_real_alerts = true;
    bool stop_on_freeze = true;
    std::optional<DrillErrorBudget> error_budget;
    bool dry_run = false;
    Duration max_duration{std::chrono::minutes(15)};
    std::string text;  // the YAML as written, stored with every run
};

struct DrillLoad {
    std::vector<DrillDefinition> drills;
    std::vector<ConfigError> errors;  // file:line:column: key: message
};

// One drill from YAML text; `source` names it in errors.
DrillLoad load_drill_text(std::string_view text, const std::string& source);
// Every *.yaml in `directory`, in name order; names must be unique across files.
DrillLoad load_drill_directory(const std::filesystem::path& directory);

}  // namespace mitigate
