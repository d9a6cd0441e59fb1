// The `vercel` provider: instant rollback and promote of a project's production
// deployment, through Vercel's REST API with a bearer token the runtime adds.
//
// Actions (the target is the project id or name):
//   rollback  {"to_deployment"?: uid, "from_deployment"?: uid}: production goes back to
//             `to_deployment`, or to the newest READY production deployment older than the
//             current one. `from_deployment`, when given, must still be production (a
//             proposal made for another deploy is refused as a conflict).
//   promote   {"deployment": uid}: production becomes that deployment.
// State {"production": uid} (plus "rollback_job" while one runs). Both actions write the
// same way: going back in time is POST /v1/projects/{id}/rollback/{uid}, going forward is
// POST /v10/projects/{id}/promote/{uid}; so the revert of a rollback promotes the
// deployment that was live before, as Vercel asks. Vercel runs a rollback as a job: the
// write follows lastRollbackTarget.jobStatus until succeeded, failed or skipped, within
// the operation's deadline, and never requests a second job while one toward the same
// deployment runs.
//
// mitigate.state("vercel", PROJECT) is {"production": {uid, ready, created_at},
// "seconds_since_production_deploy", "candidates": [{uid, ready, created_at}] (READY
// production deployments, newest first), "rollback_job"}.
#include <chrono>
#include <map>
#include <thread>

#include "plugins/sdk/provider.h"

namespace mitigate::plugin {
namespace {

const json settings_schema = json::parse(R"json({
  "type": "object",
  "properties": {
    "url": {"type": "string", "minLength": 1, "description": "default https://api.vercel.com"},
    "credential": {"type": "string", "minLength": 1, "description": "a bearer profile: the token"},
    "team_id": {"type": "string", "minLength": 1, "description": "sent as ?teamId= when set"},
    "poll_interval_ms": {"type": "integer", "minimum": 1, "maximum": 60000,
                         "description": "between reads of a rollback job (default 1000)"}
  },
  "required": ["credential"],
  "additionalProperties": false
})json");

const json rollback_parameters = json::parse(R"json({
  "type": "object",
  "properties": {
    "to_deployment": {"type": "string", "minLength": 1},
    "from_deployment": {"type": "string", "minLength": 1}
  },
  "additionalProperties": false
})json");

const json promote_parameters = json::parse(R"json({
  "type": "object",
  "properties": {"deployment": {"type": "string", "minLength": 1}},
  "required": ["deployment"],
  "additionalProperties": false
})json");

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

class VercelApi {
  public:
    void configure(const json& settings, const Host& host) {
        host_ = std::make_unique<Host>(host);
        url_ = settings.value("url", "https://api.vercel.com");
        while (!url_.empty() && url_.back() == '/') {
            url_.pop_back();
        }
        credential_ = settings.value("credential", "");
        team_id_ = settings.value("team_id", "");
        poll_interval_ = std::chrono::milliseconds(settings.value("poll_interval_ms", 1000));
    }
    bool configured() const { return host_ != nullptr; }
    std::chrono::milliseconds poll_interval() const { return poll_interval_; }
    const std::string& team_id() const { return team_id_; }

    // GET the project with its rollback job.
    json project(const std::string& project) const {
        return call("GET", "/v9/projects/" + url_encode(project), "rollbackInfo=true", true);
    }

    // READY production deployments, newest first.
    json deployments(const std::string& project_id) const {
        return call("GET", "/v6/deployments",
                    "projectId=" + url_encode(project_id) +
                        "&target=production&state=READY&limit=100",
                    true)
            .value("deployments", json::array());
    }

    // The answer's status: 2xx, or 409 (a conflict the caller settles by reading).
    int post(const std::string& path) const { return call_status("POST", path, "", false); }

  private:
    HttpResponse send(const std::string& method, const std::string& path, std::string query,
                      bool idempotent) const {
        if (!team_id_.empty()) {
            query += (query.empty() ? "" : "&") + std::string("teamId=") + url_encode(team_id_);
        }
        HttpRequest request;
        request.method = method;
        request.url = url_ + path + (query.empty() ? "" : "?" + query);
        request.credential = credential_;
        request.idempotent = idempotent;
        if (method == "POST") {
            request.headers["Content-Type"] = "application/json";
            request.body = "{}";
        }
        return host_->send(request);
    }

    [[noreturn]] static void fail_with(const HttpResponse& response, const std::string& what) {
        const json body = json::parse(response.body, nullptr, false);
        std::string code = "http_" + std::to_string(response.status);
        std::string message = "(no message)";
        if (body.is_object() && body.contains("error") && body["error"].is_object()) {
            code = body["error"].value("code", code);
            message = body["error"].value("message", message);
        }
        const std::string text = what + ": Vercel " + code + ": " + message;
        if (response.status == 429 || response.status >= 500) {
            fail_unavailable(text);
        }
        if (response.status == 404) {
            fail_invalid(text);
        }
        fail_provider(text);
    }

    json call(const std::string& method, const std::string& path, const std::string& query,
              bool idempotent) const {
        const HttpResponse response = send(method, path, query, idempotent);
        if (response.status < 200 || response.status >= 300) {
            fail_with(response, method + " " + path);
        }
        return response.json_body();
    }

    int call_status(const std::string& method, const std::string& path, const std::string& query,
                    bool idempotent) const {
        const HttpResponse response = send(method, path, query, idempotent);
        if ((response.status < 200 || response.status >= 300) && response.status != 409) {
            fail_with(response, method + " " + path);
        }
        return response.status;
    }

    std::unique_ptr<Host> host_;
    std::string url_;
    std::string credential_;
    std::string team_id_;
    std::chrono::milliseconds poll_interval_{1000};
};

std::string production_of(const json& project) {
    if (!project.contains("targets") || !project["targets"].contains("production")) {
        fail_invalid("project " + project.value("name", "?") + " has no production deployment");
    }
    return project["targets"]["production"].value("id", "");
}

bool job_running(const json& job) {
    return job.is_object() &&
           (job.value("jobStatus", "") == "pending" || job.value("jobStatus", "") == "in-progress");
}

class ProductionAction : public Action {
  public:
    ProductionAction(VercelApi& api, bool rollback) : api_(api), rollback_(rollback) {}

    json read(const std::string& target) override {
        const json project = api().project(target);
        if (project.contains("id") && project["id"].is_string()) {
            project_ids_[target] = project["id"].get<std::string>();  // for resource()
        }
        json state{{"production", production_of(project)}};
        const json job = project.value("lastRollbackTarget", json());
        if (job_running(job)) {
            state["rollback_job"] = {{"to", job.value("toDeploymentId", "")},
                                     {"status", job.value("jobStatus", "")}};
        }
        return state;
    }

    PlannedChange plan(const std::string& target, const json& parameters,
                       const json& state) override {
        const std::string current = state.at("production");
        std::string destination;
        if (rollback_) {
            const std::string expected = parameters.value("from_deployment", "");
            if (!expected.empty() && expected != current) {
                fail_conflict(target + ": production is " + current + ", not " + expected +
                              " the rollback was proposed for");
            }
            destination = parameters.value("to_deployment", "");
            if (destination.empty()) {
                destination = previous_ready(target, current);
            }
        } else {
            destination = parameters.at("deployment");
        }
        if (destination == current) {
            fail_invalid(target + ": " + destination + " is already production");
        }
        PlannedChange change;
        change.forward = {{"production", destination}};
        change.inverse = {{"production", current}};
        change.blast_ratio = 1.0;  // every production request is served by another build
        change.blast_description =
            target + ": production " + current + " -> " + destination + " (all production traffic)";
        return change;
    }

    void write(const std::string& target, const json& from, const json& to) override {
        const std::string destination = to.at("production");
        const json project = api().project(target);
        const std::string project_id = project.value("id", target);
        const json job = project.value("lastRollbackTarget", json());
        const bool already_on_its_way =
            job_running(job) && job.value("toDeploymentId", "") == destination;
        if (!already_on_its_way) {
            const std::string current = production_of(project);
            if (current == destination) {
                return;
            }
            if (current != from.at("production").get<std::string>()) {
                fail_conflict(target + ": production is " + current + ", not " +
                              from.at("production").get<std::string>());
            }
            if (job_running(job)) {
                fail_unavailable(target + ": another rollback job (to " +
                                 job.value("toDeploymentId", "") + ") is running");
            }
            const bool backwards =
                created_at(project_id, destination) < created_at(project_id, current);
            const std::string path = backwards ? "/v1/projects/" + url_encode(project_id) +
                                                     "/rollback/" + url_encode(destination)
                                               : "/v10/projects/" + url_encode(project_id) +
                                                     "/promote/" + url_encode(destination);
            if (api().post(path) == 409) {
                const json again = api().project(target);
                if (production_of(again) != destination &&
                    !(job_running(again.value("lastRollbackTarget", json())) &&
                      again["lastRollbackTarget"].value("toDeploymentId", "") == destination)) {
                    fail_conflict(target + ": Vercel refused to move production to " + destination +
                                  " (409 conflict)");
                }
            }
        }
        wait_for(target, destination);
    }

    // A project named by name or by id is one project: its id, in its team. Both actions
    // change the same thing, the project's production deployment.
    std::string resource(const std::string& target) override {
        auto known = project_ids_.find(target);
        if (known == project_ids_.end()) {
            read(target);  // the plan was made from a state the runtime passed in
            known = project_ids_.find(target);
        }
        if (known == project_ids_.end() || known->second.empty()) {
            fail_provider(target + ": Vercel answered a project without an id");
        }
        return "vercel:" + api().team_id() + "/" + known->second;
    }

    // A promote or rollback is a job Vercel carries on after the request's answer (the
    // Vercel CLI waits up to 3 minutes for one).
    std::chrono::milliseconds settle_margin() const override { return std::chrono::minutes(3); }

  private:
    // The id of each project as last read, by the target that named it (name or id): the
    // plan's read already has it, so naming the resource costs no second request.
    std::map<std::string, std::string> project_ids_;
    VercelApi& api() {
        if (!api_.configured()) {
            fail_invalid("the vercel provider is not configured");
        }
        return api_;
    }

    // Follows the job until production is `destination`, the job fails, or time runs out.
    void wait_for(const std::string& target, const std::string& destination) {
        for (;;) {
            const json project = api().project(target);
            const json job = project.value("lastRollbackTarget", json());
            if (production_of(project) == destination) {
                return;
            }
            if (job.is_object() && job.value("toDeploymentId", "") == destination) {
                const std::string status = job.value("jobStatus", "");
                if (status == "failed" || status == "skipped") {
                    fail_provider(target + ": Vercel's rollback job to " + destination + " ended " +
                                  status + "; production is still " + production_of(project));
                }
            }
            const auto wait = api().poll_interval();
            if (time_left() <= wait) {
                fail_unavailable(target + ": production is not yet " + destination + " (job " +
                                 (job.is_object() ? job.value("jobStatus", "?") : "none") +
                                 ") at the deadline");
            }
            std::this_thread::sleep_for(wait);
        }
    }

    std::int64_t created_at(const std::string& project_id, const std::string& uid) {
        for (const json& deployment : api().deployments(project_id)) {
            if (deployment.value("uid", "") == uid) {
                return deployment.value("createdAt", std::int64_t{0});
            }
        }
        fail_invalid("deployment " + uid + " is not a READY production deployment of " +
                     project_id);
    }

    std::string previous_ready(const std::string& target, const std::string& current) {
        const json project = api().project(target);
        const json deployments = api().deployments(project.value("id", target));
        std::int64_t current_created = 0;
        for (const json& deployment : deployments) {
            if (deployment.value("uid", "") == current) {
                current_created = deployment.value("createdAt", std::int64_t{0});
            }
        }
        for (const json& deployment : deployments) {
            if (deployment.value("uid", "") != current &&
                deployment.value("isRollbackCandidate", true) &&
                (current_created == 0 ||
                 deployment.value("createdAt", std::int64_t{0}) < current_created)) {
                return deployment.value("uid", "");
            }
        }
        fail_invalid(target + ": no READY production deployment older than " + current +
                     " to roll back to");
    }

    VercelApi& api_;
    bool rollback_;
};

class VercelProvider : public Provider {
  public:
    json manifest() const override {
        return {{"name", "vercel"},
                {"version", "1.0.0"},
                {"description",
                 "Vercel: roll production back to an earlier deployment, or promote one"},
                {"actions",
                 {{"rollback",
                   {{"description", "instant rollback of production (the revert promotes back)"},
                    {"target", "the project id or name"},
                    {"parameters", rollback_parameters}}},
                  {"promote",
                   {{"description", "promote a deployment to production"},
                    {"target", "the project id or name"},
                    {"parameters", promote_parameters}}}}},
                {"settings", settings_schema},
                {"egress",
                 {{"hosts", "api.vercel.com (or settings.url)"},
                  {"credentials", "bearer: a Vercel access token scoped to the team"}}}};
    }

    void configure(const json& settings, const Host& host) override {
        api_.configure(settings, host);
    }

    json state(const std::string& target) override {
        const json project = api_.project(target);
        const std::string current = production_of(project);
        json candidates = json::array();
        json production;
        for (const json& deployment : api_.deployments(project.value("id", target))) {
            json entry{{"uid", deployment.value("uid", "")},
                       {"ready", deployment.value("state", "") == "READY"},
                       {"created_at", deployment.value("createdAt", std::int64_t{0})}};
            if (entry["uid"] == current) {
                production = entry;
            }
            candidates.push_back(entry);
        }
        json state{{"production", production.is_null() ? json{{"uid", current}} : production},
                   {"candidates", candidates},
                   {"rollback_job", project.value("lastRollbackTarget", json())}};
        if (production.is_object()) {
            state["seconds_since_production_deploy"] =
                (now_ms() - production["created_at"].get<std::int64_t>()) / 1000;
        }
        return state;
    }

    Action* action(const std::string& name) override {
        if (name == "rollback") {
            return &rollback_;
        }
        if (name == "promote") {
            return &promote_;
        }
        return nullptr;
    }

  private:
    VercelApi api_;
    ProductionAction rollback_{api_, true};
    ProductionAction promote_{api_, false};
};

}  // namespace
}  // namespace mitigate::plugin

MITIGATE_PLUGIN(mitigate::plugin::VercelProvider)
