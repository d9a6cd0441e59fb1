// The engine's provider steps with the real flags plugin on a flagd file and a real
// SQLite store: the whole cycle, TTL revert, revert conflict, a stale plan, and a crash at
// each point between a journal entry and its side effect, recovered by reconcile().
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "runtime/core/time_format.h"
#include "runtime/engine/mitigation_engine.h"
#include "runtime/providers/provider_registry.h"
#include "runtime/store/sqlite_store.h"
#include "tests/support/child_process.h"
#include "tests/support/store_fixtures.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class MitigationEngineTest : public ::testing::Test {
  protected:
    MitigationEngineTest() {
        flags = directory.write("flags.json", R"({"flags": {"checkout-m1": {"state": "ENABLED",
            "variants": {"on": true, "off": false, "half": 0.5}, "defaultVariant": "on"}}})");
        config.source = "test";
        ProviderConfig provider;
        provider.name = "flags";
        provider.plugin = "flags";
        provider.egress.allow_files = {flags};
        provider.settings = {{"backend", "flagd"}, {"path", flags.string()}};
        config.providers.push_back(provider);
        RegistryOptions options;
        options.executable = testing::mitigate_binary();
        registry = std::make_unique<ProviderRegistry>(config, options);
        store = open_sqlite_store(directory / "m.db");
        store->create_mitigation(testing::make_mitigation("m1", clock.now()), "playbook:test", "r");
        engine = std::make_unique<MitigationEngine>(*store, *registry, clock);
    }

    std::string variant() const {
        return json::parse(testing::read_file(flags))["flags"]["checkout-m1"]["defaultVariant"];
    }
    void set_variant(const std::string& value) const {
        json document = json::parse(testing::read_file(flags));
        document["flags"]["checkout-m1"]["defaultVariant"] = value;
        std::ofstream(flags) << document.dump(2);
    }
    Decision allow() const {
        Decision decision;
        decision.effect = DecisionEffect::allow;
        decision.summary = "allowed by test policy";
        decision.policy_hash = "test";
        decision.decided_at = clock.now();
        return decision;
    }
    // Approved, with a plan, as the engine leaves it before apply.
    void plan_and_approve() {
        ASSERT_TRUE(engine->plan("m1").ok);
        ASSERT_TRUE(engine->decide("m1", allow()).ok);
    }
    // What a runtime that died right after journaling `state` leaves in the store.
    void journal_only(MitigationState state) {
        Mitigation next = *store->find_mitigation("m1");
        const std::int64_t version = next.version;
        next.state = state;
        if (state == MitigationState::applying) {
            next.expires_at = clock.now() + std::chrono::minutes(30);
        }
        ASSERT_EQ(store->transition({next, version, clock.now(), "runtime", "crash test"}).outcome,
                  TransitionOutcome::done);
    }
    std::vector<std::string> journal_states() {
        std::vector<std::string> states;
        for (const auto& entry : store->journal("m1")) {
            states.emplace_back(to_string(entry.to));
        }
        return states;
    }

    testing::TemporaryDirectory directory;
    std::filesystem::path flags;
    Config config;
    ManualClock clock{*parse_rfc3339("2026-11-23T12:00:00Z")};
    std::unique_ptr<ProviderRegistry> registry;
    std::unique_ptr<Store> store;
    std::unique_ptr<MitigationEngine> engine;
};

TEST_F(MitigationEngineTest, PlansAppliesVerifiesAndRevertsAtItsTtl) {
    plan_and_approve();
    const EngineOutcome applied = engine->apply("m1");
    ASSERT_TRUE(applied.ok) << applied.message;
    EXPECT_EQ(applied.mitigation.state, MitigationState::active);
    EXPECT_EQ(variant(), "off");
    EXPECT_EQ(applied.mitigation.expires_at, clock.now() + std::chrono::minutes(30));

    clock.advance(std::chrono::minutes(29));
    EXPECT_TRUE(engine->revert_expired().empty());
    EXPECT_EQ(variant(), "off");
    clock.advance(std::chrono::minutes(1));
    const auto reverted = engine->revert_expired();
    ASSERT_EQ(reverted.size(), 1u);
    EXPECT_TRUE(reverted[0].ok) << reverted[0].message;
    EXPECT_EQ(reverted[0].mitigation.state, MitigationState::reverted);
    EXPECT_EQ(variant(), "on");
    // Every step was journaled, applying before the provider was touched.
    EXPECT_THAT(journal_states(), ElementsAre("proposed", "planned", "approved", "applying",
                                              "verifying", "active", "reverting", "reverted"));
    EXPECT_TRUE(store->verify_audit_chain().intact());
}

TEST_F(MitigationEngineTest, ARevertOverSomeoneElsesChangeBecomesAConflict) {
    plan_and_approve();
    ASSERT_TRUE(engine->apply("m1").ok);
    set_variant("half");  // a person moved the flag on while the mitigation was active
    const EngineOutcome outcome = engine->revert("m1", "alice", "incident resolved");
    EXPECT_EQ(outcome.mitigation.state, MitigationState::conflict);
    EXPECT_EQ(variant(), "half");
    EXPECT_THAT(store->journal("m1").back().reason, HasSubstr("a person must decide"));
}

TEST_F(MitigationEngineTest, AnApplyOnAStateThatChangedSinceThePlanFailsWithoutEffect) {
    plan_and_approve();
    set_variant("half");
    const EngineOutcome outcome = engine->apply("m1");
    EXPECT_EQ(outcome.mitigation.state, MitigationState::failed);
    EXPECT_THAT(store->journal("m1").back().reason, HasSubstr("apply refused (conflict)"));
    EXPECT_EQ(variant(), "half");
}

TEST_F(MitigationEngineTest, ACrashAfterJournalingApplyingIsFinishedByReconcile) {
    plan_and_approve();
    journal_only(MitigationState::applying);  // died before the provider was called
    EXPECT_EQ(variant(), "on");
    const auto outcomes = engine->reconcile();
    ASSERT_EQ(outcomes.size(), 1u);
    EXPECT_EQ(outcomes[0].mitigation.state, MitigationState::active) << outcomes[0].message;
    EXPECT_EQ(variant(), "off");
}

TEST_F(MitigationEngineTest, ACrashAfterTheProviderAppliedIsNotAppliedTwice) {
    plan_and_approve();
    journal_only(MitigationState::applying);
    const Mitigation applying = *store->find_mitigation("m1");
    // The provider call went through; the runtime died before journaling "verifying".
    ASSERT_TRUE(registry
                    ->call("flags", {{"operation", "apply"},
                                     {"action", "flag.set"},
                                     {"target", "checkout-m1"},
                                     {"plan", *applying.plan}})
                    .ok());
    const auto written = std::filesystem::last_write_time(flags);
    const auto outcomes = engine->reconcile();
    ASSERT_EQ(outcomes.size(), 1u);
    EXPECT_EQ(outcomes[0].mitigation.state, MitigationState::active) << outcomes[0].message;
    EXPECT_EQ(std::filesystem::last_write_time(flags), written);  // no second write
    EXPECT_THAT(store->journal("m1")[4].reason, HasSubstr("already applied"));
    // And it still reverts at the TTL fixed when applying was journaled.
    clock.advance(std::chrono::minutes(30));
    EXPECT_EQ(engine->revert_expired().at(0).mitigation.state, MitigationState::reverted);
    EXPECT_EQ(variant(), "on");
}

TEST_F(MitigationEngineTest, ACrashDuringRevertIsFinishedByReconcile) {
    plan_and_approve();
    ASSERT_TRUE(engine->apply("m1").ok);
    journal_only(MitigationState::reverting);  // died before the provider was called
    EXPECT_EQ(variant(), "off");
    const auto outcomes = engine->reconcile();
    ASSERT_EQ(outcomes.size(), 1u);
    EXPECT_EQ(outcomes[0].mitigation.state, MitigationState::reverted) << outcomes[0].message;
    EXPECT_EQ(variant(), "on");
    EXPECT_TRUE(engine->reconcile().empty());  // nothing left between two steps
}

TEST_F(MitigationEngineTest, APlanForAnUnknownTargetFailsTheMitigationWithTheReason) {
    store->create_mitigation(testing::make_mitigation("m2", clock.now()), "playbook:test", "r");
    const EngineOutcome outcome = engine->plan("m2");
    EXPECT_EQ(outcome.mitigation.state, MitigationState::failed);
    EXPECT_THAT(store->journal("m2").back().reason, HasSubstr("no flag \"checkout-m2\""));
    EXPECT_FALSE(engine->apply("m2").ok);
}

}  // namespace
}  // namespace mitigate
