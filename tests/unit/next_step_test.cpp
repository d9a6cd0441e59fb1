// next_step() is pure: what a mitigation needs next follows from its snapshot, the clock
// and what the engine knows. Here, the wait for a write that may still land.
#include <gtest/gtest.h>

#include "runtime/core/time_format.h"
#include "runtime/engine/next_step.h"

namespace mitigate {
namespace {

class NextStepTest : public ::testing::Test {
  protected:
    NextStep step_for(MitigationState state, std::optional<TimePoint> writes_settle_at) {
        Mitigation mitigation;
        mitigation.id = "mit_1";
        mitigation.state = state;
        mitigation.created_at = mitigation.updated_at = now;
        StepContext context;
        context.now = now;
        context.engine = &engine;
        context.writes_settle_at = writes_settle_at;
        return next_step(mitigation, context);
    }

    const TimePoint now = *parse_rfc3339("2026-11-23T12:00:00Z");
    EngineConfig engine;
};

TEST_F(NextStepTest, NoCallIsMadeWhileAWriteMayStillLand) {
    const TimePoint later = now + std::chrono::seconds(10);
    for (MitigationState state : {MitigationState::applying, MitigationState::reverting}) {
        const NextStep waiting = step_for(state, later);
        EXPECT_EQ(waiting.kind, StepKind::none) << to_string(state);
        EXPECT_EQ(waiting.due, later) << to_string(state);
    }
    EXPECT_EQ(step_for(MitigationState::applying, now).kind, StepKind::settle_apply);
    EXPECT_EQ(step_for(MitigationState::reverting, now).kind, StepKind::finish_revert);
    EXPECT_EQ(step_for(MitigationState::applying, std::nullopt).kind, StepKind::settle_apply);
    EXPECT_EQ(step_for(MitigationState::reverting, std::nullopt).kind, StepKind::finish_revert);
}

}  // namespace
}  // namespace mitigate
