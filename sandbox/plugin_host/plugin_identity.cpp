#include "sandbox/plugin_host/plugin_identity.h"

#include <fcntl.h>
#include <sys/mman.h>
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

// A copy no one may change: what the worker loads is what was hashed.
constexpr int required_seals = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK;

bool write_all(int descriptor, const char* data, std::size_t size) {
    while (size > 0) {
        const ssize_t wrote = write(descriptor, data, size);
        if (wrote <= 0) {
            return false;
        }
        data += wrote;
        size -= static_cast<std::size_t>(wrote);
    }
    return true;
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

SealedBytes::~SealedBytes() {
    if (descriptor >= 0) {
        close(descriptor);
    }
}

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
        identity.bytes = previous->bytes;
    } else if (!problem) {
        // Hashed and kept in one pass: the sealed copy holds exactly what was hashed.
        const int copy = memfd_create("mitigate-plugin", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (copy < 0) {
            problem = resolved.string() + ": cannot keep a copy (memfd_create failed)";
        } else {
            identity.bytes = std::make_shared<const SealedBytes>(copy);
            Sha256 hash;
            std::array<char, 1 << 16> buffer{};
            ssize_t got = 0;
            std::int64_t copied = 0;
            while (!problem && (got = read(descriptor, buffer.data(), buffer.size())) > 0) {
                copied += got;
                if (copied > max_plugin_bytes) {  // it grew after the fstat
                    problem = resolved.string() + " is larger than " +
                              std::to_string(max_plugin_bytes >> 20) + " MiB; not a plugin";
                    break;
                }
                hash.update(std::string_view(buffer.data(), static_cast<std::size_t>(got)));
                if (!write_all(copy, buffer.data(), static_cast<std::size_t>(got))) {
                    problem = resolved.string() + ": cannot keep a copy (memfd write failed)";
                }
            }
            if (got < 0) {
                problem = resolved.string() + ": read failed";
            }
            if (!problem && fcntl(copy, F_ADD_SEALS, required_seals | F_SEAL_SEAL) != 0) {
                problem = resolved.string() + ": cannot seal its copy";
            }
            identity.sha256 = hash.hex_digest();
        }
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

bool is_sealed_plugin_copy(int descriptor, std::string& error) {
    const int seals = fcntl(descriptor, F_GET_SEALS);
    if (seals < 0 || (seals & required_seals) != required_seals) {
        error = "the plugin's bytes did not come as a sealed memfd";
        return false;
    }
    return true;
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
