// A plugin that misbehaves on request, built only for tests: each action is one of the
// attacks ../shared/reference/sandbox.md lists. It uses the raw C ABI, not the SDK, so
// that nothing catches what it does (an exception really crosses the boundary).
#include <fcntl.h>
#include <sys/socket.h>
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

const char* manifest() {
    return R"({"name":"hostile","version":"0.0.1","description":"misbehaves on request",
      "actions":{"echo":{},"segfault":{},"abort":{},"throw":{},"loop":{},"allocate":{},
                 "fork_bomb":{},"read_file":{},"tcp":{},"udp":{},"exec":{},"bad_frame":{},
                 "huge_frame":{},"egress":{},"fail":{}}})";
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
        pause();
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
