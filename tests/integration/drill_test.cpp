// Chaos drills in the daemon, over its API, with the flags provider on a flagd file and the
// flag-off playbook. The clock is injected: deadlines and schedules move when the test
// advances it, so nothing sleeps on a timer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "runtime/core/time_format.h"
#include "runtime/drills/drill_run_store.h"
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

// dev: policy allows; stage: two approvals. The alert resolves once the mitigation is
// applied, or never (`resolve_never`), which leaves the drill waiting for recovery.
std::string drill_yaml(const std::string& name, const std::string& environment,
                       const std::string& expected_playbook, bool resolve_never = false) {
    return "name: " + name + "\nenvironment: " + environment +
           "\nservice: checkout\n"
           "fault:\n  signal: {alertname: HighErrorRate, labels: {flag: checkout}" +
           (resolve_never ? ", resolve: never" : "") +
           "}\n"
           "expect:\n  proposals: [{playbook: " +
           expected_playbook +
           ", provider: flags, action: flag.set, target: checkout}]\n"
           "  applied_within: 2m\n  recovered_within: 5m\n"
           "max_duration: 15m\n";
}

class DrillTest : public ::testing::Test {
  protected:
    void SetUp() override {
        flags = directory.write("flags.json", R"({"flags": {"checkout": {"state": "ENABLED",
            "variants": {"on": true, "off": false}, "defaultVariant": "on"},
            "slow-path": {"state": "ENABLED", "variants": {"on": true, "off": false},
            "defaultVariant": "off"}}})");
        testing::write_policy_and_playbook(directory, testing::environment_policy);
        std::filesystem::create_directories(directory / "drills");
    }

    void start_daemon(EngineConfig engine = {}) {
        daemon.reset();
        Config config = testing::runtime_config(directory);
        config.engine = engine;
        config.directories.drills = directory / "drills";
        config.providers.push_back(testing::flagd_provider(flags));
        DaemonOptions options = testing::daemon_options(config, &clock);
        daemon = std::make_unique<Daemon>(options);
        daemon->start();
        for (const auto& [name, role] : {std::pair{"carol", "operator"}, {"am", "sender"}}) {
            const std::string token = std::string("test-token-not-a-secret-") + name;
            if (!daemon->store().find_api_token(api_token_digest(token))) {
                daemon->store().create_api_token(
                    {name, role, {"sre"}, api_token_digest(token), clock.now(), {}}, "test");
            }
        }
    }

    HttpClientResponse call(const std::string& method, const std::string& path, const json& body,
                            const std::string& who = "carol") {
        HttpClientRequest request;
        request.method = method;
        request.url = daemon->url() + path;
        request.headers["Authorization"] = "Bearer test-token-not-a-secret-" + who;
        if (!body.is_null()) {
            request.headers["Content-Type"] = "application/json";
            request.body = body.dump();
        }
        return http_request(request);
    }

    std::string start_drill(const std::string& yaml, bool dry_run = false) {
        const auto response =
            call("POST", "/v1/drills/runs", {{"definition", yaml}, {"dry_run", dry_run}});
        EXPECT_EQ(response.status, 202) << response.body;
        return json::parse(response.body)["run"].value("id", "");
    }

    // Polls (bounded) for the engine and the drill runner threads.
    bool wait_until(const std::function<bool()>& ready) {
        for (int attempt = 0; attempt < 2000; ++attempt) {
            if (ready()) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return ready();
    }

    json run(const std::string& id) { return drill_run_json(*daemon->drill_runs().find(id)); }

    json finished_run(const std::string& id) {
        EXPECT_TRUE(wait_until([&] {
            const std::string status = run(id)["status"];
            return status != "running" && status != "cleaning";
        })) << run(id).dump(2);
        return run(id);
    }

    std::vector<Mitigation> drill_mitigations() {
        std::vector<Mitigation> found;
        for (const Mitigation& mitigation : daemon->store().list_mitigations({})) {
            if (mitigation.drill) {
                found.push_back(mitigation);
            }
        }
        return found;
    }

    bool drill_mitigation_in(MitigationState state) {
        return wait_until([&] {
            const auto mitigations = drill_mitigations();
            return !mitigations.empty() && mitigations.front().state == state;
        });
    }

    std::string variant() const {
        return json::parse(testing::read_file(flags))["flags"]["checkout"]["defaultVariant"];
    }

    static std::vector<std::string> failed_expectations(const json& run) {
        std::vector<std::string> failed;
        for (const json& expectation : run["expectations"]) {
            if (!expectation["passed"].get<bool>()) {
                failed.push_back(expectation["expectation"]);
            }
        }
        return failed;
    }

    testing::TemporaryDirectory directory;
    std::filesystem::path flags;
    ManualClock clock{*parse_rfc3339("2026-11-24T12:00:00Z")};
    std::unique_ptr<Daemon> daemon;
};

TEST_F(DrillTest, APassingDrillAppliesVerifiesRevertsAndReportsEachStep) {
    start_daemon();
    const json done = finished_run(start_drill(drill_yaml("checkout-errors", "dev", "flag-off")));
    EXPECT_EQ(done["status"], "passed") << done.dump(2);
    EXPECT_TRUE(failed_expectations(done).empty());
    for (const char* step : {"detect", "propose", "approve", "apply", "recover", "revert"}) {
        EXPECT_TRUE(done["durations_seconds"].contains(step)) << step;
    }
    // Cleanup reverted what the drill applied; everything it caused is marked drill.
    EXPECT_EQ(variant(), "on");
    const auto mitigations = drill_mitigations();
    ASSERT_EQ(mitigations.size(), 1u);
    EXPECT_EQ(mitigations.front().state, MitigationState::reverted);
    const auto incident = daemon->store().find_incident(done["incident_id"].get<std::string>());
    ASSERT_TRUE(incident);
    EXPECT_TRUE(incident->drill);
    EXPECT_EQ(incident->status, IncidentStatus::resolved);
    bool transition_marked = false;
    for (const auto& record : daemon->store().audit_records(0, 100000)) {
        transition_marked |=
            record.event == "mitigation.transition" && record.details.value("drill", false);
    }
    EXPECT_TRUE(transition_marked);
    // Sent through the API, not in the drills directory: counted under one label, so that
    // callers cannot add series by inventing names.
    EXPECT_EQ(daemon->metrics().value("mitigate_drill_last_result", {{"drill", "adhoc"}}), 1);
    EXPECT_EQ(daemon->metrics().render().find("checkout-errors"), std::string::npos);
    const auto history = call("GET", "/v1/drills/runs?drill=checkout-errors", nullptr);
    EXPECT_EQ(json::parse(history.body)["runs"].size(), 1u);
}

TEST_F(DrillTest, AWrongExpectationFailsTheDrillAndCleanupStillReverts) {
    start_daemon();
    const std::string id = start_drill(drill_yaml("wrong-playbook", "dev", "latency-throttle"));
    ASSERT_TRUE(drill_mitigation_in(MitigationState::active));  // flag-off ran, not the expected
    EXPECT_EQ(variant(), "off");
    clock.advance(std::chrono::minutes(3));  // past applied_within
    daemon->wake();
    const json done = finished_run(id);
    EXPECT_EQ(done["status"], "failed");
    EXPECT_THAT(failed_expectations(done),
                ::testing::Contains(HasSubstr("proposes playbook=latency-throttle")));
    EXPECT_THAT(done["expectations"].dump(), HasSubstr("proposed: flag-off flags flag.set"));
    EXPECT_EQ(variant(), "on");
    EXPECT_EQ(drill_mitigations().front().state, MitigationState::reverted);
    EXPECT_EQ(daemon->metrics().value("mitigate_drill_last_result", {{"drill", "adhoc"}}), 0);
}

TEST_F(DrillTest, AConflictDuringCleanupIsReportedOnceAndTheRunEnds) {
    start_daemon();
    const std::string id = start_drill(drill_yaml("changed-by-hand", "dev", "flag-off", true));
    ASSERT_TRUE(drill_mitigation_in(MitigationState::verifying));
    // A person moves the flag on meanwhile: reverting would clobber their change.
    json document = json::parse(testing::read_file(flags));
    document["flags"]["checkout"]["variants"]["half"] = 0.5;
    document["flags"]["checkout"]["defaultVariant"] = "half";
    std::ofstream(flags) << document.dump(2);
    clock.advance(std::chrono::minutes(16));  // past max_duration: cleanup
    daemon->wake();
    const json done = finished_run(id);
    ASSERT_NE(done["status"], "running");
    const Mitigation mitigation = drill_mitigations().front();
    EXPECT_EQ(mitigation.state, MitigationState::conflict);
    EXPECT_EQ(variant(), "half");  // the person's change stands
    EXPECT_THAT(done["cleanup"].dump(), HasSubstr("a person must revert or keep it"));
    // One revert was tried (the engine's, when verification failed) and ended in conflict;
    // cleanup did not try again and again.
    int conflicts = 0;
    for (const JournalEntry& entry : daemon->store().journal(mitigation.id)) {
        conflicts += entry.to == MitigationState::conflict ? 1 : 0;
    }
    EXPECT_EQ(conflicts, 1);
    int audited = 0;
    for (const AuditRecord& record : daemon->store().audit_records(0, 100000)) {
        audited += record.event == "drill.cleanup_conflict" ? 1 : 0;
    }
    EXPECT_EQ(audited, 1);
}

TEST_F(DrillTest, ACleanupThatCannotFinishEndsTheRunAfterItsGraceAndTheEngineGoesOn) {
    start_daemon();
    const std::string id = start_drill(drill_yaml("provider-down", "dev", "flag-off", true));
    ASSERT_TRUE(drill_mitigation_in(MitigationState::verifying));
    // The flag backend breaks: every revert fails, and is retried.
    const std::string good = testing::read_file(flags);
    std::ofstream(flags) << "{ not json";
    clock.advance(std::chrono::minutes(16));  // past max_duration: cleanup starts
    daemon->wake();
    ASSERT_TRUE(wait_until([&] { return run(id)["status"] == "cleaning"; })) << run(id).dump(2);
    ASSERT_TRUE(drill_mitigation_in(MitigationState::reverting));
    clock.advance(std::chrono::minutes(6));  // past the cleanup grace
    daemon->wake();
    const json done = finished_run(id);
    EXPECT_EQ(done["status"], "failed");
    EXPECT_THAT(done.value("reason", ""), HasSubstr("cleanup did not finish within 5m"));
    EXPECT_THAT(done.value("reason", ""), HasSubstr("reverting"));
    int audited = 0;
    for (const AuditRecord& record : daemon->store().audit_records(0, 100000)) {
        audited += record.event == "drill.cleanup_incomplete" ? 1 : 0;
    }
    EXPECT_EQ(audited, 1);
    // The backend comes back: the engine, not the run, finishes the revert.
    std::ofstream(flags) << good;
    clock.advance(std::chrono::minutes(1));
    daemon->wake();
    EXPECT_TRUE(drill_mitigation_in(MitigationState::reverted));
    EXPECT_EQ(variant(), "on");
}

TEST_F(DrillTest, ARealAlertOnTheTargetAbortsTheDrillAndCleansUp) {
    start_daemon();
    const std::string id = start_drill(drill_yaml("stage-errors", "stage", "flag-off"));
    ASSERT_TRUE(drill_mitigation_in(MitigationState::pending_approval));
    const json alert = {
        {"version", "4"},
        {"status", "firing"},
        {"receiver", "mitigate"},
        {"groupKey", "{}"},
        {"alerts",
         {{{"status", "firing"},
           {"labels",
            {{"alertname", "HighErrorRate"}, {"service", "checkout"}, {"environment", "stage"}}},
           {"annotations", json::object()},
           {"startsAt", "2026-11-24T11:59:00Z"},
           {"endsAt", "0001-01-01T00:00:00Z"},
           {"fingerprint", "real-one"}}}}};
    EXPECT_EQ(call("POST", "/v1/alerts/alertmanager", alert, "am").status, 202);
    const json done = finished_run(id);
    EXPECT_EQ(done["status"], "aborted");
    EXPECT_THAT(done.value("reason", ""), HasSubstr("a real incident is open on checkout"));
    // Withdrawn without effect: by the drill's cleanup (rejected), or by the engine first
    // because the cleanup resolved the drill's incident (expired).
    EXPECT_THAT(drill_mitigations().front().state,
                ::testing::AnyOf(MitigationState::rejected, MitigationState::expired));
    // The real incident's own proposal goes on: it waited for the drill's on the same
    // target, and now waits for its approvals.
    EXPECT_TRUE(wait_until([&] {
        for (const Mitigation& mitigation : daemon->store().list_mitigations({})) {
            if (!mitigation.drill && mitigation.state == MitigationState::pending_approval) {
                return true;
            }
        }
        return false;
    }));

    // And a drill does not start at all while the real incident is open.
    const std::string refused = start_drill(drill_yaml("stage-errors", "stage", "flag-off"));
    EXPECT_EQ(run(refused)["status"], "aborted");
    EXPECT_THAT(run(refused).value("reason", ""), HasSubstr("not started"));
}

TEST_F(DrillTest, ADaemonStoppedMidDrillCleansUpWhenItStartsAgain) {
    start_daemon();
    const std::string id = start_drill(drill_yaml("left-behind", "dev", "flag-off", true));
    ASSERT_TRUE(drill_mitigation_in(MitigationState::verifying));
    EXPECT_EQ(variant(), "off");
    EXPECT_EQ(run(id)["status"], "running");
    start_daemon();  // the old process goes; the run is still "running" in the store
    const json done = finished_run(id);
    EXPECT_EQ(done["status"], "aborted");
    EXPECT_THAT(done.value("reason", ""), HasSubstr("restarted during the drill"));
    EXPECT_EQ(variant(), "on");
    EXPECT_EQ(drill_mitigations().front().state, MitigationState::reverted);
    start_daemon();  // the last result per drill is in /metrics from the start
    EXPECT_EQ(daemon->metrics().value("mitigate_drill_last_result", {{"drill", "adhoc"}}), -1);
}

TEST_F(DrillTest, ScheduledRunsNeverOverlapAndMissedOnesAreReportedNotReplayed) {
    // A run that stays going for the whole test: its alert never resolves, and neither the
    // drill's deadlines nor the engine's verification window end it.
    directory.write("drills/every-minute.yaml", R"(name: every-minute
schedule: {cron: "* * * * *"}
environment: dev
service: checkout
fault:
  signal: {alertname: HighErrorRate, resolve: never}
expect:
  proposals: [{playbook: flag-off}]
  applied_within: 2m
  recovered_within: 1h
max_duration: 2h
)");
    EngineConfig engine;
    engine.verification_window_ms = 2 * 60 * 60 * 1000;
    start_daemon(engine);
    const auto runs = [&](const std::string& status) {
        std::vector<json> found;
        for (const DrillRun& run :
             daemon->drill_runs().list("every-minute", {*parse_drill_run_status(status)}, 1000)) {
            found.push_back(drill_run_json(run));
        }
        return found;
    };
    clock.advance(std::chrono::minutes(1));
    daemon->wake();
    ASSERT_TRUE(wait_until([&] { return runs("running").size() == 1; }));
    ASSERT_TRUE(drill_mitigation_in(MitigationState::verifying));
    clock.advance(std::chrono::minutes(1));
    daemon->wake();
    ASSERT_TRUE(wait_until([&] { return runs("skipped").size() == 1; }));
    EXPECT_THAT(runs("skipped").front().value("reason", ""), HasSubstr("never overlap"));
    EXPECT_EQ(runs("running").size(), 1u);

    clock.advance(std::chrono::minutes(10));  // ten starts due at once
    daemon->wake();
    ASSERT_TRUE(wait_until([&] { return runs("missed").size() == 1; }));
    EXPECT_EQ(runs("missed").front().value("missed", 0), 9);
    EXPECT_TRUE(wait_until([&] { return runs("skipped").size() == 2; }));
    EXPECT_EQ(runs("running").size() + runs("cleaning").size(), 1u);
    EXPECT_EQ(drill_mitigations().size(), 1u);
}

TEST_F(DrillTest, ADryRunDecidesButAppliesNothing) {
    start_daemon();
    const json done =
        finished_run(start_drill(drill_yaml("checkout-errors", "dev", "flag-off"), true));
    EXPECT_EQ(done["status"], "passed") << done.dump(2);
    EXPECT_TRUE(done.value("dry_run", false));
    EXPECT_THAT(done["expectations"].dump(), HasSubstr("nothing applied (dry run)"));
    EXPECT_EQ(variant(), "on");
    const auto mitigations = drill_mitigations();
    ASSERT_EQ(mitigations.size(), 1u);
    EXPECT_EQ(mitigations.front().state, MitigationState::dry_run);
    EXPECT_THAT(mitigations.front().decision->summary, HasSubstr("dry run requested"));
}

TEST_F(DrillTest, AMalformedDefinitionIsRefusedNamingTheLine) {
    start_daemon();
    const auto response = call("POST", "/v1/drills/runs",
                               {{"definition",
                                 "name: x\nenvironment: dev\nservice: s\n"
                                 "fault: {signal: {alertname: A}}\n"
                                 "expect: {proposals: [{playbok: p}]}\n"},
                                {"file", "x.yaml"}});
    EXPECT_EQ(response.status, 400);
    EXPECT_THAT(response.body, HasSubstr("x.yaml:5"));
    EXPECT_THAT(response.body, HasSubstr("playbok"));
    EXPECT_TRUE(daemon->drill_runs().list("", {}, 10).empty());
}

// The error-budget stop condition asks the real Prometheus (a constant query stands in
// for a burn-rate recording rule): above the threshold the drill does not start; below it,
// it runs; Prometheus unreachable or refusing the query is a reason to stop, not to go on.
TEST_F(DrillTest, AnErrorBudgetBurnAboveTheThresholdKeepsTheDrillFromStarting) {
    const std::string log = (directory / "prometheus.log").string();
    directory.write("prometheus.yml", "global: {}\n");
    testing::BackgroundProcess prometheus(
        {"/usr/bin/prometheus", "--config.file=" + (directory / "prometheus.yml").string(),
         "--storage.tsdb.path=" + (directory / "tsdb").string(),
         "--web.listen-address=127.0.0.1:0"},
        {}, log);
    const std::string url = testing::wait_for_listening_url(log);
    ASSERT_FALSE(url.empty()) << testing::read_file(log);
    start_daemon();
    const auto with_budget = [&](const std::string& name, const std::string& server,
                                 const std::string& query) {
        return drill_yaml(name, "dev", "flag-off") + "stop_when:\n  error_budget: {prometheus: \"" +
               server + "\", query: \"" + query + "\", above: 0.1}\n";
    };

    const json burning = finished_run(start_drill(with_budget("burning", url, "vector(0.5)")));
    EXPECT_EQ(burning["status"], "aborted");
    EXPECT_THAT(burning.value("reason", ""),
                HasSubstr("not started: the error budget burn (vector(0.5)) is 0.5, above 0.1"));
    EXPECT_TRUE(drill_mitigations().empty());

    const json broken = finished_run(start_drill(with_budget("broken", url, "vector((")));
    EXPECT_EQ(broken["status"], "aborted");
    EXPECT_THAT(broken.value("reason", ""), HasSubstr("cannot check the error budget"));

    const json healthy = finished_run(start_drill(with_budget("healthy", url, "vector(0.05)")));
    EXPECT_EQ(healthy["status"], "passed") << healthy.dump(2);
    EXPECT_EQ(variant(), "on");

    prometheus.send(SIGTERM);
    prometheus.wait();
    clock.advance(std::chrono::seconds(11));  // past the 10 s an answer is reused
    const json unreachable =
        finished_run(start_drill(with_budget("unreachable", url, "vector(0.05)")));
    EXPECT_EQ(unreachable["status"], "aborted");
    EXPECT_THAT(unreachable.value("reason", ""), HasSubstr("cannot check the error budget"));
}

// A fault that is a provider action: the slow path is switched on (a drill mitigation,
// through policy), then the alert is raised; the playbook answers; cleanup reverts both.
// In prod the default policy denies the fault, and the drill is aborted with nothing done.
TEST_F(DrillTest, AProviderActionFaultIsAppliedThroughPolicyThenRevertedWithTheResponse) {
    start_daemon();
    const auto fault_drill = [](const std::string& name, const std::string& environment) {
        return "name: " + name + "\nenvironment: " + environment +
               "\nservice: checkout\n"
               "fault:\n"
               "  action: {provider: flags, action: flag.set, target: slow-path,\n"
               "           parameters: {variant: \"on\"}, ttl: 10m}\n"
               "  signal: {alertname: HighErrorRate, labels: {flag: checkout}}\n"
               "expect:\n  proposals: [{playbook: flag-off, target: checkout}]\n"
               "max_duration: 15m\n";
    };
    const auto flag = [&](const std::string& name) {
        return json::parse(testing::read_file(flags))["flags"][name]["defaultVariant"]
            .get<std::string>();
    };
    const json done = finished_run(start_drill(fault_drill("slow-path", "dev")));
    EXPECT_EQ(done["status"], "passed") << done.dump(2);
    EXPECT_TRUE(done["times"].contains("fault_applied"));
    EXPECT_EQ(flag("slow-path"), "off");  // the fault, reverted
    EXPECT_EQ(flag("checkout"), "on");    // the response, reverted
    const auto fault = daemon->store().find_mitigation(done["fault_mitigation"].get<std::string>());
    ASSERT_TRUE(fault);
    EXPECT_TRUE(fault->drill);
    EXPECT_EQ(fault->proposal.proposed_by, "drill:slow-path");
    EXPECT_EQ(fault->state, MitigationState::reverted);

    const json denied = finished_run(start_drill(fault_drill("prod-fault", "prod")));
    EXPECT_EQ(denied["status"], "aborted");
    EXPECT_THAT(denied.value("reason", ""),
                HasSubstr("the fault did not apply: the fault ended denied"));
    EXPECT_FALSE(denied["times"].contains("injected"));  // no alert was raised
    EXPECT_EQ(flag("slow-path"), "off");
}

}  // namespace
}  // namespace mitigate
