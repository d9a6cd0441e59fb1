// A process killed with SIGKILL in the middle of a store write leaves a consistent
// database: the mitigation row, its journal and its audit record are all there or none
// of them is. Each test forks a child that writes and dies; the parent checks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "runtime/core/time_format.h"
#include "runtime/store/sqlite_store.h"
#include "tests/support/store_fixtures.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using ::testing::IsEmpty;

TimePoint start_time() {
    return *parse_rfc3339("2026-11-23T07:00:00Z");
}

// Runs `body` in a child process and returns the signal that ended it (0 if it exited).
template <typename Body>
int run_in_child(Body body) {
    const pid_t child = fork();
    if (child == 0) {
        try {
            body();
        } catch (...) {
            _exit(3);
        }
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

SqliteStoreOptions die_at(std::string_view fatal_point) {
    SqliteStoreOptions options;
    options.fault_point = [fatal_point](std::string_view point) {
        if (point == fatal_point) {
            raise(SIGKILL);
        }
    };
    return options;
}

class StoreCrashTest : public ::testing::TestWithParam<const char*> {
  protected:
    testing::TemporaryDirectory directory_;
    std::filesystem::path path_ = directory_ / "mitigate.db";
};

TEST_P(StoreCrashTest, KillInsideATransitionLeavesTheLastCommittedState) {
    const std::string point = GetParam();
    {
        auto store = open_sqlite_store(path_);
        store->create_mitigation(testing::make_mitigation("m1", start_time()), "a", "r");
        ASSERT_EQ(testing::advance(*store, "m1", start_time()), TransitionOutcome::done);
    }
    const int signal = run_in_child([&] {
        auto store = open_sqlite_store(path_, die_at(point));
        testing::advance(*store, "m1", start_time());
    });
    ASSERT_EQ(signal, SIGKILL) << "the child should have died at " << point;

    EXPECT_THAT(testing::consistency_problems(path_), IsEmpty());
    auto store = open_sqlite_store(path_);
    const auto mitigation = store->find_mitigation("m1");
    EXPECT_EQ(mitigation->state, MitigationState::planned);  // the transition did not happen
    EXPECT_EQ(mitigation->version, 2);
    // The store is usable after the crash: the same transition now goes through.
    EXPECT_EQ(testing::advance(*store, "m1", start_time()), TransitionOutcome::done);
    EXPECT_THAT(testing::consistency_problems(path_), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(EveryWritePoint, StoreCrashTest,
                         ::testing::Values("transition.mitigation_written",
                                           "transition.journal_written",
                                           "transition.before_commit"));

TEST(StoreCrash, KillInsideACreateLeavesNoTrace) {
    testing::TemporaryDirectory directory;
    const auto path = directory / "mitigate.db";
    open_sqlite_store(path);
    for (const char* point : {"create.mitigation_written", "create.before_commit"}) {
        const int signal = run_in_child([&] {
            auto store = open_sqlite_store(path, die_at(point));
            store->create_mitigation(testing::make_mitigation("m1", start_time()), "a", "r");
        });
        ASSERT_EQ(signal, SIGKILL) << point;
        auto store = open_sqlite_store(path);
        EXPECT_FALSE(store->find_mitigation("m1")) << point;
        EXPECT_EQ(store->audit_head().sequence, 0) << point;
        EXPECT_THAT(testing::consistency_problems(path), IsEmpty()) << point;
    }
}

TEST(StoreCrash, KillsAtArbitraryMomentsNeverLeaveAnInconsistentDatabase) {
    // A child walks mitigations through their whole lifecycle as fast as it can; the
    // parent kills it after a varying delay, so the kill lands anywhere: inside SQLite,
    // inside an fsync, between statements. The seed is fixed so a failure can be rerun.
    testing::TemporaryDirectory directory;
    const auto path = directory / "mitigate.db";
    open_sqlite_store(path);
    std::mt19937 random(20261123);
    std::uniform_int_distribution<int> delay_microseconds(0, 40'000);
    int round_count = 12;
    for (int round = 0; round < round_count; ++round) {
        const pid_t child = fork();
        if (child == 0) {
            try {
                auto store = open_sqlite_store(path);
                for (int i = 0;; ++i) {
                    const std::string id = "r" + std::to_string(round) + "_" + std::to_string(i);
                    store->create_mitigation(testing::make_mitigation(id, start_time()), "a", "r");
                    while (testing::advance(*store, id, start_time()) == TransitionOutcome::done) {
                    }
                }
            } catch (...) {
                _exit(3);
            }
        }
        std::this_thread::sleep_for(std::chrono::microseconds(delay_microseconds(random)));
        kill(child, SIGKILL);
        int status = 0;
        waitpid(child, &status, 0);
        ASSERT_TRUE(WIFSIGNALED(status)) << "the writer stopped on its own in round " << round;
        ASSERT_THAT(testing::consistency_problems(path), IsEmpty()) << "after round " << round;
    }
    // Interrupted mitigations can be finished: nothing was left half-written.
    auto store = open_sqlite_store(path);
    MitigationFilter unfinished;
    unfinished.limit = 1000;
    for (const Mitigation& mitigation : store->list_mitigations(unfinished)) {
        while (testing::advance(*store, mitigation.id, start_time()) == TransitionOutcome::done) {
        }
        EXPECT_EQ(store->find_mitigation(mitigation.id)->state, MitigationState::reverted);
    }
    EXPECT_THAT(testing::consistency_problems(path), IsEmpty());
}

}  // namespace
}  // namespace mitigate
