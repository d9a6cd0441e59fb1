// The flags provider as the runtime runs it: the shipped flags.so in a confined plugin
// host, reaching its backend only through the egress broker. flagd on a real file,
// LaunchDarkly against its emulator; Unleash (a real server) is in unleash_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "plugins/emulators/launchdarkly_emulator.h"
#include "runtime/providers/provider_registry.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

const char* const flag_file = R"({
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "flags": {
    "expensive-recommendations": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false, "degraded": "half"},
      "defaultVariant": "on",
      "targeting": {"if": [{"==": [{"var": "tier"}, "free"]}, "off", null]},
      "metadata": {"owner": "team-recs"}
    }
  },
  "$evaluators": {"shared": {"in": ["@example.com", {"var": "email"}]}}
}
)";

RegistryOptions registry_options() {
    RegistryOptions options;
    options.executable = testing::mitigate_binary();
    return options;
}

json call(ProviderRegistry& registry, const std::string& action, const std::string& operation,
          const json& extra, PluginCallStatus expected = PluginCallStatus::ok) {
    json request{
        {"operation", operation}, {"action", action}, {"target", "expensive-recommendations"}};
    request.update(extra);
    const PluginCallResult result = registry.call("flags", request);
    EXPECT_EQ(result.status, expected) << operation << ": " << result.error;
    return result.ok() ? result.response : json{{"error", result.error}};
}

class FlagdTest : public ::testing::Test {
  protected:
    FlagdTest() {
        path = directory.write("flags.json", flag_file);
        config.source = "test";
        config.directories.plugins = directory / "no-plugins-here";
        ProviderConfig flags;
        flags.name = "flags";
        flags.plugin = "flags";
        flags.egress.allow_files = {path};
        flags.settings = {{"backend", "flagd"}, {"path", path.string()}};
        config.providers.push_back(flags);
    }
    json document() const { return json::parse(testing::read_file(path)); }
    json flag() const { return document()["flags"]["expensive-recommendations"]; }

    testing::TemporaryDirectory directory;
    std::filesystem::path path;
    Config config;
};

TEST_F(FlagdTest, SetByVariantPlansAppliesChecksAndRevertsKeepingEveryOtherField) {
    ProviderRegistry registry(config, registry_options());
    const json plan = call(registry, "flag.set", "plan", {{"parameters", {{"variant", "off"}}}});
    EXPECT_EQ(plan["forward"], (json{{"defaultVariant", "off"}}));
    EXPECT_EQ(plan["inverse"], (json{{"defaultVariant", "on"}}));
    EXPECT_EQ(plan["blast_radius"]["ratio"], 1.0);
    EXPECT_EQ(plan["idempotency_key"].get<std::string>().size(), 64u);
    EXPECT_EQ(flag()["defaultVariant"], "on");  // planning changes nothing

    EXPECT_EQ(call(registry, "flag.set", "check", {{"plan", plan}})["applied"], false);
    EXPECT_EQ(call(registry, "flag.set", "apply", {{"plan", plan}}),
              (json{{"applied", true}, {"changed", true}}));
    EXPECT_EQ(flag()["defaultVariant"], "off");
    EXPECT_EQ(call(registry, "flag.set", "check", {{"plan", plan}})["applied"], true);
    // Unknown fields and other flags' data survive the rewrite.
    EXPECT_EQ(flag()["metadata"]["owner"], "team-recs");
    EXPECT_EQ(flag()["targeting"],
              json::parse(flag_file)["flags"]["expensive-recommendations"]["targeting"]);
    EXPECT_TRUE(document().contains("$evaluators"));

    EXPECT_EQ(call(registry, "flag.set", "revert", {{"plan", plan}}),
              (json{{"changed", true}, {"reverted", true}}));
    EXPECT_EQ(document(), json::parse(flag_file));
    EXPECT_EQ(call(registry, "flag.set", "revert", {{"plan", plan}})["changed"], false);
}

TEST_F(FlagdTest, SetByValueFindsTheVariantAndKillSwitchDisablesTheFlag) {
    ProviderRegistry registry(config, registry_options());
    const json by_value = call(registry, "flag.set", "plan", {{"parameters", {{"value", "half"}}}});
    EXPECT_EQ(by_value["forward"], (json{{"defaultVariant", "degraded"}}));

    const json kill = call(registry, "flag.kill_switch", "plan", {{"parameters", json::object()}});
    EXPECT_EQ(kill["forward"], (json{{"state", "DISABLED"}}));
    EXPECT_EQ(kill["inverse"], (json{{"state", "ENABLED"}}));
    call(registry, "flag.kill_switch", "apply", {{"plan", kill}});
    EXPECT_EQ(flag()["state"], "DISABLED");
    call(registry, "flag.kill_switch", "revert", {{"plan", kill}});
    EXPECT_EQ(flag()["state"], "ENABLED");
    // Two actions, one flag: one resource, so that the runtime never runs them at once.
    EXPECT_EQ(by_value["resource"], "flagd:" + path.string() + "#expensive-recommendations");
    EXPECT_EQ(kill["resource"], by_value["resource"]);
    // The file is replaced before the call returns: a lost answer leaves nothing in flight.
    EXPECT_EQ(kill["settle_margin_ms"], 0);
}

TEST_F(FlagdTest, BadParametersAndTargetsAreRefusedByName) {
    ProviderRegistry registry(config, registry_options());
    EXPECT_THAT(call(registry, "flag.set", "plan", {{"parameters", {{"variant", 3}}}},
                     PluginCallStatus::invalid)["error"]
                    .get<std::string>(),
                HasSubstr("parameters.variant: must be string"));
    EXPECT_THAT(call(registry, "flag.set", "plan", {{"parameters", {{"variant", "purple"}}}},
                     PluginCallStatus::invalid)["error"]
                    .get<std::string>(),
                HasSubstr("has no variant \"purple\""));
    EXPECT_THAT(call(registry, "flag.set", "plan", {{"parameters", {{"colour", "red"}}}},
                     PluginCallStatus::invalid)["error"]
                    .get<std::string>(),
                HasSubstr("parameters.colour: unknown field"));
    json request{{"operation", "read"}, {"action", "flag.set"}, {"target", "no-such-flag"}};
    const PluginCallResult missing = registry.call("flags", request);
    EXPECT_EQ(missing.status, PluginCallStatus::invalid);
    EXPECT_THAT(missing.error, HasSubstr("no flag \"no-such-flag\""));
    request["action"] = "flag.explode";
    EXPECT_THAT(registry.call("flags", request).error,
                HasSubstr("is not an action of this provider"));
}

TEST_F(FlagdTest, RevertRefusesToClobberAChangeSomeoneElseMade) {
    ProviderRegistry registry(config, registry_options());
    const json plan = call(registry, "flag.set", "plan", {{"parameters", {{"variant", "off"}}}});
    call(registry, "flag.set", "apply", {{"plan", plan}});
    // A person moves the flag on to a third variant while the mitigation is active.
    json edited = document();
    edited["flags"]["expensive-recommendations"]["defaultVariant"] = "degraded";
    std::ofstream(path) << edited.dump(2);
    const std::string before = testing::read_file(path);

    const json conflict =
        call(registry, "flag.set", "revert", {{"plan", plan}}, PluginCallStatus::conflict);
    EXPECT_THAT(conflict["error"].get<std::string>(), HasSubstr("changed since mitigate set it"));
    EXPECT_EQ(testing::read_file(path), before);  // nothing written
}

TEST_F(FlagdTest, AnApplyPlannedOnAStateThatHasSinceChangedIsRefused) {
    ProviderRegistry registry(config, registry_options());
    const json plan = call(registry, "flag.set", "plan", {{"parameters", {{"variant", "off"}}}});
    json edited = document();
    edited["flags"]["expensive-recommendations"]["defaultVariant"] = "degraded";
    std::ofstream(path) << edited.dump(2);
    const json conflict =
        call(registry, "flag.set", "apply", {{"plan", plan}}, PluginCallStatus::conflict);
    EXPECT_THAT(conflict["error"].get<std::string>(), HasSubstr("plan again"));
    EXPECT_EQ(flag()["defaultVariant"], "degraded");
}

TEST_F(FlagdTest, ACrashBetweenApplyAndJournalIsRecoveredByCheckWithoutASecondWrite) {
    json plan;
    {
        ProviderRegistry runtime(config, registry_options());
        plan = call(runtime, "flag.set", "plan", {{"parameters", {{"variant", "off"}}}});
        call(runtime, "flag.set", "apply", {{"plan", plan}});
        // The runtime dies here, before it journals "applied": its registry and plugin
        // process go away with it.
    }
    const auto written = std::filesystem::last_write_time(path);
    const std::string content = testing::read_file(path);
    ProviderRegistry restarted(config, registry_options());
    EXPECT_EQ(call(restarted, "flag.set", "check", {{"plan", plan}})["applied"], true);
    // Re-running the interrupted apply is a no-op, not a second change.
    EXPECT_EQ(call(restarted, "flag.set", "apply", {{"plan", plan}}),
              (json{{"applied", true}, {"changed", false}}));
    EXPECT_EQ(std::filesystem::last_write_time(path), written);
    EXPECT_EQ(testing::read_file(path), content);
    EXPECT_EQ(call(restarted, "flag.set", "revert", {{"plan", plan}})["changed"], true);
    EXPECT_EQ(flag()["defaultVariant"], "on");
}

TEST_F(FlagdTest, AFileOffTheEgressListIsUnreachable) {
    config.providers[0].egress.allow_files.clear();
    ProviderRegistry registry(config, registry_options());
    json request{
        {"operation", "read"}, {"action", "flag.set"}, {"target", "expensive-recommendations"}};
    const PluginCallResult result = registry.call("flags", request);
    EXPECT_EQ(result.status, PluginCallStatus::invalid);
    EXPECT_THAT(result.error, HasSubstr("not on providers.flags.egress.allow_files"));
}

class LaunchDarklyTest : public ::testing::Test {
  protected:
    LaunchDarklyTest() {
        setenv("MITIGATE_TEST_LD_TOKEN", "api-00000000-fake-fake-fake-000000000000", 1);
        emulator.add_boolean_flag("default", "expensive-recommendations", "production", true);
        config.source = "test";
        ProviderConfig flags;
        flags.name = "flags";
        flags.plugin = "flags";
        const std::string host = emulator.url().substr(std::string("http://").size());
        flags.egress.allow_hosts = {host};
        flags.egress.allow_loopback = true;
        CredentialProfile token;
        token.name = "launchdarkly";
        token.kind = CredentialKind::api_key;
        token.secrets.emplace("key", *SecretReference::parse("env:MITIGATE_TEST_LD_TOKEN"));
        token.settings = {{"header", "Authorization"}};
        token.origins = {testing::origin_of(emulator.url())};
        flags.credentials.push_back(token);
        flags.settings = {{"backend", "launchdarkly"},
                          {"url", emulator.url()},
                          {"project", "default"},
                          {"environment", "production"},
                          {"credential", "launchdarkly"}};
        config.providers.push_back(flags);
    }
    json environment() const {
        return emulator.flag("default", "expensive-recommendations")["environments"]["production"];
    }

    LaunchDarklyEmulator emulator{"api-00000000-fake-fake-fake-000000000000"};
    Config config;
};

TEST_F(LaunchDarklyTest, KillSwitchTurnsTargetingOffAndRevertTurnsItBackOn) {
    ProviderRegistry registry(config, registry_options());
    const json state = call(registry, "flag.kill_switch", "read", json::object());
    EXPECT_EQ(state["state"], (json{{"on", true}, {"fallthrough", "on"}}));
    const json plan = call(registry, "flag.kill_switch", "plan", {{"parameters", json::object()}});
    EXPECT_EQ(plan["forward"], (json{{"on", false}}));
    call(registry, "flag.kill_switch", "apply", {{"plan", plan}});
    EXPECT_EQ(environment()["on"], false);
    EXPECT_EQ(call(registry, "flag.kill_switch", "check", {{"plan", plan}})["applied"], true);
    EXPECT_EQ(call(registry, "flag.kill_switch", "apply", {{"plan", plan}})["changed"], false);
    EXPECT_EQ(emulator.patches(), 1);  // the second apply did not patch again
    call(registry, "flag.kill_switch", "revert", {{"plan", plan}});
    EXPECT_EQ(environment()["on"], true);
    EXPECT_EQ(emulator.patches(), 2);
    const json set = call(registry, "flag.set", "plan", {{"parameters", {{"variant", "off"}}}});
    EXPECT_EQ(set["resource"], plan["resource"]);
    EXPECT_THAT(plan["resource"].get<std::string>(),
                ::testing::StartsWith("launchdarkly:http://127.0.0.1:"));
    EXPECT_EQ(plan["settle_margin_ms"], 60000);  // an HTTP API may carry a write out late
}

TEST_F(LaunchDarklyTest, SetServesAnotherVariationThroughTheFallthrough) {
    ProviderRegistry registry(config, registry_options());
    const json plan = call(registry, "flag.set", "plan", {{"parameters", {{"variant", "off"}}}});
    EXPECT_EQ(plan["forward"], (json{{"fallthrough", "off"}}));
    call(registry, "flag.set", "apply", {{"plan", plan}});
    EXPECT_EQ(environment()["fallthrough"]["variation"], 1);
    EXPECT_EQ(environment()["on"], true);
    call(registry, "flag.set", "revert", {{"plan", plan}});
    EXPECT_EQ(environment()["fallthrough"]["variation"], 0);

    const json by_value = call(registry, "flag.set", "plan", {{"parameters", {{"value", false}}}});
    EXPECT_EQ(by_value["forward"], (json{{"on", false}}));
}

TEST_F(LaunchDarklyTest, AWrongTokenIsAProviderErrorThatNamesTheStatusNotTheToken) {
    setenv("MITIGATE_TEST_LD_TOKEN", "api-wrong-but-also-fake", 1);
    ProviderRegistry registry(config, registry_options());
    const json failed =
        call(registry, "flag.kill_switch", "read", json::object(), PluginCallStatus::provider);
    EXPECT_THAT(failed["error"].get<std::string>(), HasSubstr("HTTP 401"));
    EXPECT_THAT(failed["error"].get<std::string>(), ::testing::Not(HasSubstr("api-wrong")));
}

}  // namespace
}  // namespace mitigate
