#include "runtime/core/mitigation_state.h"

#include <algorithm>
#include <array>
#include <string>
#include <utility>
#include <vector>

namespace mitigate {
namespace {

using enum MitigationState;

constexpr std::array<std::pair<MitigationState, std::string_view>, 16> names{{
    {proposed, "proposed"},
    {planned, "planned"},
    {denied, "denied"},
    {dry_run, "dry_run"},
    {pending_approval, "pending_approval"},
    {approved, "approved"},
    {rejected, "rejected"},
    {expired, "expired"},
    {applying, "applying"},
    {verifying, "verifying"},
    {active, "active"},
    {reverting, "reverting"},
    {reverted, "reverted"},
    {conflict, "conflict"},
    {kept, "kept"},
    {failed, "failed"},
}};

// Why each edge exists is the lifecycle's business; why some do not:
// - nothing leaves a final state;
// - proposed may go straight to denied: a rule on provider, action or environment can
//   refuse before any provider is asked to read anything;
// - applying never goes straight to reverted: an interrupted apply is undone through
//   reverting, whose compare-and-set protects a target someone else changed since;
// - pending_approval may go to itself: recording one approval of several is journaled
//   like any other step, so that who approved, and when, is in the journal;
// - approved may still go to denied or dry_run: policy is asked again at the moment of
//   effect, and a change of policy since the approval wins; and to expired, when its
//   incident resolved before the apply (as may proposed, planned and pending_approval);
// - applying may go to itself: each write of a plan of several steps is journaled before
//   it is sent (steps_started), so that a restart knows which may have landed;
// - reverting may go to itself: its first failed attempt is journaled (with failed_at,
//   what the circuit breaker counts), then it is retried;
// - reverting never goes to failed: a revert that errors is retried, because giving up
//   would leave an applied change behind without anyone deciding to keep it.
const std::vector<std::vector<MitigationState>>& transition_table() {
    static const std::vector<std::vector<MitigationState>> table = [] {
        std::vector<std::vector<MitigationState>> next(names.size());
        auto allow = [&](MitigationState from, std::initializer_list<MitigationState> to) {
            next[static_cast<std::size_t>(from)] = to;
        };
        allow(proposed, {planned, denied, failed, expired});
        allow(planned, {pending_approval, approved, denied, dry_run, failed, expired});
        allow(pending_approval, {pending_approval, approved, rejected, expired});
        allow(approved, {applying, failed, denied, dry_run, expired});
        allow(applying, {applying, verifying, reverting, failed});
        allow(verifying, {active, reverting});
        allow(active, {reverting, kept});
        allow(reverting, {reverting, reverted, conflict});
        allow(conflict, {reverting, kept});
        return next;
    }();
    return table;
}

}  // namespace

std::string_view to_string(MitigationState state) {
    return names[static_cast<std::size_t>(state)].second;
}

std::optional<MitigationState> parse_mitigation_state(std::string_view text) {
    for (const auto& [state, name] : names) {
        if (name == text) {
            return state;
        }
    }
    return std::nullopt;
}

std::string_view mitigation_state_names() {
    static const std::string joined = [] {
        std::string text;
        for (const auto& [state, name] : names) {
            text += text.empty() ? "" : ", ";
            text += name;
        }
        return text;
    }();
    return joined;
}

bool is_final(MitigationState state) {
    return allowed_next_states(state).empty();
}

bool may_have_effect(MitigationState state) {
    switch (state) {
        case applying:
        case verifying:
        case active:
        case reverting:
        case conflict: return true;
        default: return false;
    }
}

bool is_transition_allowed(MitigationState from, MitigationState to) {
    const auto next = allowed_next_states(from);
    return std::find(next.begin(), next.end(), to) != next.end();
}

std::span<const MitigationState> allowed_next_states(MitigationState from) {
    return transition_table()[static_cast<std::size_t>(from)];
}

}  // namespace mitigate
