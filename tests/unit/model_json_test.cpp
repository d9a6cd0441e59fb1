// The domain model's JSON forms: every type round-trips exactly, and bad input is refused
// with errors that name each bad field by its full path.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/core/model.h"
#include "runtime/core/time_format.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;

TimePoint at(std::string_view text) {
    return *parse_rfc3339(text);
}

Action sample_action() {
    Action action;
    action.provider = "aws";
    action.action = "ecs.scale";
    action.target = "prod/checkout";
    action.parameters = {{"desired_count", 12}, {"nested", {{"list", {1, 2.5, "x"}}}}};
    action.ttl = Duration{std::chrono::minutes{45}};
    action.reason = "add capacity while latency is high";
    return action;
}

Proposal sample_proposal() {
    Proposal proposal;
    proposal.id = "prop_1";
    proposal.incident_id = "inc_1";
    proposal.playbook = "scale-on-latency";
    proposal.proposed_by = "playbook:scale-on-latency";
    proposal.action = sample_action();
    proposal.created_at = at("2026-11-23T07:00:00.250Z");
    return proposal;
}

Mitigation sample_mitigation() {
    Mitigation mitigation;
    mitigation.id = "mit_1";
    mitigation.state = MitigationState::pending_approval;
    mitigation.version = 4;
    mitigation.proposal = sample_proposal();
    Plan plan;
    plan.observed_state = {{"desiredCount", 8}};
    plan.forward = {{"desiredCount", 12}};
    plan.inverse = {{"desiredCount", 8}};
    plan.blast_radius = {0.5, "desiredCount 8 -> 12", 1.5};
    plan.idempotency_key = "aws:ecs.scale:prod/checkout:12";
    plan.planned_at = at("2026-11-23T07:00:01Z");
    plan.resource = "ecs:us-east-1:prod/checkout";
    plan.settle_margin = std::chrono::seconds(60);
    mitigation.plan = plan;
    Decision decision;
    decision.effect = DecisionEffect::require_approval;
    decision.approvals_required = 2;
    decision.approver_groups = {"sre-oncall"};
    decision.approval_timeout = Duration{std::chrono::minutes{15}};
    decision.rules = {{"prod.yaml#prod-needs-two", true, "environment is prod"},
                      {"dev.yaml#dev-auto", false, "environment is not dev"}};
    decision.policy_hash = "abc123";
    decision.summary = "prod needs two approvals from sre-oncall";
    decision.decided_at = at("2026-11-23T07:00:02Z");
    decision.constraints = {{"ttl", true, "30m is within 4h"},
                            {"rate_limit[target]", false, "2 of 1 per 10m"}};
    decision.ttl = Duration{std::chrono::minutes{30}};
    mitigation.decision = decision;
    Approval approval;
    approval.approver = "alice";
    approval.groups = {"sre-oncall"};
    approval.verdict = ApprovalVerdict::approve;
    approval.channel = ApprovalChannel::chat;
    approval.reason = "looks right";
    approval.at = at("2026-11-23T07:03:00Z");
    mitigation.approvals = {approval};
    mitigation.expires_at = at("2026-11-23T07:45:00Z");
    mitigation.created_at = at("2026-11-23T07:00:00.250Z");
    mitigation.updated_at = at("2026-11-23T07:03:00Z");
    return mitigation;
}

// Serializing, printing as text, parsing the text and parsing again gives the same value.
template <typename T, typename Parse>
void expect_round_trip(const T& value, Parse parse) {
    const std::string text = json(value).dump();
    const auto parsed = parse(json::parse(text), "value");
    ASSERT_TRUE(parsed) << describe(parsed.errors);
    EXPECT_EQ(*parsed, value);
    EXPECT_EQ(json(*parsed).dump(), text);
}

TEST(ModelJson, EveryTypeRoundTrips) {
    const Mitigation mitigation = sample_mitigation();
    expect_round_trip(mitigation, parse_mitigation);
    expect_round_trip(mitigation.proposal, parse_proposal);
    expect_round_trip(mitigation.proposal.action, parse_action);
    expect_round_trip(*mitigation.plan, parse_plan);
    expect_round_trip(*mitigation.decision, parse_decision);
    expect_round_trip(mitigation.approvals[0], parse_approval);

    Signal signal;
    signal.id = "sig_1";
    signal.source = SignalSource::alertmanager;
    signal.name = "HighErrorRate";
    signal.status = SignalStatus::resolved;
    signal.fingerprint = "abc";
    signal.labels = {{"service", "checkout"}};
    signal.annotations = {{"summary", "5xx \"high\"\n"}};
    signal.starts_at = at("2026-11-23T07:00:00Z");
    signal.ends_at = at("2026-11-23T07:10:00Z");
    signal.received_at = at("2026-11-23T07:10:01Z");
    signal.isolation = "drill:drl_1";
    signal.dry_run = true;
    expect_round_trip(signal, parse_signal);

    Incident incident;
    incident.id = "inc_1";
    incident.group_key = "abc";
    incident.title = "High error rate";
    incident.counters = {3, 2, 7};
    incident.opened_at = at("2026-11-23T07:00:00Z");
    incident.drill = true;
    incident.dry_run = true;
    expect_round_trip(incident, parse_incident);

    AuditRecord record;
    record.sequence = 7;
    record.at = at("2026-11-23T07:00:00Z");
    record.actor = "alice";
    record.event = "mitigation.transition";
    record.subject = "mit_1";
    record.details = {{"from", "active"}, {"to", "reverting"}};
    record.previous_hash = std::string(64, 'a');
    record.hash = std::string(64, 'b');
    expect_round_trip(record, parse_audit_record);
}

TEST(ModelJson, OptionalFieldsMayBeAbsentOrNull) {
    const json minimal = {{"id", "mit_2"},
                          {"state", "proposed"},
                          {"version", 1},
                          {"proposal",
                           {{"id", "p"},
                            {"proposed_by", "bob"},
                            {"action",
                             {{"provider", "flags"},
                              {"action", "flag.set"},
                              {"target", "checkout"},
                              {"reason", "why"}}},
                            {"created_at", "2026-11-23T07:00:00Z"}}},
                          {"plan", nullptr},
                          {"created_at", "2026-11-23T07:00:00Z"},
                          {"updated_at", "2026-11-23T07:00:00Z"}};
    const auto parsed = parse_mitigation(minimal);
    ASSERT_TRUE(parsed) << describe(parsed.errors);
    EXPECT_FALSE(parsed->plan.has_value());
    EXPECT_FALSE(parsed->proposal.action.ttl.has_value());
    EXPECT_TRUE(parsed->proposal.action.parameters.is_object());
}

TEST(ModelJson, EveryBadFieldIsNamedByItsPath) {
    json proposal = json(sample_proposal());
    proposal["action"]["ttl"] = "soon";
    proposal["action"]["provider"] = "AWS!";
    proposal["action"].erase("reason");
    proposal["action"]["parameters"] = json::array();
    proposal["created_at"] = "yesterday";
    proposal["colour"] = "blue";
    const auto parsed = parse_proposal(proposal);
    ASSERT_FALSE(parsed);
    const auto field_is = [](const std::string& field) {
        return Contains(Field(&FieldError::field, field));
    };
    EXPECT_THAT(parsed.errors, field_is("proposal.action.ttl"));
    EXPECT_THAT(parsed.errors, field_is("proposal.action.provider"));
    EXPECT_THAT(parsed.errors, field_is("proposal.action.reason"));
    EXPECT_THAT(parsed.errors, field_is("proposal.action.parameters"));
    EXPECT_THAT(parsed.errors, field_is("proposal.created_at"));
    EXPECT_THAT(parsed.errors, field_is("proposal.colour"));
    EXPECT_EQ(parsed.errors.size(), 6u) << describe(parsed.errors);
    EXPECT_THAT(describe(parsed.errors), HasSubstr("proposal.action.reason: is required"));
}

TEST(ModelJson, ListElementsAreNamedByIndex) {
    json mitigation = json(sample_mitigation());
    mitigation["approvals"].push_back({{"approver", "bob"}, {"verdict", "maybe"}});
    mitigation["state"] = "half-applied";
    const auto parsed = parse_mitigation(mitigation);
    ASSERT_FALSE(parsed);
    EXPECT_THAT(parsed.errors,
                Contains(AllOf(Field(&FieldError::field, "mitigation.approvals[1].verdict"),
                               Field(&FieldError::message, HasSubstr("approve, reject")))));
    EXPECT_THAT(parsed.errors, Contains(Field(&FieldError::field, "mitigation.approvals[1].at")));
    EXPECT_THAT(parsed.errors,
                Contains(AllOf(Field(&FieldError::field, "mitigation.state"),
                               Field(&FieldError::message, HasSubstr("reverting")))));
}

TEST(ModelJson, RefusesValuesThatAreWrongEvenWhenWellTyped) {
    json action = json(sample_action());
    action["ttl"] = "0s";
    action["target"] = "";
    auto parsed = parse_action(action);
    ASSERT_FALSE(parsed);
    EXPECT_THAT(parsed.errors, Contains(Field(&FieldError::field, "action.ttl")));
    EXPECT_THAT(parsed.errors, Contains(Field(&FieldError::field, "action.target")));

    json decision = json(*sample_mitigation().decision);
    decision["approvals_required"] = 0;
    EXPECT_FALSE(parse_decision(decision));

    json record;
    record = {{"sequence", 0},
              {"at", "2026-11-23T07:00:00Z"},
              {"actor", "a"},
              {"event", "e"},
              {"previous_hash", "xyz"}};
    const auto bad_record = parse_audit_record(record);
    EXPECT_THAT(bad_record.errors, Contains(Field(&FieldError::field, "record.sequence")));
    EXPECT_THAT(bad_record.errors, Contains(Field(&FieldError::field, "record.previous_hash")));
}

TEST(ModelJson, APlansResourceAndSettleMarginAreBoundedAndOptional) {
    json plan = json(*sample_mitigation().plan);
    plan.erase("resource");
    plan["settle_margin_ms"] = nullptr;  // a plugin older than ABI 1.2
    const auto older = parse_plan(plan);
    ASSERT_TRUE(older);
    EXPECT_EQ(older.value->resource, "");
    EXPECT_FALSE(older.value->settle_margin);

    for (const json& resource : {json(std::string(513, 'r')), json("line\nbreak"),
                                 json(std::string("nul\0x", 5)), json(42)}) {
        plan["resource"] = resource;
        EXPECT_THAT(parse_plan(plan).errors, Contains(Field(&FieldError::field, "plan.resource")))
            << resource.dump();
    }
    plan["resource"] = "ok";
    for (const json& margin : {json(-1), json(600001), json(1.5), json("10s")}) {
        plan["settle_margin_ms"] = margin;
        EXPECT_THAT(parse_plan(plan).errors,
                    Contains(Field(&FieldError::field, "plan.settle_margin_ms")))
            << margin.dump();
    }
}

TEST(ModelJson, APlansStepsCoverItsFieldsExactlyOnce) {
    json plan = json(*sample_mitigation().plan);
    plan["forward"] = {{"min", 8}, {"count", 8}};
    plan["inverse"] = {{"min", 2}, {"count", 4}};
    plan["steps"] = {{{"name", "range"}, {"fields", {"min"}}},
                     {{"name", "count"}, {"fields", {"count"}}}};
    plan["revert_order"] = "apply_order";
    const auto good = parse_plan(plan);
    ASSERT_TRUE(good) << describe(good.errors);
    EXPECT_EQ(good.value->steps.size(), 2u);
    EXPECT_TRUE(good.value->revert_in_apply_order);
    expect_round_trip(*good.value, parse_plan);

    const auto refused = [&](const json& changed, const std::string& field) {
        EXPECT_THAT(parse_plan(changed).errors, Contains(Field(&FieldError::field, field)))
            << changed.dump();
    };
    json missing = plan;
    missing["steps"].erase(1);  // count written by no step
    refused(missing, "plan.steps");
    json twice = plan;
    twice["steps"][1]["fields"] = {"count", "min"};
    refused(twice, "plan.steps[1].fields");
    json unknown = plan;
    unknown["steps"][1]["fields"] = {"max"};
    refused(unknown, "plan.steps[1].fields");
    json same_name = plan;
    same_name["steps"][1]["name"] = "range";
    refused(same_name, "plan.steps[1].name");
    json control = plan;
    control["steps"][0]["name"] = "ra\nnge";
    refused(control, "plan.steps[0].name");
    json uneven = plan;
    uneven["inverse"].erase("count");
    refused(uneven, "plan.inverse");
    json too_many = plan;
    too_many["steps"] = json::array();
    for (int i = 0; i < 17; ++i) {
        too_many["steps"].push_back({{"name", "s" + std::to_string(i)}, {"fields", {"min"}}});
    }
    refused(too_many, "plan.steps");
    json order = plan;
    order["revert_order"] = "sideways";
    refused(order, "plan.revert_order");

    Mitigation mitigation = sample_mitigation();
    json stored = json(mitigation);
    stored["plan"] = plan;
    stored["steps_started"] = 3;  // more than the plan has
    EXPECT_THAT(parse_mitigation(stored).errors,
                Contains(Field(&FieldError::field, "mitigation.steps_started")));
}

TEST(ModelJson, NonObjectInputIsAnErrorNotACrash) {
    for (const json& input : {json(nullptr), json(42), json("text"), json::array()}) {
        const auto parsed = parse_mitigation(input);
        ASSERT_FALSE(parsed);
        EXPECT_EQ(parsed.errors.front().field, "mitigation");
    }
}

}  // namespace
}  // namespace mitigate
