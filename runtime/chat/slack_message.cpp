#include "runtime/chat/slack_message.h"

#include <cmath>

#include "runtime/core/mitigation_state.h"
#include "runtime/core/time_format.h"

namespace mitigate {
namespace {

using nlohmann::json;

// Slack refuses a section over 3000 characters; a plan is shown, not archived. At most
// `limit` bytes, cut on a character boundary: a message with half a UTF-8 character cannot
// be serialized, and the notifier would retry it forever.
std::string shortened(std::string text, std::size_t limit = 600) {
    if (text.size() > limit) {
        std::size_t cut = limit;
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
            --cut;  // a continuation byte: the character started before
        }
        text.resize(cut);
        text += "…";
    }
    return text;
}

// A field of an audit record's details, or null: the lines below never throw for a record
// of an unexpected shape (the notifier would retry it forever).
const json& field_of(const json& details, const char* field) {
    static const json absent;
    if (!details.is_object()) {
        return absent;
    }
    const auto found = details.find(field);
    return found == details.end() ? absent : *found;
}

// A string field, or `fallback` when absent or not a string.
std::string text_of(const json& details, const char* field, const std::string& fallback) {
    const json& value = field_of(details, field);
    return value.is_string() ? value.get<std::string>() : fallback;
}

// Slack's mrkdwn treats & < > as markup.
std::string escaped(std::string_view text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            default: out += c;
        }
    }
    return out;
}

json section(const std::string& markdown) {
    return {{"type", "section"},
            {"text", {{"type", "mrkdwn"}, {"text", shortened(markdown, 2900)}}}};
}

std::string headline(const Mitigation& mitigation) {
    const std::string what = mitigation.proposal.action.action + " on " +
                             mitigation.proposal.action.provider + "/" +
                             mitigation.proposal.action.target;
    switch (mitigation.state) {
        case MitigationState::pending_approval: return "Approval needed: " + what;
        case MitigationState::approved:
        case MitigationState::applying: return "Applying: " + what;
        case MitigationState::verifying: return "Applied, verifying: " + what;
        case MitigationState::active: return "Active: " + what;
        case MitigationState::reverting: return "Reverting: " + what;
        case MitigationState::reverted: return "Reverted: " + what;
        case MitigationState::rejected: return "Rejected: " + what;
        // Approvals that did not arrive in time, or an incident that resolved first (then
        // it may even have been approved): either way nothing was applied.
        case MitigationState::expired: return "Expired, nothing applied: " + what;
        case MitigationState::denied: return "Denied by policy, nothing applied: " + what;
        case MitigationState::conflict: return "Conflict, a person must decide: " + what;
        case MitigationState::kept: return "Kept: " + what;
        case MitigationState::failed: return "Failed: " + what;
        default: return std::string(to_string(mitigation.state)) + ": " + what;
    }
}

std::string compact(const json& value) {
    return value.is_null() || (value.is_object() && value.empty()) ? "—" : value.dump();
}

}  // namespace

json slack_mitigation_message(const Mitigation& mitigation, const std::optional<Incident>& incident,
                              std::optional<TimePoint> approval_expiry) {
    const Proposal& proposal = mitigation.proposal;
    const std::string drill = mitigation.drill ? "[DRILL] " : "";
    const std::string title = drill + headline(mitigation);
    json blocks = json::array();
    blocks.push_back(
        {{"type", "header"}, {"text", {{"type", "plain_text"}, {"text", shortened(title, 150)}}}});

    std::string why = "*Why:* " + escaped(proposal.action.reason.empty() ? "(no reason given)"
                                                                         : proposal.action.reason);
    if (incident) {
        std::string labels;
        for (const auto& [name, value] : incident->labels) {
            labels.append(labels.empty() ? "" : ", ").append(name).append("=").append(value);
        }
        why += "\n*Incident:* `" + incident->id + "` " + escaped(labels) + " (" +
               std::string(to_string(incident->status)) + ")";
    }
    why += "\n*Proposed by:* " + escaped(proposal.proposed_by);
    if (!proposal.playbook.empty()) {
        why += " (playbook `" + escaped(proposal.playbook) + "`)";
    }
    why += "\n*Mitigation:* `" + mitigation.id + "` — *" +
           std::string(to_string(mitigation.state)) + "*";
    blocks.push_back(section(why));

    if (mitigation.plan) {
        const Plan& plan = *mitigation.plan;
        std::string text = "*Plan*\n*Current:* `" +
                           escaped(shortened(compact(plan.observed_state))) + "`\n*New:* `" +
                           escaped(shortened(compact(plan.forward))) + "`\n*Undo:* `" +
                           escaped(shortened(compact(plan.inverse))) + "`";
        text += "\n*Blast radius:* " +
                escaped(plan.blast_radius.description.empty() ? "not described by the provider"
                                                              : plan.blast_radius.description) +
                " (" + std::to_string(std::lround(plan.blast_radius.ratio * 100)) + "%)";
        if (const auto& ttl =
                mitigation.decision ? mitigation.decision->ttl : proposal.action.ttl) {
            text += "\n*Reverts after:* " + format_duration(*ttl);
        }
        blocks.push_back(section(text));
    }

    if (mitigation.decision) {
        const Decision& decision = *mitigation.decision;
        std::string text = "*Policy:* " + escaped(decision.summary);
        if (decision.effect == DecisionEffect::require_approval) {
            int have = 0;
            for (const Approval& approval : mitigation.approvals) {
                have += approval.verdict == ApprovalVerdict::approve ? 1 : 0;
            }
            text += "\n*Approvals:* " + std::to_string(have) + " of " +
                    std::to_string(decision.approvals_required);
            if (!decision.approver_groups.empty()) {
                std::string groups;
                for (const auto& group : decision.approver_groups) {
                    groups += (groups.empty() ? "" : ", ") + group;
                }
                text += " from " + escaped(groups);
            }
            text += decision.self_approval_allowed ? "" : "; not the proposer";
            if (approval_expiry && mitigation.state == MitigationState::pending_approval) {
                text += "\n*Expires:* " + format_rfc3339(*approval_expiry);
            }
        }
        for (const Approval& approval : mitigation.approvals) {
            text += "\n• " + std::string(to_string(approval.verdict)) + " by " +
                    escaped(approval.approver) + " via " +
                    std::string(to_string(approval.channel)) + " at " + format_rfc3339(approval.at);
        }
        blocks.push_back(section(text));
    }

    if (mitigation.state == MitigationState::pending_approval) {
        blocks.push_back({{"type", "actions"},
                          {"block_id", "mitigate.decide"},
                          {"elements",
                           {{{"type", "button"},
                             {"action_id", slack_approve_action},
                             {"style", "primary"},
                             {"value", mitigation.id},
                             {"text", {{"type", "plain_text"}, {"text", "Approve"}}}},
                            {{"type", "button"},
                             {"action_id", slack_reject_action},
                             {"style", "danger"},
                             {"value", mitigation.id},
                             {"text", {{"type", "plain_text"}, {"text", "Reject"}}}}}}});
    }
    return {{"text", title + " (" + mitigation.id + ")"}, {"blocks", blocks}};
}

std::string slack_transition_line(const AuditRecord& record) {
    const json& details = record.details;
    std::string line =
        "`" + text_of(details, "from", "?") + "` → `" + text_of(details, "to", "?") + "`";
    if (field_of(details, "drill") == json(true)) {
        line = "[DRILL] " + line;
    }
    line += " by " + escaped(record.actor);
    const std::string reason = text_of(details, "reason", "");
    if (!reason.empty()) {
        line += ": " + escaped(shortened(reason, 400));
    }
    return line;
}

std::string slack_step_failed_line(const AuditRecord& record) {
    const json& details = record.details;
    const json& attempt = field_of(details, "attempt");
    const json& retry_in = field_of(details, "retry_in_seconds");
    std::string line = ":warning: " + escaped(text_of(details, "step", "a step")) + " failing";
    if (attempt.is_number_integer()) {
        line += " (attempt " + std::to_string(attempt.get<std::int64_t>()) + ")";
    }
    if (retry_in.is_number()) {
        line += ", retried in " +
                std::to_string(static_cast<std::int64_t>(std::llround(retry_in.get<double>()))) +
                " s";
    }
    const std::string error = text_of(details, "error", "");
    if (!error.empty()) {
        line += ": " + escaped(shortened(error, 400));
    }
    return line;
}

std::string slack_mitigation_line(const Mitigation& mitigation) {
    return std::string(mitigation.drill ? "[DRILL] " : "") + "`" + mitigation.id + "` *" +
           std::string(to_string(mitigation.state)) + "* " + mitigation.proposal.action.action +
           " on " + mitigation.proposal.action.provider + "/" + mitigation.proposal.action.target +
           " — " + escaped(mitigation.proposal.action.reason);
}

}  // namespace mitigate
