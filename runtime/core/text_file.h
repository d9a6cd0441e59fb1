// Reading a text file someone else wrote (the configuration, policies, drills, playbooks):
// only a regular file, since a FIFO blocks and /dev/zero never ends; within a size limit
// checked before reading and again while reading (the file may grow); and valid UTF-8,
// so that no later step meets bytes it cannot handle. Never throws, never blocks.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace mitigate {

// What the operator's own files may hold; far above any real configuration or policy.
inline constexpr std::size_t text_file_max_bytes = 4u << 20;

struct TextFileError {
    std::string message;  // "is a FIFO, not a regular file", "invalid UTF-8 ..."
    int line = 0;         // 1-based where the problem is in the text, else 0
    int column = 0;
};

// The file's text, or nullopt with `error` saying why not.
std::optional<std::string> read_text_file(const std::filesystem::path& path, std::size_t max_bytes,
                                          TextFileError& error);

// The same without the UTF-8 check, for bytes that need not be text (a secret file).
std::optional<std::string> read_regular_file(const std::filesystem::path& path,
                                             std::size_t max_bytes, TextFileError& error);

// "PATH: message", or "PATH:LINE:COLUMN: message" when the problem has a position.
std::string describe_text_file_error(const std::filesystem::path& path, const TextFileError& error);

// The 1-based line and column of byte `offset` in `text`.
std::pair<int, int> line_and_column(std::string_view text, std::size_t offset);

}  // namespace mitigate
