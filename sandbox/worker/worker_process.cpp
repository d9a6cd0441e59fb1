#include "sandbox/worker/worker_process.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace mitigate {

WorkerProcess spawn_worker(const std::vector<std::string>& arguments, std::string& error,
                           int given) {
    // Above the worker's 3 and 4, so that the dup2 calls below cannot overwrite it.
    const int given_high = given >= 0 ? fcntl(given, F_DUPFD_CLOEXEC, 10) : -1;
    if (given >= 0 && given_high < 0) {
        error = "cannot pass a descriptor to the worker";
        return {};
    }
    const auto close_given = [given_high] {
        if (given_high >= 0) {
            close(given_high);
        }
    };
    int sockets[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
        close_given();
        error = "socketpair failed";
        return {};
    }
    std::vector<std::string> argument_copies = arguments;
    std::vector<char*> argv;
    for (auto& argument : argument_copies) {
        argv.push_back(argument.data());
    }
    argv.push_back(nullptr);
    // An empty environment: the runtime's holds secrets (env: references) and a worker
    // must never have them, not even in memory. Only sanitizer settings pass.
    std::vector<std::string> environment;
    for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"}) {
        if (const char* value = std::getenv(name)) {
            environment.push_back(std::string(name) + "=" + value);
        }
    }
    std::vector<char*> envp;
    for (auto& entry : environment) {
        envp.push_back(entry.data());
    }
    envp.push_back(nullptr);
    // The worker's stdin, stdout and stderr: never the runtime's, or a plugin could read
    // the CLI's input, forge its JSON output or the daemon's log lines.
    const int null_device = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_device < 0) {
        close_given();
        close(sockets[0]);
        close(sockets[1]);
        error = "cannot open /dev/null";
        return {};
    }
    const pid_t runtime = getpid();
    const pid_t child = fork();
    if (child < 0) {
        close_given();
        close(null_device);
        close(sockets[0]);
        close(sockets[1]);
        error = "fork failed";
        return {};
    }
    if (child == 0) {
        // Between fork and exec only async-signal-safe calls. fd 3 is the worker's end;
        // every other descriptor of the runtime is close-on-exec or closed here.
        //
        // The worker dies with the runtime: SIGKILL when the thread that started it ends
        // (the runtime starts workers from long-lived threads only), checked right after
        // for a runtime that died before the call. The worker sets it again after its
        // confinement, which may clear it (see confinement.cpp).
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != runtime) {
            _exit(125);
        }
        // A session of its own: no process group shared with the runtime that a signal
        // sent to a group (or a terminal's) could reach both through.
        setsid();
        if (dup2(null_device, 0) < 0 || dup2(null_device, 1) < 0 || dup2(null_device, 2) < 0 ||
            dup2(sockets[1], 3) < 0 || (given_high >= 0 && dup2(given_high, 4) < 0)) {
            _exit(126);
        }
        close_range(given_high >= 0 ? 5 : 4, ~0U, 0);
        execve(argv[0], argv.data(), envp.data());
        _exit(127);
    }
    close_given();
    close(null_device);
    close(sockets[1]);
    error.clear();
    return {child, sockets[0]};
}

namespace {

// Whether `id` is mapped in this process's user namespace (/proc/self/uid_map or
// gid_map: "inside outside count" per line); in a container's namespace it may not be.
bool id_is_mapped(const char* map, unsigned id) {
    std::ifstream lines(map);
    unsigned long inside = 0;
    unsigned long outside = 0;
    unsigned long count = 0;
    while (lines >> inside >> outside >> count) {
        if (id >= inside && id - inside < count) {
            return true;
        }
    }
    return false;
}

bool runtime_may_give_workers_away() {
    if (geteuid() != 0 || !id_is_mapped("/proc/self/uid_map", 65534) ||
        !id_is_mapped("/proc/self/gid_map", 65534)) {
        return false;
    }
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct sets[_LINUX_CAPABILITY_U32S_3]{};
    if (syscall(SYS_capget, &header, sets) != 0) {
        return false;
    }
    // CAP_KILL to stop it, CAP_SYS_PTRACE to read its /proc entries (it is then of another
    // uid and not dumpable), CAP_SETUID and CAP_SETGID so that it switches both ids or
    // neither.
    for (int needed : {CAP_KILL, CAP_SYS_PTRACE, CAP_SETUID, CAP_SETGID}) {
        if ((sets[CAP_TO_INDEX(needed)].effective & CAP_TO_MASK(needed)) == 0) {
            return false;
        }
    }
    return true;
}

}  // namespace

bool may_give_workers_away() {
    // The runtime's ids, maps and capabilities do not change while it runs: read once,
    // not on every worker start.
    static const bool allowed = runtime_may_give_workers_away();
    return allowed;
}

void stop_worker(WorkerProcess& worker) {
    if (worker.socket >= 0) {
        close(worker.socket);
        worker.socket = -1;
    }
    if (worker.pid > 0) {
        kill(worker.pid, SIGKILL);
        int status = 0;
        waitpid(worker.pid, &status, 0);
        worker.pid = -1;
    }
}

std::string reap_worker(WorkerProcess& worker) {
    if (worker.socket >= 0) {
        close(worker.socket);
        worker.socket = -1;
    }
    if (worker.pid <= 0) {
        return "";
    }
    int status = 0;
    if (waitpid(worker.pid, &status, WNOHANG) == 0) {
        kill(worker.pid, SIGKILL);
        waitpid(worker.pid, &status, 0);
    }
    worker.pid = -1;
    return WIFSIGNALED(status) ? " (signal " + std::to_string(WTERMSIG(status)) + ")"
                               : " (exit " + std::to_string(WEXITSTATUS(status)) + ")";
}

}  // namespace mitigate
