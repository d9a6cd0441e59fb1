// A change made of several writes (an ECS scale with Auto Scaling: the range, then the
// count) is applied step by step, each journaled before it is sent. When a step does not
// land, the steps before it are undone in reverse order and the mitigation says what is
// true: failed (nothing changed), reverted (undone), or conflict naming what is left. A
// revert that stopped half way is finished by the next attempt, never blamed on a person.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/engine_with_fake_providers.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using testing::FakeFault;
using ::testing::HasSubstr;

class PlanSteps : public EngineWithFakeProviders {
  protected:
    PlanSteps() { providers.set_fields("fast", "svc", {{"range", 2}, {"count", 4}}); }

    std::string scale(int to) {
        ProposalRequest request;
        request.action = {"fast",
                          "scale",
                          "svc",
                          {{"order", {"range", "count"}}, {"range", to}, {"count", to}},
                          std::chrono::minutes(30),
                          "test"};
        request.proposed_by = "alice";
        request.environment = "dev";
        const RequestResult result = engine->propose(request);
        EXPECT_EQ(result.status, RequestStatus::done) << result.message;
        return result.mitigation ? result.mitigation->id : "";
    }

    json live() { return providers.fields("fast", "svc"); }

    std::vector<std::string> reasons(const std::string& id) {
        std::vector<std::string> all;
        for (const JournalEntry& entry : store->journal(id)) {
            all.push_back(entry.reason);
        }
        return all;
    }
};

TEST_F(PlanSteps, EachStepIsJournaledBeforeItIsSentAndTheRevertGoesInReverseOrder) {
    const std::string id = scale(8);
    settle();
    EXPECT_EQ(state_of(id), State::active);
    EXPECT_EQ(live(), json({{"range", 8}, {"count", 8}}));
    const auto journal = reasons(id);
    EXPECT_THAT(journal, ::testing::Contains(HasSubstr("applying step 1 of 2 (range)")));
    EXPECT_THAT(journal, ::testing::Contains(HasSubstr("applying step 2 of 2 (count)")));
    EXPECT_THAT(journal, ::testing::Contains(HasSubstr("applied (2 steps)")));
    EXPECT_EQ(store->find_mitigation(id)->steps_started, 2);

    ASSERT_EQ(engine->revert(id, "carol", "done").status, RequestStatus::accepted);
    settle();
    EXPECT_EQ(state_of(id), State::reverted);
    EXPECT_EQ(live(), json({{"range", 2}, {"count", 4}}));
    EXPECT_THAT(providers.write_log(),
                ElementsAre("apply svc {\"range\":8}", "apply svc {\"count\":8}",
                            "revert svc {\"count\":4}", "revert svc {\"range\":2}"));
}

TEST_F(PlanSteps, ASecondStepRefusedUndoesTheFirstAndEndsRevertedNotFailed) {
    providers.fail("apply", "svc", FakeFault::provider, 1, /*after=*/1);
    const std::string id = scale(8);
    settle();
    const Mitigation ended = *store->find_mitigation(id);
    EXPECT_EQ(ended.state, State::reverted);  // it had an effect, and that was undone
    EXPECT_TRUE(ended.failed_at);             // the circuit breaker counts it
    EXPECT_EQ(live(), json({{"range", 2}, {"count", 4}}));
    EXPECT_THAT(reasons(id), ::testing::Contains(::testing::AllOf(
                                 HasSubstr("apply step 2 of 2 (count) refused"),
                                 HasSubstr("undoing what the steps before it applied: range"))));
    EXPECT_EQ(metrics->value("mitigate_reverts_total", {{"cause", "partial_apply"}}), 1);
}

TEST_F(PlanSteps, AFirstStepRefusedEndsFailedWithNothingChanged) {
    providers.fail("apply", "svc", FakeFault::provider, 1);
    const std::string id = scale(8);
    settle();
    EXPECT_EQ(state_of(id), State::failed);
    EXPECT_THAT(store->journal(id).back().reason, HasSubstr("nothing changed"));
    EXPECT_EQ(live(), json({{"range", 2}, {"count", 4}}));
    EXPECT_THAT(providers.write_log(), ::testing::IsEmpty());
}

TEST_F(PlanSteps, ASecondStepWhoseAnswerWasLostIsSettledThenUndoneIfItNeverLanded) {
    providers.set_settle_margin(std::chrono::seconds(10));
    providers.fail("apply", "svc", FakeFault::late_write, 1, /*after=*/1);
    const std::string id = scale(8);
    settle();
    EXPECT_EQ(state_of(id), State::applying);
    EXPECT_EQ(providers.calls("check", "svc"), 0);
    clock.advance(std::chrono::seconds(10));
    settle();
    EXPECT_EQ(state_of(id), State::reverted);
    EXPECT_EQ(live(), json({{"range", 2}, {"count", 4}}));
    EXPECT_THAT(reasons(id), ::testing::Contains(HasSubstr("its answer was lost")));
}

TEST_F(PlanSteps, ASecondStepWhoseAnswerWasLostButLandedGoesOn) {
    providers.set_settle_margin(std::chrono::seconds(10));
    providers.fail("apply", "svc", FakeFault::late_write, 1, /*after=*/1);
    const std::string id = scale(8);
    settle();
    clock.advance(std::chrono::seconds(5));
    providers.land_late();
    clock.advance(std::chrono::seconds(5));
    settle();
    EXPECT_EQ(state_of(id), State::active);
    EXPECT_EQ(live(), json({{"range", 8}, {"count", 8}}));
    EXPECT_EQ(providers.calls("apply", "svc"), 2);  // one per step, none twice
}

TEST_F(PlanSteps, AfterARestartBetweenStepsTheJournaledStepIsSentOnce) {
    // Step 2 journaled, then the plugin cannot be called; the process dies.
    providers.fail("apply", "svc", FakeFault::not_called, -1, /*after=*/1);
    const std::string id = scale(8);
    settle();
    ASSERT_EQ(state_of(id), State::applying);
    ASSERT_EQ(store->find_mitigation(id)->steps_started, 2);
    providers.clear_faults();
    start(2);
    settle();
    EXPECT_EQ(state_of(id), State::active);
    EXPECT_EQ(live(), json({{"range", 8}, {"count", 8}}));
    EXPECT_THAT(providers.write_log(),
                ElementsAre("apply svc {\"range\":8}", "apply svc {\"count\":8}"));
    // Step 1 once, step 2 not called before the restart, then once: step 1 never again.
    EXPECT_EQ(providers.calls("apply", "svc"), 3);
}

TEST_F(PlanSteps, AnApplyStepRefusesWhenALaterStepsFieldChangedSinceThePlan) {
    // Someone scales the count between the plan and the apply: the range step refuses
    // (the count is a precondition of it), nothing is written, as a single write would.
    providers.fail("apply", "svc", FakeFault::hold, 1);
    const std::string id = scale(8);
    ASSERT_TRUE(eventually([&] { return providers.hanging() == 1; }));
    providers.set_fields("fast", "svc", {{"range", 2}, {"count", 6}});
    providers.release();
    settle();
    EXPECT_EQ(state_of(id), State::failed);
    EXPECT_EQ(live(), json({{"range", 2}, {"count", 6}}));
    EXPECT_THAT(providers.write_log(), ::testing::IsEmpty());
}

TEST_F(PlanSteps, ASecondStepSomeoneElseChangedIsLeftAsFoundAndTheFirstIsStillUndone) {
    // Step 2 finds the count at a third value (a person scaled it): it is refused, the
    // range mitigate wrote is put back, and the person's count is not touched.
    providers.fail("apply", "svc", FakeFault::hold, 1, /*after=*/1);
    const std::string id = scale(8);
    ASSERT_TRUE(eventually([&] { return providers.hanging() == 1; }));
    providers.set_fields("fast", "svc", {{"range", 8}, {"count", 6}});
    providers.release();
    settle();
    EXPECT_EQ(state_of(id), State::reverted);
    EXPECT_EQ(live(), json({{"range", 2}, {"count", 6}}));
    EXPECT_THAT(store->journal(id).back().reason,
                HasSubstr("count was left as found (mitigate never wrote it)"));
}

TEST_F(PlanSteps, AfterARestartAStepThatLandedIsNotSentAgain) {
    // Step 2 lands, its answer is lost, and it cannot be read back before the process dies.
    providers.fail("apply", "svc", FakeFault::lost_answer, 1, /*after=*/1);
    providers.fail("check", "svc", FakeFault::unavailable);
    const std::string id = scale(8);
    settle();
    ASSERT_EQ(state_of(id), State::applying);
    providers.clear_faults();
    start(2);
    settle();
    EXPECT_EQ(state_of(id), State::active);
    EXPECT_EQ(providers.calls("apply", "svc"), 2);  // one per step, none twice
    EXPECT_THAT(providers.write_log(),
                ElementsAre("apply svc {\"range\":8}", "apply svc {\"count\":8}"));
}

TEST_F(PlanSteps, ARevertThatStoppedHalfWayIsFinishedNotRaisedAsAConflict) {
    const std::string id = scale(8);
    settle();
    // The count goes back, then the range write fails: mitigate's own half-state.
    providers.fail("revert", "svc", FakeFault::unavailable, 1, /*after=*/1);
    ASSERT_EQ(engine->revert(id, "carol", "done").status, RequestStatus::accepted);
    settle();
    EXPECT_EQ(state_of(id), State::reverting);
    EXPECT_EQ(live(), json({{"range", 8}, {"count", 4}}));
    clock.advance(std::chrono::seconds(1));
    settle();
    EXPECT_EQ(state_of(id), State::reverted);
    EXPECT_EQ(live(), json({{"range", 2}, {"count", 4}}));
}

TEST_F(PlanSteps, APersonsChangeToOneStepIsAConflictThatNamesWhatIsLeft) {
    const std::string id = scale(8);
    settle();
    providers.set_fields("fast", "svc", {{"range", 5}, {"count", 8}});  // someone moved the range
    ASSERT_EQ(engine->revert(id, "carol", "done").status, RequestStatus::accepted);
    settle();
    EXPECT_EQ(state_of(id), State::conflict);
    EXPECT_EQ(live(), json({{"range", 5}, {"count", 4}}));  // the count was reverted
    EXPECT_THAT(
        store->journal(id).back().reason,
        ::testing::AllOf(HasSubstr("step 1 of 2 (range)"), HasSubstr("still in place: range")));
}

}  // namespace
}  // namespace mitigate
