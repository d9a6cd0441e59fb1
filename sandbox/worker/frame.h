// The wire between the runtime and a worker: frames of a 4-byte big-endian length and
// that many bytes of JSON text, over a socketpair. A length above the cap is refused
// before anything is read, so a hostile worker cannot make the runtime allocate at will;
// every read and every write waits until a deadline at most, so a worker that stops
// reading or writing cannot block the runtime.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace mitigate {

class JsonObjectReader;

enum class FrameStatus { ok, closed, timeout, too_large, error };

std::string_view to_string(FrameStatus status);

// Frames of JSON nested deeper than this are refused unparsed (see parse_json_within):
// no message of the protocol comes near it, and a deeper one would overflow a stack.
inline constexpr int frame_max_depth = 128;

// Writes the whole frame or reports why not: `timeout` when the peer has not taken it by
// `deadline` (the socket is left mid-frame: the caller must end the worker).
FrameStatus write_frame(int descriptor, std::string_view payload,
                        std::chrono::steady_clock::time_point deadline);

// Waits until `deadline` at most. `payload` is set only for ok.
FrameStatus read_frame(int descriptor, std::size_t max_bytes,
                       std::chrono::steady_clock::time_point deadline, std::string& payload);

// A frame's payload as a JSON object, within `max_bytes` and frame_max_depth; nullopt
// with `error` otherwise. Never throws.
std::optional<nlohmann::json> parse_frame(std::string_view payload, std::size_t max_bytes,
                                          std::string& error);

// The "type" member of a frame when it is a string, else "".
std::string frame_type(const nlohmann::json& frame);

// Reads a parsed frame's fields through JsonObjectReader: `read` asks for every field the
// frame may carry, "type" is read here, and any field not asked for is refused. Returns
// the problems (each naming its field, at most frame_problem_bytes in all), or "" when
// the frame is exactly what was expected. Never throws on what the frame holds.
std::string frame_field_problems(const nlohmann::json& frame, std::string_view name,
                                 const std::function<void(JsonObjectReader&)>& read);

inline constexpr std::size_t frame_problem_bytes = 512;

// A deadline that is in effect no deadline: for a worker waiting on the runtime, which
// decides when the worker is no longer wanted.
std::chrono::steady_clock::time_point no_deadline();

}  // namespace mitigate
