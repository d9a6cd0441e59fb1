// mitigate policy check / eval / test, run as a user would.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/child_process.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using ::testing::HasSubstr;
using testing::ProcessResult;

ProcessResult mitigate(std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), testing::mitigate_binary());
    return testing::run_process(arguments);
}

std::string shipped_policies() {
    return testing::source_directory() + "/policies";
}

TEST(PolicyCli, TheShippedPolicyIsValidAndItsFixturesPass) {
    const ProcessResult check = mitigate({"policy", "check", shipped_policies()});
    EXPECT_EQ(check.exit_code, 0) << check.err;
    EXPECT_THAT(check.out, HasSubstr(": ok ("));
    const ProcessResult test = mitigate({"policy", "test", shipped_policies()});
    EXPECT_EQ(test.exit_code, 0) << test.out << test.err;
    EXPECT_THAT(test.out, HasSubstr(" passed, 0 failed"));
}

TEST(PolicyCli, CheckReportsPositions) {
    testing::TemporaryDirectory directory;
    directory.write("p.yaml", "rules:\n  - name: r\n    effect: alow\n");
    const ProcessResult result = mitigate({"policy", "check", directory.path().string()});
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.err, HasSubstr("p.yaml:3:13: rules[0].effect: must be one of allow"));
}

TEST(PolicyCli, EvalPrintsAnExplainedDecision) {
    testing::TemporaryDirectory directory;
    const auto input = directory.write("input.json", R"({
        "action": {"provider": "flags", "action": "flag.set", "target": "checkout-new-flow",
                   "ttl": "30m", "reason": "errors"},
        "environment": "prod", "service": "checkout", "proposed_by": "alice"})");
    const auto history = directory.write("history.json", R"({"mitigations": [
        {"provider": "flags", "target": "checkout-new-flow", "started_at": "2026-11-24T09:55:00Z"}]})");
    const ProcessResult result =
        mitigate({"policy", "eval", "--policies", shipped_policies(), "--proposal", input.string(),
                  "--now", "2026-11-24T10:00:00Z", "--output", "json"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const auto decision = nlohmann::json::parse(result.out);
    EXPECT_EQ(decision["effect"], "require_approval");
    EXPECT_EQ(decision["approvals_required"], 2);
    EXPECT_EQ(decision["approver_groups"], nlohmann::json::array({"sre-oncall"}));
    EXPECT_EQ(decision["decided_at"], "2026-11-24T10:00:00Z");
    EXPECT_EQ(decision["policy_hash"].get<std::string>().size(), 64u);
    EXPECT_FALSE(decision["rules"].empty());

    const ProcessResult cooling =
        mitigate({"policy", "eval", "--policies", shipped_policies(), "--proposal", input.string(),
                  "--now", "2026-11-24T10:00:00Z", "--history", history.string()});
    ASSERT_EQ(cooling.exit_code, 0) << cooling.err;
    EXPECT_THAT(cooling.out, HasSubstr("decision: deny: denied by constraint cooldown"));
    EXPECT_THAT(cooling.out, HasSubstr("FAILED   cooldown"));
}

TEST(PolicyCli, EvalRejectsBadInputClearly) {
    testing::TemporaryDirectory directory;
    const auto bad = directory.write("bad.json", R"({"action": {"provider": "flags"}})");
    const ProcessResult result =
        mitigate({"policy", "eval", "--policies", shipped_policies(), "--proposal", bad.string()});
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.err, HasSubstr("input.action.target: is required"));
    EXPECT_THAT(result.err, HasSubstr("input.environment: is required"));
    const auto broken = directory.write("broken.json", "{not json");
    EXPECT_THAT(mitigate({"policy", "eval", "--policies", shipped_policies(), "--proposal",
                          broken.string()})
                    .err,
                HasSubstr("not valid JSON"));
    EXPECT_EQ(mitigate({"policy", "eval", "--policies", shipped_policies(), "--proposal",
                        bad.string(), "--now", "yesterday"})
                  .exit_code,
              2);
}

TEST(PolicyCli, FailingFixtureFailsTheRun) {
    testing::TemporaryDirectory directory;
    directory.write("p.yaml", "rules: [{name: all, effect: allow}]\n");
    std::filesystem::create_directory(directory / "tests");
    directory.write("tests/cases.yaml", R"(cases:
  - name: expects deny but policy allows
    now: "2026-11-24T10:00:00Z"
    input: {environment: dev, action: {provider: flags, action: flag.set, target: x, reason: r}}
    expect: {effect: deny}
  - name: expects allow
    now: "2026-11-24T10:00:00Z"
    input: {environment: dev, action: {provider: flags, action: flag.set, target: x, reason: r}}
    expect: {effect: allow}
)");
    const ProcessResult result = mitigate({"policy", "test", directory.path().string()});
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.out, HasSubstr("FAIL "));
    EXPECT_THAT(result.out, HasSubstr("effect: expected deny, got allow"));
    EXPECT_THAT(result.out, HasSubstr("1 passed, 1 failed"));
}

TEST(PolicyCli, InvalidFixtureIsAnErrorWithPosition) {
    testing::TemporaryDirectory directory;
    directory.write("p.yaml", "rules: [{name: all, effect: allow}]\n");
    std::filesystem::create_directory(directory / "tests");
    directory.write(
        "tests/cases.yaml",
        "cases:\n  - name: x\n    now: soon\n    input: {}\n    expect: {effect: allow}\n");
    const ProcessResult result = mitigate({"policy", "test", directory.path().string()});
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.err, HasSubstr("cases.yaml:3:10: cases[0].now: must be an RFC 3339 time"));
}

}  // namespace
}  // namespace mitigate
