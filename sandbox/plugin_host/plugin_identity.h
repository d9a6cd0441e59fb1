// Which file a plugin is, before the runtime lets a worker load it, and proof afterwards
// that the worker loaded that very file.
//
// The path is resolved (symlinks and all) and the checks apply to what it resolves to:
// the file and every directory above it up to / must be owned by root or by the user
// running mitigate and not writable by group or others (a directory such as /tmp, which
// is writable by all but sticky and root's, is accepted: nobody else can replace an entry
// in it). The file is then read through one descriptor opened without following links,
// hashed, and identified by its inode. The worker is given the digest: it reads the file
// again, refuses it unless the bytes hash to that digest, and (where it can build its
// empty root) loads its own copy of those bytes, so neither a swap nor an edit in place
// between the hash and the load goes unnoticed. Where it loads the file itself,
// /proc/PID/maps must show that inode mapped at that path.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace mitigate {

struct PluginIdentity {
    std::filesystem::path resolved;  // absolute, no symlinks
    std::string sha256;              // of the file's bytes, lowercase hex
    ino_t inode = 0;
    dev_t device = 0;
    // The file's change time: any write or rename of it moves this, and only root could
    // set it back, so an unchanged inode and ctime mean unchanged bytes.
    std::int64_t change_time_ns = 0;
    std::int64_t size = 0;
};

// The identity, or nullopt with `error` saying which file or directory is unsafe. Every
// check is made on every call; the digest of a file whose inode, size and change time
// are those of an earlier call in this process is reused rather than read again.
std::optional<PluginIdentity> identify_plugin(const std::filesystem::path& plugin,
                                              std::string& error);

// The worker side: the bytes of `plugin` (opened without following a link), or nullopt
// with `error` when they are not a regular file of at most the plugin size cap hashing
// to `expected_sha256`.
std::optional<std::string> read_plugin_with_digest(const std::filesystem::path& plugin,
                                                   const std::string& expected_sha256,
                                                   std::string& error);

// Why the worker `pid` did not load the file `identity` names, or nothing. With
// `loaded_a_checked_copy` (the worker built its empty root, so it loaded the copy it had
// checked against the digest), the path must be mapped but the inode is the copy's.
std::optional<std::string> loaded_file_mismatch(pid_t pid, const PluginIdentity& identity,
                                                bool loaded_a_checked_copy);

}  // namespace mitigate
