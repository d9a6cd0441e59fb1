// The aws provider as the runtime runs it: the shipped aws.so in a confined plugin host,
// every request signed with SigV4 by the egress broker and verified by the AWS emulator.
// Each action's full cycle, WAF's optimistic lock, and the faults the emulator injects.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "plugins/emulators/aws_emulator.h"
#include "runtime/providers/provider_registry.h"
#include "runtime/server/http_client.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

// Obviously fake, AWS's own documentation example.
const char* const access_key = "AKIDEXAMPLE";
const char* const secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

const json rate_rule = json::parse(R"({
  "Name": "per-ip", "Priority": 1,
  "Statement": {"RateBasedStatement": {"Limit": 2000, "AggregateKeyType": "IP",
                                       "EvaluationWindowSec": 300}},
  "Action": {"Block": {}},
  "VisibilityConfig": {"SampledRequestsEnabled": true, "CloudWatchMetricsEnabled": true,
                       "MetricName": "per-ip"}})");
const json login_rule = json::parse(R"({
  "Name": "login", "Priority": 2,
  "Statement": {"RateBasedStatement": {"Limit": 100, "AggregateKeyType": "IP"}},
  "Action": {"Block": {}},
  "VisibilityConfig": {"SampledRequestsEnabled": true, "CloudWatchMetricsEnabled": true,
                       "MetricName": "login"}})");
const json geo_rule = json::parse(R"({
  "Name": "block-geo", "Priority": 0,
  "Statement": {"GeoMatchStatement": {"CountryCodes": ["AQ"]}},
  "Action": {"Block": {}},
  "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": true,
                       "MetricName": "block-geo"}})");

class AwsProviderTest : public ::testing::Test {
  protected:
    AwsProviderTest() : emulator(emulator_options()) {
        setenv("MITIGATE_TEST_AWS_KEY", access_key, 1);
        setenv("MITIGATE_TEST_AWS_SECRET", secret_key, 1);
        emulator.add_ecs_service("prod", "search", 4);
        emulator.add_scalable_target("prod", "search", 2, 10);
        emulator.add_ecs_service("prod", "checkout", 3);
        acl_id = emulator.add_web_acl("REGIONAL", "edge",
                                      json::array({geo_rule, rate_rule, login_rule}));
        blue = emulator.add_target_group("blue");
        green = emulator.add_target_group("green");
        listener = emulator.add_listener("storefront", {{blue, 1}});
        rule = emulator.add_rule(listener, 10, {{blue, 100}, {green, 0}});
    }

    static AwsEmulatorOptions emulator_options() {
        AwsEmulatorOptions options;
        options.access_key_id = access_key;
        options.secret_access_key = secret_key;
        return options;
    }

    Config config(const std::string& secret_variable = "MITIGATE_TEST_AWS_SECRET",
                  int deadline_ms = 10000) const {
        Config result;
        result.source = "test";
        ProviderConfig aws = testing::emulated_aws_provider(emulator.url(), "MITIGATE_TEST_AWS_KEY",
                                                            secret_variable);
        aws.settings["ecs_cluster"] = "prod";
        aws.settings["retry"] = {{"attempts", 4},
                                 {"base_delay_ms", 5},
                                 {"max_delay_ms", 20},
                                 {"deadline_ms", deadline_ms}};
        result.providers.push_back(aws);
        return result;
    }

    static RegistryOptions registry_options() {
        RegistryOptions options;
        options.executable = testing::mitigate_binary();
        return options;
    }

    PluginCallResult raw(ProviderRegistry& registry, const std::string& action,
                         const std::string& target, const std::string& operation,
                         const json& extra) {
        json request{{"operation", operation}, {"action", action}, {"target", target}};
        if (extra.is_object()) {
            request.update(extra);
        }
        return registry.call("aws", request);
    }

    json call(ProviderRegistry& registry, const std::string& action, const std::string& target,
              const std::string& operation, const json& extra,
              PluginCallStatus expected = PluginCallStatus::ok) {
        const PluginCallResult result = raw(registry, action, target, operation, extra);
        EXPECT_EQ(result.status, expected) << operation << " " << target << ": " << result.error;
        return result.ok() ? result.response : json{{"error", result.error}};
    }

    long long emulated_limit(const std::string& name = "per-ip") const {
        const json acl = emulator.web_acl("REGIONAL", "edge", acl_id);
        for (const json& candidate : acl["WebACL"]["Rules"]) {
            if (candidate["Name"] == name) {
                return candidate["Statement"]["RateBasedStatement"]["Limit"].get<long long>();
            }
        }
        return -1;
    }

    std::string waf_target(const std::string& rule_name = "per-ip") const {
        return "waf/REGIONAL/edge/" + acl_id + "/" + rule_name;
    }

    AwsEmulator emulator;
    std::string acl_id;
    std::string blue;
    std::string green;
    std::string listener;
    std::string rule;
};

TEST_F(AwsProviderTest, EcsScaleMovesTheCountAndTheAutoScalingRangeAndRevertsBoth) {
    ProviderRegistry registry(config(), registry_options());
    const json state = call(registry, "", "ecs/search", "state", {})["state"];
    EXPECT_EQ(state["desired_count"], 4);
    EXPECT_EQ(state["min_capacity"], 2);
    EXPECT_EQ(state["max_capacity"], 10);

    const json plan =
        call(registry, "ecs.scale", "ecs/search", "plan", {{"parameters", {{"desired_count", 8}}}});
    EXPECT_EQ(plan["forward"],
              (json{{"desired_count", 8}, {"min_capacity", 8}, {"max_capacity", 10}}));
    EXPECT_EQ(plan["inverse"],
              (json{{"desired_count", 4}, {"min_capacity", 2}, {"max_capacity", 10}}));
    EXPECT_DOUBLE_EQ(plan["blast_radius"]["ratio"].get<double>(), 0.5);
    EXPECT_DOUBLE_EQ(plan["blast_radius"]["resulting_fraction"].get<double>(), 2.0);
    EXPECT_EQ(emulator.ecs_service("prod", "search")["desiredCount"],
              4);  // planning writes nothing

    EXPECT_EQ(call(registry, "ecs.scale", "ecs/search", "check", {{"plan", plan}})["applied"],
              false);
    EXPECT_EQ(call(registry, "ecs.scale", "ecs/search", "apply", {{"plan", plan}})["changed"],
              true);
    EXPECT_EQ(emulator.ecs_service("prod", "search")["desiredCount"], 8);
    EXPECT_EQ(emulator.scalable_target("prod", "search")["MinCapacity"], 8);
    EXPECT_EQ(call(registry, "ecs.scale", "ecs/search", "check", {{"plan", plan}})["applied"],
              true);
    EXPECT_EQ(call(registry, "ecs.scale", "ecs/search", "apply", {{"plan", plan}})["changed"],
              false);
    EXPECT_EQ(emulator.writes("UpdateService"), 1);

    EXPECT_EQ(call(registry, "ecs.scale", "ecs/search", "revert", {{"plan", plan}})["changed"],
              true);
    EXPECT_EQ(emulator.ecs_service("prod", "search")["desiredCount"], 4);
    EXPECT_EQ(emulator.scalable_target("prod", "search")["MinCapacity"], 2);
    EXPECT_EQ(emulator.scalable_target("prod", "search")["MaxCapacity"], 10);
}

TEST_F(AwsProviderTest, EcsScaleRefusesToRevertOverSomeoneElsesChangeAndNamesBadTargets) {
    ProviderRegistry registry(config(), registry_options());
    const json plan = call(registry, "ecs.scale", "ecs/prod/checkout", "plan",
                           {{"parameters", {{"desired_count", 6}}}});
    EXPECT_EQ(plan["forward"], (json{{"desired_count", 6}}));  // no Auto Scaling here
    call(registry, "ecs.scale", "ecs/prod/checkout", "apply", {{"plan", plan}});
    emulator.set_desired_count("prod", "checkout", 9);  // a person scales further
    const json refused = call(registry, "ecs.scale", "ecs/prod/checkout", "revert",
                              {{"plan", plan}}, PluginCallStatus::conflict);
    EXPECT_THAT(refused["error"].get<std::string>(), HasSubstr("changed since mitigate set it"));
    EXPECT_EQ(emulator.ecs_service("prod", "checkout")["desiredCount"], 9);

    EXPECT_THAT(call(registry, "ecs.scale", "ecs/prod/nothing", "read", {},
                     PluginCallStatus::invalid)["error"]
                    .get<std::string>(),
                HasSubstr("no ECS service nothing in cluster prod (MISSING)"));
    EXPECT_THAT(
        call(registry, "ecs.scale", "search", "read", {}, PluginCallStatus::invalid)["error"]
            .get<std::string>(),
        HasSubstr("expected ecs/SERVICE or ecs/CLUSTER/SERVICE"));
    EXPECT_THAT(call(registry, "ecs.scale", "ecs/search", "plan",
                     {{"parameters", {{"desired_count", -1}}}}, PluginCallStatus::invalid)["error"]
                    .get<std::string>(),
                HasSubstr("parameters.desired_count"));
}

TEST_F(AwsProviderTest, EverySpellingOfOneServiceNamesOneResource) {
    ProviderRegistry registry(config(), registry_options());
    const json scale = {{"parameters", {{"desired_count", 6}}}};
    const json short_form = call(registry, "ecs.scale", "ecs/checkout", "plan", scale);
    const json long_form = call(registry, "ecs.scale", "ecs/prod/checkout", "plan", scale);
    EXPECT_EQ(short_form["resource"], "ecs:us-east-1:prod/checkout");
    EXPECT_EQ(long_form["resource"], short_form["resource"]);
    EXPECT_NE(call(registry, "ecs.scale", "ecs/search", "plan", scale)["resource"],
              short_form["resource"]);
    // AWS carries out an accepted request it could not answer: read back only after 60 s.
    EXPECT_EQ(short_form["settle_margin_ms"], 60000);
}

TEST_F(AwsProviderTest, WafRateLimitChangesOneRuleAndKeepsTheRestOfTheWebAcl) {
    ProviderRegistry registry(config(), registry_options());
    const json plan =
        call(registry, "waf.rate_limit", waf_target(), "plan", {{"parameters", {{"limit", 500}}}});
    EXPECT_EQ(plan["forward"], (json{{"present", true}, {"limit", 500}}));
    EXPECT_EQ(plan["inverse"], (json{{"present", true}, {"limit", 2000}}));
    EXPECT_DOUBLE_EQ(plan["blast_radius"]["resulting_fraction"].get<double>(), 0.25);
    EXPECT_THAT(plan["blast_radius"]["description"].get<std::string>(),
                HasSubstr("rate limit 2000 -> 500 requests per 300 s per IP"));

    call(registry, "waf.rate_limit", waf_target(), "apply", {{"plan", plan}});
    EXPECT_EQ(emulated_limit(), 500);
    const json acl = emulator.web_acl("REGIONAL", "edge", acl_id)["WebACL"];
    EXPECT_EQ(acl["Rules"][0], geo_rule);  // UpdateWebACL replaced the list: the other survived
    EXPECT_EQ(call(registry, "waf.rate_limit", waf_target(), "check", {{"plan", plan}})["applied"],
              true);
    call(registry, "waf.rate_limit", waf_target(), "revert", {{"plan", plan}});
    EXPECT_EQ(emulated_limit(), 2000);
    EXPECT_EQ(emulator.writes("UpdateWebACL"), 2);
}

TEST_F(AwsProviderTest, WafRateLimitAddsAMissingRuleAndItsRevertRemovesIt) {
    ProviderRegistry registry(config(), registry_options());
    const json plan = call(registry, "waf.rate_limit", waf_target("emergency"), "plan",
                           {{"parameters", {{"limit", 100}, {"evaluation_window_sec", 60}}}});
    EXPECT_EQ(plan["inverse"], (json{{"present", false}}));
    call(registry, "waf.rate_limit", waf_target("emergency"), "apply", {{"plan", plan}});
    EXPECT_EQ(emulated_limit("emergency"), 100);
    EXPECT_EQ(emulator.web_acl("REGIONAL", "edge", acl_id)["WebACL"]["Rules"].size(), 4u);
    call(registry, "waf.rate_limit", waf_target("emergency"), "revert", {{"plan", plan}});
    EXPECT_EQ(emulated_limit("emergency"), -1);
    EXPECT_EQ(emulator.web_acl("REGIONAL", "edge", acl_id)["WebACL"]["Rules"].size(), 3u);
}

TEST_F(AwsProviderTest, WafStaleLockTokenIsReadAgainAndRetriedWithoutClobberingTheOtherChange) {
    ProviderRegistry registry(config(), registry_options());
    const json plan =
        call(registry, "waf.rate_limit", waf_target(), "plan", {{"parameters", {{"limit", 300}}}});
    // Someone saves the web ACL (another rule) between mitigate's read and its write.
    emulator.before_next("UpdateWebACL",
                         [&] { emulator.set_rate_limit("REGIONAL", "edge", acl_id, "login", 50); });
    EXPECT_EQ(call(registry, "waf.rate_limit", waf_target(), "apply", {{"plan", plan}})["changed"],
              true);
    EXPECT_EQ(emulated_limit(), 300);
    EXPECT_EQ(emulated_limit("login"), 50);         // their change survived ours
    EXPECT_EQ(emulator.writes("UpdateWebACL"), 1);  // the stale attempt wrote nothing

    // This time the person changes the very rule: after the lock error the plugin sees a
    // state it did not plan from and stops.
    emulator.before_next("UpdateWebACL", [&] {
        emulator.set_rate_limit("REGIONAL", "edge", acl_id, "per-ip", 1000);
    });
    const json refused = call(registry, "waf.rate_limit", waf_target(), "revert", {{"plan", plan}},
                              PluginCallStatus::conflict);
    EXPECT_THAT(refused["error"].get<std::string>(), HasSubstr("changed since it was read"));
    EXPECT_EQ(emulated_limit(), 1000);
    EXPECT_EQ(emulator.writes("UpdateWebACL"), 1);
}

TEST_F(AwsProviderTest, AlbShiftMovesWeightByTargetGroupNameAndShiftsItBack) {
    ProviderRegistry registry(config(), registry_options());
    const std::string target = "alb/" + rule;
    const json plan = call(registry, "alb.shift", target, "plan",
                           {{"parameters", {{"weights", {{"green", 100}, {"blue", 0}}}}}});
    EXPECT_EQ(plan["forward"]["weights"], (json{{blue, 0}, {green, 100}}));
    EXPECT_EQ(plan["inverse"]["weights"], (json{{blue, 100}, {green, 0}}));
    EXPECT_DOUBLE_EQ(plan["blast_radius"]["ratio"].get<double>(), 1.0);
    call(registry, "alb.shift", target, "apply", {{"plan", plan}});
    EXPECT_EQ(emulator.weights(rule), (std::map<std::string, int>{{blue, 0}, {green, 100}}));
    EXPECT_EQ(call(registry, "alb.shift", target, "check", {{"plan", plan}})["applied"], true);
    call(registry, "alb.shift", target, "revert", {{"plan", plan}});
    EXPECT_EQ(emulator.weights(rule), (std::map<std::string, int>{{blue, 100}, {green, 0}}));

    // A listener's default action, by ARN; a canary of 10% on green.
    const std::string default_target = "alb/" + listener;
    EXPECT_THAT(
        call(registry, "alb.shift", default_target, "plan",
             {{"parameters", {{"weights", {{"green", 10}}}}}}, PluginCallStatus::invalid)["error"]
            .get<std::string>(),
        HasSubstr("not a target group of"));
    EXPECT_THAT(call(registry, "alb.shift", "alb/arn:aws:s3:::bucket", "read", {},
                     PluginCallStatus::invalid)["error"]
                    .get<std::string>(),
                HasSubstr("listener or listener-rule ARN"));
    const json canary = call(registry, "alb.shift", default_target, "plan",
                             {{"parameters", {{"weights", {{blue, 9}}}}}});
    call(registry, "alb.shift", default_target, "apply", {{"plan", canary}});
    EXPECT_EQ(emulator.weights(listener), (std::map<std::string, int>{{blue, 9}}));
    EXPECT_EQ(emulator.writes("ModifyListener"), 1);
}

TEST_F(AwsProviderTest, ThrottlingAndUnavailableAnswersAreRetriedAndTheWriteHappensOnce) {
    ProviderRegistry registry(config(), registry_options());
    const json plan = call(registry, "ecs.scale", "ecs/checkout", "plan",
                           {{"parameters", {{"desired_count", 5}}}});
    emulator.faults().add({"DescribeServices", Fault::Kind::error, 503, {}, 1, 2});
    emulator.faults().add({"UpdateService", Fault::Kind::rate_limit, 429, {}, 1, 1});
    EXPECT_EQ(call(registry, "ecs.scale", "ecs/checkout", "apply", {{"plan", plan}})["changed"],
              true);
    EXPECT_EQ(emulator.ecs_service("prod", "checkout")["desiredCount"], 5);
    EXPECT_EQ(emulator.writes("UpdateService"), 1);
    EXPECT_EQ(emulator.faults().injected(), 3);
}

TEST_F(AwsProviderTest, ASlowAnswerWithinTheDeadlineIsWaitedForNotRetried) {
    ProviderRegistry registry(config(), registry_options());
    emulator.faults().add(
        {"DescribeServices", Fault::Kind::latency, 500, std::chrono::milliseconds(300), 1, 1});
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(call(registry, "ecs.scale", "ecs/checkout", "read", {})["state"]["desired_count"], 3);
    EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(300));
    EXPECT_EQ(emulator.faults().injected(), 1);  // one request: the slow one was answered
}

TEST_F(AwsProviderTest, AWriteWhoseAnswerIsLostIsReadAgainNotRepeated) {
    ProviderRegistry registry(config(), registry_options());
    const json plan = call(registry, "ecs.scale", "ecs/checkout", "plan",
                           {{"parameters", {{"desired_count", 7}}}});
    emulator.faults().add({"UpdateService", Fault::Kind::drop_after_apply, 500, {}, 1, 1});
    EXPECT_EQ(call(registry, "ecs.scale", "ecs/checkout", "apply", {{"plan", plan}})["changed"],
              true);
    EXPECT_EQ(emulator.ecs_service("prod", "checkout")["desiredCount"], 7);
    EXPECT_EQ(emulator.writes("UpdateService"), 1);

    // The same for WAF and ELBv2 writes.
    const json limit =
        call(registry, "waf.rate_limit", waf_target(), "plan", {{"parameters", {{"limit", 400}}}});
    emulator.faults().add({"UpdateWebACL", Fault::Kind::drop_after_apply, 500, {}, 1, 1});
    call(registry, "waf.rate_limit", waf_target(), "apply", {{"plan", limit}});
    EXPECT_EQ(emulated_limit(), 400);
    EXPECT_EQ(emulator.writes("UpdateWebACL"), 1);
    const json shift = call(registry, "alb.shift", "alb/" + rule, "plan",
                            {{"parameters", {{"weights", {{"green", 50}}}}}});
    emulator.faults().add({"ModifyRule", Fault::Kind::drop_after_apply, 500, {}, 1, 1});
    call(registry, "alb.shift", "alb/" + rule, "apply", {{"plan", shift}});
    EXPECT_EQ(emulator.writes("ModifyRule"), 1);
}

TEST_F(AwsProviderTest, PersistentFailuresAndTimeoutsFailCleanlyWithNothingChanged) {
    ProviderRegistry registry(config(), registry_options());
    const json plan =
        call(registry, "waf.rate_limit", waf_target(), "plan", {{"parameters", {{"limit", 250}}}});
    emulator.faults().add({"UpdateWebACL", Fault::Kind::error, 500, {}, 1, 20});
    const json failed = call(registry, "waf.rate_limit", waf_target(), "apply", {{"plan", plan}},
                             PluginCallStatus::unavailable);
    EXPECT_THAT(failed["error"].get<std::string>(), HasSubstr("ServiceUnavailable"));
    EXPECT_EQ(emulated_limit(), 2000);
    emulator.faults().clear();

    // A provider that holds the request past the deadline: the call gives up in time.
    ProviderRegistry impatient(config("MITIGATE_TEST_AWS_SECRET", 600), registry_options());
    const json scale = call(impatient, "ecs.scale", "ecs/checkout", "plan",
                            {{"parameters", {{"desired_count", 2}}}});
    emulator.faults().add(
        {"UpdateService", Fault::Kind::timeout, 500, std::chrono::milliseconds(1500), 1, 1});
    const json timed_out = call(impatient, "ecs.scale", "ecs/checkout", "apply", {{"plan", scale}},
                                PluginCallStatus::unavailable);
    EXPECT_THAT(timed_out["error"].get<std::string>(), HasSubstr("deadline of 600 ms"));
    EXPECT_EQ(emulator.ecs_service("prod", "checkout")["desiredCount"], 3);
    EXPECT_EQ(emulator.writes("UpdateService"), 0);
}

TEST_F(AwsProviderTest, FaultsCanBeSetOverHttpAsADrillOrAPersonWould) {
    const std::string faults = emulator.url() + "/_emulator/faults";
    const HttpClientResponse added = http_request(
        {"POST", faults, {}, R"({"operation": "UpdateService", "kind": "error", "status": 503})"});
    EXPECT_EQ(added.status, 201) << added.body;
    const HttpClientResponse listed = http_request({"GET", faults, {}, ""});
    EXPECT_EQ(json::parse(listed.body)["faults"][0]["status"], 503);
    const HttpClientResponse refused =
        http_request({"POST", faults, {}, R"({"kind": "boom", "colour": 1})"});
    EXPECT_EQ(refused.status, 400);
    EXPECT_THAT(refused.body, HasSubstr("fault.colour: unknown field"));

    ProviderRegistry registry(config(), registry_options());
    const json plan = call(registry, "ecs.scale", "ecs/checkout", "plan",
                           {{"parameters", {{"desired_count", 5}}}});
    call(registry, "ecs.scale", "ecs/checkout", "apply", {{"plan", plan}});  // 503, then retried
    EXPECT_EQ(json::parse(http_request({"GET", faults, {}, ""}).body)["injected"], 1);
    EXPECT_EQ(http_request({"DELETE", faults, {}, ""}).status, 200);
    EXPECT_EQ(emulator.writes("UpdateService"), 1);
}

TEST_F(AwsProviderTest, AWrongSecretIsRefusedByTheSignatureCheckAndNeverEchoed) {
    setenv("MITIGATE_TEST_AWS_WRONG_SECRET", "not-the-secret-EXAMPLEKEY-9f8e7d", 1);
    ProviderRegistry registry(config("MITIGATE_TEST_AWS_WRONG_SECRET"), registry_options());
    const PluginCallResult result = raw(registry, "ecs.scale", "ecs/search", "read", {});
    EXPECT_EQ(result.status, PluginCallStatus::provider);
    EXPECT_THAT(result.error, HasSubstr("InvalidSignatureException"));
    EXPECT_THAT(result.error, Not(HasSubstr("not-the-secret")));
    EXPECT_THAT(result.error, Not(HasSubstr(secret_key)));
}

}  // namespace
}  // namespace mitigate
