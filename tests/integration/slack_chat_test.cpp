// Approvals in Slack, end to end over loopback: the daemon posts and updates messages in
// the Slack emulator, and the emulator sends signed clicks and slash commands back, as
// Slack does. The clock is injected: request timestamps, approval expiry and Retry-After
// all follow it, so nothing here sleeps on a timer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "plugins/emulators/slack_emulator.h"
#include "runtime/chat/chat_state_store.h"
#include "runtime/chat/slack_message.h"
#include "runtime/chat/slack_signature.h"
#include "runtime/core/time_format.h"
#include "runtime/core/url_encoding.h"
#include "runtime/engine/engine.h"
#include "runtime/metrics/metrics.h"
#include "runtime/server/api_token.h"
#include "runtime/server/daemon.h"
#include "runtime/server/http_client.h"
#include "runtime/store/store.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// Obviously fake: the emulator accepts exactly these.
constexpr const char* bot_token = "xoxb-test-not-a-real-token";
constexpr const char* signing_secret = "test-signing-secret-not-real";

class SlackChatTest : public ::testing::Test {
  protected:
    void SetUp() override {
        flags = directory.write("flags.json", R"({"flags": {"checkout": {"state": "ENABLED",
            "variants": {"on": true, "off": false}, "defaultVariant": "on"},
            "checkout-v2": {"state": "ENABLED", "variants": {"on": true, "off": false},
            "defaultVariant": "on"}}})");
        testing::write_policy_and_playbook(directory, testing::environment_policy);
        start_daemon();
    }

    void start_daemon() {
        start_daemon_with([](SlackConfig&) {});
    }

    void start_daemon_with(const std::function<void(SlackConfig&)>& adjust) {
        daemon.reset();
        Config config = testing::runtime_config(directory);
        config.providers.push_back(testing::flagd_provider(flags));
        config.chat.slack =
            testing::emulated_slack(directory, emulator.api_url(), bot_token, signing_secret,
                                    {{"U_ALICE", "alice", {"sre"}, "approver"},
                                     {"U_BOB", "bob", {"sre"}, "approver"},
                                     {"U_MALLORY", "mallory", {"web"}, "approver"},
                                     {"U_CAROL", "carol", {"sre"}, "operator"},
                                     {"U_VERA", "vera", {}, "viewer"}});
        adjust(*config.chat.slack);
        DaemonOptions options = testing::daemon_options(config, &clock);
        daemon = std::make_unique<Daemon>(options);
        daemon->start();
        emulator.point_app_at(daemon->url() + "/v1/chat/slack/interactions",
                              daemon->url() + "/v1/chat/slack/commands");
        if (!daemon->store().find_api_token(api_token_digest(sender_token))) {
            daemon->store().create_api_token(
                {"alertmanager", "sender", {}, api_token_digest(sender_token), clock.now(), {}},
                "test");
        }
    }

    // HighErrorRate firing on checkout in stage: the playbook proposes the flag off, and
    // policy wants two approvals from sre.
    void fire_stage_alert() {
        HttpClientRequest request;
        request.method = "POST";
        request.url = daemon->url() + "/v1/alerts/alertmanager";
        request.headers = {{"Authorization", std::string("Bearer ") + sender_token},
                           {"Content-Type", "application/json"}};
        request.body = json{{"version", "4"},
                            {"status", "firing"},
                            {"receiver", "mitigate"},
                            {"groupKey", "{}"},
                            {"alerts",
                             {{{"status", "firing"},
                               {"labels",
                                {{"alertname", "HighErrorRate"},
                                 {"service", "checkout"},
                                 {"environment", "stage"}}},
                               {"annotations", json::object()},
                               {"startsAt", "2026-11-23T11:59:00Z"},
                               {"endsAt", "0001-01-01T00:00:00Z"},
                               {"fingerprint", "fp1"}}}}}
                           .dump();
        ASSERT_EQ(http_request(request).status, 202);
    }

    // The channel message with buttons, once posted.
    SlackEmulatorMessage approval_message() {
        EXPECT_TRUE(emulator.wait_until([](const SlackEmulator& slack) {
            return !slack.messages().empty();
        })) << "nothing was posted";
        const auto messages = emulator.messages();
        if (messages.empty()) {
            return {};
        }
        wait_until_stored(mitigation_id(), messages.front().ts);
        return messages.front();
    }

    // Slack shows a message before the notifier has stored which message it is; a click is
    // honoured only on the stored one (a person is never that fast).
    void wait_until_stored(const std::string& mitigation_id, const std::string& ts) {
        EXPECT_TRUE(emulator.wait_until([&](const SlackEmulator&) {
            const auto stored = daemon->chat_state().find_chat_message(mitigation_id);
            return stored && stored->ts == ts;
        })) << "the message was not stored";
    }

    std::string mitigation_id() {
        const auto pending =
            daemon->store().list_mitigations(in_states({MitigationState::pending_approval}));
        return pending.empty() ? "" : pending.front().id;
    }

    Mitigation mitigation(const std::string& id) { return *daemon->store().find_mitigation(id); }

    bool wait_for_state(const std::string& id, MitigationState state) {
        return emulator.wait_until(
            [&](const SlackEmulator&) { return mitigation(id).state == state; });
    }

    // Delivers, then waits for the answer on the response_url; returns its text.
    std::string answer_to(const SlackSignedRequest& request) {
        const std::size_t before = emulator.responses().size();
        const HttpClientResponse delivered = emulator.deliver(request);
        EXPECT_EQ(delivered.status, 200) << delivered.body;
        EXPECT_TRUE(emulator.wait_until([&](const SlackEmulator& slack) {
            return slack.responses().size() > before;
        })) << "no answer on the response_url";
        const auto responses = emulator.responses();
        return responses.size() > before ? responses[before].value("text", "") : "";
    }

    int audited(const std::string& event) {
        int count = 0;
        for (const auto& record : daemon->store().audit_records(0, 100000)) {
            count += record.event == event ? 1 : 0;
        }
        return count;
    }

    std::string variant() const {
        return json::parse(testing::read_file(flags))["flags"]["checkout"]["defaultVariant"];
    }

    static std::int64_t seconds_of(TimePoint time) {
        return std::chrono::duration_cast<std::chrono::seconds>(time.time_since_epoch()).count();
    }

    const std::string sender_token = "test-token-not-a-secret-sender";
    testing::TemporaryDirectory directory;
    std::filesystem::path flags;
    ManualClock clock{*parse_rfc3339("2026-11-23T12:00:00Z")};
    SlackEmulator emulator{bot_token, signing_secret, [this] { return seconds_of(clock.now()); }};
    std::unique_ptr<Daemon> daemon;
};

TEST_F(SlackChatTest, AQuorumOfTwoDistinctApproversInSlackAppliesAndTheMessageFollows) {
    fire_stage_alert();
    const SlackEmulatorMessage posted = approval_message();
    const std::string id = mitigation_id();
    ASSERT_FALSE(id.empty());
    const std::string shown = posted.blocks.dump();
    EXPECT_THAT(posted.text, HasSubstr("Approval needed"));
    EXPECT_THAT(shown, HasSubstr(id));
    EXPECT_THAT(shown, HasSubstr("*Current:*"));
    EXPECT_THAT(shown, HasSubstr("*Undo:*"));
    EXPECT_THAT(shown, HasSubstr("0 of 2 from sre"));
    EXPECT_THAT(shown, HasSubstr("mitigate.approve"));
    EXPECT_THAT(shown, HasSubstr("Blast radius"));

    // carol's click is made now, on the message as she sees it, and arrives too late.
    const SlackSignedRequest late = emulator.click("U_CAROL", posted.ts, slack_approve_action);

    EXPECT_THAT(answer_to(emulator.click("U_ALICE", posted.ts, slack_approve_action)),
                HasSubstr("Done: approved by alice (1 of 2)"));
    ASSERT_TRUE(emulator.wait_until([&](const SlackEmulator& slack) {
        return slack.messages().front().blocks.dump().find("1 of 2") != std::string::npos;
    })) << emulator.messages().front().blocks.dump();
    EXPECT_EQ(variant(), "on");

    EXPECT_THAT(answer_to(emulator.click("U_BOB", posted.ts, slack_approve_action)),
                HasSubstr("Done: approved by bob (2 of 2)"));
    ASSERT_TRUE(wait_for_state(id, MitigationState::verifying));
    EXPECT_EQ(variant(), "off");
    const auto thread_has = [&](const std::string& text) {
        return emulator.wait_until([&](const SlackEmulator& slack) {
            for (const auto& message : slack.messages()) {
                if (message.thread_ts == posted.ts &&
                    message.text.find(text) != std::string::npos) {
                    return true;
                }
            }
            return false;
        });
    };
    EXPECT_TRUE(thread_has("approved by alice (1 of 2)"));
    EXPECT_TRUE(thread_has("`pending_approval` → `approved` by bob"));
    EXPECT_TRUE(thread_has("→ `verifying`"));
    EXPECT_TRUE(emulator.messages().front().text.starts_with("Applied"))
        << emulator.messages().front().text;
    const SlackEmulatorMessage updated = emulator.messages().front();
    EXPECT_EQ(updated.ts, posted.ts);
    EXPECT_THAT(updated.blocks.dump(), ::testing::Not(HasSubstr("mitigate.approve")));
    for (const auto& message : emulator.messages()) {
        EXPECT_THAT(message.text, ::testing::Not(HasSubstr("→ `applying`")));  // transient
    }

    // The approvals are recorded under the mapped identities, with the Slack account.
    const Mitigation applied = mitigation(id);
    ASSERT_EQ(applied.approvals.size(), 2u);
    EXPECT_EQ(applied.approvals[0].approver, "alice");
    EXPECT_EQ(applied.approvals[0].channel, ApprovalChannel::chat);
    bool via_recorded = false;
    for (const auto& record : daemon->store().audit_records(0, 100000)) {
        if (record.event == "mitigation.transition" && record.actor == "bob") {
            via_recorded = record.details.value("via", "") == "slack:U_BOB" &&
                           record.details.value("channel", "") == "chat";
        }
    }
    EXPECT_TRUE(via_recorded);

    // Already applied: refused, audited, nothing changed.
    const int refusals = audited("approval.refused");
    EXPECT_THAT(answer_to(late), HasSubstr("Refused: " + id + " is verifying"));
    EXPECT_EQ(audited("approval.refused"), refusals + 1);
    EXPECT_EQ(mitigation(id).approvals.size(), 2u);
}

TEST_F(SlackChatTest, ForgedStaleAlteredAndReplayedRequestsAreRefusedBeforeAnythingElse) {
    fire_stage_alert();
    const SlackEmulatorMessage posted = approval_message();
    const std::string id = mitigation_id();
    const SlackSignedRequest genuine = emulator.click("U_ALICE", posted.ts, slack_approve_action);

    SlackSignedRequest forged = genuine;
    forged.signature = slack_signature("a-secret-guessed-wrong", forged.timestamp, forged.body);
    SlackSignedRequest stale = genuine;
    stale.timestamp = std::to_string(seconds_of(clock.now()) - 301);
    stale.signature = slack_signature(signing_secret, stale.timestamp, stale.body);
    SlackSignedRequest altered = genuine;
    altered.body.replace(altered.body.find("U_ALICE"), 7, "U_BOB__");
    SlackSignedRequest unsigned_request = genuine;
    unsigned_request.signature.clear();

    int refusals = audited("chat.request_refused");
    for (const auto* request : {&forged, &stale, &altered, &unsigned_request}) {
        const HttpClientResponse response = emulator.deliver(*request);
        EXPECT_EQ(response.status, 401) << response.body;
        EXPECT_EQ(audited("chat.request_refused"), ++refusals);
    }
    EXPECT_THAT(emulator.deliver(forged).body, HasSubstr("signature does not match"));
    EXPECT_THAT(emulator.deliver(stale).body, HasSubstr("5 minutes"));
    refusals += 2;
    EXPECT_TRUE(mitigation(id).approvals.empty());
    EXPECT_EQ(mitigation(id).state, MitigationState::pending_approval);

    EXPECT_THAT(answer_to(genuine), HasSubstr("Done: approved by alice"));
    const HttpClientResponse replayed = emulator.deliver(genuine);
    EXPECT_EQ(replayed.status, 401);
    EXPECT_THAT(replayed.body, HasSubstr("already handled"));
    EXPECT_EQ(audited("chat.request_refused"), refusals + 1);
    EXPECT_EQ(mitigation(id).approvals.size(), 1u);

    // A flood of forgeries is refused every time, but audits at most 60 a minute; the
    // first audited after it says how many were only counted.
    clock.advance(std::chrono::minutes(1));
    for (int i = 0; i < 70; ++i) {
        forged.signature =
            slack_signature("guess-" + std::to_string(i), forged.timestamp, forged.body);
        forged.timestamp = std::to_string(seconds_of(clock.now()));
        EXPECT_EQ(emulator.deliver(forged).status, 401);
    }
    EXPECT_EQ(audited("chat.request_refused"), refusals + 1 + 60);
    EXPECT_EQ(daemon->metrics().value("mitigate_chat_refusals_unaudited_total"), 10);
    clock.advance(std::chrono::minutes(1));
    forged.timestamp = std::to_string(seconds_of(clock.now()));
    EXPECT_EQ(emulator.deliver(forged).status, 401);
    EXPECT_EQ(daemon->store().audit_tail(1).front().details.value("unaudited_before", 0), 10);
}

// Signed by Slack (so past the signature) but not the shape Slack sends, or from another
// workspace or app, or a button on a message that does not show its mitigation: each is
// refused and audited, nothing is queued, and a 500 is never the answer.
TEST_F(SlackChatTest, SignedButMalformedForeignOrMisplacedClicksAreRefusedAndAudited) {
    start_daemon_with([](SlackConfig& slack) {
        slack.team_id = "T0EMULATED";
        slack.app_id = "A0EMULATED";
    });
    fire_stage_alert();
    const SlackEmulatorMessage posted = approval_message();
    const std::string id = mitigation_id();
    const SlackSignedRequest genuine = emulator.click("U_ALICE", posted.ts, slack_approve_action);
    const json payload = json::parse(percent_decode(genuine.body.substr(8)));
    const auto signed_form = [&](const std::string& url, const std::string& body) {
        SlackSignedRequest request = genuine;
        request.url = url;
        request.body = body;
        request.timestamp = std::to_string(seconds_of(clock.now()));
        request.signature = slack_signature(signing_secret, request.timestamp, body);
        return request;
    };
    const auto signed_payload = [&](const std::string& text) {
        return signed_form(genuine.url, "payload=" + percent_encode(text));
    };
    const auto changed = [&](const std::function<void(json&)>& change) {
        json copy = payload;
        change(copy);
        return signed_payload(copy.dump());
    };
    const std::vector<std::pair<SlackSignedRequest, std::string>> malformed = {
        {changed([](json& p) {
             p["actions"] = json::array({1, "x"});
         }),
         "payload.actions[0]"},
        {changed([](json& p) { p["actions"][0]["value"] = 42; }), "payload.actions[0].value"},
        {changed([](json& p) { p["actions"] = json::array(); }), "1 to 25 actions"},
        {changed([](json& p) { p["user"] = "U_ALICE"; }), "payload.user"},
        {changed([](json& p) { p.erase("team"); }), "payload.team"},
        {changed([](json& p) { p["container"].erase("message_ts"); }), "message_ts"},
        {changed([](json& p) { p["type"] = "view_submission"; }), "not block_actions"},
        {signed_payload("{not json"), "payload: not valid JSON"},
        {signed_payload(R"({"type": "block_actions", "type": "block_actions"})"), "appears twice"},
        {signed_payload(std::string(100, '[') + std::string(100, ']')), "deeper than 32"},
        {signed_form(genuine.url, "payload=%7B%7D&other=%FF"), "not valid UTF-8"},
        {signed_form(genuine.url, "nothing=here"), "one field, payload"},
    };
    int refusals = audited("chat.request_refused");
    for (const auto& [request, expected] : malformed) {
        const HttpClientResponse response = emulator.deliver(request);
        EXPECT_EQ(response.status, 400) << expected << ": " << response.body;
        EXPECT_THAT(response.body, HasSubstr(expected));
        EXPECT_EQ(audited("chat.request_refused"), ++refusals) << expected;
    }
    const std::vector<std::pair<SlackSignedRequest, std::string>> foreign = {
        {changed([](json& p) { p["team"]["id"] = "T0ELSEWHERE"; }), "from workspace T0ELSEWHERE"},
        {changed([](json& p) { p["api_app_id"] = "A0OTHER"; }), "for app A0OTHER"},
        {changed([](json& p) { p["container"]["message_ts"] = "1.000002"; }),
         "was clicked on message 1.000002, which does not show it"},
        {changed([](json& p) { p["container"]["channel_id"] = "C0ELSEWHERE"; }),
         "which does not show it"},
        {changed([](json& p) { p["actions"][0]["value"] = "mit_not_this_one"; }),
         "names mitigation mit_not_this_one"},
        {signed_form(emulator.slash_command("U_CAROL", "list").url,
                     "team_id=T0ELSEWHERE&api_app_id=A0EMULATED&user_id=U_CAROL&text=list"),
         "from workspace T0ELSEWHERE"},
    };
    for (const auto& [request, expected] : foreign) {
        const HttpClientResponse response = emulator.deliver(request);
        EXPECT_EQ(response.status, 403) << expected << ": " << response.body;
        EXPECT_THAT(response.body, HasSubstr(expected));
        EXPECT_EQ(audited("chat.request_refused"), ++refusals) << expected;
    }
    EXPECT_TRUE(mitigation(id).approvals.empty());
    EXPECT_EQ(mitigation(id).state, MitigationState::pending_approval);
    // The genuine click, on the message that shows the mitigation, still counts.
    EXPECT_THAT(answer_to(genuine), HasSubstr("Done: approved by alice"));
}

TEST_F(SlackChatTest, PeopleThePolicyDoesNotAllowAreRefusedAndAudited) {
    fire_stage_alert();
    const SlackEmulatorMessage posted = approval_message();
    const std::string id = mitigation_id();

    const int chat_refusals = audited("chat.request_refused");
    EXPECT_THAT(answer_to(emulator.click("U_NOBODY", posted.ts, slack_approve_action)),
                HasSubstr("Refused: Slack user U_NOBODY is not mapped"));
    EXPECT_EQ(audited("chat.request_refused"), chat_refusals + 1);
    EXPECT_THAT(answer_to(emulator.click("U_VERA", posted.ts, slack_approve_action)),
                HasSubstr("Refused: vera has the viewer role, which may not approve"));
    EXPECT_EQ(audited("chat.request_refused"), chat_refusals + 2);

    int refusals = audited("approval.refused");
    EXPECT_THAT(answer_to(emulator.click("U_MALLORY", posted.ts, slack_approve_action)),
                HasSubstr("Refused: mallory is not in a group that may decide (sre)"));
    EXPECT_EQ(audited("approval.refused"), ++refusals);

    EXPECT_THAT(answer_to(emulator.click("U_ALICE", posted.ts, slack_approve_action)),
                HasSubstr("Done"));
    EXPECT_THAT(answer_to(emulator.click("U_ALICE", posted.ts, slack_approve_action)),
                HasSubstr("Refused: alice has already approved"));
    EXPECT_EQ(audited("approval.refused"), ++refusals);

    // carol proposes by hand; carol may not approve her own proposal.
    const Mitigation pending = mitigation(id);
    Action action = pending.proposal.action;
    action.target = "checkout-v2";
    action.reason = "carol's own idea";
    ProposalRequest request;
    request.action = action;
    request.incident_id = pending.proposal.incident_id;
    request.proposed_by = "carol";
    const RequestResult proposed = daemon->engine().propose(request);
    ASSERT_EQ(proposed.status, RequestStatus::done) << proposed.message;
    daemon->wake();
    std::string carol_ts;
    ASSERT_TRUE(emulator.wait_until([&](const SlackEmulator& slack) {
        for (const auto& message : slack.messages()) {
            if (message.thread_ts.empty() &&
                message.blocks.dump().find(proposed.mitigation->id) != std::string::npos) {
                carol_ts = message.ts;
            }
        }
        return !carol_ts.empty();
    }));
    wait_until_stored(proposed.mitigation->id, carol_ts);
    EXPECT_THAT(answer_to(emulator.click("U_CAROL", carol_ts, slack_approve_action)),
                HasSubstr("Refused: carol proposed this mitigation"));
    EXPECT_EQ(audited("approval.refused"), ++refusals);

    // Past the 30-minute window: refused, even though the engine has not expired it yet.
    clock.advance(std::chrono::minutes(31));
    EXPECT_THAT(answer_to(emulator.click("U_BOB", posted.ts, slack_approve_action)),
                HasSubstr("Refused: the approval window closed"));
    EXPECT_EQ(audited("approval.refused"), ++refusals);
    EXPECT_EQ(mitigation(id).approvals.size(), 1u);
    EXPECT_EQ(variant(), "on");

    std::size_t via = 0;
    for (const auto& record : daemon->store().audit_records(0, 100000)) {
        via += record.event == "approval.refused" &&
               record.details.value("via", "").starts_with("slack:");
    }
    EXPECT_EQ(via, 4u);
}

TEST_F(SlackChatTest, SlashCommandsListShowDecideRevertAndCheckRoles) {
    fire_stage_alert();
    approval_message();
    const std::string id = mitigation_id();

    const auto command = [&](const std::string& user, const std::string& text) {
        const HttpClientResponse response = emulator.deliver(emulator.slash_command(user, text));
        EXPECT_EQ(response.status, 200) << response.body;
        return json::parse(response.body, nullptr, false);
    };
    EXPECT_THAT(command("U_VERA", "help").value("text", ""), HasSubstr("approve ID"));
    EXPECT_THAT(command("U_VERA", "list").value("text", ""), HasSubstr(id));
    EXPECT_THAT(command("U_VERA", "show " + id).dump(), HasSubstr("*Plan*"));
    EXPECT_THAT(command("U_VERA", "approve " + id).value("text", ""),
                HasSubstr("vera has the viewer role, which may not approve"));
    EXPECT_THAT(command("U_NOBODY", "list").value("text", ""), HasSubstr("not mapped"));
    EXPECT_THAT(command("U_ALICE", "frobnicate").value("text", ""), HasSubstr("no command"));
    EXPECT_THAT(command("U_CAROL", "keep " + id).value("text", ""), HasSubstr("needs a reason"));

    EXPECT_THAT(answer_to(emulator.slash_command("U_ALICE", "approve " + id + " looks right")),
                HasSubstr("Done: approved by alice (1 of 2): looks right"));
    EXPECT_THAT(answer_to(emulator.slash_command("U_CAROL", "approve " + id)),
                HasSubstr("Done: approved by carol (2 of 2)"));
    ASSERT_TRUE(wait_for_state(id, MitigationState::verifying));
    EXPECT_EQ(variant(), "off");

    EXPECT_THAT(command("U_BOB", "revert " + id).value("text", ""),
                HasSubstr("bob has the approver role, which may not revert"));
    EXPECT_THAT(answer_to(emulator.slash_command("U_CAROL", "revert " + id + " customers ok")),
                HasSubstr("Done: reverting"));
    ASSERT_TRUE(wait_for_state(id, MitigationState::reverted));
    EXPECT_EQ(variant(), "on");
    bool reason_recorded = false;
    for (const auto& entry : daemon->store().journal(id)) {
        reason_recorded |=
            entry.reason.find("customers ok (via slack:U_CAROL)") != std::string::npos;
    }
    EXPECT_TRUE(reason_recorded);
}

TEST_F(SlackChatTest, ARevertThatKeepsFailingIsToldInTheThreadUntilItSucceeds) {
    fire_stage_alert();
    const SlackEmulatorMessage posted = approval_message();
    const std::string id = mitigation_id();
    EXPECT_THAT(answer_to(emulator.slash_command("U_ALICE", "approve " + id)), HasSubstr("Done"));
    EXPECT_THAT(answer_to(emulator.slash_command("U_CAROL", "approve " + id)), HasSubstr("Done"));
    ASSERT_TRUE(wait_for_state(id, MitigationState::verifying));
    // The flag file becomes unreadable to the provider: the revert cannot be carried out.
    const std::string good = testing::read_file(flags);
    directory.write(flags.filename().string(), "{ not json");
    EXPECT_THAT(answer_to(emulator.slash_command("U_CAROL", "revert " + id + " done")),
                HasSubstr("Done: reverting"));
    ASSERT_TRUE(emulator.wait_until([&](const SlackEmulator& slack) {
        for (const auto& message : slack.messages()) {
            if (message.thread_ts == posted.ts &&
                message.text.find(":warning: revert failing (attempt 1), retried in 1 s") !=
                    std::string::npos) {
                return true;
            }
        }
        return false;
    })) << "the failing revert was not told in the thread";
    EXPECT_EQ(mitigation(id).state, MitigationState::reverting);
    directory.write(flags.filename().string(), good);
    clock.advance(std::chrono::seconds(1));
    daemon->wake();
    ASSERT_TRUE(wait_for_state(id, MitigationState::reverted));
    EXPECT_EQ(variant(), "on");
}

TEST_F(SlackChatTest, ARateLimitedPostWaitsForRetryAfterAndARestartDoesNotRepost) {
    emulator.rate_limit_next(1, 30);
    fire_stage_alert();
    ASSERT_TRUE(emulator.wait_until([&](const SlackEmulator&) {
        return daemon->metrics().value(
                   "mitigate_chat_calls_total",
                   {{"call", "chat.postMessage"}, {"outcome", "ratelimited"}}) == 1;
    }));
    EXPECT_EQ(emulator.refused_calls(), 1);
    daemon->wake();  // nothing is posted before Retry-After has passed on the clock
    EXPECT_TRUE(emulator.messages().empty());
    clock.advance(std::chrono::seconds(30));
    daemon->wake();
    const SlackEmulatorMessage posted = approval_message();
    const std::string id = mitigation_id();

    // A restart resumes from the stored cursor: no second message, and the next step
    // updates the one that exists.
    start_daemon();
    EXPECT_THAT(answer_to(emulator.click("U_ALICE", posted.ts, slack_approve_action)),
                HasSubstr("Done"));
    ASSERT_TRUE(emulator.wait_until([&](const SlackEmulator& slack) {
        return slack.messages().front().blocks.dump().find("1 of 2") != std::string::npos;
    }));
    std::size_t in_channel = 0;
    for (const auto& message : emulator.messages()) {
        in_channel += message.thread_ts.empty() ? 1 : 0;
    }
    EXPECT_EQ(in_channel, 1u);
    EXPECT_EQ(mitigation(id).state, MitigationState::pending_approval);

    // Someone deletes the message in Slack: the next step posts the state anew.
    emulator.delete_message(posted.ts);
    EXPECT_THAT(answer_to(emulator.slash_command("U_BOB", "reject " + id + " not needed")),
                HasSubstr("Done: rejected by bob: not needed"));
    ASSERT_TRUE(emulator.wait_until([](const SlackEmulator& slack) {
        return !slack.messages().empty() && slack.messages().front().text.starts_with("Rejected");
    })) << emulator.messages().size()
        << " messages; refused calls " << emulator.refused_calls();
    EXPECT_NE(emulator.messages().front().ts, posted.ts);
}

}  // namespace
}  // namespace mitigate
