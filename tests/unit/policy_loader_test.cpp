// Bad policy files produce precise errors: file, line, column and key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>

#include "runtime/policy/policy_set.h"
#include "tests/support/child_process.h"
#include "tests/support/printers.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;

PolicyLoad load(std::string_view text) {
    return load_policy_files({{"policy.yaml", std::string(text)}});
}

auto error(int line, int column, const std::string& key, const std::string& message) {
    return Contains(AllOf(Field(&ConfigError::line, line), Field(&ConfigError::column, column),
                          Field(&ConfigError::key, key),
                          Field(&ConfigError::message, HasSubstr(message))));
}

TEST(PolicyLoader, LoadsAFullPolicy) {
    const PolicyLoad result = load(R"yaml(
windows:
  business-hours: {schedule: "0 9 * * mon-fri", duration: 8h, timezone: Europe/Berlin}
rules:
  - name: prod-two
    description: prod needs two
    match: {environment: prod, action: ["ecs.*"], labels: {team: payments}, within: business-hours}
    effect: require_approval
    approvals: {count: 2, groups: [sre-oncall], expire_after: 30m}
  - name: dev-auto
    match: {environment: [dev], reversible: true, max_ttl: 1h, max_blast_radius: 0.5}
    effect: allow
freezes:
  - {name: year-end, from: "2026-12-20T00:00:00+01:00", to: "2027-01-04T00:00:00+01:00", environments: [prod]}
constraints:
  rate_limits: [{scope: target, max: 1, per: 10m}, {scope: global, max: 20, per: 1h}]
  cooldown: {after: 15m}
  blast_radius_caps: [{provider: aws, action: ecs.scale, min_resulting_fraction: 0.5, max_resulting_fraction: 3}]
  ttl: {max: 4h, when_missing: deny, when_longer: clamp}
  circuit_breaker: {failures: 3, window: 1h}
)yaml");
    ASSERT_TRUE(result.policy_set) << result.errors.front().to_string();
    const PolicySet& set = *result.policy_set;
    ASSERT_EQ(set.rules.size(), 2u);
    EXPECT_EQ(set.rules[0].approvals, 2);
    EXPECT_EQ(set.rules[0].match.environments.patterns(), std::vector<std::string>{"prod"});
    EXPECT_TRUE(set.rules[0].match.actions.matches("ecs.scale"));
    EXPECT_FALSE(set.rules[0].match.actions.matches("flag.set"));
    EXPECT_EQ(set.rules[0].id, "policy.yaml#prod-two");
    EXPECT_EQ(set.rules[0].match.within_windows, std::vector<std::string>{"business-hours"});
    EXPECT_EQ(set.rules[1].match.max_ttl, Duration{std::chrono::hours{1}});
    EXPECT_EQ(set.windows.at("business-hours").time_zone_name, "Europe/Berlin");
    EXPECT_EQ(set.freezes.size(), 1u);
    EXPECT_EQ(set.rate_limits.size(), 2u);
    EXPECT_TRUE(set.cooldown && set.ttl && set.circuit_breaker);
    EXPECT_EQ(set.blast_radius_caps[0].max_resulting_fraction, 3.0);
    EXPECT_EQ(set.hash.size(), 64u);
}

TEST(PolicyLoader, UnknownKeysAndWrongTypes) {
    const PolicyLoad result = load(R"yaml(rules:
  - name: r
    match: {enviroment: prod}
    effect: allow
    colour: blue
  - name: s
    match: {reversible: perhaps, max_blast_radius: lots}
    effect: maybe
constraints:
  rate_limits: [{scope: planet, max: 0, per: 1h}]
)yaml");
    ASSERT_FALSE(result.policy_set);
    EXPECT_THAT(result.errors,
                error(3, 13, "rules[0].match.enviroment", "did you mean \"environment\""));
    EXPECT_THAT(result.errors, error(5, 5, "rules[0].colour", "unknown key"));
    EXPECT_THAT(result.errors, error(7, 25, "rules[1].match.reversible", "true or false"));
    EXPECT_THAT(result.errors, error(7, 52, "rules[1].match.max_blast_radius", "number"));
    EXPECT_THAT(result.errors,
                error(8, 13, "rules[1].effect", "allow, require_approval, deny, dry_run"));
    EXPECT_THAT(result.errors,
                error(10, 25, "constraints.rate_limits[0].scope", "target, service"));
    EXPECT_THAT(result.errors, error(10, 38, "constraints.rate_limits[0].max", "from 1"));
}

TEST(PolicyLoader, BadCronBadTimeZoneAndImpossibleWindows) {
    const PolicyLoad result = load(R"yaml(windows:
  a: {schedule: "0 25 * * *", duration: 1h}
  b: {schedule: "0 9 * * *", duration: 1h, timezone: Mars/Olympus_Mons}
  c: {schedule: "0 0 30 2 *", duration: 1h}
  d: {schedule: "0 9 * * *", duration: 0s}
freezes:
  - {name: backwards, from: "2026-12-20T00:00:00Z", to: "2026-12-19T00:00:00Z"}
  - {name: local, from: "2026-12-20T00:00:00", to: "2026-12-21T00:00:00Z"}
)yaml");
    ASSERT_FALSE(result.policy_set);
    EXPECT_THAT(result.errors, error(2, 17, "windows.a.schedule", "hour field: \"25\""));
    EXPECT_THAT(result.errors,
                error(3, 54, "windows.b.timezone", "unknown time zone \"Mars/Olympus_Mons\""));
    EXPECT_THAT(result.errors, error(4, 17, "windows.c.schedule", "never fires"));
    EXPECT_THAT(result.errors, error(5, 40, "windows.d.duration", "longer than zero"));
    EXPECT_THAT(result.errors, error(7, 57, "freezes[0].to", "ends before it starts"));
    EXPECT_THAT(result.errors, error(8, 25, "freezes[1].from", "with its offset"));
}

TEST(PolicyLoader, ApprovalsBelongToRequireApprovalRulesOnly) {
    const PolicyLoad result = load(R"yaml(rules:
  - {name: a, effect: require_approval}
  - {name: b, effect: allow, approvals: {count: 1}}
  - {name: c, effect: require_approval, approvals: {groups: [x]}}
  - {name: d, effect: require_approval, approvals: {count: 0, who: me}}
)yaml");
    ASSERT_FALSE(result.policy_set);
    EXPECT_THAT(result.errors, error(2, 15, "rules[0].effect", "needs an approvals: section"));
    EXPECT_THAT(result.errors, error(3, 30, "rules[1].approvals", "only a require_approval rule"));
    EXPECT_THAT(result.errors, error(4, 52, "rules[2].approvals.count", "is required"));
    EXPECT_THAT(result.errors, error(5, 60, "rules[3].approvals.count", "from 1 to 20"));
    EXPECT_THAT(result.errors, error(5, 63, "rules[3].approvals.who", "unknown key"));
}

TEST(PolicyLoader, KeepAndRevertNameGroupsOnRulesThatLetSomethingThrough) {
    const PolicyLoad result = load(R"yaml(rules:
  - {name: a, effect: deny, keep: {groups: [x]}}
  - {name: b, effect: allow, revert: {groups: []}}
  - {name: c, effect: allow, keep: {who: x}}
)yaml");
    ASSERT_FALSE(result.policy_set);
    EXPECT_THAT(result.errors, error(2, 29, "rules[0].keep", "applies nothing"));
    EXPECT_THAT(result.errors, error(3, 47, "rules[1].revert.groups", "at least one group"));
    EXPECT_THAT(result.errors, error(4, 36, "rules[2].keep.groups", "is required"));
    EXPECT_THAT(result.errors, error(4, 37, "rules[2].keep.who", "unknown key"));
}

TEST(PolicyLoader, ChecksAcrossFiles) {
    const PolicyLoad result = load_policy_files({
        {"a.yaml",
         "rules:\n  - {name: shared, effect: allow, match: {within: nightly}}\n"
         "constraints:\n  ttl: {max: 1h}\n"},
        {"b.yaml", "rules:\n  - {name: shared, effect: deny}\nconstraints:\n  ttl: {max: 2h}\n"},
    });
    ASSERT_FALSE(result.policy_set);
    EXPECT_THAT(result.errors,
                Contains(AllOf(
                    Field(&ConfigError::file, "b.yaml"), Field(&ConfigError::key, "rules[0].name"),
                    Field(&ConfigError::message, HasSubstr("already exists in a.yaml")))));
    EXPECT_THAT(result.errors,
                Contains(AllOf(Field(&ConfigError::file, "b.yaml"),
                               Field(&ConfigError::key, "constraints.ttl"),
                               Field(&ConfigError::message, HasSubstr("already set in a.yaml")))));
    EXPECT_THAT(
        result.errors,
        Contains(AllOf(Field(&ConfigError::file, "a.yaml"), Field(&ConfigError::line, 2),
                       Field(&ConfigError::message, HasSubstr("no window named \"nightly\"")))));
}

TEST(PolicyLoader, HashDependsOnContentNotOnOrderOrLocation) {
    const auto a = load_policy_files({{"/etc/p/a.yaml", "rules: []\n"}, {"/etc/p/b.yaml", "{}\n"}});
    const auto b = load_policy_files({{"/srv/b.yaml", "{}\n"}, {"/srv/a.yaml", "rules: []\n"}});
    const auto c = load_policy_files({{"/srv/b.yaml", "{} \n"}, {"/srv/a.yaml", "rules: []\n"}});
    ASSERT_TRUE(a.policy_set && b.policy_set && c.policy_set);
    EXPECT_EQ(a.policy_set->hash, b.policy_set->hash);
    EXPECT_NE(a.policy_set->hash, c.policy_set->hash);
}

TEST(PolicyLoader, ReadsADirectoryIgnoringOtherFiles) {
    testing::TemporaryDirectory directory;
    directory.write("a.yaml", "rules:\n  - {name: a, effect: allow}\n");
    directory.write("b.yml", "rules:\n  - {name: b, effect: deny}\n");
    directory.write("README.md", "not a policy: [\n");
    const PolicyLoad result = load_policy_directory(directory.path());
    ASSERT_TRUE(result.policy_set) << result.errors.front().to_string();
    EXPECT_EQ(result.policy_set->rules.size(), 2u);
    EXPECT_FALSE(load_policy_directory(directory / "missing").policy_set);
}

TEST(PolicyLoader, APolicyFileThatCannotBeReadIsAnErrorNamingItNeverSkipped) {
    testing::TemporaryDirectory directory;
    directory.write("a.yaml", "rules:\n  - {name: a, effect: allow}\n");
    ASSERT_EQ(mkfifo((directory / "fifo.yaml").c_str(), 0600), 0);
    std::filesystem::create_directory(directory / "sub.yml");
    directory.write("latin1.yaml", "rules:\n  - {name: caf\xe9, effect: deny}\n");
    const PolicyLoad result = load_policy_directory(directory.path());
    EXPECT_FALSE(result.policy_set);
    std::string all;
    for (const auto& error : result.errors) {
        all += error.to_string() + "\n";
    }
    EXPECT_THAT(all, HasSubstr("fifo.yaml: is a FIFO, not a regular file"));
    EXPECT_THAT(all, HasSubstr("sub.yml: is a directory, not a regular file"));
    EXPECT_THAT(all, HasSubstr("latin1.yaml:2:15: invalid UTF-8 at line 2, column 15"));
}

}  // namespace
}  // namespace mitigate

namespace mitigate {
namespace {

TEST(PolicyLoader, TheEmbeddedDefaultIsExactlyTheShippedPolicyDirectory) {
    const PolicyLoad embedded = load_policy_files(embedded_default_policies());
    const PolicyLoad shipped =
        load_policy_directory(std::filesystem::path(testing::source_directory()) / "policies");
    ASSERT_TRUE(embedded.policy_set);
    ASSERT_TRUE(shipped.policy_set) << shipped.errors.front().to_string();
    EXPECT_EQ(embedded.policy_set->hash, shipped.policy_set->hash);
    EXPECT_EQ(embedded.policy_set->rules.size(), shipped.policy_set->rules.size());
}

}  // namespace
}  // namespace mitigate
