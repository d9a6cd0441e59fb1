#include "runtime/store/daemon_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace mitigate {
namespace {

class FileLock final : public DaemonLock {
  public:
    explicit FileLock(int descriptor) : descriptor_(descriptor) {}
    ~FileLock() override { ::close(descriptor_); }
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

  private:
    int descriptor_;
};

// What the holder wrote: its pid, or nothing useful if it is between open and write.
std::string holder_of(int descriptor) {
    std::array<char, 32> buffer{};
    const ssize_t read = ::pread(descriptor, buffer.data(), buffer.size() - 1, 0);
    std::string text(buffer.data(), read > 0 ? static_cast<std::size_t>(read) : 0);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.pop_back();
    }
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
        return "a process that has not written its pid yet";
    }
    return "pid " + text;
}

}  // namespace

std::filesystem::path daemon_lock_path(const std::filesystem::path& store_path) {
    // One file per store, however the store is named: a symbolic link to it, or a path
    // with `..`, must find the same lock.
    std::error_code ignored;
    std::filesystem::path lock = std::filesystem::weakly_canonical(store_path, ignored);
    if (lock.empty()) {
        lock = store_path;
    }
    lock += ".lock";
    return lock;
}

std::unique_ptr<DaemonLock> lock_store_for_daemon(const std::filesystem::path& store_path) {
    const std::filesystem::path path = daemon_lock_path(store_path);
    // O_CLOEXEC: a plugin or Lua worker must never inherit the lock and keep it after the
    // daemon died.
    const int descriptor = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (descriptor < 0) {
        throw std::runtime_error("cannot open the daemon lock " + path.string() + ": " +
                                 std::strerror(errno));
    }
    if (::flock(descriptor, LOCK_EX | LOCK_NB) != 0) {
        const int error = errno;
        const std::string holder = error == EWOULDBLOCK ? holder_of(descriptor) : "";
        ::close(descriptor);
        if (error == EWOULDBLOCK) {
            throw std::runtime_error("another mitigate daemon (" + holder + ") already serves " +
                                     store_path.string() + " (it holds " + path.string() +
                                     "); two daemons on one store would both apply and revert");
        }
        throw std::runtime_error("cannot lock " + path.string() + ": " + std::strerror(error));
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(descriptor, 0) != 0 ||
        ::pwrite(descriptor, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
        const int error = errno;
        ::close(descriptor);
        throw std::runtime_error("cannot write the daemon lock " + path.string() + ": " +
                                 std::strerror(error));
    }
    return std::make_unique<FileLock>(descriptor);
}

}  // namespace mitigate
