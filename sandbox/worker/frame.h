// The wire between the runtime and a worker: frames of a 4-byte big-endian length and
// that many bytes of JSON text, over a socketpair. A length above the cap is refused
// before anything is read, so a hostile worker cannot make the runtime allocate at will.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace mitigate {

enum class FrameStatus { ok, closed, timeout, too_large, error };

bool write_frame(int descriptor, const std::string& payload);

// Waits until `deadline` at most. `payload` is set only for ok.
FrameStatus read_frame(int descriptor, std::size_t max_bytes,
                       std::chrono::steady_clock::time_point deadline, std::string& payload);

}  // namespace mitigate
