// A directory under $TMPDIR that exists for one test and is removed after it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace mitigate::testing {

class TemporaryDirectory {
  public:
    TemporaryDirectory();
    ~TemporaryDirectory();
    TemporaryDirectory(const TemporaryDirectory&) = delete;
    TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

    // Writes `contents` to a file in the directory and returns its path.
    std::filesystem::path write(std::string_view name, std::string_view contents) const;

  private:
    std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path& path);

}  // namespace mitigate::testing
