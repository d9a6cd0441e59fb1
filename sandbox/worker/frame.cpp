#include "sandbox/worker/frame.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>

namespace mitigate {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Reads exactly `size` bytes or reports why not.
FrameStatus read_exactly(int descriptor, char* buffer, std::size_t size,
                         SteadyClock::time_point deadline) {
    std::size_t done = 0;
    while (done < size) {
        const auto remaining =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
        if (remaining.count() <= 0) {
            return FrameStatus::timeout;
        }
        pollfd waiting{descriptor, POLLIN, 0};
        const int ready = poll(&waiting, 1, static_cast<int>(remaining.count()) + 1);
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            return FrameStatus::error;
        }
        if (ready == 0) {
            return FrameStatus::timeout;
        }
        const ssize_t got = read(descriptor, buffer + done, size - done);
        if (got == 0) {
            return FrameStatus::closed;
        }
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            return errno == ECONNRESET ? FrameStatus::closed : FrameStatus::error;
        }
        done += static_cast<std::size_t>(got);
    }
    return FrameStatus::ok;
}

}  // namespace

bool write_frame(int descriptor, const std::string& payload) {
    if (payload.size() > 0xffffffffu) {
        return false;
    }
    const auto size = static_cast<std::uint32_t>(payload.size());
    const std::array<char, 4> header{static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                                     static_cast<char>(size >> 8), static_cast<char>(size)};
    std::string message(header.data(), header.size());
    message += payload;
    std::size_t done = 0;
    while (done < message.size()) {
        // MSG_NOSIGNAL: a worker that died must not take the runtime down with SIGPIPE.
        const ssize_t sent =
            send(descriptor, message.data() + done, message.size() - done, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        done += static_cast<std::size_t>(sent);
    }
    return true;
}

FrameStatus read_frame(int descriptor, std::size_t max_bytes, SteadyClock::time_point deadline,
                       std::string& payload) {
    std::array<unsigned char, 4> header{};
    FrameStatus status =
        read_exactly(descriptor, reinterpret_cast<char*>(header.data()), header.size(), deadline);
    if (status != FrameStatus::ok) {
        return status;
    }
    const std::size_t size = (std::size_t{header[0]} << 24) | (std::size_t{header[1]} << 16) |
                             (std::size_t{header[2]} << 8) | std::size_t{header[3]};
    if (size > max_bytes) {
        return FrameStatus::too_large;
    }
    std::string buffer(size, '\0');
    status = read_exactly(descriptor, buffer.data(), size, deadline);
    if (status == FrameStatus::ok) {
        payload = std::move(buffer);
    }
    return status;
}

}  // namespace mitigate
