#include "plugins/emulators/vercel_emulator.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <stdexcept>

#include "runtime/core/url_encoding.h"
#include "runtime/server/http_server.h"

namespace mitigate {

using nlohmann::json;

namespace {

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

HttpReply error_reply(int status, const std::string& code, const std::string& message) {
    json error{{"code", code}, {"message", message}};
    if (code == "rate_limited") {
        error["limit"] = {{"remaining", 0}, {"reset", now_ms() / 1000 + 1}, {"total", 100}};
    }
    return {status, {{"Content-Type", "application/json"}}, json{{"error", error}}.dump(), false};
}

HttpReply json_reply(int status, const json& body) {
    return {status, {{"Content-Type", "application/json"}}, body.dump(), false};
}

const char* code_for(int status) {
    switch (status) {
        case 400: return "bad_request";
        case 403: return "forbidden";
        case 404: return "not_found";
        case 409: return "conflict";
        case 429: return "rate_limited";
        default: return "internal_server_error";
    }
}

std::vector<std::string> segments(const std::string& path) {
    std::vector<std::string> parts;
    std::size_t start = 1;
    while (start <= path.size()) {
        const auto slash = path.find('/', start);
        parts.push_back(percent_decode(path.substr(start, slash - start)));
        if (slash == std::string::npos) {
            break;
        }
        start = slash + 1;
    }
    return parts;
}

}  // namespace

struct VercelEmulator::State {
    VercelEmulatorOptions options;
    mutable std::mutex mutex;
    json projects = json::object();  // id -> {"id","name","production","deployments":[...]}
    bool fail_next = false;
    int rollbacks = 0;
    int promotions = 0;
    FaultInjector faults{[](int status, const std::string&, const std::string& message) {
        return error_reply(status, code_for(status), message);
    }};
    std::unique_ptr<HttpServer> server;

    json* find_project(const std::string& id_or_name) {
        for (auto& [id, project] : projects.items()) {
            if (id == id_or_name || project["name"] == id_or_name) {
                return &project;
            }
        }
        return nullptr;
    }

    static json* find_deployment(json& project, const std::string& uid) {
        for (json& deployment : project["deployments"]) {
            if (deployment["uid"] == uid) {
                return &deployment;
            }
        }
        return nullptr;
    }

    // One step of a running rollback job per read of the project.
    static void advance(json& project) {
        if (!project.contains("lastRollbackTarget")) {
            return;
        }
        json& job = project["lastRollbackTarget"];
        const std::string status = job["jobStatus"];
        if (status == "pending") {
            job["jobStatus"] = "in-progress";
        } else if (status == "in-progress") {
            if (job.value("willFail", false)) {
                job["jobStatus"] = "failed";
            } else {
                job["jobStatus"] = "succeeded";
                project["production"] = job["toDeploymentId"];
            }
            job.erase("willFail");
        }
    }

    static json project_view(const json& project, bool rollback_info) {
        json view{{"id", project["id"]}, {"name", project["name"]}, {"framework", "nextjs"}};
        for (const json& deployment : project["deployments"]) {
            if (deployment["uid"] == project["production"]) {
                view["targets"] = {{"production",
                                    {{"id", deployment["uid"]},
                                     {"url", deployment["url"]},
                                     {"createdAt", deployment["createdAt"]},
                                     {"readyState", deployment["readyState"]}}}};
            }
        }
        if (rollback_info) {
            json job = project.value("lastRollbackTarget", json());
            if (job.is_object()) {
                job.erase("willFail");
            }
            view["lastRollbackTarget"] = job;
        }
        return view;
    }

    HttpReply handle(const HttpExchange& request) {
        auto authorization = request.headers.find("authorization");
        if (authorization == request.headers.end() ||
            authorization->second != "Bearer " + options.token) {
            return error_reply(403, "forbidden", "Not authorized");
        }
        const auto question = request.target.find('?');
        const std::string path = request.target.substr(0, question);
        const auto query = parse_url_encoded(
            question == std::string::npos ? "" : request.target.substr(question + 1));
        if (query.count("teamId") && query.at("teamId") != options.team_id) {
            return error_reply(403, "forbidden", "You don't have permission to access this team");
        }
        const std::vector<std::string> parts = segments(path);
        std::string operation;
        if (request.method == "GET" && parts.size() == 2 && parts[0] == "v6" &&
            parts[1] == "deployments") {
            operation = "list_deployments";
        } else if (request.method == "GET" && parts.size() == 3 && parts[0] == "v9" &&
                   parts[1] == "projects") {
            operation = "get_project";
        } else if (request.method == "POST" && parts.size() == 5 && parts[0] == "v1" &&
                   parts[1] == "projects" && parts[3] == "rollback") {
            operation = "rollback";
        } else if (request.method == "POST" && parts.size() == 5 && parts[0] == "v10" &&
                   parts[1] == "projects" && parts[3] == "promote") {
            operation = "promote";
        } else {
            return error_reply(404, "not_found", "The requested path was not found");
        }
        if (auto injected = faults.before(operation)) {
            return *injected;
        }
        HttpReply reply;
        {
            std::lock_guard lock(mutex);
            reply = serve(operation, parts, query, request.body);
        }
        if (reply.status < 300 && (operation == "rollback" || operation == "promote") &&
            faults.drop_after(operation)) {
            reply = {};
            reply.drop_connection = true;
        }
        return reply;
    }

    HttpReply serve(const std::string& operation, const std::vector<std::string>& parts,
                    const std::map<std::string, std::string>& query, const std::string& body) {
        if (operation == "list_deployments") {
            json* project =
                query.count("projectId") ? find_project(query.at("projectId")) : nullptr;
            if (project == nullptr) {
                return error_reply(404, "not_found", "Project not found");
            }
            const std::string state = query.count("state") ? query.at("state") : "";
            const std::string target = query.count("target") ? query.at("target") : "";
            int limit = 20;
            if (query.count("limit")) {
                const std::string text = query.at("limit");
                limit = text.find_first_not_of("0123456789") == std::string::npos &&
                                !text.empty() && text.size() < 4
                            ? std::stoi(text)
                            : 0;
                if (limit < 1 || limit > 100) {
                    return error_reply(400, "bad_request", "limit must be between 1 and 100");
                }
            }
            json found = json::array();
            for (const json& deployment : (*project)["deployments"]) {
                if ((state.empty() || deployment["state"] == state) &&
                    (target.empty() || deployment["target"] == target) &&
                    static_cast<int>(found.size()) < limit) {
                    found.push_back(deployment);
                }
            }
            return json_reply(200, {{"pagination", {{"count", found.size()}, {"next", nullptr}}},
                                    {"deployments", found}});
        }
        json* project = find_project(parts[2]);
        if (project == nullptr) {
            return error_reply(404, "not_found", "Project not found");
        }
        if (operation == "get_project") {
            advance(*project);
            return json_reply(200, project_view(*project, query.count("rollbackInfo") &&
                                                              query.at("rollbackInfo") == "true"));
        }
        const json parsed = json::parse(body.empty() ? "{}" : body, nullptr, false);
        if (!parsed.is_object()) {
            return error_reply(400, "bad_request", "Invalid JSON body");
        }
        json* deployment = find_deployment(*project, parts[4]);
        if (deployment == nullptr) {
            return error_reply(404, "not_found", "Deployment not found");
        }
        if ((*deployment)["state"] != "READY") {
            return error_reply(400, "bad_request", "The deployment is not READY");
        }
        const json job = project->value("lastRollbackTarget", json());
        const bool running =
            job.is_object() && (job["jobStatus"] == "pending" || job["jobStatus"] == "in-progress");
        if (running) {
            return error_reply(409, "conflict", "A rollback is already in progress");
        }
        if ((*project)["production"] == (*deployment)["uid"]) {
            return error_reply(409, "conflict", "The deployment is already the current production");
        }
        if (operation == "rollback") {
            if (!(*deployment).value("isRollbackCandidate", false)) {
                return error_reply(400, "bad_request",
                                   "The deployment is not a rollback candidate");
            }
            (*project)["lastRollbackTarget"] = {{"fromDeploymentId", (*project)["production"]},
                                                {"toDeploymentId", (*deployment)["uid"]},
                                                {"jobStatus", "pending"},
                                                {"requestedAt", now_ms()},
                                                {"willFail", fail_next}};
            fail_next = false;
            ++rollbacks;
            return json_reply(201, json::object());
        }
        (*project)["production"] = (*deployment)["uid"];
        ++promotions;
        return json_reply(201, json::object());
    }
};

VercelEmulator::VercelEmulator(VercelEmulatorOptions options) : state_(std::make_unique<State>()) {
    if (options.token.empty()) {
        throw std::invalid_argument("the Vercel emulator needs a token");
    }
    state_->options = std::move(options);
    State* state = state_.get();
    state_->server =
        serve_emulator(state_->options.host, state_->options.port, state_->faults,
                       [state](const HttpExchange& request) { return state->handle(request); });
}

VercelEmulator::~VercelEmulator() {
    state_->server->stop();
}

std::string VercelEmulator::url() const {
    return state_->server->url();
}

FaultInjector& VercelEmulator::faults() {
    return state_->faults;
}

void VercelEmulator::add_project(const std::string& id, const std::string& name) {
    std::lock_guard lock(state_->mutex);
    state_->projects[id] = {
        {"id", id}, {"name", name}, {"production", ""}, {"deployments", json::array()}};
}

void VercelEmulator::add_deployment(const std::string& project_id, const std::string& uid,
                                    bool ready, std::int64_t age_seconds) {
    std::lock_guard lock(state_->mutex);
    json& project = state_->projects.at(project_id);
    const std::int64_t created = now_ms() - age_seconds * 1000;
    json deployment{{"uid", uid},
                    {"name", project["name"]},
                    {"url", project["name"].get<std::string>() + "-" + uid + ".vercel.app"},
                    {"state", ready ? "READY" : "ERROR"},
                    {"readyState", ready ? "READY" : "ERROR"},
                    {"target", "production"},
                    {"createdAt", created},
                    {"isRollbackCandidate", ready}};
    json& deployments = project["deployments"];
    deployments.push_back(deployment);
    std::sort(deployments.begin(), deployments.end(), [](const json& left, const json& right) {
        return left["createdAt"].get<std::int64_t>() > right["createdAt"].get<std::int64_t>();
    });
    for (const json& candidate : deployments) {
        if (candidate["state"] == "READY") {
            project["production"] = candidate["uid"];
            break;
        }
    }
}

std::string VercelEmulator::production(const std::string& project_id) const {
    std::lock_guard lock(state_->mutex);
    return state_->projects.at(project_id)["production"];
}

json VercelEmulator::last_rollback(const std::string& project_id) const {
    std::lock_guard lock(state_->mutex);
    return state_->projects.at(project_id).value("lastRollbackTarget", json());
}

void VercelEmulator::promote_now(const std::string& project_id, const std::string& uid) {
    std::lock_guard lock(state_->mutex);
    state_->projects.at(project_id)["production"] = uid;
}

void VercelEmulator::fail_next_rollback() {
    std::lock_guard lock(state_->mutex);
    state_->fail_next = true;
}

int VercelEmulator::rollbacks_requested() const {
    std::lock_guard lock(state_->mutex);
    return state_->rollbacks;
}

int VercelEmulator::promotions_requested() const {
    std::lock_guard lock(state_->mutex);
    return state_->promotions;
}

}  // namespace mitigate
