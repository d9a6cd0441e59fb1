// `mitigate __confinement-probe ATTEMPT`: confines itself exactly as a worker does, then
// tries one thing a hostile plugin or script would. Tests run it to prove the confinement
// holds on this kernel, not just that the calls to set it up returned 0.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "sandbox/worker/confinement.h"
#include "sandbox/worker/lua_worker.h"

namespace mitigate {

int run_confinement_probe(std::string_view attempt) {
    const ConfinementReport report = confine_this_process(ConfinementPolicy{});
    if (!report.applied) {
        std::printf("not confined: %s\n", report.error.c_str());
        return 3;
    }
    auto outcome = [](const char* what, long result) {
        std::printf("%s: %s\n", what, result < 0 ? std::strerror(errno) : "ALLOWED");
        std::fflush(stdout);
        return result < 0 ? 0 : 1;
    };
    if (attempt == "read-file") {
        return outcome("open /etc/hostname", open("/etc/hostname", O_RDONLY));
    }
    if (attempt == "write-file") {
        return outcome("open /tmp/mitigate-probe",
                       open("/tmp/mitigate-probe", O_WRONLY | O_CREAT, 0600));
    }
    std::fflush(stdout);
    if (attempt == "socket") {
        return outcome("socket", socket(AF_INET, SOCK_STREAM, 0));  // killed by seccomp
    }
    if (attempt == "exec") {
        char shell[] = "/bin/sh";
        char* argv[] = {shell, nullptr};
        return outcome("execve", execv(shell, argv));  // killed by seccomp
    }
    if (attempt == "fork") {
        return outcome("fork", fork());  // killed by seccomp
    }
    std::printf("unknown attempt\n");
    return 2;
}

}  // namespace mitigate
