#include "runtime/drills/drill_definition.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/config/yaml_reader.h"
#include "runtime/core/time_format.h"

namespace mitigate {
namespace {

bool is_drill_name(const std::string& name) {
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    });
}

std::optional<Duration> read_duration(YamlMapReader& reader, std::string_view key) {
    const auto text = reader.string(key);
    if (!text) {
        return std::nullopt;
    }
    const auto duration = parse_duration(*text);
    if (!duration || duration->count() <= 0) {
        reader.error_at_value(key, "must be a duration longer than zero, such as 90s or 5m");
        return std::nullopt;
    }
    return duration;
}

std::optional<Duration> read_duration_required(YamlMapReader& reader, std::string_view key) {
    if (!reader.has(key)) {
        reader.string(key, true);  // records "is required" at the mapping
        return std::nullopt;
    }
    return read_duration(reader, key);
}

// A mapping of names to strings (labels, annotations).
Labels read_labels(YamlMapReader& parent, std::string_view key, YamlErrors& errors) {
    Labels labels;
    YamlMapReader map(parent.get(key), parent.path_of(key), errors);
    for (const auto& entry : map.entries()) {
        if (!entry.value.IsScalar()) {
            map.error_at(entry.value, map.path_of(entry.key), "must be a string");
            continue;
        }
        labels[entry.key] = entry.value.Scalar();
    }
    return labels;
}

void read_schedule(YamlMapReader& parent, YamlErrors& errors, DrillDefinition& drill) {
    const YAML::Node node = parent.get("schedule");
    if (!node.IsDefined()) {
        return;
    }
    YamlMapReader reader(node, "schedule", errors);
    DrillSchedule schedule;
    bool valid = true;
    if (const auto text = reader.string("cron", true)) {
        std::string problem;
        if (auto cron = CronSchedule::parse(*text, problem)) {
            schedule.cron = std::move(*cron);
            if (!schedule.cron.can_ever_match()) {
                reader.error_at_value("cron", "\"" + *text + "\" never fires");
                valid = false;
            }
        } else {
            reader.error_at_value("cron", problem);
            valid = false;
        }
    } else {
        valid = false;
    }
    schedule.time_zone_name = reader.string("timezone").value_or("UTC");
    if (!cctz::load_time_zone(schedule.time_zone_name, &schedule.time_zone)) {
        reader.error_at_value("timezone", "unknown time zone \"" + schedule.time_zone_name +
                                              "\" (expected an IANA name such as Europe/Berlin)");
        valid = false;
    }
    const YAML::Node except = reader.get("except");
    if (except.IsDefined() && !except.IsSequence()) {
        reader.error_at_value("except", "must be a list of windows");
        valid = false;
    } else if (except.IsDefined()) {
        for (std::size_t i = 0; i < except.size(); ++i) {
            PolicyWindow window;
            const std::string path = "schedule.except[" + std::to_string(i) + "]";
            window.name = path;
            valid = read_policy_window(except[i], path, errors, window) && valid;
            schedule.except.push_back(std::move(window));
        }
    }
    reader.reject_unknown_keys();
    if (valid) {
        drill.schedule = std::move(schedule);
    }
}

void read_fault(YamlMapReader& parent, YamlErrors& errors, DrillDefinition& drill) {
    YamlMapReader fault(parent.get("fault", true), "fault", errors);
    const YAML::Node action_node = fault.get("action");
    if (action_node.IsDefined()) {
        YamlMapReader action(action_node, "fault.action", errors);
        DrillFaultAction fault_action;
        fault_action.action.provider = action.string("provider", true).value_or("");
        fault_action.action.action = action.string("action", true).value_or("");
        fault_action.action.target = action.string("target", true).value_or("");
        const YAML::Node parameters = action.get("parameters");
        if (parameters.IsDefined()) {
            if (!parameters.IsMap()) {
                action.error_at_value("parameters", "must be a mapping");
            } else {
                fault_action.action.parameters = yaml_to_json(parameters);
            }
        }
        // Required: a fault must end on its own even if the drill's cleanup never runs.
        fault_action.action.ttl = read_duration_required(action, "ttl");
        fault_action.action.reason = action.string("reason").value_or("chaos drill " + drill.name +
                                                                      ": the fault it injects");
        action.reject_unknown_keys();
        drill.fault_action = std::move(fault_action);
    }
    YamlMapReader signal(fault.get("signal", true), "fault.signal", errors);
    drill.signal.alertname = signal.string("alertname", true).value_or("");
    drill.signal.labels = read_labels(signal, "labels", errors);
    drill.signal.annotations = read_labels(signal, "annotations", errors);
    for (const char* reserved : {"alertname", "service", "environment"}) {
        if (drill.signal.labels.contains(reserved)) {
            signal.error_at_key("labels", std::string("labels.") + reserved +
                                              " is set by the drill itself; remove it");
        }
    }
    if (const auto resolve = signal.string("resolve")) {
        if (*resolve == "after_apply" || *resolve == "never") {
            drill.signal.resolve_after_apply = *resolve == "after_apply";
        } else {
            signal.error_at_value("resolve", "must be after_apply or never");
        }
    }
    signal.reject_unknown_keys();
    fault.reject_unknown_keys();
}

void read_expectations(YamlMapReader& parent, YamlErrors& errors, DrillDefinition& drill) {
    YamlMapReader expect(parent.get("expect", true), "expect", errors);
    const YAML::Node proposals = expect.get("proposals", true);
    if (proposals.IsDefined() && (!proposals.IsSequence() || proposals.size() == 0)) {
        expect.error_at_value("proposals", "must be a non-empty list of expected proposals");
    } else if (proposals.IsDefined()) {
        for (std::size_t i = 0; i < proposals.size(); ++i) {
            YamlMapReader proposal(proposals[i], "expect.proposals[" + std::to_string(i) + "]",
                                   errors);
            DrillExpectedProposal expected;
            expected.playbook = proposal.string("playbook").value_or("");
            expected.provider = proposal.string("provider").value_or("");
            expected.action = proposal.string("action").value_or("");
            expected.target = proposal.string("target").value_or("");
            proposal.reject_unknown_keys();
            drill.expected_proposals.push_back(std::move(expected));
        }
    }
    drill.applied_within = read_duration(expect, "applied_within").value_or(drill.applied_within);
    drill.recovered_within =
        read_duration(expect, "recovered_within").value_or(drill.recovered_within);
    expect.reject_unknown_keys();
}

}  // namespace

DrillLoad load_drill_text(std::string_view text, const std::string& source) {
    DrillLoad load;
    YamlErrors errors(source, load.errors);
    const std::optional<YAML::Node> loaded = load_yaml(std::string(text), errors);
    if (!loaded) {
        return load;
    }
    const YAML::Node& root = *loaded;
    YamlMapReader reader(root, "", errors);
    DrillDefinition drill;
    drill.source = source;
    drill.text = std::string(text);
    drill.name = reader.string("name", true).value_or("");
    if (reader.has("name") && !is_drill_name(drill.name)) {
        reader.error_at_value("name", "drill names are lowercase letters, digits, - and _");
    }
    drill.description = reader.string("description").value_or("");
    read_schedule(reader, errors, drill);
    drill.environment = reader.string("environment", true).value_or("");
    drill.service = reader.string("service", true).value_or("");
    read_fault(reader, errors, drill);
    read_expectations(reader, errors, drill);
    YamlMapReader stop(reader.get("stop_when"), "stop_when", errors);
    drill.stop_on_real_alerts = stop.boolean("real_alerts").value_or(true);
    drill.stop_on_freeze = stop.boolean("freeze").value_or(true);
    const YAML::Node budget_node = stop.get("error_budget");
    if (budget_node.IsDefined()) {
        YamlMapReader budget(budget_node, "stop_when.error_budget", errors);
        DrillErrorBudget error_budget;
        error_budget.prometheus_url = budget.string("prometheus", true).value_or("");
        if (!error_budget.prometheus_url.empty() &&
            !error_budget.prometheus_url.starts_with("http://") &&
            !error_budget.prometheus_url.starts_with("https://")) {
            budget.error_at_value("prometheus", "must be an http:// or https:// URL");
        }
        error_budget.query = budget.string("query", true).value_or("");
        const YAML::Node above = budget.get("above", true);
        if (above.IsDefined()) {
            try {
                error_budget.above = above.as<double>();
            } catch (const YAML::Exception&) {
                budget.error_at_value("above", "must be a number");
            }
        }
        budget.reject_unknown_keys();
        drill.error_budget = std::move(error_budget);
    }
    stop.reject_unknown_keys();
    drill.dry_run = reader.boolean("dry_run").value_or(false);
    drill.max_duration = read_duration(reader, "max_duration").value_or(drill.max_duration);
    if (drill.max_duration < drill.applied_within + drill.recovered_within) {
        reader.error_at_value("max_duration",
                              "must leave room for expect.applied_within + recovered_within (" +
                                  format_duration(drill.applied_within + drill.recovered_within) +
                                  ")");
    }
    reader.reject_unknown_keys();
    if (load.errors.empty()) {
        load.drills.push_back(std::move(drill));
    }
    return load;
}

DrillLoad load_drill_directory(const std::filesystem::path& directory) {
    DrillLoad load;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(directory)) {
        if (entry.path().extension() == ".yaml") {
            files.push_back(entry.path());  // not a regular file: an error below, not skipped
        }
    }
    std::sort(files.begin(), files.end());
    std::set<std::string> names;
    for (const auto& file : files) {
        const std::optional<std::string> text = read_operator_file(file, load.errors);
        if (!text) {
            continue;
        }
        DrillLoad one = load_drill_text(*text, file.string());
        load.errors.insert(load.errors.end(), one.errors.begin(), one.errors.end());
        for (auto& drill : one.drills) {
            if (!names.insert(drill.name).second) {
                load.errors.push_back(
                    {file.string(), 0, 0, "name",
                     "a drill named " + drill.name + " is already defined in this directory"});
                continue;
            }
            load.drills.push_back(std::move(drill));
        }
    }
    return load;
}

}  // namespace mitigate
