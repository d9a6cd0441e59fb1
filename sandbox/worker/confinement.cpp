#include "sandbox/worker/confinement.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mitigate {
namespace {

// Debian 12's kernel headers describe Landlock ABI 1 only. The values below are the
// kernel's stable UAPI for the later ABIs (Documentation/userspace-api/landlock.rst).
constexpr std::uint64_t landlock_fs_refer = 1ULL << 13;            // ABI 2
constexpr std::uint64_t landlock_fs_truncate = 1ULL << 14;         // ABI 3
constexpr std::uint64_t landlock_fs_ioctl_dev = 1ULL << 15;        // ABI 5
constexpr std::uint64_t landlock_net_bind_tcp = 1ULL << 0;         // ABI 4
constexpr std::uint64_t landlock_net_connect_tcp = 1ULL << 1;      // ABI 4
constexpr std::uint64_t landlock_scope_abstract_unix = 1ULL << 0;  // ABI 6
constexpr std::uint64_t landlock_scope_signal = 1ULL << 1;         // ABI 6

// struct landlock_ruleset_attr as of ABI 6; the size passed tells the kernel which
// fields exist.
struct RulesetAttributes {
    std::uint64_t handled_access_fs;
    std::uint64_t handled_access_net;
    std::uint64_t scoped;
};

struct PathBeneathAttributes {
    std::uint64_t allowed_access;
    std::int32_t parent_fd;
} __attribute__((packed));

std::string errno_text(const char* what) {
    return std::string(what) + ": " + std::strerror(errno);
}

std::string apply_landlock(const ConfinementPolicy& policy, int abi) {
    std::uint64_t fs = (1ULL << 13) - 1;  // ABI 1: execute ... make_sym
    if (abi >= 2) {
        fs |= landlock_fs_refer;
    }
    if (abi >= 3) {
        fs |= landlock_fs_truncate;
    }
    if (abi >= 5) {
        fs |= landlock_fs_ioctl_dev;
    }
    RulesetAttributes attributes{fs, 0, 0};
    std::size_t size = sizeof(std::uint64_t);
    if (abi >= 4) {
        attributes.handled_access_net = landlock_net_bind_tcp | landlock_net_connect_tcp;
        size = 2 * sizeof(std::uint64_t);
    }
    if (abi >= 6) {
        attributes.scoped = landlock_scope_abstract_unix | landlock_scope_signal;
        size = sizeof(RulesetAttributes);
    }
    const int ruleset =
        static_cast<int>(syscall(SYS_landlock_create_ruleset, &attributes, size, 0));
    if (ruleset < 0) {
        return errno_text("landlock_create_ruleset");
    }
    const std::uint64_t read_only = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
    for (const auto& path : policy.read_only_paths) {
        const int directory = open(path.c_str(), O_PATH | O_CLOEXEC);
        if (directory < 0) {
            close(ruleset);
            return errno_text(("open " + path.string()).c_str());
        }
        PathBeneathAttributes rule{read_only, directory};
        const long added =
            syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
        close(directory);
        if (added < 0) {
            close(ruleset);
            return errno_text("landlock_add_rule");
        }
    }
    // No TCP port rules: with bind and connect handled, every port is refused.
    const long restricted = syscall(SYS_landlock_restrict_self, ruleset, 0);
    close(ruleset);
    return restricted < 0 ? errno_text("landlock_restrict_self") : "";
}

// Maps the worker's own uid and gid into the user namespace it just created, to
// themselves: without a mapping, files it creates (the directories of its empty root)
// would have no owner there and the kernel refuses them.
bool map_identity(uid_t user, gid_t group) {
    const auto write_file = [](const char* path, const std::string& text) {
        const int descriptor = open(path, O_WRONLY | O_CLOEXEC);
        if (descriptor < 0) {
            return false;
        }
        const bool written =
            write(descriptor, text.data(), text.size()) == static_cast<ssize_t>(text.size());
        close(descriptor);
        return written;
    };
    return write_file("/proc/self/setgroups", "deny") &&
           write_file("/proc/self/uid_map",
                      std::to_string(user) + " " + std::to_string(user) + " 1") &&
           write_file("/proc/self/gid_map",
                      std::to_string(group) + " " + std::to_string(group) + " 1");
}

// Copies the checked bytes into the new root, readable by all: the worker may run as
// nobody by the time it loads them. sendfile with an explicit offset leaves the shared
// descriptor's own offset alone.
bool place_copy(const std::filesystem::path& path, int source, off_t size) {
    const int descriptor = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (descriptor < 0) {
        return false;
    }
    off_t offset = 0;
    while (offset < size) {
        const ssize_t sent =
            sendfile(descriptor, source, &offset, static_cast<std::size_t>(size - offset));
        if (sent <= 0) {
            close(descriptor);
            return false;
        }
    }
    const bool readable = fchmod(descriptor, 0444) == 0;
    return close(descriptor) == 0 && readable;
}

// A filesystem of nothing but the worker's read-only paths: a new mount namespace whose
// root is an empty tmpfs, with each path bind-mounted read-only at its own name. Landlock
// decides what may be opened but not what may be stat()ed, and a path outside it answers
// EACCES where it exists and ENOENT where it does not: with nothing else mounted, there is
// nothing to learn. False, with the filesystem as it was, where the kernel does not allow
// it (the worker then relies on Landlock alone, as before).
bool isolate_filesystem(const ConfinementPolicy& policy) {
    // Every path is bound at its own name inside the new root: "/" (or anything that is
    // not an absolute path in normal form) would be bound over the new root itself.
    for (const auto& path : policy.read_only_paths) {
        if (!path.is_absolute() || path.lexically_normal() != path ||
            path.relative_path().empty()) {
            return false;
        }
    }
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        return false;
    }
    // The read-only path that holds the loaded file gets the checked copy instead of a
    // bind (confinement.h); the others are bound.
    struct stat copy_status {};
    const bool has_copy = !policy.loaded_file.empty() && policy.loaded_file_descriptor >= 0 &&
                          fstat(policy.loaded_file_descriptor, &copy_status) == 0;
    const auto holds_copy = [&](const std::filesystem::path& path) {
        return has_copy && policy.loaded_file.parent_path() == path;
    };
    // What is created below must be traversable by the uid the worker may take next,
    // whatever umask the runtime was started with.
    umask(022);
    // The sources, opened in the new namespace (a bind mount takes its source from the
    // caller's own namespace) and before anything is mounted over them.
    std::vector<int> sources;
    const auto close_sources = [&sources] {
        for (int source : sources) {
            if (source >= 0) {
                close(source);
            }
        }
    };
    for (const auto& path : policy.read_only_paths) {
        const int source =
            holds_copy(path) ? -1 : open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (source < 0 && !holds_copy(path)) {
            close_sources();
            return false;
        }
        sources.push_back(source);
    }
    // The new root is built on /tmp in this namespace only; the sources are reached
    // through their descriptors, so a path under /tmp is still found.
    constexpr const char* new_root = "/tmp";
    // The copy is mapped executable, so a root that holds one cannot be noexec; it is
    // read-only like the rest, and the copy is all it holds.
    const unsigned long no_exec = has_copy ? 0 : MS_NOEXEC;
    const std::string tmpfs_options =
        "size=" + std::to_string(copy_status.st_size + (64 << 10)) + ",mode=0555";
    if (mount("none", new_root, "tmpfs", MS_NOSUID | MS_NODEV | no_exec, tmpfs_options.c_str()) !=
        0) {
        close_sources();
        return false;
    }
    bool built = true;
    for (std::size_t index = 0; built && index < sources.size(); ++index) {
        const std::filesystem::path target =
            std::filesystem::path(new_root) / policy.read_only_paths[index].relative_path();
        std::error_code failed;
        std::filesystem::create_directories(target, failed);
        if (failed) {
            built = false;
            break;
        }
        if (holds_copy(policy.read_only_paths[index])) {
            built = place_copy(target / policy.loaded_file.filename(),
                               policy.loaded_file_descriptor, copy_status.st_size);
            continue;
        }
        const std::string source = "/proc/self/fd/" + std::to_string(sources[index]);
        built = mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0 &&
                mount(nullptr, target.c_str(), nullptr,
                      MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) == 0;
    }
    close_sources();
    // Read-only from here on, then the switch: pivot_root(".", ".") stacks the old root
    // under the new one, and the detach removes it.
    built =
        built &&
        // MS_BIND: this mount only, never the filesystem under it.
        mount(nullptr, new_root, nullptr,
              MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | no_exec, nullptr) == 0 &&
        chdir(new_root) == 0 && syscall(SYS_pivot_root, ".", ".") == 0 &&
        umount2(".", MNT_DETACH) == 0 && chdir("/") == 0;
    if (!built) {
        umount2(new_root, MNT_DETACH);
        chdir("/");
    }
    return built;
}

// Every capability gone from all five sets, so that a worker started by a root runtime
// is no more than an unprivileged process: bounding and ambient first (dropping those
// needs CAP_SETPCAP, which the capset below then removes), effective, permitted and
// inheritable last. Verified by reading them back.
std::string drop_capabilities(const ConfinementPolicy& policy, bool give_up_root) {
    for (int capability = 0; capability <= CAP_LAST_CAP; ++capability) {
        // EINVAL for capabilities this kernel does not know; EPERM without CAP_SETPCAP,
        // where the bounding set cannot matter: no_new_privs stops file capabilities.
        prctl(PR_CAPBSET_DROP, capability, 0, 0, 0);
    }
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    // Root without capabilities still owns root's files, its processes and its IPC: as
    // nobody, with no supplementary group, the worker owns nothing. Changing all three
    // uids also clears the permitted and effective sets and makes the process
    // non-dumpable, so other processes of that uid cannot trace or read it.
    if (give_up_root) {
        const gid_t group = policy.unprivileged_group;
        const uid_t user = policy.unprivileged_user;
        // Where the kernel refuses (the uid is not mapped in a container's user namespace,
        // or the runtime lacks CAP_SETUID/CAP_SETGID) the worker stays uid 0, without
        // capabilities, as the report and `plugins list` then show. setresuid comes last,
        // so a refusal never leaves a worker half switched in a way that matters.
        if (setgroups(0, nullptr) == 0 && setresgid(group, group, group) == 0) {
            setresuid(user, user, user);
        }
    }
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3]{};
    if (syscall(SYS_capset, &header, none) != 0) {
        return errno_text("capset");
    }
    __user_cap_data_struct left[_LINUX_CAPABILITY_U32S_3]{};
    if (syscall(SYS_capget, &header, left) != 0) {
        return errno_text("capget");
    }
    for (const auto& set : left) {
        if (set.effective != 0 || set.permitted != 0 || set.inheritable != 0) {
            return "capabilities are left after dropping them all";
        }
    }
    return "";
}

std::string apply_seccomp(const ConfinementPolicy& policy) {
    // Anything not listed fails with EPERM; the calls that only an escape attempt makes
    // kill the process outright, so the runtime sees SIGSYS rather than a quiet error.
    scmp_filter_ctx filter = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (filter == nullptr) {
        return "seccomp_init failed";
    }
    const int allowed[] = {
        SCMP_SYS(read),          SCMP_SYS(write),
        SCMP_SYS(readv),         SCMP_SYS(writev),
        SCMP_SYS(close),         SCMP_SYS(exit),
        SCMP_SYS(exit_group),    SCMP_SYS(brk),
        SCMP_SYS(mmap),          SCMP_SYS(munmap),
        SCMP_SYS(mremap),        SCMP_SYS(madvise),
        SCMP_SYS(mprotect),      SCMP_SYS(futex),
        SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep),
        SCMP_SYS(gettimeofday),  SCMP_SYS(nanosleep),
        SCMP_SYS(rt_sigreturn),  SCMP_SYS(rt_sigprocmask),
        SCMP_SYS(rt_sigaction),  SCMP_SYS(sigaltstack),
        SCMP_SYS(getpid),        SCMP_SYS(gettid),
        SCMP_SYS(getrandom),     SCMP_SYS(fstat),
        SCMP_SYS(newfstatat),    SCMP_SYS(lseek),
        SCMP_SYS(poll),          SCMP_SYS(ppoll),
        SCMP_SYS(sendto),        SCMP_SYS(recvfrom),
        SCMP_SYS(sendmsg),       SCMP_SYS(recvmsg),
        SCMP_SYS(sched_yield),   SCMP_SYS(restart_syscall),
        SCMP_SYS(getrusage),  // RUSAGE_SELF, _THREAD or _CHILDREN: only ever this process
    };
    const int fatal[] = {
        SCMP_SYS(execve),
        SCMP_SYS(execveat),
        SCMP_SYS(ptrace),
        SCMP_SYS(socket),
        SCMP_SYS(socketpair),
        SCMP_SYS(connect),
        SCMP_SYS(bind),
        SCMP_SYS(listen),
        SCMP_SYS(accept),
        SCMP_SYS(accept4),
        SCMP_SYS(fork),
        SCMP_SYS(vfork),
        SCMP_SYS(clone),
        SCMP_SYS(clone3),
        SCMP_SYS(process_vm_readv),
        SCMP_SYS(process_vm_writev),
    };
    // What the dynamic loader and a plugin reading its own directory need; Landlock
    // limits what these can reach.
    const int file_reads[] = {SCMP_SYS(openat), SCMP_SYS(pread64), SCMP_SYS(getdents64),
                              SCMP_SYS(readlink), SCMP_SYS(statx)};
    for (int call : file_reads) {
        if (policy.allow_file_reads && seccomp_rule_add(filter, SCMP_ACT_ALLOW, call, 0) != 0) {
            seccomp_release(filter);
            return "seccomp_rule_add (file reads) failed";
        }
    }
    // fcntl only for what the loader and stdio use. F_SETOWN with F_SETSIG and O_ASYNC
    // would make the kernel signal any process the worker names (the runtime) whenever
    // the socket becomes readable.
    if (policy.allow_file_reads) {
        bool added = true;
        for (int command : {F_GETFD, F_SETFD, F_GETFL, F_DUPFD_CLOEXEC}) {
            added = added &&
                    seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                                     SCMP_A1(SCMP_CMP_EQ, static_cast<scmp_datum_t>(command))) == 0;
        }
        added = added && seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 2,
                                          SCMP_A1(SCMP_CMP_EQ, F_SETFL),
                                          SCMP_A2(SCMP_CMP_MASKED_EQ, O_ASYNC, 0)) == 0;
        if (!added) {
            seccomp_release(filter);
            return "seccomp_rule_add (fcntl) failed";
        }
    }
    for (int call : allowed) {
        if (seccomp_rule_add(filter, SCMP_ACT_ALLOW, call, 0) != 0) {
            seccomp_release(filter);
            return "seccomp_rule_add (allow) failed";
        }
    }
    // Calls that name a process are allowed on this one only. prlimit64 on another pid
    // would let a plugin set the runtime's file-size limit to 0 (it dies of SIGXFSZ);
    // tgkill is how abort() and raise() signal the caller's own thread.
    const auto self = static_cast<scmp_datum_t>(getpid());
    const bool restricted = seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 1,
                                             SCMP_A0(SCMP_CMP_EQ, 0)) == 0 &&
                            seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 1,
                                             SCMP_A0(SCMP_CMP_EQ, self)) == 0 &&
                            seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(sched_getaffinity), 1,
                                             SCMP_A0(SCMP_CMP_EQ, 0)) == 0 &&
                            seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                                             SCMP_A0(SCMP_CMP_EQ, self)) == 0;
    if (!restricted) {
        seccomp_release(filter);
        return "seccomp_rule_add (own process only) failed";
    }
    for (int call : fatal) {
        if (seccomp_rule_add(filter, SCMP_ACT_KILL_PROCESS, call, 0) != 0) {
            seccomp_release(filter);
            return "seccomp_rule_add (kill) failed";
        }
    }
    const int loaded = seccomp_load(filter);
    seccomp_release(filter);
    return loaded != 0 ? "seccomp_load failed: " + std::string(std::strerror(-loaded)) : "";
}

void set_limit(ConfinementReport& report, const char* name, int resource, rlim_t value) {
    const rlimit limit{value, value};
    if (setrlimit(resource, &limit) == 0) {
        report.rlimits.push_back(std::string(name) + "=" + std::to_string(value));
    }
}

}  // namespace

int landlock_abi_version() {
    const long abi =
        syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : static_cast<int>(abi);
}

ConfinementReport confine_this_process(const ConfinementPolicy& policy) {
    ConfinementReport report;
    const pid_t runtime = getppid();
    report.landlock_abi = landlock_abi_version();
    if (report.landlock_abi < policy.minimum_landlock_abi && !policy.allow_weaker_landlock) {
        report.error = "the kernel offers Landlock ABI " + std::to_string(report.landlock_abi) +
                       "; workers need at least " + std::to_string(policy.minimum_landlock_abi) +
                       " (set sandbox.allow_weaker_landlock to run with less, audited)";
        return report;
    }
    // Namespaces: an empty network namespace makes "no network" hold for UDP, netlink and
    // raw sockets too. Without privileges a user namespace is needed first; either may be
    // unavailable, which is recorded, not fatal: seccomp and Landlock still hold.
    if (unshare(CLONE_NEWNET | CLONE_NEWIPC) == 0) {
        report.namespaces = {"net", "ipc"};
    } else if (const uid_t user = geteuid(), group = getegid();
               unshare(CLONE_NEWUSER) == 0 && map_identity(user, group) &&
               unshare(CLONE_NEWNET | CLONE_NEWIPC) == 0) {
        report.namespaces = {"user", "net", "ipc"};
    }
    const bool root_built = isolate_filesystem(policy);
    if (root_built) {
        report.namespaces.emplace_back("mnt");
    }
    // Only once the root holds nothing but what the worker needs, readable by all (a
    // worker still on the real filesystem may need root to read its plugin), and not in a
    // user namespace of its own (it maps uid 0 alone, and denies setgroups).
    const bool in_own_user_namespace = std::find(report.namespaces.begin(), report.namespaces.end(),
                                                 "user") != report.namespaces.end();
    const bool give_up_root = policy.give_up_root && geteuid() == 0 && !in_own_user_namespace &&
                              (root_built || policy.read_only_paths.empty());
    report.error = drop_capabilities(policy, give_up_root);
    if (!report.error.empty()) {
        return report;
    }
    report.capabilities_dropped = true;
    report.user = geteuid();
    // A change of credentials (the user namespace, the capabilities just dropped) clears
    // the parent-death signal spawn_worker set: set it again, then make sure the runtime
    // did not die in between, which the signal would have missed.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != runtime || runtime == 1) {
        report.error = "the runtime that started this worker is gone";
        return report;
    }
#if !defined(__SANITIZE_ADDRESS__)
    set_limit(report, "as", RLIMIT_AS, policy.address_space_bytes);  // ASan needs terabytes
#endif
    set_limit(report, "core", RLIMIT_CORE, 0);
    set_limit(report, "fsize", RLIMIT_FSIZE, 0);
    set_limit(report, "nofile", RLIMIT_NOFILE, 16);
    set_limit(report, "nproc", RLIMIT_NPROC, 0);
    set_limit(report, "cpu", RLIMIT_CPU, static_cast<rlim_t>(policy.cpu_seconds));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        report.error = errno_text("PR_SET_NO_NEW_PRIVS");
        return report;
    }
    report.weaker_landlock_allowed = report.landlock_abi < policy.minimum_landlock_abi;
    if (report.landlock_abi > 0) {
        report.error = apply_landlock(policy, report.landlock_abi);
        if (!report.error.empty()) {
            return report;
        }
        report.landlock = true;
    }
    report.error = apply_seccomp(policy);
    report.seccomp = report.error.empty();
    report.applied = report.error.empty();
    return report;
}

}  // namespace mitigate
