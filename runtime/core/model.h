// The domain model: the nouns of DESIGN.md's data flow, as plain values.
//
//   Signal ─► Incident ─► Proposal(Action) ─► Plan ─► Decision ─► Approval* ─► Mitigation
//
// Each type has a JSON form (to_json, for nlohmann's `json j = value;`) and a strict
// parser (parse_*) that rejects unknown fields and names every bad one. Stored rows,
// API bodies and plugin messages all use these forms, so a value that round-trips here
// round-trips everywhere.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/core/clock.h"
#include "runtime/core/mitigation_state.h"
#include "runtime/core/validation.h"

namespace mitigate {

using Labels = std::map<std::string, std::string>;

// ---- Signal: something observed, from outside or from a drill ----------------------

enum class SignalSource { alertmanager, api, cli, detector, drill };
enum class SignalStatus { firing, resolved };

struct Signal {
    std::string id;
    SignalSource source = SignalSource::api;
    std::string name;  // the alert or check name ("HighErrorRate")
    SignalStatus status = SignalStatus::firing;
    std::string fingerprint;  // stable identity of the alert; with starts_at, the dedupe key
    Labels labels;            // service, environment, severity, ...
    Labels annotations;       // summary, runbook_url, ...
    TimePoint starts_at;
    std::optional<TimePoint> ends_at;
    TimePoint received_at;
    // Inputs for the runtime's own clients (a drill), never read from an outside sender:
    // a signal with an isolation key is grouped only with signals of the same key, and a
    // dry-run one opens an incident whose proposals policy decides on but never applies.
    std::string isolation;
    bool dry_run = false;
    bool operator==(const Signal&) const = default;
};

// ---- Incident: signals grouped into one thing to respond to ------------------------

enum class IncidentStatus { open, resolved };

struct Incident {
    std::string id;
    std::string group_key;  // what grouped its signals (fingerprint or grouping labels)
    std::string title;
    IncidentStatus status = IncidentStatus::open;
    std::string service;
    std::string environment;
    Labels labels;
    // Kept by the store beside the incident, one row per alert (incident_store.h): the
    // incident resolves when its last firing alert resolves.
    struct Counters {
        std::int64_t alerts = 0;   // distinct alerts (fingerprints) grouped into it
        std::int64_t firing = 0;   // of them, firing now
        std::int64_t signals = 0;  // signals grouped into it
        bool operator==(const Counters&) const = default;
    };
    Counters counters;
    TimePoint opened_at;
    std::optional<TimePoint> resolved_at;
    bool drill = false;    // caused by a chaos drill; marked everywhere
    bool dry_run = false;  // opened by a dry-run signal: nothing proposed for it applies
    bool operator==(const Incident&) const = default;
};

// ---- Action: one reversible change, as a playbook or a person asks for it ----------

struct Action {
    std::string provider;  // "flags", "aws", ...
    std::string action;    // "flag.set", "ecs.scale", ...
    std::string target;    // provider-specific address of the thing changed
    nlohmann::json parameters = nlohmann::json::object();  // checked by the plugin's schema
    std::optional<Duration> ttl;  // when to revert; policy may require or cap it
    std::string reason;           // why, in words a person approving it will read
    bool operator==(const Action&) const = default;
};

// ---- Proposal: an action and where it came from ------------------------------------

struct Proposal {
    std::string id;
    std::string incident_id;  // empty for a proposal made by hand without an incident
    std::string playbook;     // empty when a person proposed it
    std::string proposed_by;  // identity: "playbook:<name>" or a person's name
    Action action;
    TimePoint created_at;
    // Where it runs when there is no incident to say so (a drill's fault): what policy
    // matches environment and service rules on. Empty otherwise.
    std::string environment;
    std::string service;
    bool operator==(const Proposal&) const = default;
};

// ---- Plan: what exactly will change, and how to undo it ----------------------------

struct BlastRadius {
    // Share of the target's current capacity, traffic or limit that the change affects:
    // 0 none, 1 all of it; may exceed 1 (scaling to 3x moves 2.0).
    double ratio = 0;
    std::string description;  // "desiredCount 10 -> 4 (60% of capacity removed)"
    // The changed quantity afterwards as a fraction of what it is now (desiredCount 10 -> 4
    // is 0.4; a rate limit 1000 -> 3000 is 3.0). Absent when the change is not a scaling
    // of one quantity (a flag flip). Policies cap it per action.
    std::optional<double> resulting_fraction;
    bool operator==(const BlastRadius&) const = default;
};

// One write of a plan that takes several (an ECS scale with Auto Scaling: the range, then
// the count): the fields of forward and inverse it sets. Applied in order, each journaled
// before it is sent; reverted in reverse order.
struct PlanStep {
    std::string name;
    std::vector<std::string> fields;
    bool operator==(const PlanStep&) const = default;
};

struct Plan {
    nlohmann::json observed_state = nlohmann::json::object();  // what read() returned
    nlohmann::json forward = nlohmann::json::object();         // the change apply() makes
    nlohmann::json inverse = nlohmann::json::object();         // the change revert() makes
    BlastRadius blast_radius;
    std::string idempotency_key;  // same key, same change: a retried apply is not doubled
    bool reversible = true;
    TimePoint planned_at;
    // What the change is made to, as the provider names it whatever the target's spelling
    // (an ECS service's region/cluster/service, a flag's backend and key): one change at a
    // time per resource. Empty from a plugin older than ABI 1.2: the target's spelling.
    std::string resource;
    // How long after a call that ended without an answer a write it sent may still take
    // effect at the service; nothing more is written, and nothing read back is believed,
    // until then. None from a plugin older than ABI 1.2 (the engine assumes a default).
    std::optional<Duration> settle_margin;
    // Empty: one write. Otherwise every field of forward in exactly one step.
    std::vector<PlanStep> steps;
    // How the steps are reverted: in reverse (the default), or in the order they are
    // applied (ECS: the Auto Scaling range is the envelope the count moves in, so it goes
    // back first too).
    bool revert_in_apply_order = false;
    bool operator==(const Plan&) const = default;
};

// ---- Decision: what policy said, and why -------------------------------------------

enum class DecisionEffect { allow, require_approval, deny, dry_run };

struct RuleOutcome {
    std::string rule;  // "file.yaml#rule-name"
    bool matched = false;
    std::string reason;
    bool operator==(const RuleOutcome&) const = default;
};

struct ConstraintOutcome {
    std::string constraint;  // "rate_limit[target]", "ttl", "freeze:year-end", ...
    bool passed = true;
    std::string detail;
    bool operator==(const ConstraintOutcome&) const = default;
};

struct Decision {
    DecisionEffect effect = DecisionEffect::deny;
    int approvals_required = 0;
    std::vector<std::string> approver_groups;  // an approver must be in one of these
    bool self_approval_allowed = false;
    // A person who keeps or reverts it by hand must be in one of these; empty: anyone with
    // the role (runtime/policy/policy_set.h says how rules set them).
    std::vector<std::string> keep_groups;
    std::vector<std::string> revert_groups;
    std::optional<Duration> approval_timeout;  // approvals older than this do not count
    std::vector<RuleOutcome> rules;
    std::string policy_hash;  // identifies the exact policy set that decided
    std::string summary;      // one sentence for people
    TimePoint decided_at;
    std::vector<ConstraintOutcome> constraints;  // every constraint checked, passed or not
    std::optional<Duration> ttl;  // the TTL to run with: the proposal's, or clamped by policy
    bool operator==(const Decision&) const = default;
};

// ---- Approval: one person's yes or no ----------------------------------------------

enum class ApprovalVerdict { approve, reject };
enum class ApprovalChannel { cli, api, chat };

struct Approval {
    std::string approver;  // mitigate identity (chat user ids are mapped to it)
    std::vector<std::string> groups;
    ApprovalVerdict verdict = ApprovalVerdict::approve;
    ApprovalChannel channel = ApprovalChannel::cli;
    std::string reason;
    TimePoint at;
    bool operator==(const Approval&) const = default;
};

// ---- Mitigation: one proposal through its whole life -------------------------------

struct Mitigation {
    std::string id;
    MitigationState state = MitigationState::proposed;
    std::int64_t version = 1;  // incremented by every transition; optimistic lock
    Proposal proposal;
    std::optional<Plan> plan;
    std::optional<Decision> decision;
    std::vector<Approval> approvals;
    std::optional<TimePoint> expires_at;  // when an applied mitigation reverts (TTL)
    // When automation first failed on it after it started: its apply failed, its
    // verification failed, or its revert met a conflict. What the policy's circuit breaker
    // counts; empty otherwise.
    std::optional<TimePoint> failed_at;
    // For a plan of several steps: how many have been started (journaled before sent).
    // Every step before the last started one is done; the last one may or may not be.
    int steps_started = 0;
    // A step of its plan that did not land (refused, or absent once it could no longer
    // land): its fields are not mitigate's to restore, only what an earlier step moved
    // through it (the count Auto Scaling moved with the range). The revert puts it back
    // where it shows the plan's forward and leaves it as found otherwise.
    std::optional<int> step_not_landed;
    bool drill = false;
    TimePoint created_at;
    TimePoint updated_at;
    bool operator==(const Mitigation&) const = default;
};

// ---- AuditRecord: one entry of the hash-chained audit log (runtime/audit) ----------

struct AuditRecord {
    std::int64_t sequence = 0;  // 1, 2, 3, ... with no gaps
    TimePoint at;
    std::string actor;    // who: a person, "runtime", "playbook:<name>", "drill:<name>"
    std::string event;    // what: "mitigation.transition", "config.loaded", ...
    std::string subject;  // which: a mitigation or incident id; may be empty
    nlohmann::json details = nlohmann::json::object();
    std::string previous_hash;  // hex SHA-256 of the record before; 64 zeros for the first
    std::string hash;           // hex SHA-256 over previous_hash and this canonical record
    bool operator==(const AuditRecord&) const = default;
};

// ---- Names of enumerations, as they appear on every wire ---------------------------

std::string_view to_string(SignalSource value);
std::string_view to_string(SignalStatus value);
std::string_view to_string(IncidentStatus value);
std::string_view to_string(DecisionEffect value);
std::string_view to_string(ApprovalVerdict value);
std::string_view to_string(ApprovalChannel value);
std::optional<SignalSource> parse_signal_source(std::string_view text);
std::optional<SignalStatus> parse_signal_status(std::string_view text);
std::optional<IncidentStatus> parse_incident_status(std::string_view text);
std::optional<DecisionEffect> parse_decision_effect(std::string_view text);
std::optional<ApprovalVerdict> parse_approval_verdict(std::string_view text);
std::optional<ApprovalChannel> parse_approval_channel(std::string_view text);

// ---- JSON --------------------------------------------------------------------------

void to_json(nlohmann::json& out, const Signal& value);
void to_json(nlohmann::json& out, const Incident& value);
void to_json(nlohmann::json& out, const Action& value);
void to_json(nlohmann::json& out, const Proposal& value);
void to_json(nlohmann::json& out, const BlastRadius& value);
void to_json(nlohmann::json& out, const PlanStep& value);
void to_json(nlohmann::json& out, const Plan& value);
void to_json(nlohmann::json& out, const RuleOutcome& value);
void to_json(nlohmann::json& out, const ConstraintOutcome& value);
void to_json(nlohmann::json& out, const Decision& value);
void to_json(nlohmann::json& out, const Approval& value);
void to_json(nlohmann::json& out, const Mitigation& value);
void to_json(nlohmann::json& out, const AuditRecord& value);

// `path` prefixes every error's field ("proposal" gives "proposal.action.ttl").
Parsed<Signal> parse_signal(const nlohmann::json& in, std::string path = "signal");
Parsed<Incident> parse_incident(const nlohmann::json& in, std::string path = "incident");
Parsed<Action> parse_action(const nlohmann::json& in, std::string path = "action");
Parsed<Proposal> parse_proposal(const nlohmann::json& in, std::string path = "proposal");
Parsed<Plan> parse_plan(const nlohmann::json& in, std::string path = "plan");
Parsed<Decision> parse_decision(const nlohmann::json& in, std::string path = "decision");
Parsed<Approval> parse_approval(const nlohmann::json& in, std::string path = "approval");
Parsed<Mitigation> parse_mitigation(const nlohmann::json& in, std::string path = "mitigation");
Parsed<AuditRecord> parse_audit_record(const nlohmann::json& in, std::string path = "record");

}  // namespace mitigate
