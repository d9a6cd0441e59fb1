#include "runtime/policy/policy_engine.h"

#include <fnmatch.h>

#include <algorithm>
#include <set>

#include "runtime/core/json_reader.h"
#include "runtime/core/time_format.h"

namespace mitigate {
namespace {

using nlohmann::json;

// Higher is stricter; the strictest effect among matching rules wins.
int strictness(DecisionEffect effect) {
    switch (effect) {
        case DecisionEffect::allow: return 1;
        case DecisionEffect::require_approval: return 2;
        case DecisionEffect::dry_run: return 3;
        case DecisionEffect::deny: return 4;
    }
    return 4;
}

bool glob_matches(const std::string& pattern, const std::string& text) {
    return fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

std::string join(const std::vector<std::string>& items) {
    std::string text;
    for (const auto& item : items) {
        text += (text.empty() ? "" : ", ") + item;
    }
    return text;
}

// Windows are looked up once per evaluation, however many rules name them.
class WindowCache {
  public:
    WindowCache(const PolicySet& policies, TimePoint now) : policies_(policies), now_(now) {}
    bool active(const std::string& name) {
        for (const auto& [known, is_active] : cache_) {
            if (*known == name) {
                return is_active;
            }
        }
        const auto window = policies_.windows.find(name);
        const bool is_active =
            window != policies_.windows.end() && is_window_active(window->second, now_);
        cache_.emplace_back(&name, is_active);
        return is_active;
    }

  private:
    const PolicySet& policies_;
    TimePoint now_;
    std::vector<std::pair<const std::string*, bool>> cache_;  // a set names a few windows
};

// Whether the rule matches. Only when `why` is given is the reason it does not built:
// the decision itself needs none, and strings for every unmatched rule were most of what a
// decision cost.
bool rule_matches(const RuleMatch& match, const PolicyInput& input, WindowCache& windows,
                  std::string* why) {
    const auto refuse = [why](auto&& build) {
        if (why != nullptr) {
            *why = build();
        }
        return false;
    };
    struct ListCondition {
        const char* what;
        const PatternList* patterns;
        const std::string* value;
    };
    const ListCondition lists[] = {
        {"provider", &match.providers, &input.action.provider},
        {"action", &match.actions, &input.action.action},
        {"environment", &match.environments, &input.environment},
        {"service", &match.services, &input.service},
        {"target", &match.targets, &input.action.target},
        {"playbook", &match.playbooks, &input.playbook},
    };
    for (const auto& condition : lists) {
        if (!condition.patterns->matches(*condition.value)) {
            return refuse([&] {
                return std::string(condition.what) + " \"" + *condition.value +
                       "\" is not one of " + condition.patterns->joined();
            });
        }
    }
    for (const auto& [name, value] : match.labels) {
        const auto found = input.labels.find(name);
        if (found == input.labels.end() || found->second != value) {
            return refuse([&] { return "label " + name + " is not \"" + value + "\""; });
        }
    }
    if (match.reversible) {
        if (!input.plan) {
            return refuse([] { return std::string("reversibility is unknown without a plan"); });
        }
        if (input.plan->reversible != *match.reversible) {
            return refuse([&] {
                return std::string("the plan is ") + (input.plan->reversible ? "" : "not ") +
                       "reversible";
            });
        }
    }
    if (match.max_blast_radius) {
        if (!input.plan) {
            return refuse([] { return std::string("blast radius is unknown without a plan"); });
        }
        if (input.plan->blast_radius.ratio > *match.max_blast_radius) {
            return refuse([&] {
                return "blast radius " + json(input.plan->blast_radius.ratio).dump() +
                       " is above " + json(*match.max_blast_radius).dump();
            });
        }
    }
    if (match.max_ttl) {
        if (!input.action.ttl) {
            return refuse([] { return std::string("the action has no TTL"); });
        }
        if (*input.action.ttl > *match.max_ttl) {
            return refuse([&] {
                return "TTL " + format_duration(*input.action.ttl) + " is longer than " +
                       format_duration(*match.max_ttl);
            });
        }
    }
    for (const auto& window : match.within_windows) {
        if (!windows.active(window)) {
            return refuse([&] { return "outside window " + window; });
        }
    }
    for (const auto& window : match.outside_windows) {
        if (windows.active(window)) {
            return refuse([&] { return "inside window " + window; });
        }
    }
    return true;
}

bool in_scope(RateScope scope, const PastMitigation& past, const PolicyInput& input) {
    switch (scope) {
        case RateScope::target:
            return past.provider == input.action.provider && past.target == input.action.target;
        case RateScope::service: return past.service == input.service;
        case RateScope::environment: return past.environment == input.environment;
        case RateScope::global: return true;
    }
    return true;
}

void check_constraints(const PolicySet& policies, const PolicyInput& input,
                       const PolicyHistory& history, TimePoint now, Decision& decision) {
    auto record = [&](std::string constraint, bool passed, std::string detail) {
        decision.constraints.push_back({std::move(constraint), passed, std::move(detail)});
    };
    for (const auto& freeze : policies.freezes) {
        const bool applies = freeze.environments.empty() ||
                             std::find(freeze.environments.begin(), freeze.environments.end(),
                                       input.environment) != freeze.environments.end();
        if (!applies) {
            continue;
        }
        const bool frozen = now >= freeze.from && now < freeze.to;
        record("freeze:" + freeze.name, !frozen,
               (frozen ? "frozen from " : "not frozen now; freeze runs ") +
                   format_rfc3339(freeze.from) + " to " + format_rfc3339(freeze.to));
    }
    decision.ttl = input.action.ttl;
    if (policies.ttl) {
        const TtlPolicy& ttl = *policies.ttl;
        const std::string max = format_duration(ttl.max);
        if (!input.action.ttl) {
            const bool clamp = ttl.when_missing == TtlExcess::clamp;
            record("ttl", clamp,
                   clamp ? "no TTL given: runs with the maximum, " + max
                         : "no TTL given, and every mitigation needs one (at most " + max + ")");
            decision.ttl = clamp ? std::optional(ttl.max) : std::nullopt;
        } else if (*input.action.ttl > ttl.max) {
            const bool clamp = ttl.when_longer == TtlExcess::clamp;
            record("ttl", clamp,
                   format_duration(*input.action.ttl) + " is longer than the maximum " + max +
                       (clamp ? ": clamped to " + max : ""));
            decision.ttl = clamp ? std::optional(ttl.max) : input.action.ttl;
        } else {
            record("ttl", true, format_duration(*input.action.ttl) + " is within " + max);
        }
    }
    for (const auto& limit : policies.rate_limits) {
        const auto since = now - limit.per;
        const auto count = std::count_if(history.mitigations.begin(), history.mitigations.end(),
                                         [&](const PastMitigation& past) {
                                             return past.started_at > since &&
                                                    past.started_at <= now &&
                                                    in_scope(limit.scope, past, input);
                                         });
        record("rate_limit[" + std::string(to_string(limit.scope)) + "]", count < limit.max,
               std::to_string(count) + " in the last " + format_duration(limit.per) + ", at most " +
                   std::to_string(limit.max));
    }
    if (policies.cooldown) {
        std::optional<TimePoint> latest;
        for (const auto& past : history.mitigations) {
            if (in_scope(RateScope::target, past, input) && past.started_at <= now &&
                (!latest || past.started_at > *latest)) {
                latest = past.started_at;
            }
        }
        const bool cooling = latest && now - *latest < policies.cooldown->after;
        record("cooldown", !cooling,
               cooling
                   ? "the last mitigation on this target started at " + format_rfc3339(*latest) +
                         "; next allowed at " + format_rfc3339(*latest + policies.cooldown->after)
                   : "no mitigation on this target in the last " +
                         format_duration(policies.cooldown->after));
    }
    for (const auto& cap : policies.blast_radius_caps) {
        if (!glob_matches(cap.provider, input.action.provider) ||
            !glob_matches(cap.action, input.action.action)) {
            continue;
        }
        const std::string name = "blast_radius_cap[" + cap.provider + " " + cap.action + "]";
        if (!input.plan) {
            record(name, false, "no plan: the blast radius cannot be checked");
            continue;
        }
        const BlastRadius& radius = input.plan->blast_radius;
        std::string problem;
        if (cap.max_ratio && radius.ratio > *cap.max_ratio) {
            problem = "affects " + json(radius.ratio).dump() + ", above the cap " +
                      json(*cap.max_ratio).dump();
        } else if (cap.min_resulting_fraction || cap.max_resulting_fraction) {
            if (!radius.resulting_fraction) {
                problem = "the plan does not state the resulting fraction";
            } else if (cap.min_resulting_fraction &&
                       *radius.resulting_fraction < *cap.min_resulting_fraction) {
                problem = "would leave " + json(*radius.resulting_fraction).dump() +
                          " of the current value, below " +
                          json(*cap.min_resulting_fraction).dump();
            } else if (cap.max_resulting_fraction &&
                       *radius.resulting_fraction > *cap.max_resulting_fraction) {
                problem = "would make " + json(*radius.resulting_fraction).dump() +
                          " of the current value, above " +
                          json(*cap.max_resulting_fraction).dump();
            }
        }
        record(name, problem.empty(), problem.empty() ? "within the cap" : problem);
    }
    if (policies.circuit_breaker) {
        const CircuitBreaker& breaker = *policies.circuit_breaker;
        auto since = now - breaker.window;
        if (history.circuit_breaker_reset_at && *history.circuit_breaker_reset_at > since) {
            since = *history.circuit_breaker_reset_at;
        }
        const auto failures = std::count_if(history.mitigations.begin(), history.mitigations.end(),
                                            [&](const PastMitigation& past) {
                                                return past.verification_failed_at &&
                                                       *past.verification_failed_at > since &&
                                                       *past.verification_failed_at <= now;
                                            });
        const bool open = failures >= breaker.failures;
        record("circuit_breaker", !open,
               std::to_string(failures) + " failure" + (failures == 1 ? "" : "s") +
                   " (failed apply, verification or revert) since " + format_rfc3339(since) +
                   ", trips at " + std::to_string(breaker.failures) +
                   (open ? ": automation is stopped until a human resets the breaker" : ""));
    }
}

}  // namespace

std::optional<TimePoint> next_schedule_time(const CronSchedule& schedule,
                                            const cctz::time_zone& zone, TimePoint after,
                                            TimePoint until) {
    using std::chrono::minutes;
    TimePoint candidate = std::chrono::floor<minutes>(after) + minutes(1);
    for (; candidate <= until; candidate += minutes(1)) {
        const auto instant = std::chrono::time_point_cast<std::chrono::seconds>(
            std::chrono::system_clock::time_point(candidate.time_since_epoch()));
        const cctz::civil_minute local(cctz::convert(instant, zone));
        CivilMinute civil{static_cast<int>(local.year()),
                          local.month(),
                          local.day(),
                          local.hour(),
                          local.minute(),
                          0};
        if (!schedule.matches_time_of_day(civil.hour, civil.minute)) {
            continue;
        }
        civil.weekday = (static_cast<int>(cctz::get_weekday(cctz::civil_day(local))) + 1) % 7;
        if (schedule.matches(civil)) {
            return candidate;
        }
    }
    return std::nullopt;
}

std::optional<std::string> active_freeze(const PolicySet& policies, const std::string& environment,
                                         TimePoint now) {
    for (const PolicyFreeze& freeze : policies.freezes) {
        const bool covers = freeze.environments.empty() ||
                            std::find(freeze.environments.begin(), freeze.environments.end(),
                                      environment) != freeze.environments.end();
        if (covers && freeze.from <= now && now < freeze.to) {
            return freeze.name;
        }
    }
    return std::nullopt;
}

bool is_window_active(const PolicyWindow& window, TimePoint now) {
    const auto now_system = std::chrono::time_point_cast<std::chrono::seconds>(
        std::chrono::system_clock::time_point(now.time_since_epoch()));
    const cctz::civil_minute local(cctz::convert(now_system, window.time_zone));
    // Walk back over every local minute the window could have started in. Only a minute
    // the schedule matches is converted back to an absolute time, which is what makes
    // DST transitions come out right: a window is measured in real elapsed time.
    const auto minutes = std::chrono::ceil<std::chrono::minutes>(window.duration).count();
    for (std::int64_t back = 0; back <= minutes; ++back) {
        const cctz::civil_minute here = local - back;
        const int minute = window.schedule.matches_hour(here.hour())
                               ? window.schedule.latest_minute_at_most(here.minute())
                               : -1;
        if (minute < 0) {
            back += here.minute();  // on to the last minute of the hour before
            continue;
        }
        back += here.minute() - minute;  // the latest minute here the schedule allows
        if (back > minutes) {
            break;
        }
        const cctz::civil_minute candidate = local - back;
        CivilMinute civil{static_cast<int>(candidate.year()),
                          candidate.month(),
                          candidate.day(),
                          candidate.hour(),
                          candidate.minute(),
                          0};
        // Weekday only when the cheaper fields already match.
        if (!window.schedule.matches_time_of_day(civil.hour, civil.minute)) {
            continue;
        }
        civil.weekday = (static_cast<int>(cctz::get_weekday(cctz::civil_day(candidate))) + 1) % 7;
        if (!window.schedule.matches(civil)) {
            continue;
        }
        const auto start = cctz::convert(cctz::civil_second(candidate), window.time_zone);
        const auto start_point =
            TimePoint{std::chrono::duration_cast<Duration>(start.time_since_epoch())};
        if (start_point <= now && now < start_point + window.duration) {
            return true;
        }
    }
    return false;
}

Decision evaluate_policy(const PolicySet& policies, const PolicyInput& input,
                         const PolicyHistory& history, TimePoint now,
                         PolicyExplanation explanation) {
    Decision decision;
    decision.decided_at = now;
    decision.policy_hash = policies.hash;
    decision.constraints.reserve(8);
    WindowCache windows(policies, now);
    std::vector<const PolicyRule*> matched;
    const bool every_rule = explanation == PolicyExplanation::every_rule;
    std::string why_not;
    for (const PolicyRule& rule : policies.rules) {
        const bool matches =
            rule_matches(rule.match, input, windows, every_rule ? &why_not : nullptr);
        if (matches) {
            matched.push_back(&rule);
            decision.rules.push_back(
                {rule.id, true, "matched: effect " + std::string(to_string(rule.effect))});
        } else if (every_rule) {
            decision.rules.push_back({rule.id, false, std::move(why_not)});
        }
    }
    check_constraints(policies, input, history, now, decision);

    int strictest = 0;
    for (const PolicyRule* rule : matched) {
        strictest = std::max(strictest, strictness(rule->effect));
    }
    std::vector<std::string> failed;
    for (const auto& constraint : decision.constraints) {
        if (!constraint.passed) {
            failed.push_back(constraint.constraint);
        }
    }
    if (matched.empty()) {
        decision.effect = DecisionEffect::deny;
        decision.summary = "denied: no rule matched (default deny)";
    } else if (!failed.empty()) {
        decision.effect = DecisionEffect::deny;
    } else {
        const PolicyRule* winner = *std::find_if(matched.begin(), matched.end(), [&](auto* rule) {
            return strictness(rule->effect) == strictest;
        });
        decision.effect = winner->effect;
    }
    if (!failed.empty()) {
        decision.summary = "denied by constraint" + std::string(failed.size() == 1 ? " " : "s ") +
                           join(failed) + (matched.empty() ? "; and no rule matched" : "");
        decision.effect = DecisionEffect::deny;
    }
    if (decision.effect == DecisionEffect::require_approval) {
        // Strictest wins: the most approvals any matching rule asks for. Rules asking for that
        // many contribute their groups (an approver must be in one of them); self-approval
        // only if every such rule allows it; the shortest expiry.
        int count = 0;
        for (const PolicyRule* rule : matched) {
            if (rule->effect == DecisionEffect::require_approval) {
                count = std::max(count, rule->approvals);
            }
        }
        std::set<std::string> groups;
        bool self_approval = true;
        std::vector<std::string> names;
        for (const PolicyRule* rule : matched) {
            if (rule->effect != DecisionEffect::require_approval || rule->approvals != count) {
                continue;
            }
            groups.insert(rule->approver_groups.begin(), rule->approver_groups.end());
            self_approval = self_approval && rule->self_approval;
            if (rule->approval_timeout && (!decision.approval_timeout ||
                                           *rule->approval_timeout < *decision.approval_timeout)) {
                decision.approval_timeout = rule->approval_timeout;
            }
            names.push_back(rule->name);
        }
        decision.approvals_required = count;
        decision.approver_groups.assign(groups.begin(), groups.end());
        decision.self_approval_allowed = self_approval;
        decision.summary =
            "needs " + std::to_string(count) + " approval" + (count == 1 ? "" : "s") +
            (groups.empty() ? "" : " from " + join(decision.approver_groups)) +
            (self_approval ? "" : ", not from the proposer") + " (rule " + join(names) + ")";
    } else if (failed.empty() && !matched.empty()) {
        std::vector<std::string> names;
        for (const PolicyRule* rule : matched) {
            if (strictness(rule->effect) == strictest) {
                names.push_back(rule->name);
            }
        }
        decision.summary = std::string(decision.effect == DecisionEffect::allow     ? "allowed"
                                       : decision.effect == DecisionEffect::dry_run ? "dry run only"
                                                                                    : "denied") +
                           " by rule " + join(names);
    }
    // Who may keep or revert it by hand: the groups the rules with the deciding effect name
    // (for keep, their approver groups unless they say otherwise).
    if (decision.effect == DecisionEffect::allow ||
        decision.effect == DecisionEffect::require_approval) {
        std::set<std::string> keep;
        std::set<std::string> revert;
        for (const PolicyRule* rule : matched) {
            if (rule->effect != decision.effect) {
                continue;
            }
            const auto& keepers = rule->keep_groups ? *rule->keep_groups : rule->approver_groups;
            keep.insert(keepers.begin(), keepers.end());
            if (rule->revert_groups) {
                revert.insert(rule->revert_groups->begin(), rule->revert_groups->end());
            }
        }
        decision.keep_groups.assign(keep.begin(), keep.end());
        decision.revert_groups.assign(revert.begin(), revert.end());
    }
    // A dry run asked for by the caller (a drill's): policy decides as always, so a denial
    // stays a denial, but what it would let through is recorded as dry_run.
    if (input.dry_run && (decision.effect == DecisionEffect::allow ||
                          decision.effect == DecisionEffect::require_approval)) {
        decision.summary = "dry run requested; policy would have said " +
                           std::string(to_string(decision.effect)) + ": " + decision.summary;
        decision.effect = DecisionEffect::dry_run;
        decision.approvals_required = 0;
    }
    return decision;
}

Parsed<PolicyInput> parse_policy_input(const json& in, std::string path) {
    Parsed<PolicyInput> result;
    JsonObjectReader reader(in, std::move(path), result.errors);
    PolicyInput input;
    if (const json* action = reader.member("action", Presence::required)) {
        auto parsed = parse_action(*action, reader.path_of("action"));
        result.errors.insert(result.errors.end(), parsed.errors.begin(), parsed.errors.end());
        if (parsed) {
            input.action = *parsed;
        }
    }
    input.playbook = reader.string("playbook", Presence::optional);
    input.proposed_by = reader.string("proposed_by", Presence::optional);
    input.environment = reader.string("environment");
    input.service = reader.string("service", Presence::optional);
    input.labels = reader.string_map("labels");
    input.dry_run = reader.boolean("dry_run", false);
    if (const json* plan = reader.member("plan", Presence::optional)) {
        auto parsed = parse_plan(*plan, reader.path_of("plan"));
        result.errors.insert(result.errors.end(), parsed.errors.begin(), parsed.errors.end());
        if (parsed) {
            input.plan = *parsed;
        }
    }
    reader.reject_unknown_fields();
    if (result.errors.empty()) {
        result.value = std::move(input);
    }
    return result;
}

Parsed<PolicyHistory> parse_policy_history(const json& in, std::string path) {
    Parsed<PolicyHistory> result;
    JsonObjectReader reader(in, std::move(path), result.errors);
    PolicyHistory history;
    if (const json* mitigations = reader.member("mitigations", Presence::optional)) {
        if (!mitigations->is_array()) {
            reader.add_error("mitigations", "must be a list");
        } else {
            for (std::size_t i = 0; i < mitigations->size(); ++i) {
                JsonObjectReader item((*mitigations)[i],
                                      reader.path_of("mitigations") + "[" + std::to_string(i) + "]",
                                      result.errors);
                PastMitigation past;
                past.provider = item.string("provider");
                past.action = item.string("action", Presence::optional);
                past.target = item.string("target");
                past.service = item.string("service", Presence::optional);
                past.environment = item.string("environment", Presence::optional);
                past.started_at = item.time("started_at").value_or(TimePoint{});
                past.verification_failed_at =
                    item.time("verification_failed_at", Presence::optional);
                item.reject_unknown_fields();
                history.mitigations.push_back(std::move(past));
            }
        }
    }
    history.circuit_breaker_reset_at = reader.time("circuit_breaker_reset_at", Presence::optional);
    reader.reject_unknown_fields();
    if (result.errors.empty()) {
        result.value = std::move(history);
    }
    return result;
}

}  // namespace mitigate
