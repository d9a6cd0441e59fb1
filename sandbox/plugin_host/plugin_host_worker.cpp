// The plugin-host process: `mitigate __plugin-host PLUGIN [--allow-weaker-landlock]` with
// its end of the socketpair as descriptor 3. It confines itself first, reports that
// confinement while nothing of the plugin has run yet (so the plugin cannot forge it),
// then loads the plugin (so that nothing of the plugin, not even its static
// constructors, runs unconfined), checks its ABI and serves calls. Every message is one
// frame (frame.h):
//
//   worker -> runtime  {"type":"confined","confinement":{...}}     before the plugin loads
//                      {"type":"ready","manifest":{...}}
//                      {"type":"refused","error":"..."}           and exits
//   runtime -> worker  {"type":"init","settings":{...}} | {"type":"call","request":{...}}
//   worker -> runtime  {"type":"egress","request":{...}}            (zero or more, each
//   runtime -> worker  {"type":"egress_answer","status":0,"response":{...}}  answered)
//                      {"type":"log","level":1,"message":"..."}     (no answer)
//   worker -> runtime  {"type":"result","status":0,"response":{...}|"error":"..."}
#include <boost/dll/shared_library.hpp>

#include <nlohmann/json.hpp>

#include <chrono>

#include "plugins/sdk/mitigate_plugin.h"
#include "sandbox/plugin_host/plugin_identity.h"
#include "sandbox/plugin_host/plugin_process.h"
#include "sandbox/worker/frame.h"

namespace mitigate {
namespace {

using nlohmann::json;

int worker_socket = -1;
std::string egress_answer_text;  // valid until the next egress call, as the ABI promises

// Writes to the runtime: the runtime reads within its own deadlines and kills a worker
// it no longer waits for, so this side needs none.
bool send_to_runtime(std::string_view frame) {
    return write_frame(worker_socket, frame, no_deadline()) == FrameStatus::ok;
}

// The plugin's request is parsed here, in its own process, with the same limits the
// runtime applies: a plugin that sends nonsense gets an error it can read, and the
// runtime never sees it.
int32_t host_egress(void* /*host*/, const char* request_json, const char** response_json) {
    egress_answer_text = R"({"error":"the runtime did not answer"})";
    *response_json = egress_answer_text.c_str();
    std::string error;
    const std::optional<json> request =
        parse_frame(request_json != nullptr ? request_json : "", plugin_frame_cap / 2, error);
    if (!request) {
        egress_answer_text = json{{"error", "egress request refused: " + error}}.dump(
            -1, ' ', false, json::error_handler_t::replace);
        *response_json = egress_answer_text.c_str();
        return MITIGATE_INVALID;
    }
    if (!send_to_runtime(json{{"type", "egress"}, {"request", *request}}.dump())) {
        return MITIGATE_UNAVAILABLE;
    }
    std::string payload;
    if (read_frame(worker_socket, plugin_frame_cap, no_deadline(), payload) != FrameStatus::ok) {
        return MITIGATE_UNAVAILABLE;
    }
    const std::optional<json> answer = parse_frame(payload, plugin_frame_cap, error);
    if (!answer || frame_type(*answer) != "egress_answer" || !answer->contains("status") ||
        !answer->at("status").is_number_integer()) {
        return MITIGATE_UNAVAILABLE;
    }
    egress_answer_text = answer->value("response", json::object()).dump();
    *response_json = egress_answer_text.c_str();
    return answer->at("status").get<int32_t>();
}

void host_log(void* /*host*/, int32_t level, const char* message) {
    send_to_runtime(
        json{{"type", "log"}, {"level", level}, {"message", message ? message : ""}}.dump(
            -1, ' ', false, json::error_handler_t::replace));
}

const mitigate_host_api host_api{MITIGATE_PLUGIN_ABI_MAJOR,
                                 MITIGATE_PLUGIN_ABI_MINOR,
                                 sizeof(mitigate_host_api),
                                 nullptr,
                                 host_egress,
                                 host_log};

int refuse(const std::string& error) {
    send_to_runtime(json{{"type", "refused"}, {"error", error}}.dump(
        -1, ' ', false, json::error_handler_t::replace));
    return 3;
}

// Loads the plugin for good: the library object is never destroyed, so the plugin is
// never unloaded (see ../shared/reference/sandbox.md on why unloading is unsafe).
const mitigate_plugin_api* load_plugin(const std::filesystem::path& path, std::string& error) {
    boost::dll::fs::error_code failure;
    auto* library = new boost::dll::shared_library(
        path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, failure);
    if (failure) {
        error = "cannot load " + path.string() + ": " + failure.message();
        return nullptr;
    }
    if (!library->has(MITIGATE_PLUGIN_ENTRY_NAME)) {
        error = path.string() + " exports no " MITIGATE_PLUGIN_ENTRY_NAME
                                " function: not a mitigate plugin";
        return nullptr;
    }
    const auto entry = library->get<const mitigate_plugin_api*()>(MITIGATE_PLUGIN_ENTRY_NAME);
    const mitigate_plugin_api* api = entry();
    if (api == nullptr) {
        error = path.string() + ": " MITIGATE_PLUGIN_ENTRY_NAME " returned nothing";
        return nullptr;
    }
    if (api->abi_major != MITIGATE_PLUGIN_ABI_MAJOR) {
        error = path.string() + " was built for plugin ABI " + std::to_string(api->abi_major) +
                "." + std::to_string(api->abi_minor) + "; this mitigate speaks " +
                std::to_string(MITIGATE_PLUGIN_ABI_MAJOR) + "." +
                std::to_string(MITIGATE_PLUGIN_ABI_MINOR) + " (the major versions must match)";
        return nullptr;
    }
    // The table may be larger than ours (a later minor appended fields we do not read),
    // never smaller than the first version's.
    if (api->abi_minor > MITIGATE_PLUGIN_ABI_MINOR ||
        api->struct_size < MITIGATE_PLUGIN_API_FIRST_SIZE) {
        error = path.string() + " needs plugin ABI 1." + std::to_string(api->abi_minor) +
                "; this mitigate speaks 1." + std::to_string(MITIGATE_PLUGIN_ABI_MINOR) +
                " (upgrade mitigate)";
        return nullptr;
    }
    if (api->manifest == nullptr || api->init == nullptr || api->call == nullptr ||
        api->last_error == nullptr) {
        error = path.string() + ": the plugin API table has empty entries";
        return nullptr;
    }
    return api;
}

// The result frame as text. A successful answer is checked to be JSON (json::accept,
// no document built) and spliced in as is: parsing and re-serialising it here would
// double the cost of every call for nothing.
std::string result_frame(const mitigate_plugin_api& api, int32_t status, const char* response) {
    if (status == MITIGATE_OK) {
        const std::string_view text = response != nullptr ? response : "";
        if (!json::accept(text)) {
            return json{{"type", "result"},
                        {"status", MITIGATE_INTERNAL},
                        {"error", "the plugin answered with text that is not JSON"}}
                .dump();
        }
        std::string frame = R"({"type":"result","status":0,"response":)";
        frame.append(text);
        frame.push_back('}');
        return frame;
    }
    const char* error = api.last_error();
    std::string message = error != nullptr ? error : "";
    message.resize(std::min(message.size(), std::size_t{MITIGATE_PLUGIN_ERROR_MAX}));
    return json{{"type", "result"}, {"status", status}, {"error", message}}.dump(
        -1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

int run_plugin_host(int descriptor, int plugin_bytes, const std::filesystem::path& plugin,
                    const ConfinementPolicy& base_policy) {
    worker_socket = descriptor;
    // The plugin's own directory is all of the filesystem it may see: read-only, and
    // loaded from after confinement. Where the empty root can be built, that directory
    // holds only a copy of the bytes the runtime hashed (confinement.h).
    ConfinementPolicy policy = base_policy;
    policy.read_only_paths = {std::filesystem::absolute(plugin).parent_path()};
    policy.allow_file_reads = true;
    std::string error;
    if (!is_sealed_plugin_copy(plugin_bytes, error)) {
        return refuse(error);
    }
    policy.loaded_file = std::filesystem::absolute(plugin);
    policy.loaded_file_descriptor = plugin_bytes;
    const ConfinementReport report = confine_this_process(policy);
    close(plugin_bytes);  // copied into the root, or not used: the plugin never sees it
    if (!report.applied) {
        return refuse(report.error);
    }
    if (!send_to_runtime(
            json{{"type", "confined"}, {"confinement", confinement_to_json(report)}}.dump())) {
        return 6;
    }
    const mitigate_plugin_api* api = load_plugin(plugin, error);
    if (api == nullptr) {
        return refuse(error);
    }
    const char* manifest_text = api->manifest();
    const std::optional<json> manifest =
        parse_frame(manifest_text != nullptr ? manifest_text : "", plugin_frame_cap / 2, error);
    if (!manifest) {
        return refuse(plugin.string() + ": the manifest is not usable: " + error);
    }
    if (!send_to_runtime(json{{"type", "ready"}, {"manifest", *manifest}}.dump())) {
        return 6;
    }
    while (true) {
        std::string payload;
        const FrameStatus status = read_frame(descriptor, plugin_frame_cap, no_deadline(), payload);
        if (status != FrameStatus::ok) {
            return status == FrameStatus::closed ? 0 : 4;
        }
        std::string answer;
        // A call frame is written by the runtime as this prefix, the request, and "}":
        // the request is handed to the plugin as it came, without a parse and a dump here.
        const std::string_view call_prefix = plugin_call_frame_prefix;
        if (payload.size() > call_prefix.size() && payload.back() == '}' &&
            std::string_view(payload).substr(0, call_prefix.size()) == call_prefix) {
            payload.pop_back();
            const char* response = nullptr;
            const int32_t result = api->call(payload.c_str() + call_prefix.size(), &response);
            if (!send_to_runtime(result_frame(*api, result, response))) {
                return 6;
            }
            continue;
        }
        const json message = parse_frame(payload, plugin_frame_cap, error).value_or(json());
        const std::string type = frame_type(message);
        if (type == "init") {
            const std::string settings = message.value("settings", json::object()).dump();
            answer = result_frame(*api, api->init(&host_api, settings.c_str()), "{}");
        } else if (type == "call") {
            const std::string request = message.value("request", json::object()).dump();
            const char* response = nullptr;
            const int32_t result = api->call(request.c_str(), &response);
            answer = result_frame(*api, result, response);
        } else {
            return 5;  // the runtime never sends this: something is wrong, stop
        }
        if (!send_to_runtime(answer)) {
            return 6;
        }
    }
}

}  // namespace mitigate
