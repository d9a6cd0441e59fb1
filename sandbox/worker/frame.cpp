#include "sandbox/worker/frame.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "runtime/core/json_reader.h"
#include "runtime/core/utf8.h"

namespace mitigate {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Waits for `events` on the descriptor until the deadline: ok, timeout or error.
FrameStatus wait_for(int descriptor, short events, SteadyClock::time_point deadline) {
    while (true) {
        const auto remaining =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
        if (remaining.count() <= 0) {
            return FrameStatus::timeout;
        }
        pollfd waiting{descriptor, events, 0};
        const int ready = poll(
            &waiting, 1, static_cast<int>(std::min<std::int64_t>(remaining.count() + 1, 1 << 30)));
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            return FrameStatus::error;
        }
        return ready == 0 ? FrameStatus::timeout : FrameStatus::ok;
    }
}

// Reads exactly `size` bytes or reports why not. Reads first and waits only when nothing
// is there: most of a frame has usually arrived by the time its header is read.
FrameStatus read_exactly(int descriptor, char* buffer, std::size_t size,
                         SteadyClock::time_point deadline) {
    std::size_t done = 0;
    while (done < size) {
        // Checked on every read, not only when the socket runs dry: a peer that keeps it
        // busy (a trickle, or frame after frame) must not outlast the deadline.
        if (SteadyClock::now() >= deadline) {
            return FrameStatus::timeout;
        }
        const ssize_t got = recv(descriptor, buffer + done, size - done, MSG_DONTWAIT);
        if (got == 0) {
            return FrameStatus::closed;
        }
        if (got > 0) {
            done += static_cast<std::size_t>(got);
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN) {
            return errno == ECONNRESET ? FrameStatus::closed : FrameStatus::error;
        }
        const FrameStatus waited = wait_for(descriptor, POLLIN, deadline);
        if (waited != FrameStatus::ok) {
            return waited;
        }
    }
    return FrameStatus::ok;
}

}  // namespace

std::string_view to_string(FrameStatus status) {
    switch (status) {
        case FrameStatus::ok: return "ok";
        case FrameStatus::closed: return "closed";
        case FrameStatus::timeout: return "timeout";
        case FrameStatus::too_large: return "too_large";
        case FrameStatus::error: return "error";
    }
    return "unknown";
}

std::string frame_type(const nlohmann::json& frame) {
    if (!frame.is_object()) {
        return "";
    }
    const auto found = frame.find("type");
    return found != frame.end() && found->is_string() ? found->get<std::string>() : "";
}

SteadyClock::time_point no_deadline() {
    return SteadyClock::now() + std::chrono::hours(24 * 365);
}

FrameStatus write_frame(int descriptor, std::string_view payload,
                        SteadyClock::time_point deadline) {
    if (payload.size() > 0xffffffffu) {
        return FrameStatus::too_large;
    }
    const auto size = static_cast<std::uint32_t>(payload.size());
    std::array<char, 4> header{static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                               static_cast<char>(size >> 8), static_cast<char>(size)};
    // Header and payload leave in one sendmsg where they fit, without copying the payload.
    std::array<iovec, 2> parts{iovec{header.data(), header.size()},
                               iovec{const_cast<char*>(payload.data()), payload.size()}};
    std::size_t first = 0;
    while (first < parts.size()) {
        if (SteadyClock::now() >= deadline) {
            return FrameStatus::timeout;
        }
        msghdr message{};
        message.msg_iov = &parts[first];
        message.msg_iovlen = parts.size() - first;
        // MSG_NOSIGNAL: a worker that died must not take the runtime down with SIGPIPE.
        // MSG_DONTWAIT: a full socket waits in poll, under the deadline, not in sendmsg.
        ssize_t sent = sendmsg(descriptor, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                const FrameStatus waited = wait_for(descriptor, POLLOUT, deadline);
                if (waited != FrameStatus::ok) {
                    return waited;
                }
                continue;
            }
            return errno == EPIPE || errno == ECONNRESET ? FrameStatus::closed : FrameStatus::error;
        }
        while (first < parts.size() && static_cast<std::size_t>(sent) >= parts[first].iov_len) {
            sent -= static_cast<ssize_t>(parts[first].iov_len);
            parts[first].iov_len = 0;
            ++first;
        }
        if (first < parts.size()) {
            parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + sent;
            parts[first].iov_len -= static_cast<std::size_t>(sent);
        }
    }
    return FrameStatus::ok;
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

std::optional<nlohmann::json> parse_frame(std::string_view payload, std::size_t max_bytes,
                                          std::string& error) {
    std::optional<nlohmann::json> parsed =
        parse_json_within(payload, JsonTextLimits{max_bytes, frame_max_depth}, error);
    if (parsed && !parsed->is_object()) {
        error = std::string("the frame is a JSON ") + parsed->type_name() + ", not an object";
        return std::nullopt;
    }
    return parsed;
}

std::string frame_field_problems(const nlohmann::json& frame, std::string_view name,
                                 const std::function<void(JsonObjectReader&)>& read) {
    std::vector<FieldError> errors;
    JsonObjectReader reader(frame, std::string(name), errors);
    reader.string("type");
    read(reader);
    reader.reject_unknown_fields();
    std::string text = describe(errors);
    std::replace(text.begin(), text.end(), '\n', ';');
    // A field name is the worker's own text: bounded before it reaches an error or a log.
    return cut_on_character_boundary(std::move(text), frame_problem_bytes);
}

}  // namespace mitigate
