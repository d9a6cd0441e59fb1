// The vercel provider as the runtime runs it (vercel.so in a confined plugin host, the
// token added by the egress broker) against the Vercel emulator: rollback and promote
// cycles, the asynchronous rollback job, and faults.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "plugins/emulators/vercel_emulator.h"
#include "runtime/providers/provider_registry.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

const char* const token = "vercel-test-token-not-a-secret";

class VercelProviderTest : public ::testing::Test {
  protected:
    VercelProviderTest() : emulator(VercelEmulatorOptions{token}) {
        setenv("MITIGATE_TEST_VERCEL_TOKEN", token, 1);
        emulator.add_project("prj_web", "web");
        emulator.add_deployment("prj_web", "dpl_old41", true, 3600);
        emulator.add_deployment("prj_web", "dpl_broken7", false, 2000);
        emulator.add_deployment("prj_web", "dpl_new42", true, 1200);
    }

    Config config(const std::string& token_variable = "MITIGATE_TEST_VERCEL_TOKEN") const {
        Config result;
        result.source = "test";
        ProviderConfig vercel;
        vercel.name = "vercel";
        vercel.plugin = "vercel";
        vercel.egress.allow_hosts = {emulator.url().substr(std::string("http://").size())};
        vercel.egress.allow_loopback = true;
        CredentialProfile profile;
        profile.name = "token";
        profile.kind = CredentialKind::bearer;
        profile.secrets.emplace("token", *SecretReference::parse("env:" + token_variable));
        profile.origins = {testing::origin_of(emulator.url())};
        vercel.credentials.push_back(profile);
        vercel.settings = {{"url", emulator.url()},
                           {"credential", "token"},
                           {"team_id", "team_mitigate"},
                           {"poll_interval_ms", 5},
                           {"retry", {{"base_delay_ms", 5}, {"max_delay_ms", 20}}}};
        result.providers.push_back(vercel);
        return result;
    }

    static RegistryOptions registry_options() {
        RegistryOptions options;
        options.executable = testing::mitigate_binary();
        return options;
    }

    json call(ProviderRegistry& registry, const std::string& action, const std::string& operation,
              const json& extra, PluginCallStatus expected = PluginCallStatus::ok) {
        json request{{"operation", operation}, {"action", action}, {"target", "web"}};
        if (extra.is_object()) {
            request.update(extra);
        }
        const PluginCallResult result = registry.call("vercel", request);
        EXPECT_EQ(result.status, expected) << operation << ": " << result.error;
        return result.ok() ? result.response : json{{"error", result.error}};
    }

    VercelEmulator emulator;
};

TEST_F(VercelProviderTest, RollbackFollowsTheJobAndItsRevertPromotesTheDeploymentBefore) {
    ProviderRegistry registry(config(), registry_options());
    const json state = call(registry, "", "state", {})["state"];
    EXPECT_EQ(state["production"]["uid"], "dpl_new42");
    EXPECT_NEAR(state["seconds_since_production_deploy"].get<double>(), 1200, 30);
    ASSERT_EQ(state["candidates"].size(), 2u);  // READY only, newest first
    EXPECT_EQ(state["candidates"][1]["uid"], "dpl_old41");

    const json plan = call(registry, "rollback", "plan", {{"parameters", json::object()}});
    EXPECT_EQ(plan["forward"], (json{{"production", "dpl_old41"}}));
    EXPECT_EQ(plan["inverse"], (json{{"production", "dpl_new42"}}));
    EXPECT_EQ(plan["blast_radius"]["ratio"], 1.0);
    // The project by name ("web") or by id is one resource, named with no second request.
    EXPECT_EQ(plan["resource"], "vercel:team_mitigate/prj_web");
    EXPECT_EQ(plan["settle_margin_ms"], 180000);  // a job Vercel finishes after answering
    {
        const PluginCallResult other =
            registry.call("vercel", {{"operation", "plan"},
                                     {"action", "promote"},
                                     {"target", "prj_web"},
                                     {"parameters", {{"deployment", "dpl_old41"}}}});
        ASSERT_TRUE(other.ok()) << other.error;
        EXPECT_EQ(other.response["resource"], plan["resource"]);
    }

    EXPECT_EQ(call(registry, "rollback", "apply", {{"plan", plan}})["changed"], true);
    EXPECT_EQ(emulator.production("prj_web"), "dpl_old41");
    EXPECT_EQ(emulator.last_rollback("prj_web")["jobStatus"], "succeeded");
    EXPECT_EQ(emulator.rollbacks_requested(), 1);
    EXPECT_EQ(call(registry, "rollback", "check", {{"plan", plan}})["applied"], true);

    EXPECT_EQ(call(registry, "rollback", "revert", {{"plan", plan}})["changed"], true);
    EXPECT_EQ(emulator.production("prj_web"), "dpl_new42");
    EXPECT_EQ(emulator.promotions_requested(), 1);
    EXPECT_EQ(emulator.rollbacks_requested(), 1);
}

TEST_F(VercelProviderTest, PromoteAndStaleOrPointlessProposalsAreRefused) {
    ProviderRegistry registry(config(), registry_options());
    const json stale =
        call(registry, "rollback", "plan",
             {{"parameters", {{"to_deployment", "dpl_old41"}, {"from_deployment", "dpl_other9"}}}},
             PluginCallStatus::conflict);
    EXPECT_THAT(stale["error"].get<std::string>(),
                HasSubstr("production is dpl_new42, not dpl_other9"));
    EXPECT_THAT(call(registry, "promote", "plan", {{"parameters", {{"deployment", "dpl_new42"}}}},
                     PluginCallStatus::invalid)["error"]
                    .get<std::string>(),
                HasSubstr("already production"));

    const json promote =
        call(registry, "promote", "plan", {{"parameters", {{"deployment", "dpl_old41"}}}});
    call(registry, "promote", "apply", {{"plan", promote}});
    EXPECT_EQ(emulator.production("prj_web"), "dpl_old41");
    // Someone promotes the new one again by hand: the revert must not touch it.
    emulator.promote_now("prj_web", "dpl_new42");
    emulator.add_deployment("prj_web", "dpl_newest43", true, 10);
    emulator.promote_now("prj_web", "dpl_newest43");
    const json refused =
        call(registry, "promote", "revert", {{"plan", promote}}, PluginCallStatus::conflict);
    EXPECT_THAT(refused["error"].get<std::string>(), HasSubstr("changed since mitigate set it"));
    EXPECT_EQ(emulator.production("prj_web"), "dpl_newest43");
}

TEST_F(VercelProviderTest, AFailedRollbackJobFailsTheApplyWithProductionUnchanged) {
    ProviderRegistry registry(config(), registry_options());
    const json plan = call(registry, "rollback", "plan", {{"parameters", json::object()}});
    emulator.fail_next_rollback();
    const json failed =
        call(registry, "rollback", "apply", {{"plan", plan}}, PluginCallStatus::provider);
    EXPECT_THAT(failed["error"].get<std::string>(),
                HasSubstr("rollback job to dpl_old41 ended failed; production is still dpl_new42"));
    EXPECT_EQ(emulator.production("prj_web"), "dpl_new42");
    EXPECT_EQ(call(registry, "rollback", "check", {{"plan", plan}})["applied"], false);
}

TEST_F(VercelProviderTest, ALostAnswerDoesNotStartASecondJobAndRateLimitsAreWaitedOut) {
    ProviderRegistry registry(config(), registry_options());
    const json plan = call(registry, "rollback", "plan", {{"parameters", json::object()}});
    emulator.faults().add({"rollback", Fault::Kind::drop_after_apply, 500, {}, 1, 1});
    emulator.faults().add({"get_project", Fault::Kind::rate_limit, 429, {}, 1, 1});
    EXPECT_EQ(call(registry, "rollback", "apply", {{"plan", plan}})["changed"], true);
    EXPECT_EQ(emulator.production("prj_web"), "dpl_old41");
    EXPECT_EQ(emulator.rollbacks_requested(), 1);
    EXPECT_EQ(emulator.faults().injected(), 2);
}

TEST_F(VercelProviderTest, AWrongTokenIsForbiddenAndNeverEchoed) {
    setenv("MITIGATE_TEST_VERCEL_WRONG", "wrong-vercel-token-EXAMPLE", 1);
    ProviderRegistry registry(config("MITIGATE_TEST_VERCEL_WRONG"), registry_options());
    const json refused = call(registry, "rollback", "read", {}, PluginCallStatus::provider);
    EXPECT_THAT(refused["error"].get<std::string>(), HasSubstr("Vercel forbidden: Not authorized"));
    EXPECT_THAT(refused["error"].get<std::string>(), Not(HasSubstr("wrong-vercel-token")));
}

}  // namespace
}  // namespace mitigate
