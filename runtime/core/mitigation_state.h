// The life of a mitigation as a state machine. Every change of state is a journaled
// transition (runtime/store), so the table below is also the list of everything the
// journal can say. A transition not in the table is a bug and the store refuses it.
//
//   proposed          -> planned | denied | failed
//   planned           -> pending_approval | approved | denied | dry_run | failed
//   pending_approval  -> pending_approval (one approval of several) | approved | rejected
//                        | expired
//   approved          -> applying | failed
//   applying          -> verifying | reverting | failed
//   verifying         -> active | reverting
//   active            -> reverting | kept
//   reverting         -> reverted | conflict
//   conflict          -> reverting | kept
//   denied, dry_run, rejected, expired, reverted, kept, failed: final
#pragma once

#include <optional>
#include <span>
#include <string_view>

namespace mitigate {

enum class MitigationState {
    proposed,          // a playbook or a person asked for it; nothing read yet
    planned,           // the provider read current state and computed forward and inverse
    denied,            // policy said no (final)
    dry_run,           // policy said evaluate only; nothing was applied (final)
    pending_approval,  // waiting for the approvals the decision requires
    approved,          // cleared to apply
    rejected,          // a human said no (final)
    expired,           // its moment passed before any effect: approvals did not arrive in
                       // time, or its incident resolved first (final)
    applying,          // the forward change is being sent; outcome not yet known
    verifying,         // applied; waiting for check and for the signal to improve
    active,            // applied and verified; reverts at its TTL
    reverting,         // the inverse is being sent (compare-and-set)
    reverted,          // the inverse is in place (final)
    conflict,          // someone else changed the target since; a human must decide
    kept,              // a human made it permanent, with a reason (final)
    failed,            // ended without any effect on the target (final)
};

std::string_view to_string(MitigationState state);
std::optional<MitigationState> parse_mitigation_state(std::string_view text);

// The accepted words, for error messages: "proposed, planned, ...".
std::string_view mitigation_state_names();

bool is_final(MitigationState state);

// True when a mitigation in `state` may have changed the target, so that ending it
// requires a revert (or a human keeping it). Crash recovery starts from this set.
bool may_have_effect(MitigationState state);

bool is_transition_allowed(MitigationState from, MitigationState to);
std::span<const MitigationState> allowed_next_states(MitigationState from);

}  // namespace mitigate
