#include "sandbox/worker/observed_confinement.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

namespace mitigate {
namespace {

std::string link_of(const std::string& path) {
    char target[256];
    const ssize_t length = readlink(path.c_str(), target, sizeof target);
    return length > 0 ? std::string(target, static_cast<std::size_t>(length)) : "";
}

}  // namespace

ObservedConfinement observe_confinement(pid_t worker) {
    ObservedConfinement observed;
    const std::string process = "/proc/" + std::to_string(worker);
    std::ifstream status(process + "/status");
    std::string line;
    bool effective_zero = false;
    bool permitted_zero = false;
    bool bounding_zero = false;
    while (std::getline(status, line)) {
        observed.status_readable = true;
        const auto colon = line.find(':');
        if (colon == std::string::npos) {
            continue;
        }
        const std::string name = line.substr(0, colon);
        const auto start = line.find_first_not_of(" \t", colon + 1);
        const std::string value = start == std::string::npos ? "" : line.substr(start);
        if (name == "NoNewPrivs") {
            observed.no_new_privs = value == "1";
        } else if (name == "Seccomp") {
            observed.seccomp_filter = value == "2";
        } else if (name == "Uid") {
            // real, effective, saved, filesystem
            std::istringstream ids(value);
            long real = -1;
            long effective = -1;
            if (ids >> real >> effective) {
                observed.user = effective;
            }
        } else if (name == "CapEff") {
            effective_zero = value.find_first_not_of('0') == std::string::npos;
        } else if (name == "CapPrm") {
            permitted_zero = value.find_first_not_of('0') == std::string::npos;
        } else if (name == "CapBnd") {
            bounding_zero = value.find_first_not_of('0') == std::string::npos;
        }
    }
    // The bounding set can only be emptied with CAP_SETPCAP: a runtime without it starts
    // workers whose bounding set stays full, which no_new_privs makes harmless.
    observed.capabilities_dropped =
        effective_zero && permitted_zero && (bounding_zero || geteuid() != 0);
    // Not "mnt": a worker whose filesystem isolation fell back is in a mount namespace of
    // its own all the same; whether its root is empty, only its own report says.
    for (const char* name : {"user", "net", "ipc"}) {
        const std::string theirs = link_of(process + "/ns/" + name);
        const std::string ours = link_of(std::string("/proc/self/ns/") + name);
        if (!theirs.empty() && !ours.empty() && theirs != ours) {
            observed.namespaces.emplace_back(name);
        }
    }
    return observed;
}

std::optional<std::string> unconfined_reason(const ObservedConfinement& observed) {
    if (!observed.status_readable) {
        return "the worker's /proc status cannot be read; it may have died";
    }
    if (!observed.no_new_privs) {
        return "the worker does not run with no_new_privs";
    }
    if (!observed.seccomp_filter) {
        return "the worker runs without a seccomp filter";
    }
    if (!observed.capabilities_dropped) {
        return "the worker still holds capabilities";
    }
    return std::nullopt;
}

}  // namespace mitigate
