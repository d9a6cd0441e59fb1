// The daemon killed with SIGKILL at each transition point of a mitigation's life, then
// started again on the same store: nothing is lost (one mitigation, consistent journal
// and audit chain), nothing is applied twice (the LaunchDarkly emulator counts every
// PATCH: exactly one apply and one revert over the whole run), and the applied change is
// reverted at its TTL by the restarted daemon.
//
// The daemon that dies runs in a child process (this test, executed again with
// MITIGATE_CRASH_CHILD set: testing::start_this_test_again); the one that recovers runs in
// the test, both on an injected clock. The emulator lives in the parent and serves both.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "plugins/emulators/launchdarkly_emulator.h"
#include "runtime/core/time_format.h"
#include "runtime/engine/engine.h"
#include "runtime/ingest/alertmanager.h"
#include "runtime/server/daemon.h"
#include "runtime/store/store.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"
#include "tests/support/store_fixtures.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::IsEmpty;

constexpr const char* fake_token = "api-00000000-fake-fake-fake-000000000000";
const TimePoint start_time = *parse_rfc3339("2026-11-23T12:00:00Z");

class DaemonCrashTest : public ::testing::TestWithParam<const char*> {
  protected:
    DaemonCrashTest() {
        setenv("MITIGATE_TEST_LD_TOKEN", fake_token, 1);
        emulator.add_boolean_flag("default", "checkout", "production", true);
        testing::write_policy_and_playbook(directory, R"yaml(
rules:
  - name: dev-allow
    match: {environment: dev}
    effect: allow
)yaml");
    }

    DaemonOptions options(const Clock& clock) const {
        return options(clock, emulator.url(), directory.path());
    }

    static DaemonOptions options(const Clock& clock, const std::string& emulator_url,
                                 const std::filesystem::path& root) {
        Config config = testing::runtime_config(root);
        ProviderConfig flags;
        flags.name = "flags";
        flags.plugin = "flags";
        flags.egress.allow_hosts = {emulator_url.substr(std::string("http://").size())};
        flags.egress.allow_loopback = true;
        CredentialProfile token;
        token.name = "launchdarkly";
        token.kind = CredentialKind::api_key;
        token.secrets.emplace("key", *SecretReference::parse("env:MITIGATE_TEST_LD_TOKEN"));
        token.settings = {{"header", "Authorization"}};
        token.origins = {testing::origin_of(emulator_url)};
        flags.credentials.push_back(token);
        flags.settings = {{"backend", "launchdarkly"},
                          {"url", emulator_url},
                          {"project", "default"},
                          {"environment", "production"},
                          {"credential", "launchdarkly"}};
        config.providers.push_back(flags);
        return testing::daemon_options(config, &clock);
    }

    static std::vector<Signal> alert(const std::string& status, TimePoint now) {
        const json payload = {
            {"version", "4"},
            {"status", status},
            {"alerts",
             {{{"status", status},
               {"labels",
                {{"alertname", "HighErrorRate"}, {"service", "checkout"}, {"environment", "dev"}}},
               {"startsAt", "2026-11-23T11:59:00Z"},
               {"fingerprint", "fp1"}}}}};
        return *parse_alertmanager_webhook(payload, now);
    }

    // Waits (bounded) until the only mitigation has reached `state` or gone past it on
    // the way to reverted.
    static void wait_until(Store& store, MitigationState state) {
        const auto& path = testing::lifecycle_path();
        const auto rank = [&path](MitigationState of) {
            return std::find(path.begin(), path.end(), of) - path.begin();
        };
        for (int attempt = 0; attempt < 1000; ++attempt) {
            const auto all = store.list_mitigations({});
            if (all.size() == 1 && rank(all[0].state) >= rank(state)) {
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }

    // The whole life of one mitigation, driven as the outside world would: the alert
    // fires, resolves, and the TTL passes.
    static void drive(Daemon& daemon, ManualClock& clock) {
        daemon.engine().accept_signals(alert("firing", clock.now()));
        daemon.wake();
        wait_until(daemon.store(), MitigationState::verifying);
        daemon.engine().accept_signals(alert("resolved", clock.now()));
        daemon.wake();
        wait_until(daemon.store(), MitigationState::active);
        clock.set(start_time + std::chrono::minutes(33));  // past the TTL of an apply made at +61 s
        daemon.wake();
        wait_until(daemon.store(), MitigationState::reverted);
    }

    LaunchDarklyEmulator emulator{fake_token};
    testing::TemporaryDirectory directory;
};

TEST_P(DaemonCrashTest, KilledAtATransitionRecoversWithoutLossOrDoubleApply) {
    const std::string fatal_point = GetParam();
    if (const char* dying_at = std::getenv("MITIGATE_CRASH_CHILD")) {
        // The child: the parent's store and emulator, killed at `dying_at`.
        const std::string point = dying_at;
        ManualClock clock(start_time);
        DaemonOptions dying = options(clock, std::getenv("MITIGATE_CRASH_EMULATOR"),
                                      std::getenv("MITIGATE_CRASH_DIR"));
        dying.store_fault_point = [point](std::string_view reached) {
            if (reached == point) {
                raise(SIGKILL);
            }
        };
        try {
            Daemon daemon(dying);
            daemon.start();
            drive(daemon, clock);
        } catch (...) {
            _exit(3);
        }
        _exit(0);  // the point was never reached: the parent fails
    }
    const pid_t child =
        testing::start_this_test_again({{"MITIGATE_CRASH_CHILD", fatal_point},
                                        {"MITIGATE_CRASH_EMULATOR", emulator.url()},
                                        {"MITIGATE_CRASH_DIR", directory.path().string()}});
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << fatal_point << " was never reached (child status " << status << ")";

    // Restart on the same store, and let the world go on.
    ManualClock clock(start_time);
    {
        Daemon daemon(options(clock));
        daemon.start();
        // A write the dead daemon may have sent can land until the plan's settle margin
        // (LaunchDarkly: 60 s) after this one started: nothing is read back or sent before.
        clock.set(start_time + std::chrono::seconds(61));
        daemon.wake();
        const auto before = daemon.store().list_mitigations({});
        ASSERT_LE(before.size(), 1u);
        if (before.empty()) {
            // Killed before the proposal was stored: the signal and its incident were
            // committed before the webhook was answered, and the new daemon runs the
            // incident's playbooks (it was acknowledged, so it must not be lost).
            EXPECT_GE(daemon.store().ungrouped_signals(10).size() +
                          daemon.store().list_incidents({}).size(),
                      1u);
        }
        drive(daemon, clock);
        const auto after = daemon.store().list_mitigations({});
        ASSERT_EQ(after.size(), 1u);
        EXPECT_EQ(after[0].state, MitigationState::reverted) << fatal_point;
        EXPECT_THAT(daemon.store().journal(after[0].id).back().reason,
                    ::testing::HasSubstr("reverted"));
        daemon.stop();
    }
    // One PATCH to apply, one to revert, whatever the point of death.
    EXPECT_EQ(emulator.patches(), 2) << fatal_point;
    EXPECT_EQ(emulator.flag("default", "checkout")["environments"]["production"]["fallthrough"],
              (json{{"variation", 0}}));
    EXPECT_THAT(testing::consistency_problems(directory / "m.db"), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(
    EveryTransitionPoint, DaemonCrashTest,
    ::testing::Values("transition.committed:planned", "transition.committed:approved",
                      "transition.writing:applying", "transition.committed:applying",
                      "transition.writing:verifying", "transition.committed:verifying",
                      "transition.committed:active", "transition.committed:reverting",
                      "transition.writing:reverted"),
    [](const ::testing::TestParamInfo<const char*>& point) {
        return testing::parameter_name(point.param);
    });

}  // namespace
}  // namespace mitigate
