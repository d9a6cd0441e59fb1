// Plugins in their confined host process: ABI checks, hostile plugins contained and
// reported, restart with backoff, the circuit breaker, and proof that the runtime keeps
// serving a healthy plugin while another misbehaves.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "plugins/sdk/mitigate_plugin.h"
#include "runtime/core/sha256.h"
#include "runtime/core/time_format.h"
#include "sandbox/plugin_host/plugin_process.h"
#include "sandbox/worker/worker_process.h"
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
    EXPECT_TRUE(plugin.confinement()["capabilities_dropped"]);
    // The runtime's own view, not the worker's word.
    std::ifstream status("/proc/" + std::to_string(plugin.pid()) + "/status");
    std::string line;
    std::map<std::string, std::string> fields;
    while (std::getline(status, line)) {
        const auto colon = line.find(':');
        const auto value = line.find_first_not_of(" \t", colon + 1);
        fields[line.substr(0, colon)] = value == std::string::npos ? "" : line.substr(value);
    }
    EXPECT_EQ(fields["NoNewPrivs"], "1");
    EXPECT_EQ(fields["Seccomp"], "2");
    EXPECT_EQ(fields["CapEff"], "0000000000000000");
    EXPECT_EQ(fields["CapPrm"], "0000000000000000");
}

TEST(ShownConfinement, AReportOfTheWrongShapeIsRefusedAndTheRuntimesViewWins) {
    ObservedConfinement observed;
    observed.status_readable = observed.no_new_privs = observed.seccomp_filter = true;
    observed.capabilities_dropped = true;
    observed.namespaces = {"net", "ipc"};
    const json good{{"landlock", true},
                    {"landlock_abi", 4},
                    {"rlimits", {"nofile=16"}},
                    {"namespaces", {"net", "ipc", "mnt"}},
                    {"seccomp", false}};  // what the worker says here is not what is shown
    const auto shown = shown_confinement(good, observed, false);
    ASSERT_TRUE(shown);
    EXPECT_EQ((*shown)["seccomp"], true);
    EXPECT_EQ((*shown)["namespaces"], json::array({"net", "ipc", "mnt"}));
    EXPECT_EQ((*shown)["weaker_landlock_allowed"], false);
    for (const auto& [field, wrong] :
         std::vector<std::pair<std::string, json>>{{"landlock", "yes"},
                                                   {"landlock_abi", "4"},
                                                   {"rlimits", "nofile=16"},
                                                   {"rlimits", {1, 2}},
                                                   {"namespaces", {{"net", true}}}}) {
        json report = good;
        report[field] = wrong;
        EXPECT_FALSE(shown_confinement(report, observed, false)) << field << " = " << wrong;
    }
    for (const auto& [field, wrong] : std::vector<std::pair<std::string, json>>{
             {"user", "0"}, {"user", -1}, {"seccomp", 1}, {"forged_field", true}}) {
        json report = good;
        report[field] = wrong;
        EXPECT_FALSE(shown_confinement(report, observed, false)) << field << " = " << wrong;
    }
    for (const char* field : {"landlock", "landlock_abi", "rlimits", "namespaces"}) {
        json missing = good;
        missing.erase(field);
        EXPECT_FALSE(shown_confinement(missing, observed, false)) << field;
    }
    EXPECT_FALSE(shown_confinement(json::array(), observed, false));
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
    // Whatever the worker sent, the error that names it stays small.
    EXPECT_LT(result.error.size(), 2048u);

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
    ::testing::Values(
        Attack{"segfault", PluginCallStatus::crashed, segfault_ending},
        Attack{"abort", PluginCallStatus::crashed, "(signal 6)"},
        Attack{"throw", PluginCallStatus::crashed, "(signal 6)"},
        Attack{"loop", PluginCallStatus::timeout, "the plugin host was killed"},
        Attack{"fork_bomb", PluginCallStatus::crashed, "(signal 31)"},
        Attack{"tcp", PluginCallStatus::crashed, "(signal 31)"},
        Attack{"udp", PluginCallStatus::crashed, "(signal 31)"},
        Attack{"exec", PluginCallStatus::crashed, "(signal 31)"},
        Attack{"bad_frame", PluginCallStatus::crashed, "malformed message"},
        Attack{"huge_frame", PluginCallStatus::crashed, "over the 8388608-byte cap"},
        Attack{"deep_answer", PluginCallStatus::crashed, "nests deeper than 128"},
        Attack{"deep_frame", PluginCallStatus::crashed, "nests deeper than 128"},
        Attack{"mistyped_log", PluginCallStatus::crashed, "malformed log frame"},
        Attack{"mistyped_result", PluginCallStatus::crashed, "malformed message"},
        Attack{"unknown_status", PluginCallStatus::crashed, "unknown status -7"},
        Attack{"extra_field", PluginCallStatus::crashed, "result.injected: unknown field"},
        Attack{"null_message", PluginCallStatus::crashed, "log.message: is required"},
        Attack{"mistyped_egress", PluginCallStatus::crashed, "malformed egress frame"},
        Attack{"long_field_name", PluginCallStatus::crashed,
               "malformed log frame during the call (log.nnnn"},
        Attack{"log_forever", PluginCallStatus::timeout, "was killed"}),
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

TEST_F(PluginHostTest, SecretFilesAndOtherPathsAreUnreadableButThePluginItselfIsNot) {
    PluginProcess plugin(options_for(test_plugin("hostile"), &clock), nullptr);
    for (const std::string path : {"/etc/shadow", "/proc/self/environ", "/etc/passwd"}) {
        const PluginCallResult result = plugin.call(request("read_file", {{"path", path}}));
        ASSERT_TRUE(result.ok()) << result.error;
        EXPECT_FALSE(result.response["opened"]) << path;
        // Not mounted in the worker's empty root (Landlock would say EACCES where the
        // kernel does not allow the mount namespace).
        EXPECT_THAT(result.response["error"].get<std::string>(),
                    AnyOf("No such file or directory", "Permission denied"))
            << path;
    }
    const PluginCallResult own =
        plugin.call(request("read_file", {{"path", test_plugin("hostile").string()}}));
    ASSERT_TRUE(own.ok());
    EXPECT_TRUE(own.response["opened"]);
}

TEST_F(PluginHostTest, NothingOutsideItsDirectoryCanBeStatedOrProbedForExistence) {
    PluginProcess plugin(options_for(test_plugin("hostile"), &clock), nullptr);
    ASSERT_TRUE(plugin.call(request("echo")).ok());
    const json& namespaces = plugin.confinement()["namespaces"];
    if (std::find(namespaces.begin(), namespaces.end(), "mnt") == namespaces.end()) {
        GTEST_SKIP() << "this kernel does not let the worker have a mount namespace";
    }
    // Metadata Landlock does not cover: stat of files that exist and of files that do
    // not answer the same, and the store and secrets beside the binary are not there.
    for (const std::string& path : std::vector<std::string>{
             "/etc/shadow", "/etc/passwd", "/nonexistent", "/proc/1", testing::mitigate_binary()}) {
        const PluginCallResult result = plugin.call(request("stat", {{"path", path}}));
        ASSERT_TRUE(result.ok()) << result.error;
        EXPECT_EQ(result.response["error"], "No such file or directory") << path;
    }
    // Its own directory holds its own file (the checked copy) and nothing else: not the
    // other plugins beside it.
    const PluginCallResult own =
        plugin.call(request("stat", {{"path", test_plugin("hostile").string()}}));
    ASSERT_TRUE(own.ok());
    EXPECT_EQ(own.response["error"], "");
    EXPECT_EQ(own.response["size"].get<std::int64_t>(),
              static_cast<std::int64_t>(fs::file_size(test_plugin("hostile"))));
    const PluginCallResult sibling =
        plugin.call(request("stat", {{"path", test_plugin("abi_mismatch").string()}}));
    ASSERT_TRUE(sibling.ok());
    EXPECT_EQ(sibling.response["error"], "No such file or directory");
}

TEST_F(PluginHostTest, AWorkerOfARootRuntimeRunsAsNobodyWhereItSafelyCan) {
    // Under a strict umask (a service's UMask=0027) the root must still be traversable
    // by the uid the worker takes.
    const mode_t previous_umask = umask(027);
    PluginProcess plugin(options_for(test_plugin("hostile"), &clock), nullptr);
    const PluginCallResult echoed = plugin.call(request("echo"));
    umask(previous_umask);
    ASSERT_TRUE(echoed.ok()) << echoed.error;
    // The rule, checked in every environment: nobody when the runtime is root and could
    // still stop the worker (may_give_workers_away), the worker has an empty root and no
    // user namespace of its own; else the runtime's own uid.
    const json& namespaces = plugin.confinement()["namespaces"];
    const auto has = [&](const char* name) {
        return std::find(namespaces.begin(), namespaces.end(), name) != namespaces.end();
    };
    const bool gives_root_up = may_give_workers_away() && has("mnt") && !has("user");
    // The uid is the runtime's own reading of /proc/PID/status, not the worker's word.
    EXPECT_EQ(plugin.confinement()["user"], gives_root_up ? 65534u : geteuid())
        << plugin.confinement().dump();
    if (geteuid() == 0 && may_give_workers_away()) {
        // Where this suite runs as root with its capabilities (CI), the empty root is
        // there, so the switch itself is what is tested.
        EXPECT_TRUE(has("mnt")) << plugin.confinement().dump();
    }
}

TEST_F(PluginHostTest, TheBytesHashedAreKeptSealedAndAreWhatTheWorkerGets) {
    // The runtime hashes the file into a sealed memfd, which the worker copies into its
    // root: an edit in place after the hash (same inode) cannot reach a worker.
    testing::TemporaryDirectory directory;
    const fs::path plugin = directory.write("edited.so", "the bytes the runtime hashed");
    std::string error;
    const auto identity = identify_plugin(plugin, error);
    ASSERT_TRUE(identity) << error;
    EXPECT_EQ(identity->sha256, Sha256().update("the bytes the runtime hashed").hex_digest());
    ASSERT_TRUE(identity->bytes);
    const int sealed = identity->bytes->descriptor;
    EXPECT_TRUE(is_sealed_plugin_copy(sealed, error)) << error;
    EXPECT_LT(write(sealed, "x", 1), 0);  // F_SEAL_WRITE
    EXPECT_NE(ftruncate(sealed, 0), 0);   // F_SEAL_SHRINK
    {
        std::fstream file(plugin, std::ios::in | std::ios::out | std::ios::binary);
        file.seekp(4);
        file << "BYTES";
    }
    char kept[64] = {};
    ASSERT_EQ(pread(sealed, kept, sizeof kept, 0), 28);
    EXPECT_EQ(std::string(kept, 28), "the bytes the runtime hashed");
    // Whichever bytes the next start gets (the edit may fall within the same change-time
    // tick, when the cached copy is reused), the digest is of exactly those bytes.
    const auto again = identify_plugin(plugin, error);
    ASSERT_TRUE(again) << error;
    char copied[64] = {};
    const ssize_t copied_size = pread(again->bytes->descriptor, copied, sizeof copied, 0);
    ASSERT_EQ(copied_size, 28);
    EXPECT_EQ(again->sha256, Sha256().update(std::string_view(copied, 28)).hex_digest());
    // A descriptor that is not a sealed memfd is refused by the worker.
    const int plain = open(plugin.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_FALSE(is_sealed_plugin_copy(plain, error));
    EXPECT_THAT(error, HasSubstr("sealed memfd"));
    close(plain);
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
    // The runtime bounds the egress by what is left of the call's 3 s.
    ASSERT_TRUE(seen.contains("timeout_ms"));
    EXPECT_LE(seen["timeout_ms"].get<int>(), 3000);
    seen.erase("timeout_ms");
    EXPECT_EQ(seen, egress);
    EXPECT_EQ(result.response["status"], MITIGATE_OK);
    EXPECT_EQ(result.response["response"]["status"], 204);
    EXPECT_EQ(result.response["environment"], json::array());  // the worker has no env
}

TEST_F(PluginHostTest, APinnedDigestIsCheckedAndTheLoadedFileIsTheHashedOne) {
    PluginProcessOptions options = options_for(test_plugin("hostile"), &clock);
    options.pinned_sha256 = std::string(64, 'a');
    PluginProcess wrong(options, nullptr);
    const PluginCallResult refused = wrong.call(request("echo"));
    EXPECT_EQ(refused.status, PluginCallStatus::refused);
    EXPECT_THAT(refused.error, HasSubstr("not the pinned " + std::string(64, 'a')));
    EXPECT_EQ(wrong.starts(), 0);

    PluginProcess plugin(options_for(test_plugin("hostile"), &clock), nullptr);
    ASSERT_TRUE(plugin.call(request("echo")).ok());
    ASSERT_TRUE(plugin.identity());
    EXPECT_EQ(plugin.identity()->resolved, fs::canonical(test_plugin("hostile")));
    // With an empty root the worker loaded its own copy of the checked bytes, at the same
    // path; without one, the file itself.
    const json& namespaces = plugin.confinement()["namespaces"];
    const bool copy = std::find(namespaces.begin(), namespaces.end(), "mnt") != namespaces.end();
    EXPECT_EQ(loaded_file_mismatch(plugin.pid(), *plugin.identity(), copy), std::nullopt);
    // What a swap between the hash and the load looks like from /proc, where the worker
    // loads the file itself.
    PluginIdentity swapped = *plugin.identity();
    swapped.inode += 1;
    EXPECT_THAT(loaded_file_mismatch(plugin.pid(), swapped, false).value_or(""),
                HasSubstr("mapped a different file"));
    options.pinned_sha256 = plugin.identity()->sha256;
    PluginProcess pinned(options, nullptr);
    EXPECT_TRUE(pinned.call(request("echo")).ok());
}

TEST_F(PluginHostTest, AWorkerThatStopsReadingCannotBlockTheRuntime) {
    // The answer to its egress request is far larger than a socket buffer, and the plugin
    // never reads it: the runtime's write must end at the call's deadline.
    PluginProcessOptions options = options_for(test_plugin("hostile"), &clock);
    options.call_deadline = std::chrono::milliseconds(500);
    PluginProcess plugin(options, [](const json&, int& status) {
        status = MITIGATE_OK;
        return json{{"content", std::string(6u << 20, 'x')}, {"etag", "e"}};
    });
    const PluginCallResult result = plugin.call(request("stop_reading"));
    EXPECT_EQ(result.status, PluginCallStatus::timeout) << result.error << result.response;
    EXPECT_THAT(result.error, HasSubstr("stopped reading"));
    EXPECT_EQ(plugin.pid(), -1);  // killed and reaped
}

TEST_F(PluginHostTest, TheWorkersStdioIsDevNullNotTheRuntimes) {
    PluginProcess plugin(options_for(test_plugin("hostile"), &clock), nullptr);
    const PluginCallResult result = plugin.call(request("stdio"));
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(result.response["stdin_read"], 0);  // end of file, not the runtime's input
    for (const json& device : result.response["devices"]) {
        EXPECT_EQ(device, (json{{"character", true}, {"major", 1}, {"minor", 3}}));
    }
}

TEST_F(PluginHostTest, APluginCannotTouchTheLimitsOrSignalsOfOtherProcesses) {
    rlimit before{};
    getrlimit(RLIMIT_NOFILE, &before);
    PluginProcess plugin(options_for(test_plugin("hostile"), &clock), nullptr);
    const PluginCallResult result = plugin.call(request("other_processes"));
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(result.response["prlimit_runtime"], "Operation not permitted");
    EXPECT_EQ(result.response["signal_runtime"], "Operation not permitted");
    EXPECT_EQ(result.response["kill_runtime"], "Operation not permitted");
    EXPECT_EQ(result.response["affinity_runtime"], "Operation not permitted");
    EXPECT_EQ(result.response["setown_runtime"], "Operation not permitted");
    EXPECT_EQ(result.response["async_socket"], "Operation not permitted");
    EXPECT_EQ(result.response["own_prlimit"], true);  // its own limits it may lower
    rlimit after{};
    getrlimit(RLIMIT_NOFILE, &after);
    EXPECT_EQ(after.rlim_cur, before.rlim_cur);
    EXPECT_EQ(after.rlim_max, before.rlim_max);
}

TEST_F(PluginHostTest, LogLinesAreCappedPerCallAndCutOnACharacterBoundary) {
    std::vector<std::pair<int, std::string>> lines;
    // A deadline far beyond the flood's cost even under AddressSanitizer on a loaded
    // machine: what is tested is the cap, not the clock.
    PluginProcessOptions options = options_for(test_plugin("hostile"), &clock);
    options.call_deadline = std::chrono::seconds(60);
    PluginProcess plugin(options, nullptr, [&lines](int level, const std::string& message) {
        lines.emplace_back(level, message);
    });
    const PluginCallResult result =
        plugin.call(request("log_flood", {{"lines", 300}, {"bytes", 5000}}));
    ASSERT_TRUE(result.ok()) << result.error;
    ASSERT_EQ(lines.size(), std::size_t(plugin_log_lines_per_call + 1));
    EXPECT_EQ(lines.front().second.size(), plugin_log_line_bytes + std::string(" [cut]").size());
    EXPECT_THAT(lines.back().second, HasSubstr("the rest of this call's are dropped"));
    lines.clear();
    ASSERT_TRUE(plugin.call(request("log_flood", {{"lines", 3}, {"bytes", 10}})).ok());
    EXPECT_EQ(lines.size(), 3u);  // the cap is per call
}

// The child half of the orphan test: starts a plugin host, says its pid, waits to die.
void run_orphan_child(const char* fifo) {
    PluginProcess plugin(options_for(test_plugin("hostile")), nullptr);
    const bool started = plugin.ensure_started().ok();
    std::ofstream(fifo) << (started ? plugin.pid() : -1) << std::endl;
    pause();
}

TEST_F(PluginHostTest, AWorkerDiesWithItsRuntime) {
    if (const char* fifo = std::getenv("MITIGATE_ORPHAN_FIFO")) {
        run_orphan_child(fifo);
        std::_Exit(0);
    }
    testing::TemporaryDirectory directory;
    const fs::path fifo = directory / "worker-pid";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    const pid_t runtime = testing::start_this_test_again({{"MITIGATE_ORPHAN_FIFO", fifo}});
    pid_t worker = -1;
    std::ifstream(fifo) >> worker;  // blocks until the child opened its end and wrote
    ASSERT_GT(worker, 0);
    const int worker_handle = static_cast<int>(syscall(SYS_pidfd_open, worker, 0));
    ASSERT_GE(worker_handle, 0);
    kill(runtime, SIGKILL);
    int status = 0;
    waitpid(runtime, &status, 0);
    // Readable once the worker has exited; it is not our child, so a pidfd is the way
    // to wait for it.
    pollfd exited{worker_handle, POLLIN, 0};
    EXPECT_EQ(poll(&exited, 1, 30000), 1) << "the worker outlived its runtime";
    close(worker_handle);
}

}  // namespace
}  // namespace mitigate
