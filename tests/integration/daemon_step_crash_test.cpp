// The daemon killed with SIGKILL between the steps of a multi-step apply and revert (an
// ECS scale of a service Auto Scaling manages: the range, then the count, and reverted in
// the same order), then started again on the same store: the scale is finished and
// reverted, no write is sent twice (the AWS emulator counts every RegisterScalableTarget
// and UpdateService), and the service ends as it began.
//
// Points of death: after a step is journaled and before it is sent (the store's fault
// point, counted: the third applying commit is step 2's), and while a step's write is on
// its way (the emulator kills the daemon when the write arrives, then carries it out: the
// daemon never sees the answer nor sends the next step). As in daemon_crash_test.cpp, the
// daemon that dies is this test executed again in a child process.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "plugins/emulators/aws_emulator.h"
#include "runtime/core/time_format.h"
#include "runtime/engine/engine.h"
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

const char* const access_key = "AKIDEXAMPLE";
const char* const secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TimePoint start_time = *parse_rfc3339("2026-11-23T12:00:00Z");

AwsEmulatorOptions emulator_options() {
    AwsEmulatorOptions options;
    options.access_key_id = access_key;
    options.secret_access_key = secret_key;
    return options;
}

class DaemonStepCrashTest : public ::testing::TestWithParam<const char*> {
  protected:
    DaemonStepCrashTest() : emulator(emulator_options()) {
        setenv("MITIGATE_TEST_AWS_KEY", access_key, 1);
        setenv("MITIGATE_TEST_AWS_SECRET", secret_key, 1);
        emulator.add_ecs_service("prod", "search", 4);
        emulator.add_scalable_target("prod", "search", 2, 10);
        testing::write_policy_and_playbook(directory, testing::environment_policy);
    }

    static DaemonOptions options(const Clock& clock, const std::string& emulator_url,
                                 const std::filesystem::path& root) {
        Config config = testing::runtime_config(root);
        ProviderConfig aws = testing::emulated_aws_provider(emulator_url, "MITIGATE_TEST_AWS_KEY",
                                                            "MITIGATE_TEST_AWS_SECRET");
        aws.settings["ecs_cluster"] = "prod";
        config.providers.push_back(aws);
        return testing::daemon_options(config, &clock);
    }

    // Waits (bounded) until the only mitigation is in one of `states`.
    static bool wait_for(Store& store, std::initializer_list<MitigationState> states) {
        for (int attempt = 0; attempt < 1000; ++attempt) {
            const auto all = store.list_mitigations({});
            if (all.size() == 1 &&
                std::find(states.begin(), states.end(), all[0].state) != states.end()) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    }

    // The whole life of one scale, as a person would drive it: proposed (unless there is
    // one already), applied, then reverted by hand.
    static void drive(Daemon& daemon) {
        using enum MitigationState;
        if (daemon.store().list_mitigations({}).empty()) {
            ProposalRequest request;
            request.action = {"aws",
                              "ecs.scale",
                              "ecs/search",
                              {{"desired_count", 8}},
                              std::chrono::minutes(30),
                              "scale out"};
            request.proposed_by = "alice";
            request.environment = "dev";
            daemon.engine().propose(request);
        }
        daemon.wake();
        if (!wait_for(daemon.store(), {active, reverting, reverted, conflict})) {
            return;
        }
        const Mitigation mitigation = daemon.store().list_mitigations({}).front();
        if (mitigation.state == active) {
            daemon.engine().revert(mitigation.id, "alice", "done");
        }
        daemon.wake();
        wait_for(daemon.store(), {reverted, conflict});
    }

    AwsEmulator emulator;
    testing::TemporaryDirectory directory;
};

TEST_P(DaemonStepCrashTest, KilledBetweenStepsFinishesWithoutASecondWrite) {
    const std::string point = GetParam();
    if (const char* dying_at = std::getenv("MITIGATE_STEP_CRASH_CHILD")) {
        const std::string store_point = dying_at;
        ManualClock clock(start_time);
        DaemonOptions dying = options(clock, std::getenv("MITIGATE_STEP_CRASH_EMULATOR"),
                                      std::getenv("MITIGATE_STEP_CRASH_DIR"));
        // "transition.committed:applying#3": the third time that point is reached.
        const auto hash = store_point.find('#');
        const std::string name = store_point.substr(0, hash);
        const int nth = hash == std::string::npos ? 1 : std::atoi(store_point.c_str() + hash + 1);
        auto reached_count = std::make_shared<std::atomic<int>>(0);
        dying.store_fault_point = [name, nth, reached_count](std::string_view reached) {
            if (reached == name && ++*reached_count == nth) {
                raise(SIGKILL);
            }
        };
        try {
            Daemon daemon(dying);
            daemon.start();
            drive(daemon);
        } catch (...) {
            _exit(3);
        }
        _exit(0);  // never killed: the parent fails
    }
    // A point named after an AWS operation is the emulator's: the daemon dies when that
    // write arrives (the Nth of its kind), and the write is then carried out.
    const bool emulator_point = point.rfind("aws:", 0) == 0;
    const pid_t child = testing::start_this_test_again(
        {{"MITIGATE_STEP_CRASH_CHILD", emulator_point ? "never" : point},
         {"MITIGATE_STEP_CRASH_EMULATOR", emulator.url()},
         {"MITIGATE_STEP_CRASH_DIR", directory.path().string()}});
    // "aws:RegisterScalableTarget#2": the second RegisterScalableTarget. The emulator's hook
    // is one-shot: until the Nth, it hands the emulator a copy of itself again. It refers
    // to these locals, which outlive every request (both daemons stop before the test ends).
    std::string operation;
    int nth = 0;
    int seen = 0;
    std::function<void()> kill_on = [this, &operation, &nth, &seen, &kill_on, child] {
        if (++seen == nth) {
            kill(child, SIGKILL);
            int ignored = 0;
            waitpid(child, &ignored, 0);  // dead before its write is carried out
            return;
        }
        emulator.before_next(operation, kill_on);
    };
    if (emulator_point) {
        const std::string spec = point.substr(4);
        const auto hash = spec.find('#');
        operation = spec.substr(0, hash);
        nth = std::atoi(spec.c_str() + hash + 1);
        emulator.before_next(operation, kill_on);
    }
    int status = 0;
    const pid_t waited = waitpid(child, &status, 0);
    if (waited == child) {
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            << point << " was never reached (child status " << status << ")";
    }  // else the emulator's hook reaped it

    // Restart on the same store, past the settle margin (AWS: 60 s) of a write the dead
    // daemon may have sent, and let the person finish.
    ManualClock clock(start_time);
    {
        Daemon daemon(options(clock, emulator.url(), directory.path()));
        daemon.start();
        clock.set(start_time + std::chrono::seconds(61));
        daemon.wake();
        drive(daemon);
        const auto after = daemon.store().list_mitigations({});
        ASSERT_EQ(after.size(), 1u);
        EXPECT_EQ(after[0].state, MitigationState::reverted) << point;
        daemon.stop();
    }
    // The range once each way. Raising the minimum to 8 makes Auto Scaling scale out to it
    // (as AWS does), so the apply's count step finds the count in place and writes
    // nothing; the revert's count step writes once.
    EXPECT_EQ(emulator.writes("RegisterScalableTarget"), 2) << point;
    EXPECT_EQ(emulator.writes("UpdateService"), 1) << point;
    EXPECT_EQ(emulator.ecs_service("prod", "search")["desiredCount"], 4);
    EXPECT_EQ(emulator.scalable_target("prod", "search")["MinCapacity"], 2);
    EXPECT_EQ(emulator.scalable_target("prod", "search")["MaxCapacity"], 10);
    EXPECT_THAT(testing::consistency_problems(directory / "m.db"), IsEmpty());
}

// Not a crash: AWS refuses the second step (its read answers 400 once the range has
// landed). The range, and the count Auto Scaling moved with it, are put back; the
// mitigation ends reverted, counted as a failure, never "failed" with the range changed.
TEST_F(DaemonStepCrashTest, ASecondStepRefusedByAwsPutsTheFirstBack) {
    ManualClock clock(start_time);
    Daemon daemon(options(clock, emulator.url(), directory.path()));
    daemon.start();
    emulator.before_next("RegisterScalableTarget", [this] {
        Fault refused;
        refused.operation = "DescribeServices";
        refused.kind = Fault::Kind::error;
        refused.status = 400;
        emulator.faults().add(refused);
    });
    ProposalRequest request;
    request.action = {
        "aws",      "ecs.scale", "ecs/search", {{"desired_count", 8}}, std::chrono::minutes(30),
        "scale out"};
    request.proposed_by = "alice";
    request.environment = "dev";
    const RequestResult proposed = daemon.engine().propose(request);
    ASSERT_TRUE(proposed.mitigation);
    daemon.wake();
    ASSERT_TRUE(wait_for(daemon.store(), {MitigationState::reverted, MitigationState::failed,
                                          MitigationState::conflict}));
    const Mitigation ended = *daemon.store().find_mitigation(proposed.mitigation->id);
    EXPECT_EQ(ended.state, MitigationState::reverted);
    EXPECT_TRUE(ended.failed_at);
    bool told = false;
    for (const JournalEntry& entry : daemon.store().journal(ended.id)) {
        told |=
            entry.reason.find("apply step 2 of 2 (desired_count) refused") != std::string::npos &&
            entry.reason.find("undoing what the steps before it applied: autoscaling_range") !=
                std::string::npos;
    }
    EXPECT_TRUE(told);
    daemon.stop();
    EXPECT_EQ(emulator.writes("RegisterScalableTarget"), 2);  // the range, and back
    EXPECT_EQ(emulator.writes("UpdateService"), 1);           // the count Auto Scaling moved
    EXPECT_EQ(emulator.ecs_service("prod", "search")["desiredCount"], 4);
    EXPECT_EQ(emulator.scalable_target("prod", "search")["MinCapacity"], 2);
    EXPECT_EQ(emulator.scalable_target("prod", "search")["MaxCapacity"], 10);
}

INSTANTIATE_TEST_SUITE_P(
    BetweenSteps, DaemonStepCrashTest,
    ::testing::Values(
        // Step 1 (range) journaled, not sent.
        "transition.committed:applying#2",
        // Step 1 done, step 2 (count) journaled, not sent.
        "transition.committed:applying#3",
        // Step 1 of the apply on its way.
        "aws:RegisterScalableTarget#1",
        // The revert's first step (range) on its way; its second (count) never sent.
        "aws:RegisterScalableTarget#2",
        // The revert's second step (count) on its way.
        "aws:UpdateService#1"),
    [](const ::testing::TestParamInfo<const char*>& point) {
        return testing::parameter_name(point.param);
    });

}  // namespace
}  // namespace mitigate
