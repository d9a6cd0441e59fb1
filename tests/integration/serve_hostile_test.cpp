// A hostile plugin and hostile playbooks against a live `mitigate serve`: each attack ends
// as a failed mitigation or a failed playbook run with its reason, the daemon keeps
// serving, applies a normal mitigation afterwards, stops cleanly, and leaves no worker
// process behind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "runtime/store/sqlite_store.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;
using testing::run_process;

// The plugin's actions that attack the runtime from inside a plan call. Each must end as
// a failed mitigation; none may take the daemon down or block it.
const std::vector<std::string> plugin_attacks{
    "deep_answer",    "deep_frame",      "mistyped_log",    "mistyped_result",
    "unknown_status", "huge_frame",      "segfault",        "loop",
    "stdio",          "other_processes", "log_flood",       "log_forever",
    "log_forge",      "extra_field",     "mistyped_egress", "long_field_name"};

std::string hostile_plugin_playbook() {
    std::string proposals;
    for (const auto& action : plugin_attacks) {
        // One provider per attack, each its own plugin host: one attack's backoff and
        // circuit breaker do not keep the next from reaching the plugin.
        proposals += "      { provider = 'hostile-" + action + "', action = '" + action +
                     "', target = 't-" + action +
                     "', parameters = { lines = 1000, bytes = 5000 }, ttl = '30m', "
                     "reason = 'attack' },\n";
    }
    return "return {\n  name = 'hostile-plugin',\n"
           "  matches = { alerts = { 'HostilePlugin' } },\n"
           "  propose = function(incident)\n    return {\n" +
           proposals + "    }\n  end,\n}\n";
}

// Playbooks that attack the Lua worker; each must end as a typed playbook failure.
const std::vector<std::pair<std::string, std::string>> playbook_attacks{
    {"spin-handler", "xpcall(function() while true do end end, function(e) while true do end end)"},
    {"huge-error", "error(string.rep('e', 7000000))"},
    {"invalid-utf8", "return { { provider = 'flags\\xff', action = 'x' } }"},
    {"state-nul", "return mitigate.state('flags', 'a\\0b')"},
    {"state-hammer", "for i = 1, 50000 do mitigate.state('flags', 'checkout') end"},
    {"close-bug", "local co = coroutine.create(function() end) coroutine.close(co)"},
    {"output-bomb",
     "local s = string.rep('x', 65536) local t = {} for i = 1, 5000 do t[i] = s end return t"},
};

class ServeHostileTest : public ::testing::Test {
  protected:
    void SetUp() override {
        testing::write_checkout_flag_file(directory);
        testing::write_policy_and_playbook(directory, R"yaml(
rules:
  - name: stage-allow
    match: {environment: stage}
    effect: allow
)yaml");
        directory.write("playbooks/hostile-plugin.lua", hostile_plugin_playbook());
        for (const auto& [name, body] : playbook_attacks) {
            directory.write("playbooks/" + name + ".lua",
                            "return { name = '" + name + "', matches = { alerts = { '" + name +
                                "' } },\n  propose = function(incident)\n" + body + "\nend }\n");
        }
        // The hostile plugin in a directory of its own (mode 0700, ours).
        fs::create_directory(directory / "plugins");
        fs::permissions(directory / "plugins", fs::perms::owner_all);
        fs::copy_file(fs::path(MITIGATE_TEST_PLUGIN_DIRECTORY) / "hostile.so",
                      directory / "plugins" / "hostile.so");
        config = directory.write(
            "mitigate.yaml",
            "server: {listen: \"127.0.0.1:0\"}\n"
            "store: {path: m.db}\n"
            "directories: {policies: policies, playbooks: playbooks, "
            "plugins: plugins}\n"
            "sandbox: {plugin_call_timeout_ms: 1500}\n"
            "providers:\n" +
                [] {
                    std::string hostile;
                    for (const auto& action : plugin_attacks) {
                        hostile += "  hostile-" + action + ": {plugin: hostile}\n";
                    }
                    return hostile;
                }() +
                "  flags:\n"
                "    egress: {allow_files: [flags.json]}\n"
                "    settings: {backend: flagd, path: " +
                (directory / "flags.json").string() + "}\n");
    }

    testing::ProcessResult mitigate(std::vector<std::string> arguments, bool as_sender = false) {
        arguments.insert(arguments.begin(), {testing::mitigate_binary(), "--config", config});
        std::map<std::string, std::string> environment{{"MITIGATE_SERVER", url}};
        environment["MITIGATE_TOKEN"] = as_sender ? sender : operator_token;
        return run_process(arguments, environment);
    }

    std::string token(const std::string& name, const std::string& role) {
        const auto created = run_process({testing::mitigate_binary(), "--config", config, "token",
                                          "create", name, "--role", role, "--group", "sre"});
        EXPECT_EQ(created.exit_code, 0) << created.err;
        return created.out.substr(0, created.out.find('\n'));
    }

    void send_alert(const std::string& alert, const std::string& fingerprint) {
        const auto file =
            directory.write("signal-" + fingerprint + ".json",
                            R"({"name": ")" + alert +
                                R"(", "labels": {"service": "checkout", "environment": "stage"},
                "fingerprint": ")" +
                                fingerprint + R"(", "starts_at": "2026-11-23T12:00:00Z"})");
        const auto sent = mitigate({"signal", "send", file.string()}, /*as_sender=*/true);
        ASSERT_EQ(sent.exit_code, 0) << sent.err;
    }

    json mitigations() {
        const auto listed = mitigate({"mitigations", "--output", "json"});
        const json list = json::parse(listed.out, nullptr, false);
        return list.is_array() ? list : json::array();
    }

    // Waits (bounded) until `done` holds for the list of mitigations.
    bool wait_until(const std::function<bool(const json&)>& done) {
        for (int attempt = 0; attempt < 1500; ++attempt) {
            if (done(mitigations())) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return false;
    }

    // The daemon's worker processes, by their parent pid.
    std::vector<pid_t> workers_of(pid_t daemon_pid) {
        std::vector<pid_t> found;
        for (const auto& entry : fs::directory_iterator("/proc")) {
            const std::string name = entry.path().filename();
            if (name.find_first_not_of("0123456789") != std::string::npos) {
                continue;
            }
            std::ifstream status(entry.path() / "status");
            std::string line;
            while (std::getline(status, line)) {
                if (line.rfind("PPid:", 0) == 0 && std::stoi(line.substr(5)) == daemon_pid) {
                    found.push_back(std::stoi(name));
                }
            }
        }
        return found;
    }

    testing::TemporaryDirectory directory;
    std::string config;
    std::string url;
    std::string sender;
    std::string operator_token;
};

TEST_F(ServeHostileTest, TheDaemonSurvivesEveryAttackAndStillAppliesANormalMitigation) {
    sender = token("sender", "sender");
    operator_token = token("olga", "operator");
    rlimit files_before{};
    testing::BackgroundProcess daemon(
        std::vector<std::string>{testing::mitigate_binary(), "--config", config, "serve"},
        std::map<std::string, std::string>{}, (directory / "serve.log").string());
    url = daemon.wait_for_line("mitigate: listening on ");
    ASSERT_FALSE(url.empty()) << testing::read_file(directory / "serve.log");
    prlimit(daemon.pid(), RLIMIT_NOFILE, nullptr, &files_before);

    send_alert("HostilePlugin", "hostile-plugin");
    for (const auto& [name, body] : playbook_attacks) {
        send_alert(name, name);
    }
    // Every plugin attack ends as a failed mitigation, each with its reason.
    ASSERT_TRUE(wait_until([](const json& list) {
        int failed = 0;
        for (const json& mitigation : list) {
            failed += mitigation.value("state", "") == "failed" ? 1 : 0;
        }
        return failed == static_cast<int>(plugin_attacks.size());
    })) << mitigations().dump(1)
        << testing::read_file(directory / "serve.log");

    // Then a normal mitigation, on the same daemon.
    send_alert("HighErrorRate", "checkout-errors");
    ASSERT_TRUE(wait_until([](const json& list) {
        for (const json& mitigation : list) {
            if (mitigation.value("state", "") == "verifying") {
                return true;
            }
        }
        return false;
    })) << mitigations().dump(1)
        << testing::read_file(directory / "serve.log");
    EXPECT_THAT(testing::read_file(directory / "flags.json"),
                HasSubstr("\"defaultVariant\": \"off\""));

    // The daemon's own limits were not touched by the plugin.
    rlimit files_after{};
    prlimit(daemon.pid(), RLIMIT_NOFILE, nullptr, &files_after);
    EXPECT_EQ(files_after.rlim_cur, files_before.rlim_cur);

    // Its log holds no forged line and at most the capped part of the flood.
    const std::string log = testing::read_file(directory / "serve.log");
    EXPECT_THAT(log, ::testing::Not(HasSubstr("\"forged\"")));
    // A plugin's log line with a newline and an escape sequence stays one escaped line.
    EXPECT_THAT(log, ::testing::Not(HasSubstr("\n2026-01-01T00:00:00.000Z")));
    EXPECT_THAT(log, ::testing::Not(HasSubstr("\x1b[2J")));
    EXPECT_THAT(log, HasSubstr("innocent\\n2026-01-01T00:00:00.000Z info  FORGED"))
        << mitigations().dump(1);
    std::size_t flood_lines = 0;
    for (std::size_t at = log.find("provider hostile-log_flood: lllll"); at != std::string::npos;
         at = log.find("provider hostile-log_flood: lllll", at + 1)) {
        ++flood_lines;
    }
    EXPECT_GT(flood_lines, 0u);  // the flood reached the log, capped
    EXPECT_LE(flood_lines, 100u);

    // Stop: every worker dies with the daemon.
    std::vector<int> handles;
    for (pid_t worker : workers_of(daemon.pid())) {
        const int handle = static_cast<int>(syscall(SYS_pidfd_open, worker, 0));
        if (handle >= 0) {
            handles.push_back(handle);
        }
    }
    EXPECT_FALSE(handles.empty());  // at least the flags plugin host and the Lua worker
    daemon.send(SIGTERM);
    EXPECT_EQ(daemon.wait(), 0);
    for (int handle : handles) {
        pollfd exited{handle, POLLIN, 0};
        EXPECT_EQ(poll(&exited, 1, 10000), 1) << "a worker outlived the daemon";
        close(handle);
    }

    // The record: each plugin attack and each playbook attack, with its reason.
    SqliteStoreOptions read_only;
    read_only.read_only = true;
    auto store = open_sqlite_store(directory / "m.db", read_only);
    EXPECT_TRUE(store->verify_audit_chain().intact());
    std::map<std::string, std::string> playbook_failures;
    std::string mitigation_failures;
    for (const auto& record : store->audit_tail(5000)) {
        if (record.event == "playbook.failed") {
            playbook_failures[record.details.value("playbook", "")] =
                record.details.value("failure", "") + ": " + record.details.value("message", "");
        }
        mitigation_failures += record.details.dump() + "\n";
    }
    for (const auto& [name, body] : playbook_attacks) {
        bool found = false;
        for (const auto& [playbook, failure] : playbook_failures) {
            if (playbook.find(name) != std::string::npos) {
                found = true;
                EXPECT_THAT(failure, ::testing::Not(HasSubstr("crashed"))) << name;
                EXPECT_LT(failure.size(), 10000u) << name;
            }
        }
        EXPECT_TRUE(found) << name << " left no playbook.failed record";
    }
#if defined(__SANITIZE_ADDRESS__)
    const char* segfault = "(exit 1)";  // ASan reports the segfault and exits
#else
    const char* segfault = "(signal 11)";
#endif
    for (const char* reason : {"nests deeper than 128", "malformed log frame", "unknown status",
                               "over the 8388608-byte cap", segfault, "was killed",
                               "result.injected: unknown field", "malformed egress frame"}) {
        EXPECT_THAT(mitigation_failures, HasSubstr(reason));
    }
}

}  // namespace
}  // namespace mitigate
