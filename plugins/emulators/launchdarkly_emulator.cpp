#include "plugins/emulators/launchdarkly_emulator.h"

#include <mutex>

#include "runtime/server/http_server.h"

namespace mitigate {

using nlohmann::json;

namespace {

HttpReply error_reply(int status, const std::string& code, const std::string& message) {
    return {status,
            {{"Content-Type", "application/json"}},
            json{{"code", code}, {"message", message}}.dump()};
}

HttpReply json_reply(const json& body) {
    return {200, {{"Content-Type", "application/json"}}, body.dump()};
}

}  // namespace

struct LaunchDarklyEmulator::State {
    std::string token;
    mutable std::mutex mutex;
    json flags = json::object();  // "project/flag" -> document
    int patches = 0;
    std::unique_ptr<HttpServer> server;

    HttpReply handle(const HttpExchange& request) {
        auto authorization = request.headers.find("authorization");
        if (authorization == request.headers.end() || authorization->second != token) {
            return error_reply(401, "unauthorized", "Invalid access token");
        }
        const std::string prefix = "/api/v2/flags/";
        std::string path = request.target.substr(0, request.target.find('?'));
        if (path.rfind(prefix, 0) != 0) {
            return error_reply(404, "not_found", "Unknown resource");
        }
        const std::string key = path.substr(prefix.size());  // project/flag
        std::lock_guard lock(mutex);
        if (!flags.contains(key)) {
            return error_reply(404, "not_found", "Unknown flag");
        }
        json& flag = flags[key];
        if (request.method == "GET") {
            return json_reply(flag);
        }
        if (request.method != "PATCH") {
            return error_reply(405, "method_not_allowed", "Method not allowed");
        }
        auto content_type = request.headers.find("content-type");
        if (content_type == request.headers.end() ||
            content_type->second.find("domain-model=launchdarkly.semanticpatch") ==
                std::string::npos) {
            return error_reply(400, "invalid_request",
                               "expected a JSON patch array (no semantic patch content type)");
        }
        const json body = json::parse(request.body, nullptr, false);
        if (!body.is_object()) {
            return error_reply(400, "invalid_request", "body is not a JSON object");
        }
        if (!body.contains("environmentKey") || !body["environmentKey"].is_string()) {
            return error_reply(400, "invalid_request", "environmentKey is required");
        }
        const std::string environment = body["environmentKey"].get<std::string>();
        if (!flag["environments"].contains(environment)) {
            return error_reply(400, "invalid_request", "unknown environment " + environment);
        }
        if (!body.contains("instructions") || !body["instructions"].is_array() ||
            body["instructions"].empty()) {
            return error_reply(400, "invalid_request", "instructions must be a non-empty array");
        }
        json updated = flag;
        json& settings = updated["environments"][environment];
        for (const auto& instruction : body["instructions"]) {
            const std::string kind = instruction.value("kind", "");
            if (kind == "turnFlagOn" || kind == "turnFlagOff") {
                settings["on"] = kind == "turnFlagOn";
            } else if (kind == "updateFallthroughVariationOrRollout") {
                const std::string id = instruction.value("variationId", "");
                int index = -1;
                for (std::size_t i = 0; i < updated["variations"].size(); ++i) {
                    if (updated["variations"][i]["_id"] == id) {
                        index = static_cast<int>(i);
                    }
                }
                if (index < 0) {
                    return error_reply(400, "invalid_request", "unknown variationId " + id);
                }
                settings["fallthrough"] = {{"variation", index}};
            } else {
                return error_reply(400, "invalid_request", "unsupported instruction kind " + kind);
            }
        }
        settings["_version"] = settings.value("_version", 1) + 1;
        updated["_version"] = updated.value("_version", 1) + 1;
        flag = updated;  // all instructions or none
        ++patches;
        return json_reply(flag);
    }
};

LaunchDarklyEmulator::LaunchDarklyEmulator(std::string access_token)
    : state_(std::make_unique<State>()) {
    state_->token = std::move(access_token);
    state_->server = std::make_unique<HttpServer>(
        [state = state_.get()](const HttpExchange& request) { return state->handle(request); });
}

LaunchDarklyEmulator::~LaunchDarklyEmulator() {
    state_->server.reset();  // no handler runs past this point
}

std::string LaunchDarklyEmulator::url() const {
    return state_->server->url();
}

void LaunchDarklyEmulator::add_boolean_flag(const std::string& project, const std::string& flag,
                                            const std::string& environment, bool on) {
    std::lock_guard lock(state_->mutex);
    state_->flags[project + "/" + flag] = {
        {"key", flag},
        {"name", flag},
        {"kind", "boolean"},
        {"_version", 1},
        {"variations",
         {{{"_id", "variation-on-" + flag}, {"value", true}, {"name", "on"}},
          {{"_id", "variation-off-" + flag}, {"value", false}, {"name", "off"}}}},
        {"environments",
         {{environment,
           {{"on", on},
            {"fallthrough", {{"variation", 0}}},
            {"offVariation", 1},
            {"_version", 1}}}}}};
}

void LaunchDarklyEmulator::set_on(const std::string& project, const std::string& flag,
                                  const std::string& environment, bool on) {
    std::lock_guard lock(state_->mutex);
    state_->flags[project + "/" + flag]["environments"][environment]["on"] = on;
}

json LaunchDarklyEmulator::flag(const std::string& project, const std::string& flag) const {
    std::lock_guard lock(state_->mutex);
    return state_->flags.value(project + "/" + flag, json());
}

int LaunchDarklyEmulator::patches() const {
    std::lock_guard lock(state_->mutex);
    return state_->patches;
}

}  // namespace mitigate
