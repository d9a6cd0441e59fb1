// The mitigate binary as users and scripts meet it: exit codes, help that names every
// command, config check with positions, audit verify against each kind of tampering,
// and secrets that never reach any output, log or store row.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "runtime/audit/audit_chain.h"
#include "runtime/core/time_format.h"
#include "runtime/store/sqlite_store.h"
#include "tests/support/child_process.h"
#include "tests/support/hostile_files.h"
#include "tests/support/store_fixtures.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::ProcessResult;

ProcessResult mitigate(std::vector<std::string> arguments,
                       const std::map<std::string, std::string>& environment = {}) {
    arguments.insert(arguments.begin(), testing::mitigate_binary());
    return testing::run_process(arguments, environment);
}

TEST(Cli, VersionAndHelp) {
    const ProcessResult version = mitigate({"--version"});
    EXPECT_EQ(version.exit_code, 0);
    EXPECT_THAT(version.out, HasSubstr("mitigate 0."));

    const ProcessResult help = mitigate({"--help"});
    EXPECT_EQ(help.exit_code, 0);
    for (const char* command : {"demo", "config", "audit", "Exit codes"}) {
        EXPECT_THAT(help.out, HasSubstr(command));
    }
    const ProcessResult audit_help = mitigate({"audit", "verify", "--help"});
    EXPECT_EQ(audit_help.exit_code, 0);
    EXPECT_THAT(audit_help.out, HasSubstr("--expect-head"));
    EXPECT_THAT(audit_help.out, HasSubstr("--output"));
}

TEST(Cli, FilesThatAreNotRegularOrTooCostlyAreRefusedAtOnce) {
    // Each would block (a FIFO), never end (/dev/zero) or expand without bound (aliases)
    // if read naively; each is an error naming the file and what it is.
    testing::TemporaryDirectory directory;
    std::filesystem::create_directory(directory / "drills");
    ASSERT_EQ(mkfifo((directory / "drills" / "stuck.yaml").c_str(), 0600), 0);
    const ProcessResult drills = mitigate({"drill", "check", (directory / "drills").string()});
    EXPECT_EQ(drills.exit_code, 1);
    EXPECT_THAT(drills.err, HasSubstr("stuck.yaml: is a FIFO, not a regular file"));
    const ProcessResult zero = mitigate({"drill", "check", "/dev/zero"});
    EXPECT_EQ(zero.exit_code, 1);
    EXPECT_THAT(zero.err, HasSubstr("/dev/zero: is a device, not a regular file"));
    const ProcessResult config = mitigate({"config", "check", "/dev/zero"});
    EXPECT_EQ(config.exit_code, 1);
    EXPECT_THAT(config.err, HasSubstr("/dev/zero: is a device, not a regular file"));
    const ProcessResult expanded = mitigate(
        {"drill", "check", directory.write("bomb.yaml", testing::yaml_alias_bomb()).string()});
    EXPECT_EQ(expanded.exit_code, 1);
    EXPECT_THAT(expanded.err, HasSubstr("expands to more than 200000 nodes"));
}

TEST(Cli, UsageErrorsExitWith2) {
    EXPECT_EQ(mitigate({}).exit_code, 2);
    EXPECT_EQ(mitigate({"frobnicate"}).exit_code, 2);
    EXPECT_EQ(mitigate({"config"}).exit_code, 2);
    EXPECT_EQ(mitigate({"config", "check"}).exit_code, 2);
    EXPECT_EQ(mitigate({"audit", "tail", "-n", "0"}).exit_code, 2);
    EXPECT_EQ(mitigate({"audit", "verify", "--output", "xml"}).exit_code, 2);
    EXPECT_EQ(mitigate({"audit", "verify", "--expect-head", "nonsense", "--db", "/x"}).exit_code,
              2);
}

TEST(Cli, ConfigCheckPointsAtTheBadKeyByLineAndColumn) {
    testing::TemporaryDirectory directory;
    const auto file = directory.write("mitigate.yaml",
                                      "server:\n  listen: 127.0.0.1:8470\nstore:\n  pth: x.db\n");
    const ProcessResult result = mitigate({"config", "check", file.string()});
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.err,
                HasSubstr(file.string() + ":4:3: store.pth: unknown key (did you mean \"path\"?)"));

    const ProcessResult json = mitigate({"config", "check", file.string(), "--output", "json"});
    EXPECT_EQ(json.exit_code, 1);
    const auto report = nlohmann::json::parse(json.out);
    EXPECT_EQ(report["valid"], false);
    EXPECT_EQ(report["errors"][0]["line"], 4);
    EXPECT_EQ(report["errors"][0]["column"], 3);
    EXPECT_EQ(report["errors"][0]["key"], "store.pth");

    const auto good = directory.write("good.yaml", "store:\n  path: x.db\n");
    const ProcessResult ok = mitigate({"config", "check", good.string()});
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_THAT(ok.out, HasSubstr("ok"));

    EXPECT_EQ(mitigate({"config", "check", (directory / "absent.yaml").string()}).exit_code, 1);
}

TEST(Cli, ConfigShowPrintsTheEmbeddedDefault) {
    const ProcessResult result = mitigate({"config", "show", "--output", "json"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const auto shown = nlohmann::json::parse(result.out);
    EXPECT_EQ(shown["server"]["listen"], "127.0.0.1:8470");
    EXPECT_EQ(shown["store"]["driver"], "sqlite");
    const ProcessResult yaml = mitigate({"config", "show"});
    EXPECT_THAT(yaml.out, HasSubstr("listen: \"127.0.0.1:8470\""));
}

// A secret's value must never appear in anything mitigate writes: stdout, stderr (at the
// most verbose log level, in both formats), the store file or its WAL.
TEST(Cli, SecretValuesNeverAppearInOutputLogsOrStore) {
    testing::TemporaryDirectory directory;
    const std::string env_secret = "env-secret-f00dcafe-9f8e7d";
    const std::string file_secret = "file-secret-8badf00d-1a2b3c";
    const auto secret_file = directory.write("slack-signing", file_secret + "\n");
    const auto config = directory.write(
        "mitigate.yaml",
        "store:\n  path: state.db\nlog:\n  level: trace\n"
        "providers:\n  vercel:\n    egress: {allow_hosts: [api.vercel.com]}\n    credentials:\n"
        "      main: {type: bearer, token: env:MITIGATE_TEST_VERCEL_TOKEN,\n"
        "             origins: [https://api.vercel.com]}\n"
        "chat:\n  slack:\n    channel: C1\n    bot_token: env:MITIGATE_TEST_VERCEL_TOKEN\n"
        "    signing_secret: \"file:" +
            secret_file.string() + "\"\n");
    const std::map<std::string, std::string> environment{
        {"MITIGATE_TEST_VERCEL_TOKEN", env_secret}};

    std::vector<ProcessResult> runs;
    runs.push_back(mitigate({"config", "check", config.string()}, environment));
    runs.push_back(mitigate({"config", "check", config.string(), "--output", "json"}, environment));
    runs.push_back(mitigate({"--config", config.string(), "config", "show"}, environment));
    runs.push_back(
        mitigate({"--config", config.string(), "config", "show", "--output", "json"}, environment));
    for (const char* format : {"text", "json"}) {
        runs.push_back(mitigate({"--config", config.string(), "--log-format", format, "demo",
                                 "--ttl", "3s", "--db", (directory / "demo.db").string()},
                                environment));
    }
    runs.push_back(mitigate({"--config", config.string(), "audit", "tail", "--db",
                             (directory / "demo.db").string(), "--output", "json"},
                            environment));
    ASSERT_EQ(runs[0].exit_code, 0) << runs[0].err;  // the references did resolve
    ASSERT_EQ(runs[4].exit_code, 0) << runs[4].err;
    for (const ProcessResult& run : runs) {
        for (const std::string& secret : {env_secret, file_secret}) {
            EXPECT_THAT(run.out, Not(HasSubstr(secret)));
            EXPECT_THAT(run.err, Not(HasSubstr(secret)));
        }
    }
    EXPECT_THAT(runs[2].out, HasSubstr("env:MITIGATE_TEST_VERCEL_TOKEN"));
    for (const auto& entry : std::filesystem::directory_iterator(directory.path())) {
        if (entry.path().filename().string().starts_with("demo.db")) {
            const std::string bytes = testing::read_file(entry.path());
            EXPECT_EQ(bytes.find(env_secret), std::string::npos) << entry.path();
            EXPECT_EQ(bytes.find(file_secret), std::string::npos) << entry.path();
        }
    }

    // An unset reference is reported by name, and the value of the other is not echoed.
    const ProcessResult unset = mitigate({"config", "check", config.string()});
    EXPECT_EQ(unset.exit_code, 1);
    EXPECT_THAT(unset.err,
                HasSubstr("env:MITIGATE_TEST_VERCEL_TOKEN: environment variable is not set"));
    EXPECT_THAT(unset.err, Not(HasSubstr(file_secret)));
}

// The demo runs with a short TTL, but not shorter than the time an apply takes to be
// verified by the resolved alert on a slow run (the sanitizer build under load took more
// than 1 s: the TTL reverted it first, and the demo rightly said it was never verified).
TEST(Cli, JsonLogsAreOneObjectPerLineOnStderr) {
    testing::TemporaryDirectory directory;
    const ProcessResult result = mitigate({"--log-format", "json", "--log-level", "debug", "demo",
                                           "--ttl", "3s", "--db", (directory / "m.db").string()});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    std::istringstream lines(result.err);
    std::string line;
    std::vector<std::string> messages;
    while (std::getline(lines, line)) {
        const auto entry = nlohmann::json::parse(line);  // throws, failing the test, if not JSON
        EXPECT_TRUE(entry["time"].is_string());
        EXPECT_TRUE(entry["level"].is_string());
        messages.push_back(entry["message"].get<std::string>());
    }
    EXPECT_THAT(messages, ::testing::Contains(HasSubstr("migrated to schema 2")));
    // Logs never mix into stdout, which stays the command's result.
    EXPECT_THAT(result.out, Not(HasSubstr("\"level\"")));

    const ProcessResult quiet = mitigate(
        {"--log-level", "error", "demo", "--ttl", "3s", "--db", (directory / "q.db").string()});
    EXPECT_EQ(quiet.err, "");
}

class CliAuditTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto store = open_sqlite_store(path_);
        ManualClock clock(*parse_rfc3339("2026-11-23T07:00:00Z"));
        store->create_mitigation(testing::make_mitigation("m1", clock.now()), "alice", "r");
        testing::advance(*store, "m1", clock.now());
        testing::advance(*store, "m1", clock.now());
        store->create_mitigation(testing::make_mitigation("m2", clock.now()), "bob", "r");
        testing::advance(*store, "m2", clock.now());
        // m1 wrote 3 records (created and two transitions); m2 adds 2.
        ASSERT_EQ(store->audit_head().sequence, 5);
    }

    ProcessResult verify() { return mitigate({"audit", "verify", "--db", path_.string()}); }

    void tamper(const std::string& sql) {
        testing::execute_sql(path_,
                             "DROP TRIGGER IF EXISTS audit_log_no_update;"
                             "DROP TRIGGER IF EXISTS audit_log_no_delete;" +
                                 sql);
    }

    void expect_broken_at(int record) {
        const ProcessResult result = verify();
        EXPECT_EQ(result.exit_code, 1);
        EXPECT_THAT(result.out, HasSubstr("BROKEN at record " + std::to_string(record)))
            << result.out;
    }

    testing::TemporaryDirectory directory_;
    std::filesystem::path path_ = directory_ / "mitigate.db";
};

TEST_F(CliAuditTest, IntactChainPrintsCountAndHead) {
    const ProcessResult result = verify();
    EXPECT_EQ(result.exit_code, 0) << result.err;
    EXPECT_THAT(result.out, HasSubstr("audit chain intact: 5 records, head 5:"));
    const ProcessResult json =
        mitigate({"audit", "verify", "--db", path_.string(), "--output", "json"});
    EXPECT_EQ(nlohmann::json::parse(json.out)["records"], 5);
}

TEST_F(CliAuditTest, EditIsCaught) {
    tamper("UPDATE audit_log SET record = replace(record, 'bob', 'eve') WHERE sequence = 4");
    expect_broken_at(4);
}

TEST_F(CliAuditTest, DeletionIsCaught) {
    tamper("DELETE FROM audit_log WHERE sequence = 2");
    expect_broken_at(2);
}

TEST_F(CliAuditTest, InsertionIsCaught) {
    tamper(
        "UPDATE audit_log SET sequence = sequence + 10 WHERE sequence >= 2;"
        "UPDATE audit_log SET sequence = sequence - 9 WHERE sequence >= 12;"
        "INSERT INTO audit_log SELECT 2, record, hash FROM audit_log WHERE sequence = 1;");
    expect_broken_at(2);
}

TEST_F(CliAuditTest, ReorderingIsCaught) {
    tamper(
        "UPDATE audit_log SET sequence = 100 WHERE sequence = 3;"
        "UPDATE audit_log SET sequence = 3 WHERE sequence = 4;"
        "UPDATE audit_log SET sequence = 4 WHERE sequence = 100;");
    expect_broken_at(3);
}

TEST_F(CliAuditTest, RewrittenTailIsCaughtAgainstASavedHead) {
    const ProcessResult before = verify();
    const std::string saved = before.out.substr(before.out.find("head ") + 5, 66);
    ASSERT_EQ(saved.size(), 66u);
    // An attacker removes the last two records and fixes up the head to match.
    const std::string record2_hash =
        testing::query_text(path_, "SELECT hash FROM audit_log WHERE sequence = 2");
    tamper(
        "DELETE FROM audit_log WHERE sequence > 2;"
        "UPDATE audit_head SET sequence = 2, hash = '" +
        record2_hash + "';");
    EXPECT_EQ(verify().exit_code, 0);  // self-consistent: only an outside anchor can tell
    const ProcessResult anchored =
        mitigate({"audit", "verify", "--db", path_.string(), "--expect-head", saved});
    EXPECT_EQ(anchored.exit_code, 1);
    EXPECT_THAT(anchored.out, HasSubstr("BROKEN at record 5"));
}

TEST_F(CliAuditTest, TailPrintsRecentRecords) {
    const ProcessResult text = mitigate({"audit", "tail", "--db", path_.string(), "-n", "2"});
    ASSERT_EQ(text.exit_code, 0) << text.err;
    EXPECT_THAT(text.out, HasSubstr("4  2026-11-23T07:00:00Z  bob  mitigation.created  m2"));
    const ProcessResult json =
        mitigate({"audit", "tail", "--db", path_.string(), "-n", "3", "--output", "json"});
    std::istringstream lines(json.out);
    std::string line;
    int count = 0;
    while (std::getline(lines, line)) {
        const auto record = nlohmann::json::parse(line);
        EXPECT_EQ(record["sequence"], count + 3);
        ++count;
    }
    EXPECT_EQ(count, 3);
}

TEST_F(CliAuditTest, MissingOrForeignStoresAreClearErrors) {
    const ProcessResult missing =
        mitigate({"audit", "verify", "--db", (directory_ / "no.db").string()});
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_THAT(missing.err, HasSubstr("does not exist"));
    const auto notes = directory_.write("notes.txt", "not a database at all, but some notes\n");
    const ProcessResult foreign = mitigate({"audit", "verify", "--db", notes.string()});
    EXPECT_EQ(foreign.exit_code, 1);
    EXPECT_THAT(foreign.err, HasSubstr("not a SQLite database"));
    EXPECT_EQ(testing::read_file(notes), "not a database at all, but some notes\n");
}

// A store that cannot be used is an exit code and a line naming it: serve aborted (an
// uncaught StoreError from its stop path) and an empty file became a fresh store.
TEST(Cli, ServeOnAStoreItCannotUseExitsWithAClearErrorAndChangesNothing) {
    testing::TemporaryDirectory directory;
    std::filesystem::create_directories(directory / "policies");
    std::filesystem::create_directories(directory / "playbooks");
    for (const std::string& contents : {std::string(), std::string("notes, not a database\n")}) {
        const auto store = directory.write("m.db", contents);
        const auto config = directory.write(
            "mitigate.yaml",
            "server: {listen: \"127.0.0.1:0\"}\nstore: {path: m.db}\n"
            "directories: {policies: policies, playbooks: playbooks, drills: none}\n");
        const ProcessResult serve = mitigate({"--config", config.string(), "serve"});
        EXPECT_EQ(serve.exit_code, 1) << serve.err;
        EXPECT_THAT(serve.err, HasSubstr(store.string()));
        EXPECT_THAT(serve.err, HasSubstr(contents.empty() ? "the file is empty" : "not a SQLite"));
        EXPECT_EQ(testing::read_file(store), contents);
        EXPECT_FALSE(std::filesystem::exists(store.string() + "-wal"));
    }
}

TEST(CliDemo, RunsTheWholeLoopAndLeavesAVerifiableStore) {
    testing::TemporaryDirectory directory;
    const auto path = directory / "demo.db";
    const ProcessResult result =
        mitigate({"demo", "--ttl", "3s", "--db", path.string(), "--output", "json"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const auto report = nlohmann::json::parse(result.out);
    EXPECT_EQ(report["ok"], true);
    std::vector<std::string> steps;
    for (const auto& entry : report["timeline"]) {
        steps.push_back(entry["step"]);
    }
    // Every stage of the loop, in order, each observed through the API, the service or the
    // emulated Slack channel.
    EXPECT_THAT(steps, ::testing::ElementsAre("runtime", "service", "deploy", "service", "alert",
                                              "incident", "playbook", "plan", "policy", "chat",
                                              "approve", "apply", "service", "alert", "verify",
                                              "deploy", "revert", "chat", "audit"));
    const auto& mitigation = report["mitigation"];
    EXPECT_EQ(mitigation["state"], "reverted");
    EXPECT_EQ(mitigation["proposal"]["playbook"], "latency-throttle");
    EXPECT_EQ(mitigation["plan"]["forward"], (nlohmann::json{{"defaultVariant", "off"}}));
    EXPECT_EQ(mitigation["plan"]["inverse"], (nlohmann::json{{"defaultVariant", "on"}}));
    EXPECT_EQ(mitigation["decision"]["effect"], "require_approval");
    EXPECT_EQ(mitigation["decision"]["ttl"], "3s");  // clamped by the demo policy
    EXPECT_EQ(mitigation["approvals"][0]["approver"], "demo-oncall");
    EXPECT_EQ(mitigation["approvals"][0]["channel"], "chat");
    EXPECT_EQ(mitigation["journal"].size(), 9u);
    const auto flags =
        nlohmann::json::parse(testing::read_file(report["flag_file"].get<std::string>()));
    EXPECT_EQ(flags["flags"]["expensive-recommendations"]["defaultVariant"], "on");
    EXPECT_EQ(report["audit"]["intact"], true);
    // What the demo printed is what is on disk.
    const ProcessResult verify = mitigate({"audit", "verify", "--db", path.string()});
    EXPECT_EQ(verify.exit_code, 0);
    EXPECT_THAT(verify.out, HasSubstr(report["audit"]["head"].get<std::string>()));

    const ProcessResult text = mitigate({"demo", "--ttl", "3s"});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    EXPECT_THAT(text.out, HasSubstr("Every step happened."));
    EXPECT_THAT(text.out, HasSubstr("revert     TTL reached: flag file back on"));
    EXPECT_EQ(mitigate({"demo", "--ttl", "forever"}).exit_code, 2);
}

}  // namespace
}  // namespace mitigate
