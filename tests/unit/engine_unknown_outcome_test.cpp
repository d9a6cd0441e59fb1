// A write whose answer was lost is settled, never guessed: until the plan's settle margin
// after the call returned (or after a restart), nothing more is sent to the target and
// nothing read back is believed. The fake provider's late_write fault is a write the
// service accepted and carries out later, at land_late().
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/engine_with_fake_providers.h"

namespace mitigate {
namespace {

using testing::FakeFault;
using ::testing::HasSubstr;

class UnknownOutcomes : public EngineWithFakeProviders {
  protected:
    UnknownOutcomes() { providers.set_settle_margin(std::chrono::seconds(10)); }

    int calls(const std::string& operation) { return providers.calls(operation, "a"); }
};

TEST_F(UnknownOutcomes, ALostApplyIsReadBackOnlyOnceALateWriteCouldNoLongerLand) {
    providers.fail("apply", "a", FakeFault::late_write, 1);
    const std::string id = propose("fast", "a");
    settle();
    EXPECT_EQ(state_of(id), State::applying);
    EXPECT_EQ(calls("check"), 0);  // a read now would say "nothing changed"
    const auto retry = engine->retry_of(id);
    ASSERT_TRUE(retry);
    EXPECT_EQ(retry->next_attempt_at, clock.now() + std::chrono::seconds(10));
    EXPECT_THAT(retry->last_error, HasSubstr("nothing more is sent until it is read back"));

    clock.advance(std::chrono::seconds(5));
    settle();
    EXPECT_EQ(calls("check") + calls("apply"), 1);  // still only the lost apply
    providers.land_late();                          // the service carries it out now

    clock.advance(std::chrono::seconds(5));
    settle();
    EXPECT_EQ(state_of(id), State::active);
    EXPECT_EQ(calls("apply"), 1);  // never sent twice
    EXPECT_EQ(providers.writes("a"), 1);
    EXPECT_THAT(store->journal(id)[4].reason, HasSubstr("read back after its answer was lost"));
}

TEST_F(UnknownOutcomes, ALostApplyThatNeverLandsEndsFailedAfterItsMarginWithNoSecondWrite) {
    providers.fail("apply", "a", FakeFault::late_write, 1);
    const std::string id = propose("fast", "a");
    settle();
    clock.advance(std::chrono::seconds(9));
    settle();
    EXPECT_EQ(state_of(id), State::applying);
    clock.advance(std::chrono::seconds(1));
    settle();
    EXPECT_EQ(state_of(id), State::failed);
    EXPECT_THAT(store->journal(id).back().reason,
                HasSubstr("could no longer land, the provider shows nothing changed"));
    EXPECT_EQ(calls("apply"), 1);
    EXPECT_EQ(providers.value("fast", "a"), "on");
    // It counts as a failure of automation (the circuit breaker's history).
    EXPECT_TRUE(store->find_mitigation(id)->failed_at);
}

TEST_F(UnknownOutcomes, ALostRevertIsNotSentAgainBeforeItsMarginAndEndsReverted) {
    const std::string id = propose("fast", "a");
    settle();
    ASSERT_EQ(state_of(id), State::active);
    providers.fail("revert", "a", FakeFault::late_write, 1);
    engine->revert(id, "carol", "done");
    settle();
    EXPECT_EQ(state_of(id), State::reverting);
    EXPECT_EQ(calls("revert"), 1);
    // The usual retry (1 s) would send the revert again before the lost one lands.
    clock.advance(std::chrono::seconds(1));
    settle();
    EXPECT_EQ(calls("revert"), 1);
    clock.advance(std::chrono::seconds(4));
    providers.land_late();
    clock.advance(std::chrono::seconds(5));
    settle();
    EXPECT_EQ(state_of(id), State::reverted);
    EXPECT_EQ(calls("revert"), 2);        // the retry, after the margin, found it done
    EXPECT_EQ(providers.writes("a"), 2);  // the apply and the one revert
    EXPECT_THAT(store->journal(id).back().reason, HasSubstr("already reverted"));
}

TEST_F(UnknownOutcomes, AfterARestartAnApplyOfTheDeadProcessIsReadBackOnlyAfterTheMargin) {
    providers.fail("apply", "a", FakeFault::late_write, 1);
    const std::string id = propose("fast", "a");
    settle();
    ASSERT_EQ(state_of(id), State::applying);
    clock.advance(std::chrono::seconds(2));
    start(2);  // the process dies; its write is still on its way
    settle();
    EXPECT_EQ(calls("check"), 0);
    EXPECT_EQ(calls("apply"), 1);
    clock.advance(std::chrono::seconds(9));
    providers.land_late();
    settle();
    EXPECT_EQ(calls("check"), 0);  // 9 s after the restart: still within the margin
    clock.advance(std::chrono::seconds(1));
    settle();
    EXPECT_EQ(state_of(id), State::active);
    EXPECT_EQ(calls("apply"), 1);
    EXPECT_EQ(providers.writes("a"), 1);
    EXPECT_THAT(store->journal(id)[4].reason,
                HasSubstr("already applied (read back after a restart)"));
}

TEST_F(UnknownOutcomes, AfterARestartAnApplyThatNeverLandedIsSentOnceTheMarginPassed) {
    // The dead process journaled applying and may or may not have sent it: after the
    // margin the target shows it is not there, and nothing can be in flight, so it is sent.
    providers.fail("apply", "a", FakeFault::late_write, 1);
    const std::string id = propose("fast", "a");
    settle();
    start(2);
    clock.advance(std::chrono::seconds(10));
    settle();
    EXPECT_EQ(state_of(id), State::active);
    EXPECT_EQ(calls("apply"), 2);
    EXPECT_EQ(providers.writes("a"), 2);  // the lost one never lands (land_late not called)
}

TEST_F(UnknownOutcomes, AnApplyThatThrewIsReadBackAfterItsMarginAndSentAgain) {
    // An exception out of the call (a bug) says nothing of what was sent: a write may land
    // until the margin after it. Once that passed and the target shows nothing, it is sent.
    providers.fail("apply", "a", FakeFault::throw_error, 1);
    const std::string id = propose("fast", "a");
    settle();
    clock.advance(std::chrono::seconds(9));
    settle();
    EXPECT_EQ(calls("check") + calls("apply"), 1);
    clock.advance(std::chrono::seconds(1));
    settle();
    EXPECT_EQ(state_of(id), State::active);
    EXPECT_EQ(calls("apply"), 2);
}

TEST_F(UnknownOutcomes, AfterARestartARevertOfTheDeadProcessIsSentAgainOnlyAfterTheMargin) {
    const std::string id = propose("fast", "a");
    settle();
    providers.fail("revert", "a", FakeFault::late_write, 1);
    engine->revert(id, "carol", "done");
    settle();
    ASSERT_EQ(state_of(id), State::reverting);
    start(2);  // the process dies with its revert on its way
    clock.advance(std::chrono::seconds(9));
    settle();
    EXPECT_EQ(calls("revert"), 1);
    providers.land_late();
    clock.advance(std::chrono::seconds(1));
    settle();
    EXPECT_EQ(state_of(id), State::reverted);
    EXPECT_EQ(calls("revert"), 2);
    EXPECT_EQ(providers.writes("a"), 2);
}

TEST_F(UnknownOutcomes, AMarginOfZeroReadsBackAtOnce) {
    providers.set_settle_margin(std::chrono::seconds(0));
    providers.fail("apply", "a", FakeFault::lost_answer, 1);
    const std::string id = propose("fast", "a");
    settle();
    EXPECT_EQ(state_of(id), State::active);
    EXPECT_EQ(calls("apply"), 1);
    EXPECT_EQ(calls("check"), 2);  // the read back, then verification
}

}  // namespace
}  // namespace mitigate
