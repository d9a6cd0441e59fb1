// A policy set: every policies/*.yaml file of a directory, loaded together and validated
// as one. What each key means is in docs/policies.md; policy_engine.h evaluates a set.
//
// Semantics in one paragraph: default deny. A rule matches when every condition it states
// holds. Among matching rules the strictest effect wins (deny > dry_run >
// require_approval > allow), so the order of rules and files never matters. Freezes and
// constraints hold whatever the rules say: any one that fails denies.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <cctz/time_zone.h>

#include "runtime/config/config.h"
#include "runtime/core/clock.h"
#include "runtime/core/model.h"
#include "runtime/policy/cron_schedule.h"

namespace YAML {
class Node;
}

namespace mitigate {

class YamlErrors;

// A recurring window: starts whenever `schedule` matches (local time in `time_zone`) and
// lasts `duration`. "0 9 * * mon-fri" + 8h + Europe/Berlin = weekdays 09:00-17:00 Berlin.
struct PolicyWindow {
    std::string name;
    CronSchedule schedule;
    Duration duration{0};
    std::string time_zone_name;  // IANA name; "UTC" by default
    cctz::time_zone time_zone;   // loaded from the system's tzdata
};

// An absolute period during which nothing is approved (for the listed environments).
struct PolicyFreeze {
    std::string name;
    TimePoint from;
    TimePoint to;
    std::vector<std::string> environments;  // empty: every environment
    std::string source;                     // "file.yaml" for explanations
};

// Names a rule condition accepts: exact names or shell globs (* ? [...]); any one may
// match, and an empty list matches everything. Exact names and "prefix*" skip fnmatch,
// which was most of the cost of evaluating a large policy set.
class PatternList {
  public:
    PatternList() = default;
    explicit PatternList(std::vector<std::string> patterns);
    bool matches(const std::string& value) const;
    bool empty() const { return patterns_.empty(); }
    const std::vector<std::string>& patterns() const { return patterns_; }
    const std::string& joined() const { return joined_; }  // "prod, stage", for explanations

  private:
    enum class Kind : std::uint8_t { exact, prefix, glob };
    std::vector<std::string> patterns_;
    std::vector<Kind> kinds_;
    std::string joined_;
};

// What a rule looks at. An absent condition matches everything.
struct RuleMatch {
    PatternList providers;
    PatternList actions;
    PatternList environments;
    PatternList services;
    PatternList targets;
    PatternList playbooks;
    std::map<std::string, std::string> labels;  // every one must be present and equal
    std::optional<bool> reversible;             // needs a plan to match
    std::optional<double> max_blast_radius;     // plan's blast_radius.ratio <= this
    std::optional<Duration> max_ttl;            // ttl present and <= this
    std::vector<std::string> within_windows;    // every named window is active now
    std::vector<std::string> outside_windows;   // no named window is active now
};

struct PolicyRule {
    std::string name;
    std::string source;  // "file.yaml" for explanations
    std::string id;      // "file.yaml#name", as decisions name it
    std::string description;
    RuleMatch match;
    DecisionEffect effect = DecisionEffect::deny;
    int approvals = 0;
    std::vector<std::string> approver_groups;
    bool self_approval = false;
    std::optional<Duration> approval_timeout;
    // Who may keep (make permanent) or revert by hand what this rule let through: a person
    // in one of these groups. Unset: keep needs the approver groups (anyone, for a rule
    // without them); revert is anyone's with the operator role, undoing being the safe way.
    std::optional<std::vector<std::string>> keep_groups;
    std::optional<std::vector<std::string>> revert_groups;
};

enum class RateScope { target, service, environment, global };

struct RateLimit {
    RateScope scope = RateScope::global;
    int max = 0;
    Duration per{0};
};

// Cooldown: after a mitigation on a target starts, no other starts on it for `after`.
struct Cooldown {
    Duration after{0};
};

// Caps on one provider action's plan, whatever any rule allows.
struct BlastRadiusCap {
    std::string provider;  // globs
    std::string action;
    std::optional<double> max_ratio;               // share affected
    std::optional<double> min_resulting_fraction;  // e.g. never scale below 0.5 of now
    std::optional<double> max_resulting_fraction;  // e.g. never above 3.0 of now
};

enum class TtlExcess { deny, clamp };

struct TtlPolicy {
    Duration max{0};
    TtlExcess when_missing = TtlExcess::deny;  // clamp: run with `max`
    TtlExcess when_longer = TtlExcess::clamp;
};

struct CircuitBreaker {
    int failures = 0;    // failed applies, verifications or reverts...
    Duration window{0};  // ...within this window stop automation until a human resets it
};

struct PolicySet {
    std::vector<PolicyRule> rules;
    std::map<std::string, PolicyWindow> windows;
    std::vector<PolicyFreeze> freezes;
    std::vector<RateLimit> rate_limits;
    std::optional<Cooldown> cooldown;
    std::vector<BlastRadiusCap> blast_radius_caps;
    std::optional<TtlPolicy> ttl;
    std::optional<CircuitBreaker> circuit_breaker;
    std::vector<std::string> files;  // loaded, in order
    std::string hash;                // SHA-256 over file names and contents
};

struct PolicyLoad {
    std::optional<PolicySet> policy_set;
    std::vector<ConfigError> errors;  // file:line:column, key, message
};

// Loads every *.yaml and *.yml directly in `directory` (not subdirectories: fixtures live
// in tests/). An empty directory is a valid set that denies everything.
PolicyLoad load_policy_directory(const std::filesystem::path& directory);

// Reads one window, {schedule, duration, timezone}, at `node`: a policy's named windows and
// a drill's exclusions. False, with every problem recorded, when it is not valid.
bool read_policy_window(const YAML::Node& node, const std::string& path, YamlErrors& errors,
                        PolicyWindow& window);

// Loads one set from in-memory files {name, text}; for tests and tools.
PolicyLoad load_policy_files(const std::vector<std::pair<std::string, std::string>>& files);

// The default policy set shipped in policies/*.yaml, compiled in: {file name, text}.
std::vector<std::pair<std::string, std::string>> embedded_default_policies();

std::string_view to_string(RateScope scope);

}  // namespace mitigate
