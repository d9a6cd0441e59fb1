// The schema of policy files, as code: one function per section. Every error carries
// file:line:column and the dotted key (YamlMapReader), and checks that span files
// (duplicate rule names, references to windows, constraints set twice) run once all
// files are read.
#include <fnmatch.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/config/yaml_reader.h"
#include "runtime/core/sha256.h"
#include "runtime/core/time_format.h"
#include "runtime/policy/policy_set.h"

namespace mitigate {
namespace {

namespace fs = std::filesystem;

// A name used before it can be checked: a window referenced by a rule.
struct PendingWindowReference {
    std::string window;
    YAML::Mark mark;
    std::string key;
    std::string file;
};

struct LoadState {
    PolicySet& set;
    std::vector<ConfigError>& errors;
    std::vector<PendingWindowReference> window_references;
    std::map<std::string, std::string> rule_files;          // rule name -> file
    std::map<std::string, std::string> single_constraints;  // "ttl" -> file that set it
};

std::optional<Duration> read_duration(YamlMapReader& reader, std::string_view key, bool required,
                                      bool positive = true) {
    const auto text = reader.string(key, required);
    if (!text) {
        return std::nullopt;
    }
    const auto duration = parse_duration(*text);
    if (!duration || (positive && duration->count() <= 0)) {
        reader.error_at_value(key, "must be a duration longer than zero, such as 30m or 1h30m");
        return std::nullopt;
    }
    return duration;
}

std::optional<double> read_number(YamlMapReader& reader, std::string_view key, double minimum,
                                  double maximum) {
    const YAML::Node value = reader.get(key);
    if (!value.IsDefined()) {
        return std::nullopt;
    }
    double number = 0;
    if (!value.IsScalar() || !YAML::convert<double>::decode(value, number) || number < minimum ||
        number > maximum) {
        reader.error_at_value(key, "must be a number from " + nlohmann::json(minimum).dump() +
                                       " to " + nlohmann::json(maximum).dump());
        return std::nullopt;
    }
    return number;
}

// A list of strings, or one string for a one-element list ("environment: prod").
std::vector<std::string> read_names(YamlMapReader& reader, std::string_view key) {
    const YAML::Node value = reader.get(key);
    if (value.IsDefined() && value.IsScalar()) {
        if (value.Scalar().empty()) {
            reader.error_at_value(key, "must not be empty");
            return {};
        }
        return {value.Scalar()};
    }
    return reader.string_list(key);
}

template <typename Enum>
std::optional<Enum> read_choice(YamlMapReader& reader, std::string_view key, bool required,
                                const std::vector<std::pair<std::string_view, Enum>>& choices) {
    const auto text = reader.string(key, required);
    if (!text) {
        return std::nullopt;
    }
    std::string expected;
    for (const auto& [name, value] : choices) {
        if (name == *text) {
            return value;
        }
        expected += (expected.empty() ? "" : ", ") + std::string(name);
    }
    reader.error_at_value(key, "must be one of " + expected);
    return std::nullopt;
}

void read_match(const YAML::Node& node, const std::string& path, const std::string& file,
                LoadState& state, RuleMatch& match, YamlErrors& errors) {
    YamlMapReader reader(node, path, errors);
    match.providers = PatternList(read_names(reader, "provider"));
    match.actions = PatternList(read_names(reader, "action"));
    match.environments = PatternList(read_names(reader, "environment"));
    match.services = PatternList(read_names(reader, "service"));
    match.targets = PatternList(read_names(reader, "target"));
    match.playbooks = PatternList(read_names(reader, "playbook"));
    {
        YamlMapReader labels(reader.get("labels"), reader.path_of("labels"), errors);
        for (const auto& entry : labels.entries()) {
            if (!entry.value.IsScalar()) {
                labels.error_at_value(entry.key, "label values are strings");
                continue;
            }
            match.labels[entry.key] = entry.value.Scalar();
        }
    }
    match.reversible = reader.boolean("reversible");
    match.max_blast_radius = read_number(reader, "max_blast_radius", 0, 1e6);
    match.max_ttl = read_duration(reader, "max_ttl", false);
    for (const auto& [key, windows] : {std::pair{"within", &match.within_windows},
                                       std::pair{"outside", &match.outside_windows}}) {
        const YAML::Node value = reader.get(key);
        *windows = read_names(reader, key);
        for (const auto& window : *windows) {
            state.window_references.push_back({window, value.Mark(), reader.path_of(key), file});
        }
    }
    reader.reject_unknown_keys();
}

void read_rule(const YAML::Node& node, const std::string& path, const std::string& file,
               LoadState& state, YamlErrors& errors) {
    YamlMapReader reader(node, path, errors);
    PolicyRule rule;
    rule.source = file;
    rule.name = reader.string("name", true).value_or("");
    if (!rule.name.empty()) {
        const auto [existing, inserted] = state.rule_files.emplace(rule.name, file);
        if (!inserted) {
            reader.error_at_value("name", "a rule named \"" + rule.name + "\" already exists in " +
                                              existing->second + "; rule names are unique");
        }
    }
    rule.id = std::filesystem::path(file).filename().string() + "#" + rule.name;
    rule.description = reader.string("description").value_or("");
    read_match(reader.get("match"), reader.path_of("match"), file, state, rule.match, errors);
    const auto effect =
        read_choice<DecisionEffect>(reader, "effect", true,
                                    {{"allow", DecisionEffect::allow},
                                     {"require_approval", DecisionEffect::require_approval},
                                     {"deny", DecisionEffect::deny},
                                     {"dry_run", DecisionEffect::dry_run}});
    rule.effect = effect.value_or(DecisionEffect::deny);
    const YAML::Node approvals = reader.get("approvals");
    if (effect == DecisionEffect::require_approval) {
        if (!approvals.IsDefined()) {
            reader.error_at_key("effect",
                                "require_approval needs an approvals: section (count, groups)");
        }
        YamlMapReader approval(approvals, reader.path_of("approvals"), errors);
        rule.approvals = static_cast<int>(approval.integer("count", 1, 20).value_or(1));
        if (!approval.has("count")) {
            approval.get("count", approvals.IsDefined());
        }
        rule.approver_groups = approval.string_list("groups");
        rule.self_approval = approval.boolean("self_approval").value_or(false);
        rule.approval_timeout = read_duration(approval, "expire_after", false);
        approval.reject_unknown_keys();
    } else if (approvals.IsDefined() && effect) {
        reader.error_at_key("approvals", "only a require_approval rule takes approvals");
    }
    for (const auto& [key, groups] :
         {std::pair{"keep", &rule.keep_groups}, std::pair{"revert", &rule.revert_groups}}) {
        const YAML::Node section = reader.get(key);
        if (!section.IsDefined()) {
            continue;
        }
        if (effect == DecisionEffect::deny || effect == DecisionEffect::dry_run) {
            reader.error_at_key(key, "a deny or dry_run rule applies nothing to keep or revert");
            continue;
        }
        YamlMapReader people(section, reader.path_of(key), errors);
        *groups = people.string_list("groups");
        if ((*groups)->empty()) {
            people.get("groups", true);
            if (people.has("groups")) {
                people.error_at_value("groups", "must name at least one group");
            }
        }
        people.reject_unknown_keys();
    }
    reader.reject_unknown_keys();
    state.set.rules.push_back(std::move(rule));
}

void read_window(const YamlMapReader::Entry& entry, const std::string& path, LoadState& state,
                 YamlErrors& errors) {
    PolicyWindow window;
    const bool valid = read_policy_window(entry.value, path, errors, window);
    window.name = entry.key;
    if (state.set.windows.contains(window.name)) {
        errors.add(entry.key_node.Mark(), path, "a window with this name is already defined");
    } else if (valid) {
        state.set.windows.emplace(window.name, std::move(window));
    }
}

void read_freeze(const YAML::Node& node, const std::string& path, const std::string& file,
                 LoadState& state, YamlErrors& errors) {
    YamlMapReader reader(node, path, errors);
    PolicyFreeze freeze;
    freeze.source = file;
    freeze.name = reader.string("name", true).value_or("");
    std::optional<TimePoint> from;
    std::optional<TimePoint> to;
    for (const auto& [key, target] : {std::pair{"from", &from}, std::pair{"to", &to}}) {
        if (const auto text = reader.string(key, true)) {
            *target = parse_rfc3339(*text);
            if (!*target) {
                reader.error_at_value(key,
                                      "must be an RFC 3339 time with its offset, such as "
                                      "2026-12-20T00:00:00+01:00");
            }
        }
    }
    if (from && to && *to <= *from) {
        reader.error_at_value("to", "ends before it starts");
    }
    freeze.environments = read_names(reader, "environments");
    reader.reject_unknown_keys();
    if (from && to && *to > *from) {
        freeze.from = *from;
        freeze.to = *to;
        state.set.freezes.push_back(std::move(freeze));
    }
}

// Constraints that may be set once per policy set: a second definition is an error that
// names the first, instead of one silently overriding the other.
bool claim_single(LoadState& state, YamlMapReader& reader, const std::string& key,
                  const std::string& file) {
    const auto [existing, inserted] = state.single_constraints.emplace(key, file);
    if (!inserted) {
        reader.error_at_key(key,
                            "already set in " + existing->second + "; set it once per policy set");
    }
    return inserted;
}

void read_constraints(const YAML::Node& node, const std::string& file, LoadState& state,
                      YamlErrors& errors) {
    YamlMapReader reader(node, "constraints", errors);
    const YAML::Node rate_limits = reader.get("rate_limits");
    if (rate_limits.IsDefined()) {
        if (!rate_limits.IsSequence()) {
            reader.error_at_value("rate_limits", "must be a list");
        } else {
            for (std::size_t i = 0; i < rate_limits.size(); ++i) {
                YamlMapReader limit(rate_limits[i],
                                    "constraints.rate_limits[" + std::to_string(i) + "]", errors);
                RateLimit parsed;
                parsed.scope = read_choice<RateScope>(limit, "scope", true,
                                                      {{"target", RateScope::target},
                                                       {"service", RateScope::service},
                                                       {"environment", RateScope::environment},
                                                       {"global", RateScope::global}})
                                   .value_or(RateScope::global);
                const auto max = limit.integer("max", 1, 1'000'000);
                if (!max && !limit.has("max")) {
                    limit.get("max", true);
                }
                parsed.max = static_cast<int>(max.value_or(0));
                const auto per = read_duration(limit, "per", true);
                parsed.per = per.value_or(Duration{0});
                limit.reject_unknown_keys();
                if (max && per) {
                    state.set.rate_limits.push_back(parsed);
                }
            }
        }
    }
    if (reader.has("cooldown") && claim_single(state, reader, "cooldown", file)) {
        YamlMapReader cooldown(reader.get("cooldown"), "constraints.cooldown", errors);
        if (const auto after = read_duration(cooldown, "after", true)) {
            state.set.cooldown = Cooldown{*after};
        }
        cooldown.reject_unknown_keys();
    }
    const YAML::Node caps = reader.get("blast_radius_caps");
    if (caps.IsDefined()) {
        if (!caps.IsSequence()) {
            reader.error_at_value("blast_radius_caps", "must be a list");
        } else {
            for (std::size_t i = 0; i < caps.size(); ++i) {
                const std::string path = "constraints.blast_radius_caps[" + std::to_string(i) + "]";
                YamlMapReader cap(caps[i], path, errors);
                BlastRadiusCap parsed;
                parsed.provider = cap.string("provider").value_or("*");
                parsed.action = cap.string("action").value_or("*");
                parsed.max_ratio = read_number(cap, "max_ratio", 0, 1e6);
                parsed.min_resulting_fraction = read_number(cap, "min_resulting_fraction", 0, 1e6);
                parsed.max_resulting_fraction = read_number(cap, "max_resulting_fraction", 0, 1e6);
                if (!parsed.max_ratio && !parsed.min_resulting_fraction &&
                    !parsed.max_resulting_fraction) {
                    cap.error_at(caps[i], path,
                                 "a cap needs max_ratio, min_resulting_fraction or "
                                 "max_resulting_fraction");
                } else if (parsed.min_resulting_fraction && parsed.max_resulting_fraction &&
                           *parsed.min_resulting_fraction > *parsed.max_resulting_fraction) {
                    cap.error_at_value("min_resulting_fraction",
                                       "is above max_resulting_fraction: nothing could pass");
                } else {
                    state.set.blast_radius_caps.push_back(parsed);
                }
                cap.reject_unknown_keys();
            }
        }
    }
    if (reader.has("ttl") && claim_single(state, reader, "ttl", file)) {
        YamlMapReader ttl(reader.get("ttl"), "constraints.ttl", errors);
        TtlPolicy parsed;
        const auto max = read_duration(ttl, "max", true);
        const std::vector<std::pair<std::string_view, TtlExcess>> choices{
            {"deny", TtlExcess::deny}, {"clamp", TtlExcess::clamp}};
        parsed.when_missing =
            read_choice<TtlExcess>(ttl, "when_missing", false, choices).value_or(TtlExcess::deny);
        parsed.when_longer =
            read_choice<TtlExcess>(ttl, "when_longer", false, choices).value_or(TtlExcess::clamp);
        ttl.reject_unknown_keys();
        if (max) {
            parsed.max = *max;
            state.set.ttl = parsed;
        }
    }
    if (reader.has("circuit_breaker") && claim_single(state, reader, "circuit_breaker", file)) {
        YamlMapReader breaker(reader.get("circuit_breaker"), "constraints.circuit_breaker", errors);
        const auto failures = breaker.integer("failures", 1, 1000);
        if (!breaker.has("failures")) {
            breaker.get("failures", true);
        }
        const auto window = read_duration(breaker, "window", true);
        breaker.reject_unknown_keys();
        if (failures && window) {
            state.set.circuit_breaker = CircuitBreaker{static_cast<int>(*failures), *window};
        }
    }
    reader.reject_unknown_keys();
}

void read_file(const std::string& name, const std::string& text, LoadState& state) {
    YamlErrors errors(name, state.errors);
    const std::optional<YAML::Node> loaded = load_yaml(text, errors);
    if (!loaded) {
        return;
    }
    const YAML::Node& root = *loaded;
    if (!root.IsDefined() || root.IsNull()) {
        return;  // an empty file (or one with only comments) adds nothing
    }
    YamlMapReader reader(root, "", errors);
    // Windows first, so that a rule's reference to a window in the same file resolves.
    {
        YamlMapReader windows(reader.get("windows"), "windows", errors);
        for (const auto& entry : windows.entries()) {
            read_window(entry, windows.path_of(entry.key), state, errors);
        }
    }
    const YAML::Node rules = reader.get("rules");
    if (rules.IsDefined()) {
        if (!rules.IsSequence()) {
            reader.error_at_value("rules", "must be a list of rules");
        } else {
            for (std::size_t i = 0; i < rules.size(); ++i) {
                read_rule(rules[i], "rules[" + std::to_string(i) + "]", name, state, errors);
            }
        }
    }
    const YAML::Node freezes = reader.get("freezes");
    if (freezes.IsDefined()) {
        if (!freezes.IsSequence()) {
            reader.error_at_value("freezes", "must be a list");
        } else {
            for (std::size_t i = 0; i < freezes.size(); ++i) {
                read_freeze(freezes[i], "freezes[" + std::to_string(i) + "]", name, state, errors);
            }
        }
    }
    read_constraints(reader.get("constraints"), name, state, errors);
    reader.reject_unknown_keys();
}

}  // namespace

PatternList::PatternList(std::vector<std::string> patterns) : patterns_(std::move(patterns)) {
    for (const auto& pattern : patterns_) {
        // "*", "prefix*" and exact names are most of what rules say: they are matched by
        // comparison; anything else (?, [...], a * inside) goes to fnmatch.
        const auto special = pattern.find_first_of("*?[");
        if (special == std::string::npos) {
            kinds_.push_back(Kind::exact);
        } else if (special == pattern.size() - 1 && pattern.back() == '*' &&
                   pattern.find('\\') == std::string::npos) {
            kinds_.push_back(Kind::prefix);
        } else {
            kinds_.push_back(Kind::glob);
        }
        joined_ += (joined_.empty() ? "" : ", ") + pattern;
    }
}

bool PatternList::matches(const std::string& value) const {
    if (patterns_.empty()) {
        return true;
    }
    for (std::size_t i = 0; i < patterns_.size(); ++i) {
        const std::string& pattern = patterns_[i];
        switch (kinds_[i]) {
            case Kind::exact:
                if (pattern == value) {
                    return true;
                }
                break;
            case Kind::prefix:
                if (std::string_view(value).starts_with(
                        std::string_view(pattern).substr(0, pattern.size() - 1))) {
                    return true;
                }
                break;
            case Kind::glob:
                if (fnmatch(pattern.c_str(), value.c_str(), 0) == 0) {
                    return true;
                }
                break;
        }
    }
    return false;
}

std::string_view to_string(RateScope scope) {
    switch (scope) {
        case RateScope::target: return "target";
        case RateScope::service: return "service";
        case RateScope::environment: return "environment";
        case RateScope::global: return "global";
    }
    return "global";
}

PolicyLoad load_policy_files(const std::vector<std::pair<std::string, std::string>>& files) {
    PolicyLoad result;
    PolicySet set;
    LoadState state{set, result.errors, {}, {}, {}};
    auto sorted = files;
    std::sort(sorted.begin(), sorted.end());
    Sha256 hash;
    for (const auto& [name, text] : sorted) {
        read_file(name, text, state);
        set.files.push_back(name);
        // Length-prefixed, so that moving bytes between a name and a text changes the hash.
        // By file name only: the same policies hash the same wherever they are installed.
        const std::string base = fs::path(name).filename().string();
        hash.update(std::to_string(base.size())).update(":").update(base);
        hash.update(std::to_string(text.size())).update(":").update(text);
    }
    for (const auto& reference : state.window_references) {
        if (!set.windows.contains(reference.window)) {
            YamlErrors errors(reference.file, result.errors);
            errors.add(reference.mark, reference.key,
                       "no window named \"" + reference.window + "\" is defined in the policy set");
        }
    }
    set.hash = hash.hex_digest();
    if (result.errors.empty()) {
        result.policy_set = std::move(set);
    }
    return result;
}

bool read_policy_window(const YAML::Node& node, const std::string& path, YamlErrors& errors,
                        PolicyWindow& window) {
    YamlMapReader reader(node, path, errors);
    bool valid = true;
    if (const auto schedule_text = reader.string("schedule", true)) {
        std::string problem;
        if (auto schedule = CronSchedule::parse(*schedule_text, problem)) {
            if (!schedule->can_ever_match()) {
                reader.error_at_value(
                    "schedule", "\"" + *schedule_text + "\" never fires (no month has that day)");
                valid = false;
            }
            window.schedule = std::move(*schedule);
        } else {
            reader.error_at_value("schedule", problem);
            valid = false;
        }
    } else {
        valid = false;
    }
    const auto duration = read_duration(reader, "duration", true);
    if (duration && *duration > Duration{std::chrono::hours{24 * 366}}) {
        reader.error_at_value("duration", "must be at most a year");
        valid = false;
    }
    valid = valid && duration.has_value();
    window.duration = duration.value_or(Duration{0});
    window.time_zone_name = reader.string("timezone").value_or("UTC");
    if (!cctz::load_time_zone(window.time_zone_name, &window.time_zone)) {
        reader.error_at_value("timezone", "unknown time zone \"" + window.time_zone_name +
                                              "\" (expected an IANA name such as Europe/Berlin)");
        valid = false;
    }
    reader.reject_unknown_keys();
    return valid;
}

PolicyLoad load_policy_directory(const fs::path& directory) {
    std::error_code error;
    if (!fs::is_directory(directory, error)) {
        PolicyLoad result;
        result.errors.push_back({directory.string(), 0, 0, "", "not a directory"});
        return result;
    }
    std::vector<std::pair<std::string, std::string>> files;
    std::vector<ConfigError> unreadable;
    for (const auto& entry : fs::directory_iterator(directory, error)) {
        const auto extension = entry.path().extension();
        if (extension != ".yaml" && extension != ".yml") {
            continue;
        }
        // A policy file that cannot be read is an error, never a rule silently missing.
        if (auto text = read_operator_file(entry.path(), unreadable)) {
            files.emplace_back(entry.path().string(), std::move(*text));
        }
    }
    if (error) {
        unreadable.push_back(
            {directory.string(), 0, 0, "", "cannot be listed: " + error.message()});
    }
    PolicyLoad result = load_policy_files(files);
    if (!unreadable.empty()) {
        result.errors.insert(result.errors.begin(), unreadable.begin(), unreadable.end());
        result.policy_set.reset();
    }
    return result;
}

}  // namespace mitigate
