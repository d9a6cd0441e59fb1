// Slack's request signature (with Slack's published test vector) and what a mitigation
// looks like as a Block Kit message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/chat/slack_message.h"
#include "runtime/chat/slack_signature.h"
#include "runtime/core/time_format.h"
#include "runtime/core/url_encoding.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* vector_secret = "8f742231b10e8888abcd99yyyzzz85a5";
constexpr const char* vector_timestamp = "1531420618";
constexpr const char* vector_body =
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
    "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"
    "2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
    "803a0bc887a14d10d2c447fce8b6703c";
constexpr const char* vector_signature =
    "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

std::chrono::system_clock::time_point at(std::int64_t seconds) {
    return std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
}

TEST(SlackSignature, MatchesSlacksPublishedTestVector) {
    EXPECT_EQ(slack_signature(vector_secret, vector_timestamp, vector_body), vector_signature);
    EXPECT_EQ(verify_slack_signature(vector_secret, vector_timestamp, vector_signature, vector_body,
                                     at(1531420618 + 10)),
              SlackVerification::verified);
}

TEST(SlackSignature, RefusesWhatSlackDidNotSignNow) {
    const auto now = at(1531420618);
    std::string altered = vector_body;
    altered.replace(altered.find("roadrunner"), 10, "coyote0000");
    EXPECT_EQ(
        verify_slack_signature(vector_secret, vector_timestamp, vector_signature, altered, now),
        SlackVerification::signature_mismatch);
    EXPECT_EQ(verify_slack_signature("another-secret", vector_timestamp, vector_signature,
                                     vector_body, now),
              SlackVerification::signature_mismatch);
    EXPECT_EQ(verify_slack_signature(vector_secret, vector_timestamp,
                                     std::string(vector_signature).substr(0, 20), vector_body, now),
              SlackVerification::signature_mismatch);
    EXPECT_EQ(verify_slack_signature(vector_secret, vector_timestamp, vector_signature, vector_body,
                                     now + std::chrono::seconds(301)),
              SlackVerification::stale);
    EXPECT_EQ(verify_slack_signature(vector_secret, vector_timestamp, vector_signature, vector_body,
                                     now - std::chrono::seconds(301)),
              SlackVerification::stale);  // from the future is no better
    EXPECT_EQ(verify_slack_signature(vector_secret, "", vector_signature, vector_body, now),
              SlackVerification::missing_headers);
    EXPECT_EQ(verify_slack_signature(vector_secret, vector_timestamp, "", vector_body, now),
              SlackVerification::missing_headers);
    EXPECT_EQ(
        verify_slack_signature(vector_secret, "1531420618x", vector_signature, vector_body, now),
        SlackVerification::bad_timestamp);
}

TEST(UrlEncoding, DecodesSlackFormsAndRoundTrips) {
    const auto form = parse_url_encoded(vector_body);
    EXPECT_EQ(form.at("command"), "/webhook-collect");
    EXPECT_EQ(form.at("text"), "");
    EXPECT_EQ(form.at("response_url"),
              "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN");
    const std::string payload = R"({"a": "b & c = d+e%", "ü": 1})";
    EXPECT_EQ(parse_url_encoded("payload=" + percent_encode(payload)).at("payload"), payload);
    EXPECT_EQ(percent_decode("100%zz+a"), "100%zz a");  // a bad escape stays as written
}

Mitigation pending_mitigation() {
    Mitigation mitigation;
    mitigation.id = "mit_1";
    mitigation.state = MitigationState::pending_approval;
    mitigation.proposal.incident_id = "inc_1";
    mitigation.proposal.playbook = "flag-off";
    mitigation.proposal.proposed_by = "playbook:flag-off";
    mitigation.proposal.action = {"flags",
                                  "flag.set",
                                  "checkout",
                                  {{"variant", "off"}},
                                  std::chrono::minutes(30),
                                  "errors on <checkout> & cart"};
    Plan plan;
    plan.observed_state = {{"defaultVariant", "on"}};
    plan.forward = {{"defaultVariant", "off"}};
    plan.inverse = {{"defaultVariant", "on"}};
    plan.blast_radius = {1.0, "every evaluation of the flag", std::nullopt};
    mitigation.plan = plan;
    Decision decision;
    decision.effect = DecisionEffect::require_approval;
    decision.approvals_required = 2;
    decision.approver_groups = {"sre"};
    decision.summary = "needs 2 approvals from sre";
    decision.decided_at = *parse_rfc3339("2026-11-23T12:00:00Z");
    mitigation.decision = decision;
    return mitigation;
}

TEST(SlackMessage, APendingMitigationShowsWhatWhyPlanPolicyAndButtons) {
    const Mitigation mitigation = pending_mitigation();
    Incident incident;
    incident.id = "inc_1";
    incident.labels = {{"alertname", "HighErrorRate"}, {"service", "checkout"}};
    const json message =
        slack_mitigation_message(mitigation, incident, *parse_rfc3339("2026-11-23T12:30:00Z"));
    const std::string blocks = message["blocks"].dump();
    EXPECT_THAT(message["text"].get<std::string>(), HasSubstr("Approval needed: flag.set"));
    EXPECT_THAT(blocks, HasSubstr("errors on &lt;checkout&gt; &amp; cart"));  // mrkdwn-escaped
    EXPECT_THAT(blocks, HasSubstr("alertname=HighErrorRate"));
    EXPECT_THAT(blocks, HasSubstr(R"(*Current:* `{\"defaultVariant\":\"on\"}`)"));
    EXPECT_THAT(blocks, HasSubstr(R"(*Undo:* `{\"defaultVariant\":\"on\"}`)"));
    EXPECT_THAT(blocks, HasSubstr("(100%)"));
    EXPECT_THAT(blocks, HasSubstr("0 of 2 from sre; not the proposer"));
    EXPECT_THAT(blocks, HasSubstr("*Expires:* 2026-11-23T12:30:00"));
    const json& actions = message["blocks"].back();
    ASSERT_EQ(actions["type"], "actions");
    EXPECT_EQ(actions["elements"][0]["action_id"], slack_approve_action);
    EXPECT_EQ(actions["elements"][0]["value"], "mit_1");
    EXPECT_EQ(actions["elements"][1]["action_id"], slack_reject_action);
}

TEST(SlackMessage, ButtonsOnlyWhileWaitingAndDrillsAreMarked) {
    Mitigation mitigation = pending_mitigation();
    mitigation.state = MitigationState::verifying;
    mitigation.drill = true;
    mitigation.approvals = {{"alice",
                             {"sre"},
                             ApprovalVerdict::approve,
                             ApprovalChannel::chat,
                             "",
                             *parse_rfc3339("2026-11-23T12:01:00Z")}};
    const json message = slack_mitigation_message(mitigation, std::nullopt, std::nullopt);
    EXPECT_THAT(message["text"].get<std::string>(), HasSubstr("[DRILL] Applied, verifying"));
    EXPECT_THAT(message["blocks"].dump(), Not(HasSubstr("mitigate.approve")));
    EXPECT_THAT(message["blocks"].dump(), HasSubstr("approve by alice via chat"));
    EXPECT_THAT(message["blocks"].dump(), Not(HasSubstr("Expires")));

    mitigation.proposal.action.reason = std::string(5000, 'x');  // Slack caps a section
    const json long_message = slack_mitigation_message(mitigation, std::nullopt, std::nullopt);
    for (const json& block : long_message.at("blocks")) {
        if (block["type"] == "section") {
            EXPECT_LE(block["text"]["text"].get<std::string>().size(), 3000u);
        }
    }
}

TEST(SlackMessage, AMitigationEndedWithoutEffectSaysNothingWasApplied) {
    Mitigation mitigation = pending_mitigation();
    mitigation.state = MitigationState::denied;  // decided again at the moment of effect
    const json denied = slack_mitigation_message(mitigation, std::nullopt, std::nullopt);
    EXPECT_THAT(denied["text"].get<std::string>(),
                HasSubstr("Denied by policy, nothing applied: flag.set"));
    EXPECT_THAT(denied["blocks"].dump(), Not(HasSubstr("mitigate.approve")));
    mitigation.state = MitigationState::expired;  // e.g. approved, then its incident resolved
    const json expired = slack_mitigation_message(mitigation, std::nullopt, std::nullopt);
    EXPECT_THAT(expired["text"].get<std::string>(),
                HasSubstr("Expired, nothing applied: flag.set"));
}

TEST(SlackMessage, AStepThatKeepsFailingIsOneLineWithAttemptRetryAndEscapedError) {
    AuditRecord record;
    record.event = "mitigation.step_failed";
    record.subject = "mit_1";
    record.details = {{"step", "revert"},
                      {"error", "revert failed (unavailable): 503 <@U123> & more"},
                      {"attempt", 3},
                      {"retry_in_seconds", 4.0}};
    EXPECT_EQ(slack_step_failed_line(record),
              ":warning: revert failing (attempt 3), retried in 4 s: revert failed "
              "(unavailable): 503 &lt;@U123&gt; &amp; more");
    record.details = {{"step", 7}, {"attempt", "three"}, {"error", std::string(5000, 'x')}};
    const std::string line = slack_step_failed_line(record);  // wrong types: defaults
    EXPECT_THAT(line, HasSubstr("a step failing: "));
    EXPECT_LE(line.size(), 500u);
    // Cut on a character boundary: the message must still serialize.
    std::string accented;
    for (int i = 0; i < 300; ++i) {
        accented += "é";  // two bytes each
    }
    record.details = {{"step", "revert"}, {"error", "x" + accented}, {"reason", "x" + accented}};
    EXPECT_NO_THROW(json(slack_step_failed_line(record)).dump());
    EXPECT_NO_THROW(json(slack_transition_line(record)).dump());
    // Details of any other shape: a line with defaults, never an exception.
    for (const json& odd : {json(nullptr), json::array({1, 2}), json("text"),
                            json({{"drill", "yes"}, {"retry_in_seconds", "soon"}})}) {
        record.details = odd;
        EXPECT_NO_THROW(slack_step_failed_line(record)) << odd.dump();
        EXPECT_NO_THROW(slack_transition_line(record)) << odd.dump();
    }
    EXPECT_EQ(slack_step_failed_line(record), ":warning: a step failing");
}

}  // namespace
}  // namespace mitigate
