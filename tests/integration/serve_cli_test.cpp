// `mitigate serve` as a process and the CLI commands against it: tokens made with
// `mitigate token create`, a signal sent with `mitigate signal send`, the tables and
// `show`, approve/revert/keep, and SIGTERM ending the daemon cleanly.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <thread>

#include <nlohmann/json.hpp>

#include "runtime/store/sqlite_store.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::run_process;

class ServeCliTest : public ::testing::Test {
  protected:
    void SetUp() override {
        testing::write_checkout_flag_file(directory);
        testing::write_policy_and_playbook(directory, R"yaml(
rules:
  - name: stage-one
    match: {environment: stage}
    effect: require_approval
    approvals: {count: 1, groups: [sre]}
)yaml");
        config = directory.write("mitigate.yaml",
                                 "server: {listen: \"127.0.0.1:0\"}\n"
                                 "store: {path: m.db}\n"
                                 "directories: {policies: policies, "
                                 "playbooks: playbooks}\n"
                                 "providers:\n"
                                 "  flags:\n"
                                 "    egress: {allow_files: [flags.json]}\n"
                                 "    settings: {backend: flagd, path: " +
                                     (directory / "flags.json").string() + "}\n");
        signal_file = directory.write("signal.json", R"({"name": "HighErrorRate",
            "labels": {"service": "checkout", "environment": "stage"},
            "fingerprint": "checkout-errors", "starts_at": "2026-11-23T12:00:00Z"})");
    }

    // `mitigate --config ... ARGS`, as the named token's holder.
    testing::ProcessResult mitigate(std::vector<std::string> arguments,
                                    const std::string& who = "") {
        arguments.insert(arguments.begin(), {testing::mitigate_binary(), "--config", config});
        std::map<std::string, std::string> environment;
        if (!url.empty()) {
            environment["MITIGATE_SERVER"] = url;
        }
        if (!who.empty()) {
            environment["MITIGATE_TOKEN"] = tokens.at(who);
        }
        return run_process(arguments, environment);
    }

    // Creates the tokens the first time; a second start() is a restart on the same store.
    void start() {
        for (const auto& [name, role] : std::vector<std::pair<std::string, std::string>>{
                 {"sender", "sender"}, {"alice", "approver"}, {"olga", "operator"}}) {
            if (tokens.contains(name)) {
                continue;
            }
            const auto created =
                mitigate({"token", "create", name, "--role", role, "--group", "sre"});
            ASSERT_EQ(created.exit_code, 0) << created.err;
            tokens[name] = created.out.substr(0, created.out.find('\n'));
            EXPECT_THAT(tokens[name], ::testing::StartsWith("mtg_"));
        }
        daemon = std::make_unique<testing::BackgroundProcess>(
            std::vector<std::string>{testing::mitigate_binary(), "--config", config, "serve"},
            std::map<std::string, std::string>{}, (directory / "serve.log").string());
        url = daemon->wait_for_line("mitigate: listening on ");
        ASSERT_FALSE(url.empty()) << testing::read_file(directory / "serve.log");
    }

    std::string wait_for_state(const std::string& state) {
        for (int attempt = 0; attempt < 500; ++attempt) {
            const auto listed =
                mitigate({"mitigations", "--state", state, "--output", "json"}, "alice");
            const json list = json::parse(listed.out, nullptr, false);
            if (list.is_array() && !list.empty()) {
                return list[0]["id"];
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ADD_FAILURE() << "nothing reached " << state;
        return "";
    }

    testing::TemporaryDirectory directory;
    std::string config;
    std::string signal_file;
    std::string url;
    std::map<std::string, std::string> tokens;
    std::unique_ptr<testing::BackgroundProcess> daemon;
};

TEST_F(ServeCliTest, SignalApproveShowRevertThenSigtermStopsCleanly) {
    start();
    const auto sent = mitigate({"signal", "send", signal_file}, "sender");
    ASSERT_EQ(sent.exit_code, 0) << sent.err;
    EXPECT_EQ(sent.out, "accepted 1, duplicates 0\n");
    EXPECT_EQ(mitigate({"signal", "send", signal_file}, "sender").out,
              "accepted 0, duplicates 1\n");

    const std::string id = wait_for_state("pending_approval");
    const auto incidents = mitigate({"incidents"}, "alice");
    EXPECT_EQ(incidents.exit_code, 0);
    EXPECT_THAT(incidents.out, HasSubstr("HighErrorRate on checkout (stage)"));
    const auto table = mitigate({"mitigations"}, "alice");
    EXPECT_THAT(table.out, HasSubstr("pending_approval  flags flag.set"));

    // A sender may not approve; an approver may, once.
    const auto refused = mitigate({"approve", id}, "sender");
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_THAT(refused.err, HasSubstr("(HTTP 403)"));
    const auto approved = mitigate({"approve", id, "--comment", "go"}, "alice");
    EXPECT_EQ(approved.exit_code, 0) << approved.err;
    EXPECT_THAT(approved.out, HasSubstr("approved by alice (1 of 1): go; now approved"));
    wait_for_state("verifying");

    const auto shown = mitigate({"show", id}, "alice");
    EXPECT_THAT(shown.out, HasSubstr("state       verifying"));
    EXPECT_THAT(shown.out, HasSubstr("approval    approve by alice"));
    EXPECT_THAT(shown.out, HasSubstr("applying          runtime"));

    EXPECT_EQ(mitigate({"keep", id}, "olga").exit_code, 2);  // --reason is required
    const auto reverted = mitigate({"revert", id, "--reason", "test over"}, "olga");
    EXPECT_EQ(reverted.exit_code, 0) << reverted.err;
    EXPECT_THAT(reverted.out, HasSubstr("now reverted"));
    EXPECT_EQ(mitigate({"revert", id}, "olga").exit_code, 1);  // nothing left to revert

    daemon->send(SIGTERM);
    EXPECT_EQ(daemon->wait(), 0);
    SqliteStoreOptions read_only;
    read_only.read_only = true;
    auto store = open_sqlite_store(directory / "m.db", read_only);
    EXPECT_EQ(store->audit_tail(1).at(0).event, "daemon.stopped");
    EXPECT_TRUE(store->verify_audit_chain().intact());
}

TEST_F(ServeCliTest, ASecondDaemonOnABusyPortSaysSoAndWritesNothing) {
    start();
    // Its own store: the port is what is in the way.
    std::string other = testing::read_file(config);
    other.replace(other.find("store: {path: m.db}"), 19, "store: {path: other.db}");
    const std::string other_config = directory.write("other.yaml", other);
    const auto second = run_process({testing::mitigate_binary(), "--config", other_config, "serve",
                                     "--listen", url.substr(std::string("http://").size())});
    EXPECT_EQ(second.exit_code, 1);
    EXPECT_THAT(second.err, HasSubstr("cannot listen on 127.0.0.1:"));
    EXPECT_THAT(second.err, HasSubstr("in use"));
}

TEST_F(ServeCliTest, ASecondDaemonOnTheSameStoreIsRefusedNamingTheFirstAndWritesNothing) {
    start();
    const auto before = open_sqlite_store(directory / "m.db")->audit_head().sequence;
    // Another port, the same store: it would run a second engine on the same mitigations.
    const auto second = mitigate({"serve", "--listen", "127.0.0.1:0"});
    EXPECT_EQ(second.exit_code, 1);
    EXPECT_THAT(second.err, HasSubstr("another mitigate daemon (pid " +
                                      std::to_string(daemon->pid()) + ") already serves"));
    EXPECT_THAT(second.err, HasSubstr("m.db"));
    EXPECT_EQ(open_sqlite_store(directory / "m.db")->audit_head().sequence, before);
    // The CLI's own commands still open the store beside the daemon.
    EXPECT_EQ(mitigate({"token", "list"}).exit_code, 0);

    // Killed without a chance to clean up: the kernel releases the lock, a new daemon
    // starts on the same store without anyone removing a file.
    ASSERT_EQ(::kill(daemon->pid(), SIGKILL), 0);
    daemon.reset();
    start();
    EXPECT_FALSE(url.empty());
}

TEST_F(ServeCliTest, AnOperatorResetsTheCircuitBreakerWithAReasonAndItIsAudited) {
    start();
    const auto approver = mitigate({"breaker", "reset", "--reason", "fixed"}, "alice");
    EXPECT_EQ(approver.exit_code, 1);
    EXPECT_THAT(approver.err, HasSubstr("403"));
    const auto no_reason = mitigate({"breaker", "reset"}, "olga");
    EXPECT_EQ(no_reason.exit_code, 2);
    EXPECT_THAT(no_reason.err, HasSubstr("--reason is required"));
    const auto empty_reason = mitigate({"breaker", "reset", "--reason", ""}, "olga");
    EXPECT_EQ(empty_reason.exit_code, 1);
    EXPECT_THAT(empty_reason.err, HasSubstr("a reason is required"));
    const auto reset = mitigate(
        {"breaker", "reset", "--reason", "flag backend fixed", "--output", "json"}, "olga");
    ASSERT_EQ(reset.exit_code, 0) << reset.err;
    EXPECT_THAT(json::parse(reset.out).value("message", ""), HasSubstr("circuit breaker reset at"));
    int audited = 0;
    for (const AuditRecord& record : open_sqlite_store(directory / "m.db")->audit_tail(100)) {
        if (record.event == "policy.circuit_breaker_reset") {
            ++audited;
            EXPECT_EQ(record.actor, "olga");
            EXPECT_EQ(record.details.value("reason", ""), "flag backend fixed");
        }
    }
    EXPECT_EQ(audited, 1);
}

TEST_F(ServeCliTest, ClearErrorsWithoutADaemonOrAToken) {
    tokens["nobody"] = "mtg_not_a_real_token";
    url = "http://127.0.0.1:1";
    const auto unreachable = mitigate({"incidents"}, "nobody");
    EXPECT_EQ(unreachable.exit_code, 1);
    EXPECT_THAT(unreachable.err, HasSubstr("cannot reach the daemon at http://127.0.0.1:1"));
    const auto tokenless = mitigate({"incidents"});
    EXPECT_EQ(tokenless.exit_code, 1);
    EXPECT_THAT(tokenless.err, HasSubstr("no API token; set MITIGATE_TOKEN"));
    const auto bad_role = mitigate({"token", "create", "x", "--role", "root"});
    EXPECT_EQ(bad_role.exit_code, 2);
    EXPECT_THAT(bad_role.err, HasSubstr("sender, viewer, approver, operator, admin"));
}

// The shipped latency-throttle drill against `mitigate serve` with the shipped playbooks:
// `mitigate drill run` starts it and follows it; policy asks for an approval, which a
// person gives from the CLI; the drill passes and its flag change is reverted.
TEST_F(ServeCliTest, TheShippedLatencyDrillRunsFromTheCliAndPasses) {
    directory.write("flags.json", R"({"flags": {"expensive-recommendations": {
        "state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}})");
    const std::string source = testing::source_directory();
    config = directory.write("mitigate.yaml",
                             "server: {listen: \"127.0.0.1:0\"}\n"
                             "store: {path: m.db}\n"
                             "directories: {policies: policies, playbooks: " +
                                 source +
                                 "/scripts/playbooks, drills: no-scheduled-drills}\n"
                                 "providers:\n"
                                 "  flags:\n"
                                 "    egress: {allow_files: [flags.json]}\n"
                                 "    settings: {backend: flagd, path: " +
                                 (directory / "flags.json").string() + "}\n");
    start();
    testing::BackgroundProcess drill(
        {testing::mitigate_binary(), "--config", config, "drill", "run",
         source + "/scripts/drills/latency-throttle.yaml"},
        {{"MITIGATE_SERVER", url}, {"MITIGATE_TOKEN", tokens.at("olga")}},
        (directory / "drill.log").string());
    const std::string id = wait_for_state("pending_approval");
    const auto shown = mitigate({"show", id}, "alice");
    EXPECT_THAT(shown.out, HasSubstr("[drill]"));
    EXPECT_EQ(mitigate({"approve", id, "--comment", "drill"}, "alice").exit_code, 0);
    EXPECT_EQ(drill.wait_for_line("## Drill latency-throttle: "), "passed");
    EXPECT_EQ(drill.wait(), 0) << testing::read_file(directory / "drill.log");
    const auto history = mitigate({"drill", "history"}, "alice");
    EXPECT_THAT(history.out, HasSubstr("passed    latency-throttle"));
    const json flags = json::parse(testing::read_file(directory / "flags.json"));
    EXPECT_EQ(flags["flags"]["expensive-recommendations"]["defaultVariant"], "on");
    EXPECT_THAT(mitigate({"show", id}, "alice").out, HasSubstr("state       reverted"));
    daemon->send(SIGTERM);
    EXPECT_EQ(daemon->wait(), 0);
}

// SIGKILL in the middle of a drill that has changed the flag: the next `mitigate serve`
// aborts the run and reverts the change before anything else is asked of it.
TEST_F(ServeCliTest, ADaemonKilledMidDrillRevertsTheDrillsChangeWhenItStartsAgain) {
    const std::string drill_file = directory.write("never-resolves.yaml", R"(name: never-resolves
environment: dev
service: checkout
fault:
  signal: {alertname: HighErrorRate, resolve: never}
expect:
  proposals: [{playbook: flag-off}]
  applied_within: 10m
  recovered_within: 30m
max_duration: 1h
)");
    testing::write_policy_and_playbook(directory, R"yaml(
rules:
  - name: dev-allow
    match: {environment: dev}
    effect: allow
)yaml");
    start();
    const auto started = mitigate({"drill", "run", drill_file, "--no-wait"}, "olga");
    ASSERT_EQ(started.exit_code, 0) << started.err;
    wait_for_state("verifying");
    const auto flag_variant = [&] {
        return json::parse(testing::read_file(directory / "flags.json"))["flags"]["checkout"].value(
            "defaultVariant", "");
    };
    EXPECT_EQ(flag_variant(), "off");
    daemon->send(SIGKILL);
    EXPECT_EQ(daemon->wait(), 128 + SIGKILL);

    start();
    std::string history;
    for (int attempt = 0; attempt < 500; ++attempt) {
        history = mitigate({"drill", "history"}, "alice").out;
        if (history.find("aborted") != std::string::npos) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_THAT(history, HasSubstr("aborted   never-resolves"));
    EXPECT_THAT(history, HasSubstr("the daemon restarted during the drill"));
    EXPECT_EQ(flag_variant(), "on");
    daemon->send(SIGTERM);
    EXPECT_EQ(daemon->wait(), 0);
}

}  // namespace
}  // namespace mitigate
