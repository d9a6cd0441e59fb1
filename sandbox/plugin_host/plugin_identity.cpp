#include "sandbox/plugin_host/plugin_identity.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "runtime/core/sha256.h"

namespace mitigate {
namespace {

// No plugin comes near this; a larger file is refused rather than hashed for minutes.
constexpr off_t max_plugin_bytes = off_t{512} << 20;

std::string mode_text(mode_t mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%03o", static_cast<unsigned>(mode & 0777));
    return text;
}

// Why `path` (already resolved) could be replaced by someone other than root or us.
std::optional<std::string> replaceable_by_others(const std::filesystem::path& path,
                                                 const struct stat& status) {
    const uid_t runtime_user = geteuid();
    if (status.st_uid != 0 && status.st_uid != runtime_user) {
        return path.string() + " is owned by uid " + std::to_string(status.st_uid) +
               ", neither root nor the user running mitigate; refusing to load a plugin "
               "from it";
    }
    const bool shared_but_safe =
        S_ISDIR(status.st_mode) && (status.st_mode & S_ISVTX) != 0 && status.st_uid == 0;
    if ((status.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !shared_but_safe) {
        return path.string() + " is writable by group or others (mode " +
               mode_text(status.st_mode) +
               "); refusing to load a plugin that someone else could replace";
    }
    return std::nullopt;
}

// Digests already computed in this process, by resolved path.
std::mutex known_mutex;
std::map<std::filesystem::path, PluginIdentity> known;

std::optional<PluginIdentity> known_identity(const std::filesystem::path& resolved) {
    std::lock_guard lock(known_mutex);
    const auto found = known.find(resolved);
    return found != known.end() ? std::optional(found->second) : std::nullopt;
}

void remember_identity(const PluginIdentity& identity) {
    std::lock_guard lock(known_mutex);
    known[identity.resolved] = identity;
}

}  // namespace

std::optional<PluginIdentity> identify_plugin(const std::filesystem::path& plugin,
                                              std::string& error) {
    std::error_code failure;
    const std::filesystem::path resolved = std::filesystem::canonical(plugin, failure);
    if (failure) {
        error = plugin.string() + ": cannot be read (" + failure.message() + ")";
        return std::nullopt;
    }
    for (std::filesystem::path directory = resolved.parent_path();;
         directory = directory.parent_path()) {
        struct stat status {};
        if (stat(directory.c_str(), &status) != 0) {
            error = directory.string() + ": cannot be read";
            return std::nullopt;
        }
        if (auto unsafe = replaceable_by_others(directory, status)) {
            error = *unsafe;
            return std::nullopt;
        }
        if (directory == directory.root_path()) {
            break;
        }
    }
    const int descriptor = open(resolved.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (descriptor < 0) {
        error = resolved.string() + ": cannot be opened";
        return std::nullopt;
    }
    PluginIdentity identity;
    identity.resolved = resolved;
    struct stat status {};
    std::optional<std::string> problem;
    if (fstat(descriptor, &status) != 0 || !S_ISREG(status.st_mode)) {
        problem = resolved.string() + " is not a regular file";
    } else if (status.st_size > max_plugin_bytes) {
        problem = resolved.string() + " is larger than " + std::to_string(max_plugin_bytes >> 20) +
                  " MiB; not a plugin";
    } else {
        problem = replaceable_by_others(resolved, status);
    }
    identity.inode = status.st_ino;
    identity.device = status.st_dev;
    identity.size = status.st_size;
    identity.change_time_ns =
        std::int64_t{status.st_ctim.tv_sec} * 1'000'000'000 + status.st_ctim.tv_nsec;
    const std::optional<PluginIdentity> previous = known_identity(resolved);
    if (!problem && previous && previous->inode == identity.inode &&
        previous->device == identity.device && previous->size == identity.size &&
        previous->change_time_ns == identity.change_time_ns) {
        identity.sha256 = previous->sha256;
    } else if (!problem) {
        Sha256 hash;
        std::array<char, 1 << 16> buffer{};
        ssize_t got = 0;
        while ((got = read(descriptor, buffer.data(), buffer.size())) > 0) {
            hash.update(std::string_view(buffer.data(), static_cast<std::size_t>(got)));
        }
        if (got < 0) {
            problem = resolved.string() + ": read failed";
        }
        identity.sha256 = hash.hex_digest();
        if (!problem) {
            remember_identity(identity);
        }
    }
    close(descriptor);
    if (problem) {
        error = *problem;
        return std::nullopt;
    }
    return identity;
}

std::optional<std::string> read_plugin_with_digest(const std::filesystem::path& plugin,
                                                   const std::string& expected_sha256,
                                                   std::string& error) {
    const int descriptor = open(plugin.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat status {};
    if (descriptor < 0 || fstat(descriptor, &status) != 0 || !S_ISREG(status.st_mode) ||
        status.st_size > max_plugin_bytes) {
        error = plugin.string() + ": cannot be read as a plugin file of at most " +
                std::to_string(max_plugin_bytes >> 20) + " MiB";
        if (descriptor >= 0) {
            close(descriptor);
        }
        return std::nullopt;
    }
    std::string bytes;
    bytes.reserve(static_cast<std::size_t>(status.st_size));
    std::array<char, 1 << 16> buffer{};
    ssize_t got = 0;
    while ((got = read(descriptor, buffer.data(), buffer.size())) > 0 &&
           bytes.size() + static_cast<std::size_t>(got) <=
               static_cast<std::size_t>(max_plugin_bytes)) {
        bytes.append(buffer.data(), static_cast<std::size_t>(got));
    }
    close(descriptor);
    if (got != 0) {
        error = plugin.string() + ": read failed, or the file grew past the cap while read";
        return std::nullopt;
    }
    const std::string digest = Sha256().update(bytes).hex_digest();
    if (digest != expected_sha256) {
        error = plugin.string() + " changed after the runtime checked it (sha256 " + digest +
                ", expected " + expected_sha256 + "); refusing to load it";
        return std::nullopt;
    }
    return bytes;
}

std::optional<std::string> loaded_file_mismatch(pid_t pid, const PluginIdentity& identity,
                                                bool loaded_a_checked_copy) {
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    std::string line;
    bool found = false;
    while (std::getline(maps, line)) {
        // address perms offset major:minor inode path
        std::istringstream fields(line);
        std::string address, permissions, offset, device, path;
        ino_t inode = 0;
        if (!(fields >> address >> permissions >> offset >> device >> inode)) {
            continue;
        }
        std::getline(fields >> std::ws, path);
        if (path != identity.resolved.string()) {
            continue;
        }
        unsigned major_number = 0;
        unsigned minor_number = 0;
        if (!loaded_a_checked_copy &&
            (std::sscanf(device.c_str(), "%x:%x", &major_number, &minor_number) != 2 ||
             inode != identity.inode || makedev(major_number, minor_number) != identity.device)) {
            return "the plugin host mapped a different file at " + identity.resolved.string() +
                   " than the one hashed (it was replaced during the start)";
        }
        found = true;
    }
    if (!found) {
        return "the plugin host did not map " + identity.resolved.string();
    }
    return std::nullopt;
}

}  // namespace mitigate
