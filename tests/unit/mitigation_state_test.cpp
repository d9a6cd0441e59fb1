#include <gtest/gtest.h>

#include "runtime/core/mitigation_state.h"

namespace mitigate {
namespace {

using enum MitigationState;

TEST(MitigationState, NamesRoundTrip) {
    for (int i = 0; i <= static_cast<int>(failed); ++i) {
        const auto state = static_cast<MitigationState>(i);
        EXPECT_EQ(parse_mitigation_state(to_string(state)), state);
    }
    EXPECT_FALSE(parse_mitigation_state("Active"));
}

TEST(MitigationState, FinalStatesHaveNoWayOut) {
    for (MitigationState state : {denied, dry_run, rejected, expired, reverted, kept, failed}) {
        EXPECT_TRUE(is_final(state)) << to_string(state);
    }
    for (MitigationState state : {proposed, planned, pending_approval, approved, applying,
                                  verifying, active, reverting, conflict}) {
        EXPECT_FALSE(is_final(state)) << to_string(state);
    }
}

TEST(MitigationState, AnAppliedChangeCanOnlyEndByRevertOrByAHumanKeepingIt) {
    // From every state that may have touched the target, every path to a final state
    // passes through reverted or kept: never failed, never silently dropped.
    for (MitigationState start : {applying, verifying, active, reverting, conflict}) {
        EXPECT_TRUE(may_have_effect(start));
        std::vector<MitigationState> frontier{start};
        std::vector<MitigationState> seen;
        while (!frontier.empty()) {
            const MitigationState state = frontier.back();
            frontier.pop_back();
            if (std::find(seen.begin(), seen.end(), state) != seen.end()) {
                continue;
            }
            seen.push_back(state);
            for (MitigationState next : allowed_next_states(state)) {
                if (is_final(next)) {
                    const bool may_end_here =
                        next == reverted || next == kept || (state == applying && next == failed);
                    EXPECT_TRUE(may_end_here) << to_string(state) << " -> " << to_string(next);
                } else {
                    frontier.push_back(next);
                }
            }
        }
    }
}

TEST(MitigationState, RefusesShortcuts) {
    EXPECT_TRUE(is_transition_allowed(proposed, planned));
    EXPECT_TRUE(is_transition_allowed(active, reverting));
    EXPECT_FALSE(is_transition_allowed(proposed, applying));  // no apply without a decision
    EXPECT_FALSE(is_transition_allowed(pending_approval, applying));
    EXPECT_FALSE(is_transition_allowed(applying, reverted));  // undo goes through reverting
    EXPECT_FALSE(is_transition_allowed(reverting, failed));   // a failed revert is retried
    EXPECT_FALSE(is_transition_allowed(reverted, reverting));
    // Decided again at the moment of effect; withdrawn when its incident resolved first.
    EXPECT_TRUE(is_transition_allowed(approved, denied));
    EXPECT_TRUE(is_transition_allowed(approved, expired));
    EXPECT_TRUE(is_transition_allowed(proposed, expired));
    EXPECT_FALSE(is_transition_allowed(applying, expired));  // had an effect: only a revert
    EXPECT_FALSE(is_transition_allowed(verifying, expired));
}

}  // namespace
}  // namespace mitigate
