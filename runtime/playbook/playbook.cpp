#include "runtime/playbook/playbook.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/core/ids.h"
#include "runtime/core/json_reader.h"
#include "runtime/core/text_file.h"
#include "runtime/core/time_format.h"

namespace mitigate {
namespace {

using nlohmann::json;

bool contains(const std::vector<std::string>& names, const std::string& name) {
    return names.empty() || std::find(names.begin(), names.end(), name) != names.end();
}

bool is_playbook_name(const std::string& name) {
    return !name.empty() && name.size() <= 64 && name[0] >= 'a' && name[0] <= 'z' &&
           std::all_of(name.begin(), name.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
           });
}

}  // namespace

Incident incident_from_signals(const std::vector<Signal>& signals, TimePoint now) {
    Incident incident;
    incident.id = new_id("inc", now);
    incident.opened_at = now;
    if (signals.empty()) {
        return incident;
    }
    const Signal& first = signals.front();
    incident.group_key = first.fingerprint;
    incident.labels = first.labels;
    incident.title =
        first.annotations.contains("summary") ? first.annotations.at("summary") : first.name;
    const auto label = [&](std::initializer_list<const char*> names) {
        for (const char* name : names) {
            if (first.labels.contains(name)) {
                return first.labels.at(name);
            }
        }
        return std::string();
    };
    incident.service = label({"service", "app", "job"});
    incident.environment = label({"environment", "env"});
    const bool all_resolved = std::all_of(signals.begin(), signals.end(), [](const Signal& s) {
        return s.status == SignalStatus::resolved;
    });
    incident.status = all_resolved ? IncidentStatus::resolved : IncidentStatus::open;
    std::set<std::string> fingerprints;
    for (const auto& signal : signals) {
        fingerprints.insert(signal.fingerprint);
        incident.drill = incident.drill || signal.source == SignalSource::drill;
        incident.dry_run = incident.dry_run || signal.dry_run;
    }
    incident.counters.signals = static_cast<std::int64_t>(signals.size());
    incident.counters.alerts = static_cast<std::int64_t>(fingerprints.size());
    incident.counters.firing = all_resolved ? 0 : incident.counters.alerts;
    return incident;
}

json playbook_incident(const Incident& incident, const std::vector<Signal>& signals) {
    json alerts = json::array();
    for (const auto& signal : signals) {
        alerts.push_back({{"name", signal.name},
                          {"status", to_string(signal.status)},
                          {"labels", signal.labels},
                          {"annotations", signal.annotations},
                          {"starts_at", format_rfc3339(signal.starts_at)},
                          {"fingerprint", signal.fingerprint}});
    }
    return {{"id", incident.id},
            {"title", incident.title},
            {"status", to_string(incident.status)},
            {"name", signals.empty() ? "" : signals.front().name},
            {"service", incident.service},
            {"environment", incident.environment},
            {"labels", incident.labels},
            {"annotations", signals.empty() ? json::object() : json(signals.front().annotations)},
            {"alerts", alerts},
            {"drill", incident.drill}};
}

bool playbook_matches(const PlaybookInfo& info, const Incident& incident,
                      const std::vector<Signal>& signals) {
    const bool alert_matches =
        info.matches.alerts.empty() ||
        std::any_of(signals.begin(), signals.end(), [&](const Signal& signal) {
            return signal.status == SignalStatus::firing &&
                   contains(info.matches.alerts, signal.name);
        });
    const bool labels_match =
        std::all_of(info.matches.labels.begin(), info.matches.labels.end(), [&](const auto& label) {
            const auto found = incident.labels.find(label.first);
            return found != incident.labels.end() && found->second == label.second;
        });
    return alert_matches && labels_match && contains(info.matches.services, incident.service) &&
           contains(info.matches.environments, incident.environment);
}

Parsed<PlaybookInfo> parse_playbook_info(const json& module) {
    Parsed<PlaybookInfo> result;
    const std::string name =
        module.is_object() && module.contains("name") && module["name"].is_string()
            ? module["name"].get<std::string>()
            : "playbook";
    JsonObjectReader reader(module, name, result.errors);
    PlaybookInfo info;
    info.name = reader.string("name");
    if (!info.name.empty() && !is_playbook_name(info.name)) {
        reader.add_error("name",
                         "must be lowercase letters, digits, - and _ (it names the "
                         "playbook in policies, audit records and metrics)");
    }
    info.description = reader.string("description", Presence::optional);
    info.priority = static_cast<int>(reader.integer("priority", 0, 1000, 0));
    info.cooldown = reader.duration("cooldown", Presence::optional);
    if (const json* matches = reader.member("matches", Presence::optional)) {
        // An empty Lua table arrives as {}: an empty list where a list is expected is fine.
        JsonObjectReader match(*matches, reader.path_of("matches"), result.errors);
        const auto list = [&](const char* key) {
            const json* raw = match.member(key, Presence::optional);
            if (raw != nullptr && raw->is_object() && raw->empty()) {
                return std::vector<std::string>{};
            }
            return match.string_list(key);
        };
        info.matches.alerts = list("alerts");
        info.matches.services = list("services");
        info.matches.environments = list("environments");
        info.matches.labels = match.string_map("labels");
        match.reject_unknown_fields();
    }
    reader.reject_unknown_fields();
    if (result.errors.empty()) {
        result.value = std::move(info);
    }
    return result;
}

Parsed<std::vector<Action>> parse_playbook_proposals(const json& result_json,
                                                     const std::string& playbook_name) {
    Parsed<std::vector<Action>> result;
    std::vector<Action> actions;
    if (result_json.is_null() || (result_json.is_object() && result_json.empty())) {
        result.value = std::move(actions);  // nil or {}: nothing to propose
        return result;
    }
    if (!result_json.is_array()) {
        result.errors.push_back({playbook_name + ".proposals",
                                 "propose must return a list of proposals (or an empty table)"});
        return result;
    }
    for (std::size_t i = 0; i < result_json.size(); ++i) {
        // `parameters = {}` in Lua is an empty table, which reads as {} already; a list of
        // parameters is an author's mistake and is reported by parse_action.
        auto parsed =
            parse_action(result_json[i], playbook_name + ".proposals[" + std::to_string(i) + "]");
        result.errors.insert(result.errors.end(), parsed.errors.begin(), parsed.errors.end());
        if (parsed) {
            actions.push_back(std::move(*parsed.value));
        }
    }
    if (result.errors.empty()) {
        result.value = std::move(actions);
    }
    return result;
}

std::vector<std::pair<std::string, std::string>> read_lua_files(
    const std::filesystem::path& directory) {
    std::vector<std::pair<std::string, std::string>> files;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
        if (entry.path().extension() != ".lua") {
            continue;
        }
        // A .lua entry that cannot be read as a playbook (a FIFO, a directory, unreadable,
        // over 4 MiB, not UTF-8) is an error naming it: skipped silently, a playbook
        // someone relies on would just never run.
        TextFileError problem;
        auto text = read_text_file(entry.path(), text_file_max_bytes, problem);
        if (!text) {
            throw std::runtime_error(describe_text_file_error(entry.path(), problem));
        }
        files.emplace_back(entry.path().string(), std::move(*text));
    }
    std::sort(files.begin(), files.end());
    return files;
}

std::vector<std::pair<std::string, std::string>> load_playbook_libraries(
    const std::filesystem::path& directory) {
    auto libraries = read_lua_files(directory);
    for (auto& [name, source] : libraries) {
        name = std::filesystem::path(name).stem().string();
    }
    return libraries;
}

namespace {

// Runs `call` through the environment's evaluator; on failure records the typed error in
// `outcome` and returns nullopt, else the sandbox's value ({"module", "result"}).
std::optional<json> evaluate_into(PlaybookOutcome& outcome, LuaCall call,
                                  const PlaybookEnvironment& environment) {
    call.libraries = environment.libraries;
    LuaOutcome evaluated = environment.evaluate(call, environment.limits);
    outcome.log = std::move(evaluated.log);
    if (evaluated.failure) {
        outcome.failure = std::string(to_string(*evaluated.failure));
        outcome.message = std::move(evaluated.message);
        return std::nullopt;
    }
    return std::move(evaluated.value);
}

}  // namespace

PlaybookOutcome load_playbook(const std::string& file, const std::string& source,
                              const PlaybookEnvironment& environment) {
    PlaybookOutcome outcome;
    LuaCall call;
    call.source = source;
    call.chunk_name = file;
    call.function = "";  // metadata only
    const auto loaded = evaluate_into(outcome, std::move(call), environment);
    if (!loaded) {
        return outcome;
    }
    auto info = parse_playbook_info((*loaded)["module"]);
    if (!info) {
        outcome.failure = "invalid";
        outcome.message = file + ": " + describe(info.errors);
        return outcome;
    }
    outcome.info = std::move(*info.value);
    return outcome;
}

PlaybookOutcome run_playbook(const std::string& file, const std::string& source,
                             const Incident& incident, const std::vector<Signal>& signals,
                             TimePoint now, const LuaHostApi& host,
                             const PlaybookEnvironment& environment) {
    PlaybookOutcome loaded = load_playbook(file, source, environment);
    if (loaded.failure) {
        return loaded;
    }
    return run_loaded_playbook(*loaded.info, file, source, incident, signals, now, host,
                               environment);
}

PlaybookOutcome run_loaded_playbook(const PlaybookInfo& info, const std::string& file,
                                    const std::string& source, const Incident& incident,
                                    const std::vector<Signal>& signals, TimePoint now,
                                    const LuaHostApi& host,
                                    const PlaybookEnvironment& environment) {
    PlaybookOutcome outcome;
    outcome.info = info;
    outcome.matched = playbook_matches(*outcome.info, incident, signals);
    if (!outcome.matched) {
        return outcome;
    }
    LuaCall call;
    call.source = source;
    call.chunk_name = file;
    call.function = "propose";
    call.argument = playbook_incident(incident, signals);
    call.now = now;
    call.host = host;
    const auto ran = evaluate_into(outcome, std::move(call), environment);
    if (!ran) {
        return outcome;
    }
    auto proposals = parse_playbook_proposals((*ran)["result"], outcome.info->name);
    if (!proposals) {
        outcome.failure = "invalid";
        outcome.message = file + ": " + describe(proposals.errors);
        return outcome;
    }
    outcome.proposals = std::move(*proposals.value);
    return outcome;
}

}  // namespace mitigate
