#include "runtime/core/text_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "runtime/core/utf8.h"

namespace mitigate {
namespace {

std::string kind_of(mode_t mode) {
    if (S_ISDIR(mode)) {
        return "a directory";
    }
    if (S_ISFIFO(mode)) {
        return "a FIFO";
    }
    if (S_ISCHR(mode) || S_ISBLK(mode)) {
        return "a device";
    }
    if (S_ISSOCK(mode)) {
        return "a socket";
    }
    return "not a regular file";
}

}  // namespace

std::pair<int, int> line_and_column(std::string_view text, std::size_t offset) {
    int line = 1;
    int column = 1;
    for (std::size_t index = 0; index < offset && index < text.size(); ++index) {
        if (text[index] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return {line, column};
}

std::optional<std::string> read_regular_file(const std::filesystem::path& path,
                                             std::size_t max_bytes, TextFileError& error) {
    // O_NONBLOCK: opening a FIFO with no writer would otherwise wait for one.
    const int descriptor = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (descriptor < 0) {
        error = {std::string("cannot be read: ") + std::strerror(errno)};
        return std::nullopt;
    }
    struct stat status {};
    if (fstat(descriptor, &status) != 0 || !S_ISREG(status.st_mode)) {
        error = {"is " + kind_of(status.st_mode) + ", not a regular file"};
        close(descriptor);
        return std::nullopt;
    }
    if (static_cast<std::size_t>(status.st_size) > max_bytes) {
        error = {"is " + std::to_string(status.st_size) + " bytes, over the " +
                 std::to_string(max_bytes) + "-byte limit"};
        close(descriptor);
        return std::nullopt;
    }
    std::string text;
    std::array<char, 1 << 16> buffer{};
    ssize_t got = 0;
    while ((got = read(descriptor, buffer.data(), buffer.size())) > 0) {
        text.append(buffer.data(), static_cast<std::size_t>(got));
        if (text.size() > max_bytes) {
            error = {"grew past the " + std::to_string(max_bytes) + "-byte limit while read"};
            close(descriptor);
            return std::nullopt;
        }
    }
    const int read_errno = errno;
    close(descriptor);
    if (got < 0) {
        error = {std::string("cannot be read: ") + std::strerror(read_errno)};
        return std::nullopt;
    }
    return text;
}

std::optional<std::string> read_text_file(const std::filesystem::path& path, std::size_t max_bytes,
                                          TextFileError& error) {
    std::optional<std::string> text = read_regular_file(path, max_bytes, error);
    if (!text) {
        return std::nullopt;
    }
    if (const auto invalid = first_invalid_utf8(*text)) {
        const auto [line, column] = line_and_column(*text, *invalid);
        error = {"invalid UTF-8 at line " + std::to_string(line) + ", column " +
                     std::to_string(column) + ": text files must be UTF-8",
                 line, column};
        return std::nullopt;
    }
    return text;
}

std::string describe_text_file_error(const std::filesystem::path& path,
                                     const TextFileError& error) {
    std::string where = path.string();
    if (error.line > 0) {
        where += ":" + std::to_string(error.line) + ":" + std::to_string(error.column);
    }
    return where + ": " + error.message;
}

}  // namespace mitigate
