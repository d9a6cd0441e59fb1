// What one mitigation needs next, decided from a snapshot alone: pure, so that the whole
// schedule is a function of the stored state, the clock and the incident.
//
//   proposed          plan, once it holds its target (the oldest open mitigation on it, and
//                     nothing past proposed there); else wait
//   planned           decide (policy)
//   pending_approval  expire at its approval expiry; else wait for people
//   approved          apply: journal applying, apply, check
//   applying          settle: a crash or an unknown outcome left it; once a write that may
//                     be in flight can no longer land, read back and finish the apply
//   verifying         revert at the TTL; confirm once its incident resolved; revert when
//                     the verification window passes first; a mitigation with no incident,
//                     or one whose check this process has not seen, is checked
//   active            revert at the TTL, or when its incident resolves if
//                     engine.revert_when_incident_resolves
//   reverting         finish the revert (compare-and-set), once an earlier attempt's write
//                     can no longer land
//   conflict          nothing: a person decides (revert or keep)
#pragma once

#include <optional>
#include <set>
#include <string>

#include "runtime/config/config.h"
#include "runtime/core/model.h"

namespace mitigate {

enum class StepKind {
    none,           // nothing until `due`, or until something changes
    plan,           // provider
    decide,         // policy only
    expire,         // store only
    apply,          // provider
    settle_apply,   // provider
    check,          // provider
    confirm,        // store only
    revert,         // provider: journal reverting, then revert
    finish_revert,  // provider
};

std::string_view to_string(StepKind kind);

struct NextStep {
    StepKind kind = StepKind::none;
    std::optional<TimePoint> due;  // with none: when to look again
    std::string cause;             // with revert: ttl, verification, incident_resolved
    std::string reason;            // with revert, expire, confirm: the journal's words

    bool calls_provider() const;
    // Reverts first, then steps that call no provider, then the rest: a revert never waits
    // behind plans and applies.
    int priority() const;
};

// A step that keeps failing for one mitigation, as the engine retries it (shown on the
// mitigation by the API and `mitigate show`).
struct StepRetry {
    int attempts = 0;        // failed in a row
    std::string step;        // what failed: plan, apply, check, revert, ...
    std::string last_error;  // the last failure's words
    TimePoint next_attempt_at;
};

struct StepContext {
    TimePoint now;
    const EngineConfig* engine = nullptr;
    // The mitigation's incident as last known; null when it has none.
    const Incident* incident = nullptr;
    // For a proposed mitigation: it is the oldest open one on its target, and no other
    // mitigation on that target is past proposed.
    bool holds_target = true;
    // For a verifying mitigation: this process has seen the provider confirm the change.
    bool checked = false;
    // For an applying or reverting mitigation: an earlier call may have sent a write that
    // lands until then; no call is made before (MitigationSteps::writes_settle_at).
    std::optional<TimePoint> writes_settle_at;
};

NextStep next_step(const Mitigation& mitigation, const StepContext& context);

// The people whose approvals of `mitigation` count under `decision` at `at`: distinct
// people who approved, in a group the decision names (if any), not the proposer unless
// self-approval is allowed, within the decision's approval timeout. What a person's
// approve request counts toward the quorum, and what the apply checks again.
std::set<std::string> counted_approvers(const Mitigation& mitigation, const Decision& decision,
                                        TimePoint at);

// When a mitigation pending approval lapses: its decision's approval_timeout after the
// decision, else engine.approval_expiry. Nothing for a mitigation without a decision.
std::optional<TimePoint> approval_expiry(const Mitigation& mitigation, const EngineConfig& engine);

}  // namespace mitigate
