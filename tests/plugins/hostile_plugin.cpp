// A plugin that misbehaves on request, built only for tests: each action is one of the
// attacks ../shared/reference/sandbox.md lists. It uses the raw C ABI, not the SDK, so
// that nothing catches what it does (an exception really crosses the boundary).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "plugins/sdk/mitigate_plugin.h"

extern char** environ;

namespace {

using nlohmann::json;

const mitigate_host_api* host = nullptr;
std::string response_text;
std::string error_text;

json try_open(const std::string& path) {
    const int descriptor = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    const int error = errno;
    ssize_t count = -1;
    if (descriptor >= 0) {
        char buffer[4096];
        count = read(descriptor, buffer, sizeof buffer);
        close(descriptor);
    }
    return {{"opened", descriptor >= 0},
            {"error", descriptor >= 0 ? "" : std::strerror(error)},
            {"bytes_read", count}};
}

json environment() {
    json entries = json::array();
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        entries.push_back(*entry);
    }
    return entries;
}

// pause() is not in the worker's seccomp allowlist (it would return at once); sleeping is.
[[noreturn]] void hang() {
    while (true) {
        sleep(1000);
    }
}

void write_raw_frame(const std::string& payload) {
    const auto size = static_cast<std::uint32_t>(payload.size());
    const unsigned char header[] = {
        static_cast<unsigned char>(size >> 24), static_cast<unsigned char>(size >> 16),
        static_cast<unsigned char>(size >> 8), static_cast<unsigned char>(size)};
    (void)write(3, header, sizeof header);
    std::size_t done = 0;
    while (done < payload.size()) {
        const ssize_t sent = write(3, payload.data() + done, payload.size() - done);
        if (sent <= 0) {
            return;
        }
        done += static_cast<std::size_t>(sent);
    }
}

const char* manifest() {
    return R"({"name":"hostile","version":"0.0.1","description":"misbehaves on request",
      "actions":{"echo":{},"segfault":{},"abort":{},"throw":{},"loop":{},"allocate":{},
                 "fork_bomb":{},"read_file":{},"tcp":{},"udp":{},"exec":{},"bad_frame":{},
                 "huge_frame":{},"egress":{},"fail":{},"deep_answer":{},"deep_frame":{},
                 "mistyped_log":{},"mistyped_result":{},"unknown_status":{},
                 "stop_reading":{},"log_flood":{},"stdio":{},"other_processes":{},
                 "log_forever":{},"log_forge":{},"stat":{}}})";
}

int32_t init(const mitigate_host_api* api, const char* /*settings*/) {
    host = api;
    return MITIGATE_OK;
}

int32_t call(const char* request_json, const char** response_json) {
    const json request = json::parse(request_json);
    const std::string action = request.value("action", "");
    const json parameters = request.value("parameters", json::object());
    json answer = json::object();
    if (action == "echo") {
        answer = {{"echo", request}, {"pid", getpid()}};
    } else if (action == "segfault") {
        *static_cast<volatile int*>(nullptr) = 1;
    } else if (action == "abort") {
        std::abort();
    } else if (action == "throw") {
        throw std::runtime_error("thrown across the C boundary");
    } else if (action == "loop") {
        volatile unsigned long spin = 0;
        while (true) {
            spin = spin + 1;
        }
    } else if (action == "allocate") {
        std::size_t total = 0;
        while (true) {
            const std::size_t chunk = 64u << 20;
            void* block = std::malloc(chunk);
            if (block == nullptr) {
                break;
            }
            std::memset(block, 1, chunk);
            total += chunk;
        }
        error_text = "allocation refused after " + std::to_string(total >> 20) + " MiB";
        return MITIGATE_INTERNAL;
    } else if (action == "fork_bomb") {
        while (true) {
            fork();
        }
    } else if (action == "read_file") {
        answer = try_open(parameters.value("path", ""));
    } else if (action == "tcp" || action == "udp") {
        const int descriptor = socket(AF_INET, action == "tcp" ? SOCK_STREAM : SOCK_DGRAM, 0);
        answer = {{"socket", descriptor}, {"error", std::strerror(errno)}};
    } else if (action == "exec") {
        char* arguments[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"),
                             const_cast<char*>("id"), nullptr};
        execve("/bin/sh", arguments, environ);
        answer = {{"exec_error", std::strerror(errno)}};
    } else if (action == "bad_frame") {
        // Straight onto the runtime's socket: a frame of 5 bytes that is not JSON.
        const char frame[] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
        (void)write(3, frame, sizeof frame);
    } else if (action == "huge_frame") {
        const unsigned char header[] = {0x7f, 0xff, 0xff, 0xff};
        (void)write(3, header, sizeof header);
        hang();
    } else if (action == "egress") {
        const std::string egress_request = parameters.value("request", json::object()).dump();
        const char* egress_response = nullptr;
        const int32_t status = host->egress(host->host, egress_request.c_str(), &egress_response);
        answer = {
            {"status", status},
            {"response", json::parse(egress_response ? egress_response : "null", nullptr, false)},
            {"environment", environment()},
            {"proc_environ", try_open("/proc/self/environ")},
            {"parent_environ", try_open("/proc/" + std::to_string(getppid()) + "/environ")}};
    } else if (action == "deep_answer") {
        // Valid JSON a million levels deep, 2 MB: under the frame cap.
        response_text = std::string(1000000, '[') + std::string(1000000, ']');
        *response_json = response_text.c_str();
        return MITIGATE_OK;
    } else if (action == "deep_frame") {
        write_raw_frame(R"({"type":"log","level":1,"message":)" + std::string(100000, '[') +
                        std::string(100000, ']') + "}");
        hang();
    } else if (action == "mistyped_log") {
        write_raw_frame(R"({"type":"log","level":"high","message":"hello"})");
        hang();
    } else if (action == "mistyped_result") {
        write_raw_frame(R"({"type":"result","status":"0","response":{}})");
        hang();
    } else if (action == "extra_field") {
        // A result the runtime would otherwise accept, with a field the protocol lacks.
        write_raw_frame(R"({"type":"result","status":0,"response":{},"injected":true})");
        hang();
    } else if (action == "null_message") {
        write_raw_frame(R"({"type":"log","level":1,"message":null})");
        hang();
    } else if (action == "mistyped_egress") {
        write_raw_frame(R"({"type":"egress","request":5})");
        hang();
    } else if (action == "long_field_name") {
        // An unknown field whose name is 1 MB: the error naming it must stay bounded.
        write_raw_frame(R"({"type":"log","level":1,"message":"x",")" + std::string(1 << 20, 'n') +
                        R"(":1})");
        hang();
    } else if (action == "unknown_status") {
        write_raw_frame(R"({"type":"result","status":-7,"error":"made up"})");
        answer = {{"late", true}};
    } else if (action == "stop_reading") {
        // Asks for egress and then never reads: the runtime's answer cannot be delivered.
        write_raw_frame(R"({"type":"egress","request":{"kind":"file_read","path":"/x"}})");
        hang();
    } else if (action == "log_flood") {
        const std::string line(parameters.value("bytes", 100), 'l');
        for (int index = 0; index < parameters.value("lines", 1000); ++index) {
            host->log(host->host, MITIGATE_LOG_INFO, line.c_str());
        }
    } else if (action == "stat") {
        struct stat status {};
        errno = 0;
        const bool found = stat(parameters.value("path", "").c_str(), &status) == 0;
        answer = {{"error", found ? "" : std::strerror(errno)},
                  {"size", found ? static_cast<std::int64_t>(status.st_size) : -1}};
    } else if (action == "log_forever") {
        // Keeps the runtime's socket busy with log frames and never answers.
        while (true) {
            host->log(host->host, MITIGATE_LOG_INFO, "still here");
        }
    } else if (action == "log_forge") {
        host->log(host->host, MITIGATE_LOG_INFO,
                  "innocent\n2026-01-01T00:00:00.000Z info  FORGED daemon line\x1b[2J");
    } else if (action == "stdio") {
        const char forged[] = "{\"forged\":true}\n";
        answer["stdout_written"] = write(1, forged, sizeof forged - 1);
        answer["stderr_written"] = write(2, forged, sizeof forged - 1);
        char buffer[64];
        answer["stdin_read"] = read(0, buffer, sizeof buffer);
        for (int descriptor : {0, 1, 2}) {
            struct stat status {};
            fstat(descriptor, &status);
            answer["devices"].push_back({{"character", S_ISCHR(status.st_mode)},
                                         {"major", major(status.st_rdev)},
                                         {"minor", minor(status.st_rdev)}});
        }
    } else if (action == "other_processes") {
        // Each attempt on the runtime (our parent) must fail; errno says how.
        const pid_t runtime = getppid();
        const rlimit tiny{5, 5};
        errno = 0;
        answer["prlimit_runtime"] =
            syscall(SYS_prlimit64, runtime, RLIMIT_NOFILE, &tiny, nullptr) == 0
                ? "ALLOWED"
                : std::strerror(errno);
        errno = 0;
        answer["signal_runtime"] =
            syscall(SYS_tgkill, runtime, runtime, 0) == 0 ? "ALLOWED" : std::strerror(errno);
        errno = 0;
        answer["kill_runtime"] = kill(runtime, 0) == 0 ? "ALLOWED" : std::strerror(errno);
        const rlimit own{8, 8};  // lower than the worker's 16: allowed
        answer["own_prlimit"] = syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &own, nullptr) == 0;
        // F_SETOWN + O_ASYNC would make the kernel signal the runtime on socket activity.
        errno = 0;
        answer["setown_runtime"] =
            fcntl(3, F_SETOWN, runtime) == 0 ? "ALLOWED" : std::strerror(errno);
        errno = 0;
        answer["async_socket"] = fcntl(3, F_SETFL, O_ASYNC) == 0 ? "ALLOWED" : std::strerror(errno);
        cpu_set_t cpus;
        errno = 0;
        answer["affinity_runtime"] =
            syscall(SYS_sched_getaffinity, runtime, sizeof cpus, &cpus) >= 0 ? "ALLOWED"
                                                                             : std::strerror(errno);
    } else if (action == "fail") {
        error_text = std::string(4096, 'x');  // longer than MITIGATE_PLUGIN_ERROR_MAX
        return parameters.value("status", static_cast<int>(MITIGATE_PROVIDER));
    }
    response_text = answer.dump();
    *response_json = response_text.c_str();
    return MITIGATE_OK;
}

const char* last_error() {
    return error_text.c_str();
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const mitigate_plugin_api* mitigate_plugin_entry(
    void) {
    static const mitigate_plugin_api api{MITIGATE_PLUGIN_ABI_MAJOR,
                                         MITIGATE_PLUGIN_ABI_MINOR,
                                         sizeof(mitigate_plugin_api),
                                         manifest,
                                         init,
                                         call,
                                         last_error};
    return &api;
}
