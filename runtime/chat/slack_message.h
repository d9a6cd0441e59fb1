// What a mitigation looks like in Slack (Block Kit). One message per mitigation shows its
// current state and is rewritten in place (chat.update) as it moves; the steps are replies
// in its thread. Everything a person needs to decide is in the message itself: what and
// why, the plan (current -> new -> inverse), the blast radius, what policy decided and
// what it still needs, and, while it waits, Approve and Reject buttons that carry the
// mitigation id.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/core/model.h"

namespace mitigate {

inline constexpr std::string_view slack_approve_action = "mitigate.approve";
inline constexpr std::string_view slack_reject_action = "mitigate.reject";

// {"text": fallback, "blocks": [...]} for chat.postMessage / chat.update (the caller adds
// channel and ts). `approval_expiry` is when a pending approval lapses.
nlohmann::json slack_mitigation_message(const Mitigation& mitigation,
                                        const std::optional<Incident>& incident,
                                        std::optional<TimePoint> approval_expiry);

// One line for the thread: a transition record of the audit log ("approved by alice (1 of
// 2)"), with who and why.
std::string slack_transition_line(const AuditRecord& record);

// One line for the thread: a step the engine keeps retrying (a mitigation.step_failed
// record: "revert failing (attempt 3), retried in 4 s: ...").
std::string slack_step_failed_line(const AuditRecord& record);

// A short summary for `/mitigate list` and `/mitigate show`.
std::string slack_mitigation_line(const Mitigation& mitigation);

}  // namespace mitigate
