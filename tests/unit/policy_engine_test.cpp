// Each semantic rule of policy evaluation, on small policy sets written inline.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "runtime/core/time_format.h"
#include "runtime/policy/policy_engine.h"
#include "tests/support/printers.h"

namespace mitigate {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

TimePoint at(std::string_view text) {
    return *parse_rfc3339(text);
}

PolicySet policies(std::string_view text) {
    PolicyLoad load = load_policy_files({{"p.yaml", std::string(text)}});
    EXPECT_TRUE(load.policy_set) << (load.errors.empty() ? "" : load.errors.front().to_string());
    return load.policy_set.value_or(PolicySet{});
}

PolicyInput input(std::string environment = "dev", std::string action = "flag.set") {
    PolicyInput value;
    value.action.provider = "flags";
    value.action.action = std::move(action);
    value.action.target = "checkout-new-flow";
    value.action.ttl = Duration{30min};
    value.action.reason = "test";
    value.environment = std::move(environment);
    value.service = "checkout";
    value.proposed_by = "playbook:test";
    Plan plan;
    plan.blast_radius = {0.2, "", std::nullopt};
    plan.idempotency_key = "k";
    value.plan = plan;
    return value;
}

const TimePoint monday_noon = at("2026-11-23T12:00:00Z");

Decision decide(const PolicySet& set, const PolicyInput& in, const PolicyHistory& history = {},
                TimePoint now = monday_noon) {
    return evaluate_policy(set, in, history, now, PolicyExplanation::every_rule);
}

std::vector<std::string> failed_constraints(const Decision& decision) {
    std::vector<std::string> names;
    for (const auto& constraint : decision.constraints) {
        if (!constraint.passed) {
            names.push_back(constraint.constraint);
        }
    }
    return names;
}

TEST(PolicyEngine, DefaultDenyWhenNothingMatches) {
    const Decision empty = decide(PolicySet{}, input());
    EXPECT_EQ(empty.effect, DecisionEffect::deny);
    EXPECT_THAT(empty.summary, HasSubstr("no rule matched"));
    const Decision other = decide(
        policies("rules: [{name: prod, match: {environment: prod}, effect: allow}]"), input("dev"));
    EXPECT_EQ(other.effect, DecisionEffect::deny);
    ASSERT_EQ(other.rules.size(), 1u);
    EXPECT_FALSE(other.rules[0].matched);
    EXPECT_EQ(other.rules[0].reason, "environment \"dev\" is not one of prod");
}

TEST(PolicyEngine, DenyOverridesEverythingAndStrictestWinsInAnyOrder) {
    const std::vector<std::string> rules{
        "  - {name: allow-all, effect: allow}\n",
        "  - {name: needs-one, effect: require_approval, approvals: {count: 1, groups: [a]}}\n",
        "  - {name: needs-two, effect: require_approval, approvals: {count: 2, groups: [b]}}\n",
        "  - {name: dry, match: {action: \"ecs.*\"}, effect: dry_run}\n",
        "  - {name: no-prod-scale, match: {environment: prod, action: ecs.scale}, effect: deny}\n",
    };
    std::mt19937 random(7);
    for (int shuffle = 0; shuffle < 10; ++shuffle) {
        auto order = rules;
        std::shuffle(order.begin(), order.end(), random);
        std::string text = "rules:\n";
        for (const auto& rule : order) {
            text += rule;
        }
        const PolicySet set = policies(text);
        const Decision flag = decide(set, input("dev", "flag.set"));
        EXPECT_EQ(flag.effect, DecisionEffect::require_approval);
        EXPECT_EQ(flag.approvals_required, 2);
        EXPECT_EQ(flag.approver_groups, std::vector<std::string>{"b"});
        EXPECT_EQ(decide(set, input("dev", "ecs.scale")).effect, DecisionEffect::dry_run);
        EXPECT_EQ(decide(set, input("prod", "ecs.scale")).effect, DecisionEffect::deny);
    }
}

TEST(PolicyEngine, EqualApprovalCountsMergeGroupsAndKeepTheStricterTerms) {
    const PolicySet set = policies(R"yaml(rules:
  - {name: a, effect: require_approval, approvals: {count: 2, groups: [sre-oncall], self_approval: true, expire_after: 1h}}
  - {name: b, effect: require_approval, approvals: {count: 2, groups: [db-admins], expire_after: 20m}}
)yaml");
    const Decision decision = decide(set, input());
    EXPECT_EQ(decision.approvals_required, 2);
    EXPECT_THAT(decision.approver_groups, ElementsAre("db-admins", "sre-oncall"));
    EXPECT_FALSE(decision.self_approval_allowed);
    EXPECT_EQ(decision.approval_timeout, Duration{20min});
}

TEST(PolicyEngine, KeepNeedsTheApproverGroupsUnlessARuleNamesOthersAndRevertIsOpen) {
    const PolicySet set = policies(R"yaml(rules:
  - {name: prod, match: {environment: prod}, effect: require_approval, approvals: {count: 2, groups: [sre-oncall]}}
  - {name: stage, match: {environment: stage}, effect: require_approval, approvals: {count: 1},
     keep: {groups: [platform]}, revert: {groups: [sre-oncall, platform]}}
  - {name: dev, match: {environment: dev}, effect: allow}
)yaml");
    const Decision prod = decide(set, input("prod"));
    EXPECT_THAT(prod.keep_groups, ElementsAre("sre-oncall"));
    EXPECT_TRUE(prod.revert_groups.empty());
    const Decision stage = decide(set, input("stage"));
    EXPECT_THAT(stage.keep_groups, ElementsAre("platform"));
    EXPECT_THAT(stage.revert_groups, ElementsAre("platform", "sre-oncall"));
    const Decision dev = decide(set, input("dev"));
    EXPECT_TRUE(dev.keep_groups.empty());
    EXPECT_TRUE(dev.revert_groups.empty());
}

TEST(PolicyEngine, EveryMatchConditionIsChecked) {
    struct Case {
        const char* match;
        std::function<void(PolicyInput&)> change;  // makes the rule stop matching
        const char* reason;
    };
    const Case cases[] = {
        {"{provider: [flags, aws]}", [](PolicyInput& in) { in.action.provider = "vercel"; },
         "provider"},
        {"{action: \"flag.*\"}", [](PolicyInput& in) { in.action.action = "ecs.scale"; }, "action"},
        {"{service: checkout}", [](PolicyInput& in) { in.service = "search"; }, "service"},
        {"{target: \"checkout-*\"}", [](PolicyInput& in) { in.action.target = "search-x"; },
         "target"},
        {"{playbook: \"latency-*\"}", [](PolicyInput& in) { in.playbook = "errors"; }, "playbook"},
        {"{labels: {team: payments}}", [](PolicyInput& in) { in.labels["team"] = "search"; },
         "label team"},
        {"{reversible: true}", [](PolicyInput& in) { in.plan->reversible = false; },
         "not reversible"},
        {"{reversible: true}", [](PolicyInput& in) { in.plan.reset(); }, "without a plan"},
        {"{max_blast_radius: 0.25}", [](PolicyInput& in) { in.plan->blast_radius.ratio = 0.5; },
         "blast radius 0.5"},
        {"{max_ttl: 1h}", [](PolicyInput& in) { in.action.ttl = Duration{2h}; },
         "TTL 2h is longer"},
        {"{max_ttl: 1h}", [](PolicyInput& in) { in.action.ttl.reset(); }, "no TTL"},
    };
    for (const Case& test : cases) {
        const PolicySet set =
            policies(std::string("rules: [{name: r, effect: allow, match: ") + test.match + "}]");
        PolicyInput in = input();
        in.labels["team"] = "payments";
        in.playbook = "latency-high";
        EXPECT_EQ(decide(set, in).effect, DecisionEffect::allow) << test.match;
        test.change(in);
        const Decision changed = decide(set, in);
        EXPECT_EQ(changed.effect, DecisionEffect::deny) << test.match;
        EXPECT_THAT(changed.rules[0].reason, HasSubstr(test.reason)) << test.match;
    }
}

TEST(PolicyEngine, WindowsFollowTheirTimeZoneAcrossDaylightSaving) {
    const PolicySet set = policies(R"yaml(windows:
  berlin-office: {schedule: "0 9 * * mon-fri", duration: 8h, timezone: Europe/Berlin}
rules:
  - {name: office, match: {within: berlin-office}, effect: allow}
)yaml");
    const PolicyWindow& window = set.windows.at("berlin-office");
    // Winter: Berlin is UTC+1, so 09:00-17:00 local is 08:00-16:00 UTC.
    EXPECT_FALSE(is_window_active(window, at("2026-11-23T07:59:00Z")));
    EXPECT_TRUE(is_window_active(window, at("2026-11-23T08:00:00Z")));
    EXPECT_TRUE(is_window_active(window, at("2026-11-23T15:59:59Z")));
    EXPECT_FALSE(is_window_active(window, at("2026-11-23T16:00:00Z")));
    // Summer: UTC+2, so 07:00-15:00 UTC.
    EXPECT_TRUE(is_window_active(window, at("2026-07-06T07:00:00Z")));
    EXPECT_FALSE(is_window_active(window, at("2026-07-06T15:00:00Z")));
    // Weekend: closed all day.
    EXPECT_FALSE(is_window_active(window, at("2026-11-22T12:00:00Z")));
    EXPECT_EQ(decide(set, input(), {}, at("2026-11-22T12:00:00Z")).rules[0].reason,
              "outside window berlin-office");
}

TEST(PolicyEngine, WindowsSpanMidnightAndDaylightSavingChanges) {
    // A nightly window 22:00 for 8h in New York, on the night clocks go back (Nov 1 2026).
    const PolicySet set = policies(R"yaml(windows:
  nightly: {schedule: "0 22 * * *", duration: 8h, timezone: America/New_York}
)yaml");
    const PolicyWindow& window = set.windows.at("nightly");
    // Oct 31 22:00 EDT = Nov 1 02:00 UTC; 8 real hours later is 10:00 UTC (05:00 EST).
    EXPECT_TRUE(is_window_active(window, at("2026-11-01T02:00:00Z")));
    EXPECT_TRUE(is_window_active(window, at("2026-11-01T09:59:00Z")));
    EXPECT_FALSE(is_window_active(window, at("2026-11-01T10:00:00Z")));
    EXPECT_FALSE(is_window_active(window, at("2026-11-01T01:59:00Z")));
}

// is_window_active walks back from `now`, skipping hours and minutes the schedule rules
// out; it must agree with the plain definition, checked here through the forward walk of
// next_schedule_time: some start S the schedule fires at has S <= now < S + duration.
TEST(PolicyEngine, WindowsAgreeWithTheirDefinitionAtEveryMinuteTried) {
    const PolicySet set = policies(R"yaml(windows:
  office: {schedule: "0 9 * * mon-fri", duration: 8h, timezone: Europe/Berlin}
  quarter: {schedule: "*/15 * * * *", duration: 5m, timezone: UTC}
  night: {schedule: "30 2 * * *", duration: 20m, timezone: America/New_York}
  pairs: {schedule: "5,35 8-10 * * 1-5", duration: 90m, timezone: Europe/Berlin}
  short: {schedule: "59 23 * * *", duration: 2m, timezone: Australia/Lord_Howe}
)yaml");
    int checked = 0;
    for (const auto& [name, window] : set.windows) {
        // Three weeks around Europe's and America's autumn clock changes, every 7 minutes.
        for (TimePoint now = at("2026-10-20T00:00:00Z"); now < at("2026-11-10T00:00:00Z");
             now += std::chrono::minutes(7)) {
            bool expected = false;
            for (auto start =
                     next_schedule_time(window.schedule, window.time_zone,
                                        now - window.duration - std::chrono::minutes(1), now);
                 start && !expected;
                 start = next_schedule_time(window.schedule, window.time_zone, *start, now)) {
                expected = *start <= now && now < *start + window.duration;
            }
            ASSERT_EQ(is_window_active(window, now), expected)
                << name << " at " << format_rfc3339(now);
            ++checked;
        }
    }
    EXPECT_GT(checked, 20000);
}

TEST(PolicyEngine, FreezeDeniesOnlyInItsEnvironmentsAndPeriod) {
    const PolicySet set = policies(R"yaml(rules: [{name: all, effect: allow}]
freezes:
  - {name: black-friday, from: "2026-11-27T00:00:00-05:00", to: "2026-11-30T00:00:00-05:00", environments: [prod]}
)yaml");
    const TimePoint during = at("2026-11-28T12:00:00Z");
    const Decision frozen = decide(set, input("prod"), {}, during);
    EXPECT_EQ(frozen.effect, DecisionEffect::deny);
    EXPECT_THAT(failed_constraints(frozen), ElementsAre("freeze:black-friday"));
    EXPECT_THAT(frozen.summary, HasSubstr("freeze:black-friday"));
    EXPECT_EQ(decide(set, input("dev"), {}, during).effect, DecisionEffect::allow);
    EXPECT_EQ(decide(set, input("prod"), {}, at("2026-11-30T05:00:00Z")).effect,
              DecisionEffect::allow);
}

TEST(PolicyEngine, TtlIsRequiredOrClampedAsThePolicySays) {
    const PolicySet deny_missing = policies(R"yaml(rules: [{name: all, effect: allow}]
constraints: {ttl: {max: 1h, when_missing: deny, when_longer: clamp}}
)yaml");
    PolicyInput no_ttl = input();
    no_ttl.action.ttl.reset();
    EXPECT_EQ(decide(deny_missing, no_ttl).effect, DecisionEffect::deny);
    PolicyInput long_ttl = input();
    long_ttl.action.ttl = Duration{3h};
    const Decision clamped = decide(deny_missing, long_ttl);
    EXPECT_EQ(clamped.effect, DecisionEffect::allow);
    EXPECT_EQ(clamped.ttl, Duration{1h});
    EXPECT_EQ(decide(deny_missing, input()).ttl, Duration{30min});

    const PolicySet strict = policies(R"yaml(rules: [{name: all, effect: allow}]
constraints: {ttl: {max: 1h, when_missing: clamp, when_longer: deny}}
)yaml");
    EXPECT_EQ(decide(strict, long_ttl).effect, DecisionEffect::deny);
    const Decision filled = decide(strict, no_ttl);
    EXPECT_EQ(filled.effect, DecisionEffect::allow);
    EXPECT_EQ(filled.ttl, Duration{1h});
}

PastMitigation past(std::string target, TimePoint started, std::string service = "checkout") {
    return {"flags", "flag.set", std::move(target), std::move(service),
            "dev",   started,    std::nullopt};
}

TEST(PolicyEngine, RateLimitsCountPerScopeWithinTheirWindow) {
    const PolicySet set = policies(R"yaml(rules: [{name: all, effect: allow}]
constraints:
  rate_limits:
    - {scope: target, max: 1, per: 10m}
    - {scope: service, max: 3, per: 1h}
    - {scope: global, max: 5, per: 1h}
)yaml");
    PolicyHistory history;
    history.mitigations.push_back(past("checkout-new-flow", monday_noon - 5min));
    EXPECT_THAT(failed_constraints(decide(set, input(), history)),
                ElementsAre("rate_limit[target]"));
    history.mitigations[0].started_at = monday_noon - 11min;  // outside the 10m window
    EXPECT_EQ(decide(set, input(), history).effect, DecisionEffect::allow);
    history.mitigations.push_back(past("other-1", monday_noon - 20min));
    history.mitigations.push_back(past("other-2", monday_noon - 30min));
    EXPECT_THAT(failed_constraints(decide(set, input(), history)),
                ElementsAre("rate_limit[service]"));
    history.mitigations.push_back(past("elsewhere-1", monday_noon - 1min, "search"));
    history.mitigations.push_back(past("elsewhere-2", monday_noon - 1min, "search"));
    EXPECT_THAT(failed_constraints(decide(set, input(), history)),
                ElementsAre("rate_limit[service]", "rate_limit[global]"));
}

TEST(PolicyEngine, CooldownPerTarget) {
    const PolicySet set =
        policies("rules: [{name: all, effect: allow}]\nconstraints: {cooldown: {after: 15m}}\n");
    PolicyHistory history;
    history.mitigations.push_back(past("checkout-new-flow", monday_noon - 10min));
    const Decision cooling = decide(set, input(), history);
    EXPECT_THAT(failed_constraints(cooling), ElementsAre("cooldown"));
    EXPECT_THAT(cooling.constraints[0].detail, HasSubstr("next allowed at 2026-11-23T12:05:00Z"));
    history.mitigations[0].target = "another";
    EXPECT_EQ(decide(set, input(), history).effect, DecisionEffect::allow);
}

TEST(PolicyEngine, BlastRadiusCapsHoldWhateverTheRulesSay) {
    const PolicySet set = policies(R"yaml(rules: [{name: all, effect: allow}]
constraints:
  blast_radius_caps:
    - {provider: aws, action: ecs.scale, min_resulting_fraction: 0.5, max_resulting_fraction: 3}
    - {provider: "*", action: "*", max_ratio: 0.9}
)yaml");
    PolicyInput scale = input("prod", "ecs.scale");
    scale.action.provider = "aws";
    scale.plan->blast_radius = {0.6, "10 -> 4", 0.4};
    EXPECT_THAT(failed_constraints(decide(set, scale)),
                ElementsAre("blast_radius_cap[aws ecs.scale]"));
    scale.plan->blast_radius = {2.5, "10 -> 35", 3.5};
    EXPECT_THAT(failed_constraints(decide(set, scale)),
                ElementsAre("blast_radius_cap[aws ecs.scale]", "blast_radius_cap[* *]"));
    scale.plan->blast_radius = {0.5, "10 -> 5", 0.5};
    EXPECT_EQ(decide(set, scale).effect, DecisionEffect::allow);
    scale.plan->blast_radius.resulting_fraction.reset();
    EXPECT_THAT(decide(set, scale).constraints[0].detail, HasSubstr("does not state"));
    scale.plan.reset();
    EXPECT_EQ(decide(set, scale).effect, DecisionEffect::deny);
}

TEST(PolicyEngine, CircuitBreakerTripsAndAHumanResetsIt) {
    const PolicySet set = policies(
        "rules: [{name: all, effect: allow}]\nconstraints: {circuit_breaker: {failures: 2, window: "
        "1h}}\n");
    PolicyHistory history;
    for (auto ago : {50min, 10min}) {
        PastMitigation failed = past("t" + std::to_string(ago.count()), monday_noon - 2h);
        failed.verification_failed_at = monday_noon - ago;
        history.mitigations.push_back(failed);
    }
    const Decision open = decide(set, input(), history);
    EXPECT_THAT(failed_constraints(open), ElementsAre("circuit_breaker"));
    EXPECT_THAT(open.constraints[0].detail, HasSubstr("until a human resets"));
    history.circuit_breaker_reset_at = monday_noon - 30min;  // one failure since the reset
    EXPECT_EQ(decide(set, input(), history).effect, DecisionEffect::allow);
    history.circuit_breaker_reset_at.reset();
    EXPECT_EQ(decide(set, input(), history, monday_noon + 15min).effect, DecisionEffect::allow);
}

TEST(PolicyEngine, DecisionExplainsEveryRuleAndConstraint) {
    const PolicySet set = policies(R"yaml(rules:
  - {name: a, match: {environment: dev}, effect: allow}
  - {name: b, match: {environment: prod}, effect: deny}
constraints: {ttl: {max: 4h}, cooldown: {after: 1m}}
)yaml");
    const Decision decision = decide(set, input());
    EXPECT_EQ(decision.policy_hash, set.hash);
    EXPECT_EQ(decision.decided_at, monday_noon);
    ASSERT_EQ(decision.rules.size(), 2u);
    EXPECT_EQ(decision.rules[0].rule, "p.yaml#a");
    EXPECT_TRUE(decision.rules[0].matched);
    EXPECT_FALSE(decision.rules[1].matched);
    EXPECT_THAT(decision.constraints, Contains(Field(&ConstraintOutcome::constraint, "ttl")));
    EXPECT_THAT(decision.constraints, Contains(Field(&ConstraintOutcome::constraint, "cooldown")));
    EXPECT_EQ(decision.summary, "allowed by rule a");
    // The decision is data: it round-trips through the core JSON form.
    const auto parsed = parse_decision(nlohmann::json(decision));
    ASSERT_TRUE(parsed) << describe(parsed.errors);
    EXPECT_EQ(*parsed, decision);
}

TEST(PolicyEngine, InputAndHistoryParseFromJson) {
    const auto parsed = parse_policy_input(nlohmann::json::parse(R"({
        "action": {"provider": "flags", "action": "flag.set", "target": "x", "ttl": "30m", "reason": "r"},
        "environment": "prod", "service": "checkout", "labels": {"team": "payments"}
    })"));
    ASSERT_TRUE(parsed) << describe(parsed.errors);
    EXPECT_EQ(parsed->labels.at("team"), "payments");
    const auto bad = parse_policy_input(
        nlohmann::json::parse(R"({"action": {"provider": "flags"}, "envronment": "x"})"));
    ASSERT_FALSE(bad);
    EXPECT_THAT(describe(bad.errors), HasSubstr("input.action.target: is required"));
    EXPECT_THAT(describe(bad.errors), HasSubstr("input.envronment: unknown field"));
    const auto history = parse_policy_history(nlohmann::json::parse(R"({"mitigations": [
        {"provider": "flags", "target": "x", "started_at": "2026-11-23T11:00:00Z",
         "verification_failed_at": "2026-11-23T11:05:00Z"}]})"));
    ASSERT_TRUE(history) << describe(history.errors);
    EXPECT_TRUE(history->mitigations[0].verification_failed_at);
}

}  // namespace
}  // namespace mitigate
