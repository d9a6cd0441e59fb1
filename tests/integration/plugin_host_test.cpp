// Plugins in their confined host process: ABI checks, hostile plugins contained and
// reported, restart with backoff, the circuit breaker, and proof that the runtime keeps
// serving a healthy plugin while another misbehaves.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>

#include "plugins/sdk/mitigate_plugin.h"
#include "runtime/core/time_format.h"
#include "sandbox/plugin_host/plugin_process.h"
#include "tests/support/child_process.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::AnyOf;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

fs::path test_plugin(const std::string& name) {
    return fs::path(MITIGATE_TEST_PLUGIN_DIRECTORY) / (name + ".so");
}

PluginProcessOptions options_for(const fs::path& plugin, const Clock* clock = nullptr) {
    PluginProcessOptions options;
    options.executable = testing::mitigate_binary();
    options.plugin = plugin;
    options.call_deadline = std::chrono::milliseconds(3000);
    options.clock = clock;
    return options;
}

json request(const std::string& action, json parameters = json::object()) {
    return {{"operation", "read"}, {"action", action}, {"target", "t"}, {"parameters", parameters}};
}

class PluginHostTest : public ::testing::Test {
  protected:
    ManualClock clock{*parse_rfc3339("2026-11-23T10:00:00Z")};
};

TEST_F(PluginHostTest, AHealthyPluginAnswersFromAConfinedProcess) {
    PluginProcess plugin(options_for(test_plugin("hostile"), &clock), nullptr);
    const PluginCallResult result = plugin.call(request("echo"));
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(result.response["echo"]["action"], "echo");
    EXPECT_EQ(result.response["pid"], plugin.pid());
    EXPECT_EQ(plugin.manifest()["name"], "hostile");
    EXPECT_TRUE(plugin.confinement()["seccomp"]);
    EXPECT_TRUE(plugin.confinement()["landlock"]);
    EXPECT_TRUE(plugin.confinement()["no_new_privs"]);
}

TEST_F(PluginHostTest, AnAbiMajorMismatchIsRefusedWithBothVersions) {
    PluginProcess plugin(options_for(test_plugin("abi_mismatch"), &clock), nullptr);
    const PluginCallResult result = plugin.call(request("echo"));
    EXPECT_EQ(result.status, PluginCallStatus::refused);
    EXPECT_THAT(result.error, HasSubstr("built for plugin ABI 99.0"));
    EXPECT_THAT(result.error, HasSubstr("the major versions must match"));
}

TEST_F(PluginHostTest, ASharedObjectWithoutTheEntryPointIsRefused) {
    PluginProcess plugin(options_for(test_plugin("no_entry"), &clock), nullptr);
    const PluginCallResult result = plugin.call(request("echo"));
    EXPECT_EQ(result.status, PluginCallStatus::refused);
    EXPECT_THAT(result.error, HasSubstr("exports no mitigate_plugin_entry"));
}

TEST_F(PluginHostTest, APluginFileOthersCanWriteIsRefusedBeforeLoading) {
    testing::TemporaryDirectory directory;
    fs::permissions(directory.path(), fs::perms::owner_all | fs::perms::group_read |
                                          fs::perms::group_exec | fs::perms::others_read |
                                          fs::perms::others_exec);
    const fs::path copy = directory / "hostile.so";
    fs::copy_file(test_plugin("hostile"), copy);
    chmod(copy.c_str(), 0666);
    PluginProcess plugin(options_for(copy, &clock), nullptr);
    const PluginCallResult result = plugin.call(request("echo"));
    EXPECT_EQ(result.status, PluginCallStatus::refused);
    EXPECT_THAT(result.error, HasSubstr("writable by group or others (mode 666)"));
    EXPECT_EQ(plugin.starts(), 0);  // never even started

    chmod(copy.c_str(), 0755);
    chmod(directory.path().c_str(), 0777);
    clock.advance(std::chrono::minutes(5));
    const PluginCallResult directory_result = plugin.call(request("echo"));
    EXPECT_EQ(directory_result.status, PluginCallStatus::refused);
    EXPECT_THAT(directory_result.error, HasSubstr("mode 777"));
}

struct Attack {
    std::string action;
    PluginCallStatus status;
    std::string error;  // a part of the error the runtime reports
};

class HostileAttackTest : public PluginHostTest, public ::testing::WithParamInterface<Attack> {};

TEST_P(HostileAttackTest, IsContainedReportedAndTheOtherPluginKeepsServing) {
    PluginProcess hostile(options_for(test_plugin("hostile"), &clock), nullptr);
    PluginProcess healthy(options_for(test_plugin("hostile"), &clock), nullptr);
    ASSERT_TRUE(healthy.call(request("echo")).ok());

    const PluginCallResult result = hostile.call(request(GetParam().action));
    EXPECT_EQ(result.status, GetParam().status) << to_string(result.status) << ": " << result.error;
    EXPECT_THAT(result.error, HasSubstr(GetParam().error));

    const PluginCallResult still = healthy.call(request("echo"));
    EXPECT_TRUE(still.ok()) << still.error;
    EXPECT_EQ(healthy.starts(), 1);  // the healthy one was never disturbed

    // The hostile one is restarted, after the backoff, as a fresh process.
    EXPECT_EQ(hostile.call(request("echo")).status, PluginCallStatus::backoff);
    clock.advance(std::chrono::seconds(1));
    const PluginCallResult again = hostile.call(request("echo"));
    EXPECT_TRUE(again.ok()) << again.error;
    EXPECT_EQ(hostile.starts(), 2);
}

// AddressSanitizer catches the segfault itself, reports it and exits with 1.
#if defined(__SANITIZE_ADDRESS__)
constexpr const char* segfault_ending = "(exit 1)";
#else
constexpr const char* segfault_ending = "(signal 11)";
#endif

INSTANTIATE_TEST_SUITE_P(
    Attacks, HostileAttackTest,
    ::testing::Values(Attack{"segfault", PluginCallStatus::crashed, segfault_ending},
                      Attack{"abort", PluginCallStatus::crashed, "(signal 6)"},
                      Attack{"throw", PluginCallStatus::crashed, "(signal 6)"},
                      Attack{"loop", PluginCallStatus::timeout, "the plugin host was killed"},
                      Attack{"fork_bomb", PluginCallStatus::crashed, "(signal 31)"},
                      Attack{"tcp", PluginCallStatus::crashed, "(signal 31)"},
                      Attack{"udp", PluginCallStatus::crashed, "(signal 31)"},
                      Attack{"exec", PluginCallStatus::crashed, "(signal 31)"},
                      Attack{"bad_frame", PluginCallStatus::crashed, "malformed message"},
                      Attack{"huge_frame", PluginCallStatus::crashed, "over the 8388608-byte cap"}),
    [](const ::testing::TestParamInfo<Attack>& attack) { return attack.param.action; });

TEST_F(PluginHostTest, UnboundedAllocationHitsTheAddressSpaceLimit) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "ASan needs terabytes of address space, so RLIMIT_AS is not set under it";
#else
    // Touching a gigabyte takes seconds on a loaded machine: a deadline far beyond that,
    // so that what ends the call is the limit, not the clock.
    PluginProcessOptions options = options_for(test_plugin("hostile"), &clock);
    options.call_deadline = std::chrono::seconds(60);
    PluginProcess plugin(options, nullptr);
    const PluginCallResult result = plugin.call(request("allocate"));
    EXPECT_EQ(result.status, PluginCallStatus::internal);
    EXPECT_THAT(result.error, HasSubstr("allocation refused after"));
    EXPECT_TRUE(plugin.call(request("echo")).ok());  // same process, still usable
#endif
}

TEST_F(PluginHostTest, SecretFilesAndOtherPathsAreUnreadableButTheOwnDirectoryIsNot) {
    PluginProcess plugin(options_for(test_plugin("hostile"), &clock), nullptr);
    for (const std::string path : {"/etc/shadow", "/proc/self/environ", "/etc/passwd"}) {
        const PluginCallResult result = plugin.call(request("read_file", {{"path", path}}));
        ASSERT_TRUE(result.ok()) << result.error;
        EXPECT_FALSE(result.response["opened"]) << path;
        EXPECT_EQ(result.response["error"], "Permission denied") << path;  // Landlock
    }
    const PluginCallResult own =
        plugin.call(request("read_file", {{"path", test_plugin("abi_mismatch").string()}}));
    ASSERT_TRUE(own.ok());
    EXPECT_TRUE(own.response["opened"]);
}

TEST_F(PluginHostTest, PluginErrorsKeepTheirStatusAndAreCutToTheBound) {
    PluginProcess plugin(options_for(test_plugin("hostile"), &clock), nullptr);
    const PluginCallResult conflict = plugin.call(request("fail", {{"status", 2}}));
    EXPECT_EQ(conflict.status, PluginCallStatus::conflict);
    EXPECT_EQ(conflict.error.size(), std::size_t{MITIGATE_PLUGIN_ERROR_MAX});
    // An expected failure is not the plugin's fault: no backoff, no restart.
    EXPECT_TRUE(plugin.call(request("echo")).ok());
    EXPECT_EQ(plugin.starts(), 1);
}

TEST_F(PluginHostTest, TheCircuitOpensAfterRepeatedCrashesAndClosesAfterASuccess) {
    PluginProcessOptions options = options_for(test_plugin("hostile"), &clock);
    options.circuit_threshold = 3;
    options.circuit_open_for = std::chrono::minutes(2);
    PluginProcess plugin(options, nullptr);
    for (int attempt = 0; attempt < 3; ++attempt) {
        EXPECT_EQ(plugin.call(request("segfault")).status, PluginCallStatus::crashed);
        clock.advance(std::chrono::seconds(10));  // past each backoff
    }
    const PluginCallResult open = plugin.call(request("echo"));
    EXPECT_EQ(open.status, PluginCallStatus::circuit_open);
    EXPECT_THAT(open.error, HasSubstr("failed 3 times in a row"));
    EXPECT_EQ(plugin.starts(), 3);

    clock.advance(std::chrono::minutes(2));
    const PluginCallResult half_open = plugin.call(request("echo"));
    EXPECT_TRUE(half_open.ok()) << half_open.error;
    EXPECT_EQ(plugin.consecutive_failures(), 0);
}

TEST_F(PluginHostTest, BackoffDoublesWithEachConsecutiveFailure) {
    PluginProcessOptions options = options_for(test_plugin("hostile"), &clock);
    options.first_backoff = std::chrono::seconds(1);
    options.circuit_threshold = 100;
    PluginProcess plugin(options, nullptr);
    EXPECT_EQ(plugin.call(request("abort")).status, PluginCallStatus::crashed);
    clock.advance(std::chrono::milliseconds(1001));
    EXPECT_EQ(plugin.call(request("abort")).status, PluginCallStatus::crashed);
    clock.advance(std::chrono::milliseconds(1001));
    EXPECT_EQ(plugin.call(request("echo")).status, PluginCallStatus::backoff);  // 2 s now
    clock.advance(std::chrono::milliseconds(1000));
    EXPECT_TRUE(plugin.call(request("echo")).ok());
}

TEST_F(PluginHostTest, EgressRequestsGoToTheRuntimeHandler) {
    json seen;
    PluginProcess plugin(
        options_for(test_plugin("hostile"), &clock), [&seen](const json& egress, int& status) {
            seen = egress;
            status = MITIGATE_OK;
            return json{{"status", 204}, {"headers", json::object()}, {"body", ""}};
        });
    const json egress{{"kind", "http"}, {"method", "GET"}, {"url", "https://api.example/x"}};
    const PluginCallResult result = plugin.call(request("egress", {{"request", egress}}));
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(seen, egress);
    EXPECT_EQ(result.response["status"], MITIGATE_OK);
    EXPECT_EQ(result.response["response"]["status"], 204);
    EXPECT_EQ(result.response["environment"], json::array());  // the worker has no env
}

}  // namespace
}  // namespace mitigate
