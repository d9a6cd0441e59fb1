// The daemon over real HTTP on loopback: Alertmanager payloads (firing, retried,
// resolved, malformed), token roles, approvals with a quorum and a refused
// self-approval, TTL revert, backpressure, metrics. In-process so that the clock is
// injected; the engine runs on its own thread exactly as under `mitigate serve`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include <sqlite3.h>

#include <nlohmann/json.hpp>

#include "runtime/core/time_format.h"
#include "runtime/core/utf8.h"
#include "runtime/engine/engine.h"
#include "runtime/metrics/metrics.h"
#include "runtime/server/api_token.h"
#include "runtime/server/daemon.h"
#include "runtime/server/http_client.h"
#include "runtime/store/store.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"
#include "tests/support/store_fixtures.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

class ApiServerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        flags = directory.write("flags.json", R"({"flags": {"checkout": {"state": "ENABLED",
            "variants": {"on": true, "off": false, "half": 0.5}, "defaultVariant": "on"}}})");
        testing::write_policy_and_playbook(directory, testing::environment_policy);
        start_daemon(EngineConfig{});
    }

    void start_daemon(EngineConfig engine) {
        daemon.reset();
        Config config = testing::runtime_config(directory);
        config.engine = engine;
        config.providers.push_back(testing::flagd_provider(flags));
        DaemonOptions options = testing::daemon_options(config, &clock);
        daemon = std::make_unique<Daemon>(options);
        daemon->start();
        if (tokens.empty()) {
            for (const auto& [name, role, groups] :
                 std::vector<std::tuple<std::string, std::string, std::vector<std::string>>>{
                     {"alertmanager", "sender", {}},
                     {"viewer", "viewer", {}},
                     {"alice", "approver", {"sre"}},
                     {"bob", "approver", {"sre"}},
                     {"mallory", "approver", {"web"}},
                     {"carol", "operator", {"sre"}},
                     {"olga", "operator", {}}}) {
                const std::string token = "test-token-not-a-secret-" + name;
                daemon->store().create_api_token(
                    {name, role, groups, api_token_digest(token), clock.now(), {}}, "test");
                tokens[name] = token;
            }
        }
    }

    HttpClientResponse call(const std::string& method, const std::string& path,
                            const std::string& who = "", const json& body = nullptr) {
        HttpClientRequest request;
        request.method = method;
        request.url = daemon->url() + path;
        if (!who.empty()) {
            request.headers["Authorization"] = "Bearer " + tokens.at(who);
        }
        if (!body.is_null()) {
            request.headers["Content-Type"] = "application/json";
            request.body = body.is_string() ? body.get<std::string>() : body.dump();
        }
        return http_request(request);
    }

    static json webhook(const std::string& status, const std::string& environment,
                        const std::string& fingerprint = "fp1") {
        return {{"version", "4"},
                {"status", status},
                {"receiver", "mitigate"},
                {"groupKey", "{}"},
                {"alerts",
                 {{{"status", status},
                   {"labels",
                    {{"alertname", "HighErrorRate"},
                     {"service", "checkout"},
                     {"environment", environment}}},
                   {"annotations", json::object()},
                   {"startsAt", "2026-11-23T11:59:00Z"},
                   {"endsAt", "0001-01-01T00:00:00Z"},
                   {"fingerprint", fingerprint}}}}};
    }

    // Waits (bounded) for the engine thread to bring some mitigation to `state`.
    json wait_for_state(const std::string& state) {
        for (int attempt = 0; attempt < 1000; ++attempt) {
            const auto response = call("GET", "/v1/mitigations?state=" + state, "viewer");
            const json list = json::parse(response.body)["mitigations"];
            if (!list.empty()) {
                return list[0];
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ADD_FAILURE() << "no mitigation reached " << state
                      << "; all: " << call("GET", "/v1/mitigations", "viewer").body;
        return json::object();
    }

    std::string variant() const {
        return json::parse(testing::read_file(flags))["flags"]["checkout"]["defaultVariant"];
    }

    testing::TemporaryDirectory directory;
    std::filesystem::path flags;
    ManualClock clock{*parse_rfc3339("2026-11-23T12:00:00Z")};
    std::map<std::string, std::string> tokens;
    std::unique_ptr<Daemon> daemon;
};

TEST_F(ApiServerTest, AlertmanagerFiringRetriedAndResolvedPayloads) {
    auto first = call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "dev"));
    EXPECT_EQ(first.status, 202) << first.body;
    EXPECT_EQ(json::parse(first.body)["accepted"], 1);
    auto retried =
        call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "dev"));
    EXPECT_EQ(retried.status, 202);
    EXPECT_EQ(json::parse(retried.body)["duplicates"], 1);

    const json applied = wait_for_state("verifying");
    EXPECT_EQ(variant(), "off");
    call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("resolved", "dev"));
    wait_for_state("active");
    const auto incidents = json::parse(call("GET", "/v1/incidents", "viewer").body)["incidents"];
    ASSERT_EQ(incidents.size(), 1u);
    EXPECT_EQ(incidents[0]["status"], "resolved");
    const auto shown = call("GET", "/v1/mitigations/" + applied["id"].get<std::string>(), "viewer");
    EXPECT_EQ(json::parse(shown.body)["journal"].size(), 6u);
}

TEST_F(ApiServerTest, MalformedPayloadsAreRefusedNamingTheFieldAndStoreNothing) {
    json missing = webhook("firing", "dev");
    missing["alerts"][0].erase("fingerprint");
    auto response = call("POST", "/v1/alerts/alertmanager", "alertmanager", missing);
    EXPECT_EQ(response.status, 400);
    EXPECT_THAT(response.body, HasSubstr("webhook.alerts[0].fingerprint"));
    EXPECT_EQ(call("POST", "/v1/alerts/alertmanager", "alertmanager", json("{not json")).status,
              400);
    EXPECT_EQ(
        call("POST", "/v1/signals", "alertmanager", json{{"name", "X"}, {"colour", "red"}}).status,
        400);
    EXPECT_TRUE(daemon->store().list_incidents({}).empty());
    EXPECT_TRUE(daemon->store().ungrouped_signals(10).empty());
}

// Each request below once added a /metrics series of its own (the route label came from
// the path, before authentication) or made the exposition invalid UTF-8, after which
// Prometheus drops the whole scrape.
TEST_F(ApiServerTest, NoRequestAddsMetricSeriesOrInvalidUtf8) {
    const auto series = [this] {
        const std::string text = call("GET", "/metrics", "viewer").body;
        EXPECT_EQ(first_invalid_utf8(text), std::nullopt);
        std::size_t count = 0;
        for (std::size_t at = text.find("\nmitigate_http_requests_total{"); at != std::string::npos;
             at = text.find("\nmitigate_http_requests_total{", at + 1)) {
            ++count;
        }
        return count;
    };
    const std::size_t before = series();
    for (int i = 0; i < 50; ++i) {
        const std::string n = std::to_string(i);
        call("GET", "/nothing-here-" + n);
        call("POST", "/v1/mitigations/mit_x/verb-" + n);
        call("POST", "/v1/mitigations/mit_x/verb-" + n, "carol", json::object());
        call("GET", "/v1/mitigations/mit_" + n);
        call("GET", "/v1/drills/runs/run-" + n, "viewer");
        call("GET", "/v1/incidents/%FF%FE" + n);
    }
    // At most: unknown, invalid, and the templates above with 401, 404 and 400.
    EXPECT_LE(series(), before + 8);
}

TEST_F(ApiServerTest, InvalidUtf8AnywhereInARequestIsA400NamingWhere) {
    auto response = call("GET", "/v1/mitigations/%FF%FE", "viewer");
    EXPECT_EQ(response.status, 400);
    EXPECT_THAT(response.body, HasSubstr("invalid UTF-8 in the decoded path segment"));
    response = call("GET", "/v1/incidents?status=open%C0%AF", "viewer");
    EXPECT_EQ(response.status, 400);
    EXPECT_THAT(response.body, HasSubstr("the decoded query parameter status"));
    HttpClientRequest request;
    request.url = daemon->url() + "/v1/incidents";
    request.headers["Authorization"] = "Bearer " + tokens.at("viewer");
    request.headers["X-Trace"] = "\xed\xa0\x80";  // a UTF-16 surrogate, encoded
    response = http_request(request);
    EXPECT_EQ(response.status, 400);
    EXPECT_THAT(response.body, HasSubstr("the header x-trace"));
    response =
        call("POST", "/v1/signals", "alertmanager", json(std::string("{\"name\": \"X\xff\"}")));
    EXPECT_EQ(response.status, 400);
    EXPECT_THAT(response.body, HasSubstr("invalid UTF-8 in the body at byte 11"));
    EXPECT_EQ(
        call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "dev")).status,
        202);
}

TEST_F(ApiServerTest, ARepeatedKeyOrLabelIsRefusedNamingItAndStoresNothing) {
    std::string text = webhook("firing", "dev").dump();
    const std::string labels = "\"labels\":{";
    text.insert(text.find(labels) + labels.size(), "\"environment\":\"prod\",");
    auto response = call("POST", "/v1/alerts/alertmanager", "alertmanager", json(text));
    EXPECT_EQ(response.status, 400);
    EXPECT_THAT(response.body, HasSubstr("the key alerts[0].labels.environment appears twice"));
    response = call("POST", "/v1/signals", "alertmanager",
                    json(std::string(R"({"name": "X", "labels": {}, "name": "Y"})")));
    EXPECT_EQ(response.status, 400);
    EXPECT_THAT(response.body, HasSubstr("the key name appears twice"));
    response = call("POST", "/v1/mitigations/mit_x/revert", "carol",
                    json(std::string(R"({"reason": "a", "reason": "b"})")));
    EXPECT_EQ(response.status, 400);
    EXPECT_TRUE(daemon->store().list_incidents({}).empty());
    EXPECT_TRUE(daemon->store().ungrouped_signals(10).empty());
}

// Alerts acknowledged after the database file was deleted went to the unlinked file and
// were gone at the next start. Now nothing is acknowledged that is not in the file at the
// configured path: the daemon answers 503 (Alertmanager keeps the alerts and retries).
TEST_F(ApiServerTest, ADeletedDatabaseIsNoticedAndNothingMoreIsAcknowledged) {
    EXPECT_EQ(call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "dev", "a"))
                  .status,
              202);
    std::filesystem::remove(testing::runtime_config(directory).store.path);
    auto response =
        call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "dev", "b"));
    EXPECT_EQ(response.status, 503);
    EXPECT_EQ(call("GET", "/healthz").status, 200);  // the process is alive
    response = call("GET", "/readyz");
    EXPECT_EQ(response.status, 503);
    EXPECT_THAT(response.body, HasSubstr("the database file was deleted"));
    response = call("GET", "/v1/incidents", "viewer");
    EXPECT_EQ(response.status, 503);
    EXPECT_EQ(response.headers["retry-after"], "30");
    EXPECT_EQ(call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "dev", "c"))
                  .status,
              503);
}

// Another process holds the store's write lock past SQLite's busy timeout (10 s): the
// alert is answered 503 and not stored, /readyz says why until a write succeeds again,
// and /healthz answers throughout.
TEST_F(ApiServerTest, AStoreThatCannotWriteMakesReadyzFailUntilAWriteSucceeds) {
    sqlite3* holder = nullptr;
    ASSERT_EQ(sqlite3_open(testing::runtime_config(directory).store.path.c_str(), &holder),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(holder, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
    auto response =
        call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "dev", "a"));
    EXPECT_EQ(response.status, 503) << response.body;
    EXPECT_EQ(call("GET", "/healthz").status, 200);
    response = call("GET", "/readyz");
    EXPECT_EQ(response.status, 503);
    EXPECT_THAT(response.body, HasSubstr("database is locked"));
    ASSERT_EQ(sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(holder);
    EXPECT_EQ(call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "dev", "a"))
                  .status,
              202);
    EXPECT_EQ(call("GET", "/readyz").status, 200);
}

TEST_F(ApiServerTest, TokenRolesDecideWhatEachCallerMayDo) {
    EXPECT_EQ(call("GET", "/healthz").status, 200);
    EXPECT_EQ(call("GET", "/readyz").status, 200);
    EXPECT_EQ(call("GET", "/v1/incidents").status, 401);
    EXPECT_EQ(call("GET", "/metrics").status, 401);
    EXPECT_EQ(call("GET", "/v1/incidents", "alertmanager").status, 403);  // sender: signals only
    EXPECT_EQ(call("GET", "/v1/incidents", "viewer").status, 200);
    EXPECT_EQ(call("POST", "/v1/signals", "viewer", json{{"name", "X"}}).status, 403);
    EXPECT_EQ(call("POST", "/v1/mitigations/mit_x/approve", "viewer", json::object()).status, 403);
    EXPECT_EQ(call("POST", "/v1/mitigations/mit_x/approve", "alice", json::object()).status, 404);
    EXPECT_EQ(call("POST", "/v1/mitigations/mit_x/revert", "alice", json::object()).status, 403);
    EXPECT_EQ(call("POST", "/v1/mitigations/mit_x/revert", "carol", json::object()).status, 404);
    HttpClientRequest forged;
    forged.url = daemon->url() + "/v1/incidents";
    forged.headers["Authorization"] = "Bearer mtg_forged";
    EXPECT_EQ(http_request(forged).status, 401);
    ASSERT_TRUE(daemon->store().revoke_api_token("viewer", clock.now(), "test"));
    EXPECT_EQ(call("GET", "/v1/incidents", "viewer").status, 401);
}

// The same refusal in Slack was audited and in the API was not: now both are, within
// the same budget of 60 a minute, and counted.
TEST_F(ApiServerTest, RefusedRequestsAreAuditedWithinABudgetAndCounted) {
    const auto refusals = [this] {
        std::vector<AuditRecord> found;
        for (const auto& record : daemon->store().audit_records(0, 100000)) {
            if (record.event == "api.request_refused") {
                found.push_back(record);
            }
        }
        return found;
    };
    EXPECT_EQ(call("GET", "/v1/incidents").status, 401);
    EXPECT_EQ(call("POST", "/v1/mitigations/mit_x/approve", "viewer", json::object()).status, 403);
    auto audited = refusals();
    ASSERT_EQ(audited.size(), 2u);
    EXPECT_EQ(audited[0].actor, "api");
    EXPECT_EQ(audited[0].details["route"], "/v1/incidents");
    EXPECT_THAT(audited[0].details["peer"].get<std::string>(), HasSubstr("127.0.0.1:"));
    EXPECT_EQ(audited[1].actor, "api:viewer");
    EXPECT_EQ(audited[1].details["route"], "/v1/mitigations/{id}/approve");
    EXPECT_THAT(audited[1].details["reason"].get<std::string>(), HasSubstr("may not do this"));

    for (int i = 0; i < 70; ++i) {
        HttpClientRequest forged;
        forged.url = daemon->url() + "/v1/incidents";
        forged.headers["Authorization"] = "Bearer mtg_guess_" + std::to_string(i);
        EXPECT_EQ(http_request(forged).status, 401);
    }
    EXPECT_EQ(refusals().size(), 60u);
    EXPECT_EQ(daemon->metrics().value("mitigate_api_refusals_unaudited_total"), 12);
    EXPECT_EQ(daemon->metrics().value("mitigate_api_requests_refused_total",
                                      {{"reason", "unauthenticated"}}),
              71);
    clock.advance(std::chrono::minutes(1));
    EXPECT_EQ(call("GET", "/v1/incidents").status, 401);
    EXPECT_EQ(refusals().back().details.value("unaudited_before", 0), 12);
}

// Keep and revert were gated by role only: an operator in no group kept a mitigation
// that needed two sre approvals. Now the rule that decided it says who may: keep needs
// its approver groups (sre here), revert stays open to every operator.
TEST_F(ApiServerTest, KeepNeedsTheGroupsThePolicyNamedAndIsAuditedWhenRefused) {
    call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "stage"));
    const std::string id = wait_for_state("pending_approval")["id"];
    EXPECT_EQ(
        json::parse(call("GET", "/v1/mitigations/" + id, "viewer").body)["decision"]["keep_groups"],
        json::array({"sre"}));
    for (const char* approver : {"alice", "bob"}) {
        EXPECT_EQ(
            call("POST", "/v1/mitigations/" + id + "/approve", approver, json::object()).status,
            200);
    }
    wait_for_state("verifying");
    const auto refused =
        call("POST", "/v1/mitigations/" + id + "/keep", "olga", json{{"reason", "mine now"}});
    EXPECT_EQ(refused.status, 403);
    EXPECT_THAT(refused.body, HasSubstr("olga is not in a group that may keep it (sre"));
    const auto audit = daemon->store().audit_tail(5);
    EXPECT_TRUE(std::any_of(audit.begin(), audit.end(), [&](const AuditRecord& record) {
        return record.event == "keep.refused" && record.subject == id && record.actor == "olga";
    }));
    // carol is in sre: past the group check, refused only for the state (still verifying).
    EXPECT_EQ(
        call("POST", "/v1/mitigations/" + id + "/keep", "carol", json{{"reason", "r"}}).status,
        409);
    const auto reverted =
        call("POST", "/v1/mitigations/" + id + "/revert", "olga", json{{"reason", "undo"}});
    EXPECT_EQ(reverted.status, 202) << reverted.body;
}

TEST_F(ApiServerTest, AQuorumOfTwoThroughTheApiAppliesAndSelfApprovalIsRefused) {
    call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "stage"));
    const json pending = wait_for_state("pending_approval");
    const std::string id = pending["id"];
    const std::string approve = "/v1/mitigations/" + id + "/approve";
    EXPECT_EQ(call("POST", approve, "mallory", json::object()).status, 403);  // not in sre
    auto first = call("POST", approve, "alice", json{{"comment", "looks right"}});
    EXPECT_EQ(first.status, 200) << first.body;
    EXPECT_EQ(json::parse(first.body)["mitigation"]["state"], "pending_approval");
    EXPECT_EQ(call("POST", approve, "alice", json::object()).status, 409);  // twice
    EXPECT_EQ(variant(), "on");
    auto second = call("POST", approve, "bob", json::object());
    EXPECT_EQ(second.status, 200);
    wait_for_state("verifying");
    EXPECT_EQ(variant(), "off");
    EXPECT_EQ(call("POST", approve, "carol", json::object()).status, 409);  // already applied

    // carol proposes a change by hand; carol may not approve it herself.
    const std::string incident = pending["proposal"]["incident_id"];
    auto proposed = call("POST", "/v1/mitigations", "carol",
                         {{"incident_id", incident},
                          {"action",
                           {{"provider", "flags"},
                            {"action", "flag.set"},
                            {"target", "checkout"},
                            {"parameters", {{"variant", "on"}}},
                            {"ttl", "10m"},
                            {"reason", "by hand"}}}});
    ASSERT_EQ(proposed.status, 200) << proposed.body;
    const std::string mine = json::parse(proposed.body)["mitigation"]["id"];
    // Queued behind the applied one: reverting that lets it be planned and decided. The
    // revert is accepted (202) and carried out by the engine.
    const auto reverting =
        call("POST", "/v1/mitigations/" + id + "/revert", "carol", json{{"reason", "making room"}});
    EXPECT_EQ(reverting.status, 202) << reverting.body;
    EXPECT_EQ(json::parse(reverting.body)["mitigation"]["state"], "reverting");
    wait_for_state("pending_approval");
    const auto self = call("POST", "/v1/mitigations/" + mine + "/approve", "carol", json::object());
    EXPECT_EQ(self.status, 403);
    EXPECT_THAT(self.body, HasSubstr("proposed this mitigation"));
}

TEST_F(ApiServerTest, TheEngineRevertsAtTheTtlOnItsOwn) {
    call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "dev"));
    wait_for_state("verifying");
    call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("resolved", "dev"));
    wait_for_state("active");
    clock.advance(std::chrono::minutes(31));
    daemon->wake();
    wait_for_state("reverted");
    EXPECT_EQ(variant(), "on");
    const std::string metrics = call("GET", "/metrics", "viewer").body;
    EXPECT_THAT(metrics, HasSubstr("mitigate_reverts_total{cause=\"ttl\"} 1"));
    EXPECT_THAT(metrics, HasSubstr("mitigate_decisions_total{effect=\"allow\"} 1"));
    EXPECT_THAT(metrics, HasSubstr("# TYPE mitigate_signal_to_applied_seconds histogram"));
}

TEST_F(ApiServerTest, AFullBacklogAnswers503WithRetryAfterAndStoresNothing) {
    EngineConfig small;
    small.pending_signal_limit = 1;
    start_daemon(small);
    // The store is slow (another process holds its write lock): the first webhook waits for
    // its commit and fills the backlog; the next is refused, and nothing of it is stored.
    testing::StoreWriteLock slow(directory / "m.db");
    std::thread first_sender([this] {
        EXPECT_EQ(
            call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "dev", "fp1"))
                .status,
            202);
    });
    for (int attempt = 0; attempt < 1000 && daemon->engine().queued_signals() == 0; ++attempt) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_EQ(daemon->engine().queued_signals(), 1u);
    const auto response =
        call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "dev", "fp2"));
    EXPECT_EQ(response.status, 503);
    EXPECT_EQ(response.headers.at("retry-after"), "5");
    slow.release();
    first_sender.join();
    wait_for_state("verifying");
    EXPECT_EQ(daemon->store().list_incidents({}).size(), 1u);
    EXPECT_THAT(call("GET", "/metrics", "viewer").body,
                HasSubstr("mitigate_signals_refused_total 1"));
}

TEST_F(ApiServerTest, DenyAndDryRunDecisionsApplyNothing) {
    call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "prod"));
    const json denied = wait_for_state("denied");
    EXPECT_THAT(denied["decision"]["summary"].get<std::string>(), HasSubstr("no rule"));
    call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "qa", "fp2"));
    wait_for_state("dry_run");
    EXPECT_EQ(variant(), "on");
}

TEST_F(ApiServerTest, AMitigationThatDoesNotHelpIsRevertedAfterTheVerificationWindow) {
    call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "dev"));
    wait_for_state("verifying");
    clock.advance(std::chrono::minutes(5));  // engine.verification_window, alert still firing
    daemon->wake();
    const json reverted = wait_for_state("reverted");
    EXPECT_EQ(variant(), "on");
    const auto shown = json::parse(
        call("GET", "/v1/mitigations/" + reverted["id"].get<std::string>(), "viewer").body);
    EXPECT_THAT(shown["journal"][5]["reason"].get<std::string>(), HasSubstr("verification failed"));
    // Counted by the circuit breaker, and shown; no step is failing any more.
    EXPECT_TRUE(shown["failed_at"].is_string());
    EXPECT_TRUE(shown.contains("retry") && shown["retry"].is_null());
}

TEST_F(ApiServerTest, ARevertThatWouldClobberAPersonsChangeIsAConflictThenKept) {
    call("POST", "/v1/alerts/alertmanager", "alertmanager", webhook("firing", "dev"));
    const std::string id = wait_for_state("verifying")["id"];
    // Meanwhile a person moved the flag to a third variant: reverting would clobber it.
    json document = json::parse(testing::read_file(flags));
    document["flags"]["checkout"]["defaultVariant"] = "half";
    testing::TemporaryDirectory scratch;
    std::filesystem::copy_file(scratch.write("flags.json", document.dump()), flags,
                               std::filesystem::copy_options::overwrite_existing);
    const auto revert =
        call("POST", "/v1/mitigations/" + id + "/revert", "carol", json{{"reason", "done"}});
    EXPECT_EQ(revert.status, 202) << revert.body;
    wait_for_state("conflict");
    const auto shown = json::parse(call("GET", "/v1/mitigations/" + id, "viewer").body);
    EXPECT_THAT(shown["journal"].back()["reason"].get<std::string>(),
                HasSubstr("a person must decide"));
    EXPECT_EQ(call("POST", "/v1/mitigations/" + id + "/keep", "carol", json::object()).status,
              400);  // a reason is required
    const auto kept =
        call("POST", "/v1/mitigations/" + id + "/keep", "carol", json{{"reason", "theirs now"}});
    EXPECT_EQ(kept.status, 200) << kept.body;
    EXPECT_EQ(json::parse(kept.body)["mitigation"]["state"], "kept");
    EXPECT_EQ(variant(), "half");  // the person's change stands
}

}  // namespace
}  // namespace mitigate

namespace mitigate {
namespace {

// The reset route reads its body like every other action: strictly, refusing what is not
// exactly {"reason": "..."}, with nothing stored for a refusal; refusals for the token
// (401, 403) are audited as api.request_refused and nothing else is.
TEST_F(ApiServerTest, ACircuitBreakerResetRefusesMalformedBodiesAndWritesNothing) {
    const auto before = daemon->store().audit_head().sequence;
    for (const json& body : {json("{not json"), json(R"({"reason": 5})"),
                             json(R"({"reason": ["a"]})"), json(R"({"reason": "x", "extra": 1})"),
                             json("[1, 2]"), json(R"({"reason": null})"), json("{}")}) {
        const auto answer = call("POST", "/v1/circuit-breaker/reset", "carol", body);
        EXPECT_EQ(answer.status, 400) << body.dump() << ": " << answer.body;
    }
    EXPECT_EQ(call("GET", "/v1/circuit-breaker/reset", "carol").status, 405);
    EXPECT_EQ(call("POST", "/v1/circuit-breaker/reset", "alice", json(R"({"reason": "x"})")).status,
              403);
    EXPECT_EQ(call("POST", "/v1/circuit-breaker/reset", "", json(R"({"reason": "x"})")).status,
              401);
    EXPECT_EQ(call("POST", "/v1/circuit-breaker/other", "carol", json(R"({"reason": "x"})")).status,
              404);
    EXPECT_EQ(daemon->store().audit_head().sequence, before + 2);
    for (const auto& record : daemon->store().audit_tail(2)) {
        EXPECT_EQ(record.event, "api.request_refused");
    }
    EXPECT_FALSE(daemon->store().last_circuit_breaker_reset());
    const auto done =
        call("POST", "/v1/circuit-breaker/reset", "carol", json(R"({"reason": "ok"})"));
    EXPECT_EQ(done.status, 200) << done.body;
    EXPECT_TRUE(daemon->store().last_circuit_breaker_reset());
}

}  // namespace
}  // namespace mitigate
