// One daemon per store: the lock beside the store refuses a second holder by name, is
// never inherited by a child (a plugin worker outliving the daemon must not keep it), and
// is free again the moment its holder is gone.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

#include "runtime/store/daemon_lock.h"
#include "tests/support/temporary_directory.h"

extern char** environ;

namespace mitigate {
namespace {

using ::testing::HasSubstr;

std::string refusal(const std::filesystem::path& store) {
    try {
        lock_store_for_daemon(store);
    } catch (const std::runtime_error& error) {
        return error.what();
    }
    return "";
}

TEST(DaemonLock, ASecondHolderIsRefusedWithTheFirstsPidAndTheFile) {
    testing::TemporaryDirectory directory;
    const auto store = directory / "m.db";
    const auto held = lock_store_for_daemon(store);
    const std::string message = refusal(store);
    EXPECT_THAT(message, HasSubstr("another mitigate daemon (pid " + std::to_string(getpid()) +
                                   ") already serves " + store.string()));
    EXPECT_THAT(message, HasSubstr(daemon_lock_path(store).string()));
    EXPECT_EQ(testing::read_file(daemon_lock_path(store)), std::to_string(getpid()) + "\n");
}

TEST(DaemonLock, FreeAgainOnceReleasedAndAnotherStoreIsIndependent) {
    testing::TemporaryDirectory directory;
    { const auto held = lock_store_for_daemon(directory / "m.db"); }
    const auto again = lock_store_for_daemon(directory / "m.db");
    EXPECT_NE(again, nullptr);
    EXPECT_NE(lock_store_for_daemon(directory / "other.db"), nullptr);
}

TEST(DaemonLock, AnotherNameForTheSameStoreFindsTheSameLock) {
    testing::TemporaryDirectory directory;
    const auto store = directory / "m.db";
    directory.write("m.db", "");
    std::filesystem::create_symlink(store, directory / "link.db");
    std::filesystem::create_directories(directory / "sub");
    const auto held = lock_store_for_daemon(store);
    EXPECT_THAT(refusal(directory / "link.db"), HasSubstr("another mitigate daemon"));
    EXPECT_THAT(refusal(directory / "sub" / ".." / "m.db"), HasSubstr("another mitigate daemon"));
}

TEST(DaemonLock, AChildStartedWhileHeldDoesNotInheritIt) {
    testing::TemporaryDirectory directory;
    auto held = lock_store_for_daemon(directory / "m.db");
    // A long-lived child, as a plugin worker is: the lock must not live on in it.
    pid_t child = 0;
    const char* arguments[] = {"/bin/sleep", "30", nullptr};
    ASSERT_EQ(posix_spawn(&child, "/bin/sleep", nullptr, nullptr,
                          const_cast<char* const*>(arguments), environ),
              0);
    held.reset();
    std::string message;
    try {
        const auto again = lock_store_for_daemon(directory / "m.db");
    } catch (const std::runtime_error& error) {
        message = error.what();
    }
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    EXPECT_EQ(message, "");
}

TEST(DaemonLock, AnUnwritableDirectoryIsAClearError) {
    const std::string message = refusal("/nonexistent-directory/m.db");
    EXPECT_THAT(message, HasSubstr("cannot open the daemon lock /nonexistent-directory/m.db.lock"));
    EXPECT_THAT(message, HasSubstr("No such file or directory"));
}

}  // namespace
}  // namespace mitigate
