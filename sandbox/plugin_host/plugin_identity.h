// Which file a plugin is, before the runtime lets a worker load it, and proof afterwards
// that the worker loaded that very file.
//
// The path is resolved (symlinks and all) and the checks apply to what it resolves to:
// the file and every directory above it up to / must be owned by root or by the user
// running mitigate and not writable by group or others (a directory such as /tmp, which
// is writable by all but sticky and root's, is accepted: nobody else can replace an entry
// in it). The file is then read through one descriptor opened without following links,
// hashed, and identified by its inode. The bytes hashed are kept in a sealed memfd (no
// one can change them any more) that the worker is given: where it can build its empty
// root it loads a copy of exactly those bytes, so neither a swap nor an edit in place
// after the hash reaches it. Where it loads the file itself, /proc/PID/maps must show
// that inode mapped at that path.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace mitigate {

// An open memfd, closed with the last identity that holds it.
struct SealedBytes {
    int descriptor = -1;
    explicit SealedBytes(int owned) : descriptor(owned) {}
    ~SealedBytes();
    SealedBytes(const SealedBytes&) = delete;
    SealedBytes& operator=(const SealedBytes&) = delete;
};

struct PluginIdentity {
    std::filesystem::path resolved;  // absolute, no symlinks
    std::string sha256;              // of the file's bytes, lowercase hex
    ino_t inode = 0;
    dev_t device = 0;
    // The file's change time: any write or rename of it moves this, and only root could
    // set it back, so an unchanged inode and ctime mean unchanged bytes.
    std::int64_t change_time_ns = 0;
    std::int64_t size = 0;
    // The hashed bytes: a memfd sealed against writes, growth and shrinking, shared by
    // every identity of the same unchanged file.
    std::shared_ptr<const SealedBytes> bytes;
};

// The identity, or nullopt with `error` saying which file or directory is unsafe. Every
// check is made on every call; the digest of a file whose inode, size and change time
// are those of an earlier call in this process is reused rather than read again.
std::optional<PluginIdentity> identify_plugin(const std::filesystem::path& plugin,
                                              std::string& error);

// The worker side: true when `descriptor` is a memfd sealed as identify_plugin seals
// one (the worker copies only such bytes into its root), else false with `error`.
bool is_sealed_plugin_copy(int descriptor, std::string& error);

// Why the worker `pid` did not load the file `identity` names, or nothing. With
// `loaded_a_checked_copy` (the worker built its empty root, so it loaded the copy it had
// checked against the digest), the path must be mapped but the inode is the copy's.
std::optional<std::string> loaded_file_mismatch(pid_t pid, const PluginIdentity& identity,
                                                bool loaded_a_checked_copy);

}  // namespace mitigate
