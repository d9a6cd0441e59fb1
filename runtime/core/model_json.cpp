// JSON forms of the domain model. Writers emit every field (optional ones as null or
// omitted consistently) so stored rows are self-describing; readers are strict.
#include <algorithm>
#include <array>
#include <limits>
#include <set>
#include <utility>

#include "runtime/core/json_reader.h"
#include "runtime/core/model.h"
#include "runtime/core/time_format.h"

namespace mitigate {
namespace {

using nlohmann::json;

template <typename Enum, std::size_t Count>
using NameTable = std::array<std::pair<Enum, std::string_view>, Count>;

template <typename Enum, std::size_t Count>
std::string_view name_of(const NameTable<Enum, Count>& table, Enum value) {
    for (const auto& [entry, name] : table) {
        if (entry == value) {
            return name;
        }
    }
    return "unknown";
}

template <typename Enum, std::size_t Count>
std::optional<Enum> value_of(const NameTable<Enum, Count>& table, std::string_view text) {
    for (const auto& [entry, name] : table) {
        if (name == text) {
            return entry;
        }
    }
    return std::nullopt;
}

constexpr NameTable<SignalSource, 5> signal_sources{{{SignalSource::alertmanager, "alertmanager"},
                                                     {SignalSource::api, "api"},
                                                     {SignalSource::cli, "cli"},
                                                     {SignalSource::detector, "detector"},
                                                     {SignalSource::drill, "drill"}}};
constexpr NameTable<SignalStatus, 2> signal_statuses{
    {{SignalStatus::firing, "firing"}, {SignalStatus::resolved, "resolved"}}};
constexpr NameTable<IncidentStatus, 2> incident_statuses{
    {{IncidentStatus::open, "open"}, {IncidentStatus::resolved, "resolved"}}};
constexpr NameTable<DecisionEffect, 4> decision_effects{
    {{DecisionEffect::allow, "allow"},
     {DecisionEffect::require_approval, "require_approval"},
     {DecisionEffect::deny, "deny"},
     {DecisionEffect::dry_run, "dry_run"}}};
constexpr NameTable<ApprovalVerdict, 2> approval_verdicts{
    {{ApprovalVerdict::approve, "approve"}, {ApprovalVerdict::reject, "reject"}}};
constexpr NameTable<ApprovalChannel, 3> approval_channels{{{ApprovalChannel::cli, "cli"},
                                                           {ApprovalChannel::api, "api"},
                                                           {ApprovalChannel::chat, "chat"}}};

json optional_time(const std::optional<TimePoint>& time) {
    return time ? json(format_rfc3339(*time)) : json(nullptr);
}

// Provider and action names end up in policy rules, metrics labels and file names:
// keep them to a conservative alphabet.
bool is_identifier(std::string_view text, std::string_view extra_characters) {
    if (text.empty() || text.size() > 64 || !(text[0] >= 'a' && text[0] <= 'z')) {
        return false;
    }
    return std::all_of(text.begin(), text.end(), [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               extra_characters.find(c) != std::string_view::npos;
    });
}

template <typename T, typename ReadFunction>
Parsed<T> parse_with(const json& in, std::string path, ReadFunction read) {
    Parsed<T> result;
    T value = read(in, std::move(path), result.errors);
    if (result.errors.empty()) {
        result.value = std::move(value);
    }
    return result;
}

Action read_action(const json& in, std::string path, std::vector<FieldError>& errors) {
    JsonObjectReader reader(in, std::move(path), errors);
    Action value;
    value.provider = reader.string("provider");
    if (!value.provider.empty() && !is_identifier(value.provider, "_-")) {
        reader.add_error("provider", "must be a lowercase name such as \"aws\" or \"flags\"");
    }
    value.action = reader.string("action");
    if (!value.action.empty() && !is_identifier(value.action, "_-.")) {
        reader.add_error("action", "must be a lowercase name such as \"ecs.scale\"");
    }
    value.target = reader.string("target");
    value.parameters = reader.object("parameters", Presence::optional);
    value.ttl = reader.duration("ttl", Presence::optional);
    if (value.ttl && value.ttl->count() <= 0) {
        reader.add_error("ttl", "must be longer than zero");
    }
    value.reason = reader.string("reason");
    reader.reject_unknown_fields();
    return value;
}

Proposal read_proposal(const json& in, std::string path, std::vector<FieldError>& errors) {
    JsonObjectReader reader(in, std::move(path), errors);
    Proposal value;
    value.id = reader.string("id");
    value.incident_id = reader.string("incident_id", Presence::optional);
    value.playbook = reader.string("playbook", Presence::optional);
    value.proposed_by = reader.string("proposed_by");
    if (const json* action = reader.member("action", Presence::required)) {
        value.action = read_action(*action, reader.path_of("action"), errors);
    }
    value.created_at = reader.time("created_at").value_or(TimePoint{});
    value.environment = reader.string("environment", Presence::optional);
    value.service = reader.string("service", Presence::optional);
    reader.reject_unknown_fields();
    return value;
}

BlastRadius read_blast_radius(const json& in, std::string path, std::vector<FieldError>& errors) {
    JsonObjectReader reader(in, std::move(path), errors);
    BlastRadius value;
    value.ratio = reader.number("ratio", 0, 1e6);
    value.description = reader.string("description", Presence::optional);
    if (reader.member("resulting_fraction", Presence::optional) != nullptr) {
        value.resulting_fraction = reader.number("resulting_fraction", 0, 1e6);
    }
    reader.reject_unknown_fields();
    return value;
}

// Each step names the fields of forward it writes; together they cover forward exactly.
std::vector<PlanStep> read_plan_steps(const json& in, const json& forward, const std::string& path,
                                      std::vector<FieldError>& errors) {
    constexpr std::size_t most_steps = 16;
    std::vector<PlanStep> steps;
    if (!in.is_array() || in.size() > most_steps) {
        errors.push_back({path, "must be a list of at most 16 steps"});
        return steps;
    }
    std::set<std::string> covered;
    for (std::size_t i = 0; i < in.size(); ++i) {
        const std::string at = path + "[" + std::to_string(i) + "]";
        JsonObjectReader reader(in[i], at, errors);
        PlanStep step;
        step.name = reader.string("name");
        step.fields = reader.string_list("fields");
        reader.reject_unknown_fields();
        if (step.name.size() > 64 || std::any_of(step.name.begin(), step.name.end(), [](char c) {
                return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
            })) {
            reader.add_error("name", "must be at most 64 bytes with no control characters");
        }
        if (std::any_of(steps.begin(), steps.end(),
                        [&](const PlanStep& other) { return other.name == step.name; })) {
            reader.add_error("name", "\"" + step.name + "\" names two steps");
        }
        if (step.fields.empty()) {
            reader.add_error("fields", "must name at least one field of forward");
        }
        for (const std::string& field : step.fields) {
            if (!forward.is_object() || !forward.contains(field)) {
                reader.add_error("fields", "\"" + field + "\" is not a field of forward");
            } else if (!covered.insert(field).second) {
                reader.add_error("fields", "\"" + field + "\" is written by two steps");
            }
        }
        steps.push_back(std::move(step));
    }
    if (!steps.empty() && forward.is_object() && covered.size() != forward.size()) {
        errors.push_back({path, "must write every field of forward"});
    }
    return steps;
}

// With steps, inverse restores exactly what forward sets: a field of one without the other
// would be written and never restored, or restored to nothing.
void check_step_inverse(const Plan& plan, JsonObjectReader& reader) {
    if (plan.steps.empty() || !plan.forward.is_object() || !plan.inverse.is_object()) {
        return;
    }
    bool same = plan.forward.size() == plan.inverse.size();
    for (const auto& [field, value] : plan.forward.items()) {
        same = same && plan.inverse.contains(field);
    }
    if (!same) {
        reader.add_error("inverse", "must hold exactly the fields of forward when there are steps");
    }
}

Plan read_plan(const json& in, std::string path, std::vector<FieldError>& errors) {
    JsonObjectReader reader(in, std::move(path), errors);
    Plan value;
    value.observed_state = reader.object("observed_state", Presence::required);
    value.forward = reader.object("forward", Presence::required);
    value.inverse = reader.object("inverse", Presence::required);
    if (const json* blast = reader.member("blast_radius", Presence::required)) {
        value.blast_radius = read_blast_radius(*blast, reader.path_of("blast_radius"), errors);
    }
    value.idempotency_key = reader.string("idempotency_key");
    value.reversible = reader.boolean("reversible", true);
    value.planned_at = reader.time("planned_at").value_or(TimePoint{});
    value.resource = reader.string("resource", Presence::optional);
    if (value.resource.size() > 512 ||
        std::any_of(value.resource.begin(), value.resource.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
        reader.add_error("resource", "must be at most 512 bytes with no control characters");
    }
    if (reader.member("settle_margin_ms", Presence::optional) != nullptr) {
        value.settle_margin =
            std::chrono::milliseconds(reader.integer("settle_margin_ms", 0, 10LL * 60 * 1000));
    }
    if (const json* steps = reader.member("steps", Presence::optional)) {
        value.steps = read_plan_steps(*steps, value.forward, reader.path_of("steps"), errors);
    }
    check_step_inverse(value, reader);
    const std::string order = reader.string("revert_order", Presence::optional);
    if (order == "apply_order") {
        value.revert_in_apply_order = true;
    } else if (!order.empty() && order != "reverse") {
        reader.add_error("revert_order", "must be reverse or apply_order");
    }
    reader.reject_unknown_fields();
    return value;
}

RuleOutcome read_rule_outcome(const json& in, std::string path, std::vector<FieldError>& errors) {
    JsonObjectReader reader(in, std::move(path), errors);
    RuleOutcome value;
    value.rule = reader.string("rule");
    value.matched = reader.boolean("matched", false);
    value.reason = reader.string("reason", Presence::optional);
    reader.reject_unknown_fields();
    return value;
}

ConstraintOutcome read_constraint_outcome(const json& in, std::string path,
                                          std::vector<FieldError>& errors) {
    JsonObjectReader reader(in, std::move(path), errors);
    ConstraintOutcome value;
    value.constraint = reader.string("constraint");
    value.passed = reader.boolean("passed", true);
    value.detail = reader.string("detail", Presence::optional);
    reader.reject_unknown_fields();
    return value;
}

Decision read_decision(const json& in, std::string path, std::vector<FieldError>& errors) {
    JsonObjectReader reader(in, std::move(path), errors);
    Decision value;
    value.effect = reader.enumeration(
        "effect", [](std::string_view text) { return parse_decision_effect(text); },
        DecisionEffect::deny, "allow, require_approval, deny, dry_run");
    value.approvals_required = static_cast<int>(reader.integer("approvals_required", 0, 100, 0));
    if (value.effect == DecisionEffect::require_approval && value.approvals_required < 1) {
        reader.add_error("approvals_required",
                         "must be at least 1 when effect is require_approval");
    }
    value.approver_groups = reader.string_list("approver_groups");
    value.self_approval_allowed = reader.boolean("self_approval_allowed", false);
    value.keep_groups = reader.string_list("keep_groups");
    value.revert_groups = reader.string_list("revert_groups");
    value.approval_timeout = reader.duration("approval_timeout", Presence::optional);
    if (const json* rules = reader.member("rules", Presence::optional)) {
        if (!rules->is_array()) {
            reader.add_error("rules", "must be a list");
        } else {
            for (std::size_t i = 0; i < rules->size(); ++i) {
                value.rules.push_back(read_rule_outcome(
                    (*rules)[i], reader.path_of("rules") + "[" + std::to_string(i) + "]", errors));
            }
        }
    }
    value.policy_hash = reader.string("policy_hash", Presence::optional);
    value.summary = reader.string("summary", Presence::optional);
    value.decided_at = reader.time("decided_at").value_or(TimePoint{});
    if (const json* constraints = reader.member("constraints", Presence::optional)) {
        if (!constraints->is_array()) {
            reader.add_error("constraints", "must be a list");
        } else {
            for (std::size_t i = 0; i < constraints->size(); ++i) {
                value.constraints.push_back(read_constraint_outcome(
                    (*constraints)[i],
                    reader.path_of("constraints") + "[" + std::to_string(i) + "]", errors));
            }
        }
    }
    value.ttl = reader.duration("ttl", Presence::optional);
    reader.reject_unknown_fields();
    return value;
}

Approval read_approval(const json& in, std::string path, std::vector<FieldError>& errors) {
    JsonObjectReader reader(in, std::move(path), errors);
    Approval value;
    value.approver = reader.string("approver");
    value.groups = reader.string_list("groups");
    value.verdict = reader.enumeration(
        "verdict", [](std::string_view text) { return parse_approval_verdict(text); },
        ApprovalVerdict::reject, "approve, reject");
    value.channel = reader.enumeration(
        "channel", [](std::string_view text) { return parse_approval_channel(text); },
        ApprovalChannel::cli, "cli, api, chat");
    value.reason = reader.string("reason", Presence::optional);
    value.at = reader.time("at").value_or(TimePoint{});
    reader.reject_unknown_fields();
    return value;
}

Signal read_signal(const json& in, std::string path, std::vector<FieldError>& errors) {
    JsonObjectReader reader(in, std::move(path), errors);
    Signal value;
    value.id = reader.string("id");
    value.source = reader.enumeration(
        "source", [](std::string_view text) { return parse_signal_source(text); },
        SignalSource::api, "alertmanager, api, cli, detector, drill");
    value.name = reader.string("name");
    value.status = reader.enumeration(
        "status", [](std::string_view text) { return parse_signal_status(text); },
        SignalStatus::firing, "firing, resolved");
    value.fingerprint = reader.string("fingerprint");
    value.labels = reader.string_map("labels");
    value.annotations = reader.string_map("annotations");
    value.starts_at = reader.time("starts_at").value_or(TimePoint{});
    value.ends_at = reader.time("ends_at", Presence::optional);
    value.received_at = reader.time("received_at").value_or(TimePoint{});
    value.isolation = reader.string("isolation", Presence::optional);
    value.dry_run = reader.boolean("dry_run", false);
    reader.reject_unknown_fields();
    return value;
}

Incident read_incident(const json& in, std::string path, std::vector<FieldError>& errors) {
    JsonObjectReader reader(in, std::move(path), errors);
    Incident value;
    value.id = reader.string("id");
    value.group_key = reader.string("group_key");
    value.title = reader.string("title");
    value.status = reader.enumeration(
        "status", [](std::string_view text) { return parse_incident_status(text); },
        IncidentStatus::open, "open, resolved");
    value.service = reader.string("service", Presence::optional);
    value.environment = reader.string("environment", Presence::optional);
    value.labels = reader.string_map("labels");
    constexpr auto most = std::numeric_limits<std::int64_t>::max();
    value.counters.alerts = reader.integer("alert_count", 0, most, 0);
    value.counters.firing = reader.integer("firing_count", 0, most, 0);
    value.counters.signals = reader.integer("signal_count", 0, most, 0);
    value.opened_at = reader.time("opened_at").value_or(TimePoint{});
    value.resolved_at = reader.time("resolved_at", Presence::optional);
    value.drill = reader.boolean("drill", false);
    value.dry_run = reader.boolean("dry_run", false);
    reader.reject_unknown_fields();
    return value;
}

Mitigation read_mitigation(const json& in, std::string path, std::vector<FieldError>& errors) {
    JsonObjectReader reader(in, std::move(path), errors);
    Mitigation value;
    value.id = reader.string("id");
    value.state = reader.enumeration(
        "state", [](std::string_view text) { return parse_mitigation_state(text); },
        MitigationState::failed, mitigation_state_names());
    value.version = reader.integer("version", 1, std::numeric_limits<std::int64_t>::max());
    if (const json* proposal = reader.member("proposal", Presence::required)) {
        value.proposal = read_proposal(*proposal, reader.path_of("proposal"), errors);
    }
    if (const json* plan = reader.member("plan", Presence::optional)) {
        value.plan = read_plan(*plan, reader.path_of("plan"), errors);
    }
    if (const json* decision = reader.member("decision", Presence::optional)) {
        value.decision = read_decision(*decision, reader.path_of("decision"), errors);
    }
    if (const json* approvals = reader.member("approvals", Presence::optional)) {
        if (!approvals->is_array()) {
            reader.add_error("approvals", "must be a list");
        } else {
            for (std::size_t i = 0; i < approvals->size(); ++i) {
                value.approvals.push_back(read_approval(
                    (*approvals)[i], reader.path_of("approvals") + "[" + std::to_string(i) + "]",
                    errors));
            }
        }
    }
    value.expires_at = reader.time("expires_at", Presence::optional);
    value.failed_at = reader.time("failed_at", Presence::optional);
    value.steps_started = static_cast<int>(reader.integer("steps_started", 0, 16, 0));
    if (reader.member("step_not_landed", Presence::optional) != nullptr) {
        value.step_not_landed = static_cast<int>(reader.integer("step_not_landed", 0, 15));
    }
    if (value.plan && value.steps_started > static_cast<int>(value.plan->steps.size())) {
        reader.add_error("steps_started", "is more than the plan's steps");
    }
    value.drill = reader.boolean("drill", false);
    value.created_at = reader.time("created_at").value_or(TimePoint{});
    value.updated_at = reader.time("updated_at").value_or(TimePoint{});
    reader.reject_unknown_fields();
    return value;
}

bool is_sha256_hex(std::string_view text) {
    return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

AuditRecord read_audit_record(const json& in, std::string path, std::vector<FieldError>& errors) {
    JsonObjectReader reader(in, std::move(path), errors);
    AuditRecord value;
    value.sequence = reader.integer("sequence", 1, std::numeric_limits<std::int64_t>::max());
    value.at = reader.time("at").value_or(TimePoint{});
    value.actor = reader.string("actor");
    value.event = reader.string("event");
    value.subject = reader.string("subject", Presence::optional);
    value.details = reader.object("details", Presence::optional);
    value.previous_hash = reader.string("previous_hash");
    value.hash = reader.string("hash", Presence::optional);
    if (!value.previous_hash.empty() && !is_sha256_hex(value.previous_hash)) {
        reader.add_error("previous_hash", "must be 64 lowercase hex digits");
    }
    if (!value.hash.empty() && !is_sha256_hex(value.hash)) {
        reader.add_error("hash", "must be 64 lowercase hex digits");
    }
    reader.reject_unknown_fields();
    return value;
}

}  // namespace

std::string_view to_string(SignalSource value) {
    return name_of(signal_sources, value);
}
std::string_view to_string(SignalStatus value) {
    return name_of(signal_statuses, value);
}
std::string_view to_string(IncidentStatus value) {
    return name_of(incident_statuses, value);
}
std::string_view to_string(DecisionEffect value) {
    return name_of(decision_effects, value);
}
std::string_view to_string(ApprovalVerdict value) {
    return name_of(approval_verdicts, value);
}
std::string_view to_string(ApprovalChannel value) {
    return name_of(approval_channels, value);
}
std::optional<SignalSource> parse_signal_source(std::string_view text) {
    return value_of(signal_sources, text);
}
std::optional<SignalStatus> parse_signal_status(std::string_view text) {
    return value_of(signal_statuses, text);
}
std::optional<IncidentStatus> parse_incident_status(std::string_view text) {
    return value_of(incident_statuses, text);
}
std::optional<DecisionEffect> parse_decision_effect(std::string_view text) {
    return value_of(decision_effects, text);
}
std::optional<ApprovalVerdict> parse_approval_verdict(std::string_view text) {
    return value_of(approval_verdicts, text);
}
std::optional<ApprovalChannel> parse_approval_channel(std::string_view text) {
    return value_of(approval_channels, text);
}

void to_json(json& out, const Signal& value) {
    out = json{{"id", value.id},
               {"source", to_string(value.source)},
               {"name", value.name},
               {"status", to_string(value.status)},
               {"fingerprint", value.fingerprint},
               {"labels", value.labels},
               {"annotations", value.annotations},
               {"starts_at", format_rfc3339(value.starts_at)},
               {"ends_at", optional_time(value.ends_at)},
               {"received_at", format_rfc3339(value.received_at)},
               {"isolation", value.isolation},
               {"dry_run", value.dry_run}};
}

void to_json(json& out, const Incident& value) {
    out = json{{"id", value.id},
               {"group_key", value.group_key},
               {"title", value.title},
               {"status", to_string(value.status)},
               {"service", value.service},
               {"environment", value.environment},
               {"labels", value.labels},
               {"alert_count", value.counters.alerts},
               {"firing_count", value.counters.firing},
               {"signal_count", value.counters.signals},
               {"opened_at", format_rfc3339(value.opened_at)},
               {"resolved_at", optional_time(value.resolved_at)},
               {"drill", value.drill},
               {"dry_run", value.dry_run}};
}

void to_json(json& out, const Action& value) {
    out = json{{"provider", value.provider},
               {"action", value.action},
               {"target", value.target},
               {"parameters", value.parameters},
               {"ttl", value.ttl ? json(format_duration(*value.ttl)) : json(nullptr)},
               {"reason", value.reason}};
}

void to_json(json& out, const Proposal& value) {
    out = json{{"id", value.id},
               {"incident_id", value.incident_id},
               {"playbook", value.playbook},
               {"proposed_by", value.proposed_by},
               {"action", value.action},
               {"created_at", format_rfc3339(value.created_at)}};
    if (!value.environment.empty()) {
        out["environment"] = value.environment;
    }
    if (!value.service.empty()) {
        out["service"] = value.service;
    }
}

void to_json(json& out, const BlastRadius& value) {
    out = json{{"ratio", value.ratio},
               {"description", value.description},
               {"resulting_fraction",
                value.resulting_fraction ? json(*value.resulting_fraction) : json(nullptr)}};
}

void to_json(json& out, const Plan& value) {
    out = json{{"observed_state", value.observed_state},
               {"forward", value.forward},
               {"inverse", value.inverse},
               {"blast_radius", value.blast_radius},
               {"idempotency_key", value.idempotency_key},
               {"reversible", value.reversible},
               {"planned_at", format_rfc3339(value.planned_at)},
               {"resource", value.resource},
               {"settle_margin_ms",
                value.settle_margin ? json(value.settle_margin->count()) : json(nullptr)},
               {"steps", value.steps},
               {"revert_order", value.revert_in_apply_order ? "apply_order" : "reverse"}};
}

void to_json(json& out, const PlanStep& value) {
    out = json{{"name", value.name}, {"fields", value.fields}};
}

void to_json(json& out, const RuleOutcome& value) {
    out = json{{"rule", value.rule}, {"matched", value.matched}, {"reason", value.reason}};
}

void to_json(json& out, const ConstraintOutcome& value) {
    out =
        json{{"constraint", value.constraint}, {"passed", value.passed}, {"detail", value.detail}};
}

void to_json(json& out, const Decision& value) {
    out = json{
        {"effect", to_string(value.effect)},
        {"approvals_required", value.approvals_required},
        {"approver_groups", value.approver_groups},
        {"self_approval_allowed", value.self_approval_allowed},
        {"keep_groups", value.keep_groups},
        {"revert_groups", value.revert_groups},
        {"approval_timeout",
         value.approval_timeout ? json(format_duration(*value.approval_timeout)) : json(nullptr)},
        {"rules", value.rules},
        {"policy_hash", value.policy_hash},
        {"summary", value.summary},
        {"decided_at", format_rfc3339(value.decided_at)},
        {"constraints", value.constraints},
        {"ttl", value.ttl ? json(format_duration(*value.ttl)) : json(nullptr)}};
}

void to_json(json& out, const Approval& value) {
    out = json{{"approver", value.approver},
               {"groups", value.groups},
               {"verdict", to_string(value.verdict)},
               {"channel", to_string(value.channel)},
               {"reason", value.reason},
               {"at", format_rfc3339(value.at)}};
}

void to_json(json& out, const Mitigation& value) {
    out = json{
        {"id", value.id},
        {"state", to_string(value.state)},
        {"version", value.version},
        {"proposal", value.proposal},
        {"plan", value.plan ? json(*value.plan) : json(nullptr)},
        {"decision", value.decision ? json(*value.decision) : json(nullptr)},
        {"approvals", value.approvals},
        {"expires_at", optional_time(value.expires_at)},
        {"failed_at", optional_time(value.failed_at)},
        {"steps_started", value.steps_started},
        {"step_not_landed", value.step_not_landed ? json(*value.step_not_landed) : json(nullptr)},
        {"drill", value.drill},
        {"created_at", format_rfc3339(value.created_at)},
        {"updated_at", format_rfc3339(value.updated_at)}};
}

void to_json(json& out, const AuditRecord& value) {
    out = json{{"sequence", value.sequence},
               {"at", format_rfc3339(value.at)},
               {"actor", value.actor},
               {"event", value.event},
               {"subject", value.subject},
               {"details", value.details},
               {"previous_hash", value.previous_hash},
               {"hash", value.hash}};
}

Parsed<Signal> parse_signal(const json& in, std::string path) {
    return parse_with<Signal>(in, std::move(path), read_signal);
}
Parsed<Incident> parse_incident(const json& in, std::string path) {
    return parse_with<Incident>(in, std::move(path), read_incident);
}
Parsed<Action> parse_action(const json& in, std::string path) {
    return parse_with<Action>(in, std::move(path), read_action);
}
Parsed<Proposal> parse_proposal(const json& in, std::string path) {
    return parse_with<Proposal>(in, std::move(path), read_proposal);
}
Parsed<Plan> parse_plan(const json& in, std::string path) {
    return parse_with<Plan>(in, std::move(path), read_plan);
}
Parsed<Decision> parse_decision(const json& in, std::string path) {
    return parse_with<Decision>(in, std::move(path), read_decision);
}
Parsed<Approval> parse_approval(const json& in, std::string path) {
    return parse_with<Approval>(in, std::move(path), read_approval);
}
Parsed<Mitigation> parse_mitigation(const json& in, std::string path) {
    return parse_with<Mitigation>(in, std::move(path), read_mitigation);
}
Parsed<AuditRecord> parse_audit_record(const json& in, std::string path) {
    return parse_with<AuditRecord>(in, std::move(path), read_audit_record);
}

}  // namespace mitigate
