// One change at a time per resource, whatever the action or the spelling of the target:
// the provider names the resource in its plan, and a proposal whose plan finds it taken
// drops that plan and waits, as proposed, until the resource is free; then it plans
// afresh (from the state the other one left, never from the other one's change).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/engine_with_fake_providers.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

class OneChangePerResource : public EngineWithFakeProviders {
  protected:
    OneChangePerResource() {
        // "checkout" and "default/checkout" are one service, as ecs/checkout and
        // ecs/default/checkout are.
        providers.set("fast", "checkout", "on");
        providers.alias("fast", "default/checkout", "checkout");
    }

    std::string propose_action(const std::string& action, const std::string& target,
                               const json& value) {
        ProposalRequest request;
        request.action = {"fast", action, target, {{"value", value}}, std::chrono::minutes(30),
                          "test"};
        request.proposed_by = "alice";
        request.environment = "dev";
        const RequestResult result = engine->propose(request);
        EXPECT_EQ(result.status, RequestStatus::done) << result.message;
        return result.mitigation ? result.mitigation->id : "";
    }
};

TEST_F(OneChangePerResource, TwoSpellingsOfOneServiceAreChangedOneAfterTheOther) {
    const std::string first = propose_action("set", "checkout", "off");
    settle();
    ASSERT_EQ(state_of(first), State::active);
    const std::string second = propose_action("set", "default/checkout", "half");
    settle();
    EXPECT_EQ(state_of(second), State::proposed);
    EXPECT_EQ(providers.value("fast", "checkout"), "off");
    EXPECT_EQ(providers.writes("checkout"), 1);
    EXPECT_EQ(audited("mitigation.waiting", second), 1);
    EXPECT_FALSE(store->find_mitigation(second)->plan);  // the plan read "off": dropped

    // Nothing else happens while the first holds it: no more plans, no more records.
    clock.advance(std::chrono::minutes(5));
    settle();
    EXPECT_EQ(state_of(second), State::proposed);
    EXPECT_EQ(providers.calls("plan", "default/checkout"), 1);
    EXPECT_EQ(audited("mitigation.waiting", second), 1);

    // The first ends: the second plans from the state the revert left, and runs.
    ASSERT_EQ(engine->revert(first, "carol", "done").status, RequestStatus::accepted);
    settle();
    EXPECT_EQ(state_of(first), State::reverted);
    const Mitigation after = *store->find_mitigation(second);
    EXPECT_EQ(after.state, State::active);
    ASSERT_TRUE(after.plan);
    EXPECT_EQ(after.plan->inverse, json({{"value", "on"}}));
    EXPECT_EQ(providers.value("fast", "checkout"), "half");
    ASSERT_EQ(engine->revert(second, "carol", "done").status, RequestStatus::accepted);
    settle();
    EXPECT_EQ(providers.value("fast", "checkout"), "on");  // not the first one's "off"
}

TEST_F(OneChangePerResource, TwoActionsOnOneResourceAreChangedOneAfterTheOther) {
    // flag.set and flag.kill_switch on one flag: different actions, one resource.
    const std::string set = propose_action("set", "checkout", "half");
    const std::string kill = propose_action("kill_switch", "checkout", "off");
    settle();
    EXPECT_EQ(state_of(set), State::active);
    EXPECT_EQ(state_of(kill), State::proposed);
    EXPECT_EQ(providers.writes("checkout"), 1);
    clock.advance(std::chrono::minutes(30));  // the first one's TTL
    settle();
    EXPECT_EQ(state_of(set), State::reverted);
    EXPECT_EQ(state_of(kill), State::active);
    EXPECT_EQ(store->find_mitigation(kill)->plan->inverse, json({{"value", "on"}}));
}

TEST_F(OneChangePerResource, AWaitingProposalPlansAgainAfterARestartAndStillWaits) {
    const std::string first = propose_action("set", "checkout", "off");
    const std::string second = propose_action("set", "default/checkout", "half");
    settle();
    ASSERT_EQ(state_of(second), State::proposed);
    start(2);  // what it waited for is not on disk; its next plan finds out again
    settle();
    EXPECT_EQ(state_of(second), State::proposed);
    EXPECT_EQ(providers.writes("checkout"), 1);
    ASSERT_EQ(engine->revert(first, "carol", "done").status, RequestStatus::accepted);
    settle();
    EXPECT_EQ(state_of(second), State::active);
}

TEST_F(OneChangePerResource, APendingApprovalHoldsItsResource) {
    // Planned and waiting for people: the state it planned from must stay what it read.
    const std::string first = [&] {
        ProposalRequest request;
        request.action = {"fast", "set", "checkout", {{"value", "off"}}, std::chrono::minutes(30),
                          "test"};
        request.proposed_by = "alice";
        request.environment = "stage";
        return engine->propose(request).mitigation->id;
    }();
    settle();
    ASSERT_EQ(state_of(first), State::pending_approval);
    const std::string second = propose_action("set", "default/checkout", "half");
    settle();
    EXPECT_EQ(state_of(second), State::proposed);
    EXPECT_EQ(providers.writes("checkout"), 0);
    ApprovalRequest rejection;
    rejection.mitigation_id = first;
    rejection.identity = "bob";
    rejection.groups = {"sre"};
    rejection.verdict = ApprovalVerdict::reject;
    const RequestResult rejected = engine->approve(rejection);
    ASSERT_EQ(rejected.status, RequestStatus::done) << rejected.message;
    settle();
    EXPECT_EQ(state_of(second), State::active);
}

TEST_F(OneChangePerResource, TheWaitingOneStartsAsSoonAsTheResourceIsFree) {
    const std::string first = propose_action("set", "checkout", "off");
    const std::string second = propose_action("set", "default/checkout", "half");
    settle();
    ASSERT_EQ(engine->revert(first, "carol", "done").status, RequestStatus::accepted);
    settle();  // no clock advance: it starts on the commit that freed the resource
    EXPECT_EQ(state_of(second), State::active);
    EXPECT_THAT(store->journal(second)[1].reason, HasSubstr("planned"));
}

}  // namespace
}  // namespace mitigate
