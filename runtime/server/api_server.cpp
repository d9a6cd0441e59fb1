#include "runtime/server/api_server.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <future>
#include <map>
#include <optional>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "runtime/audit/refusal_audit_budget.h"
#include "runtime/core/json_reader.h"
#include "runtime/core/time_format.h"
#include "runtime/core/url_encoding.h"
#include "runtime/core/utf8.h"
#include "runtime/drills/drill_report.h"
#include "runtime/drills/drill_run_store.h"
#include "runtime/drills/drill_runner.h"
#include "runtime/engine/engine.h"
#include "runtime/ingest/alertmanager.h"
#include "runtime/ingest/signal_submission.h"
#include "runtime/metrics/metrics.h"
#include "runtime/server/api_token.h"
#include "runtime/store/store.h"

namespace mitigate {
namespace {

using nlohmann::json;

// Replaces rather than throws on bytes that are not UTF-8: requests are checked before
// routing (invalid_utf8_in), but a stored value from an older version must not turn a
// read into a 500.
HttpReply json_reply(int status, const json& body) {
    return {status,
            {{"Content-Type", "application/json"}},
            body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"};
}

HttpReply error_reply(int status, std::string_view code, std::string_view message) {
    HttpReply reply = json_reply(status, {{"error", {{"code", code}, {"message", message}}}});
    if (status == 401) {
        reply.headers["WWW-Authenticate"] = "Bearer realm=\"mitigate\"";
    }
    return reply;
}

std::vector<std::string> split_path(std::string_view path) {
    std::vector<std::string> parts;
    while (!path.empty()) {
        if (path.front() == '/') {
            path.remove_prefix(1);
            continue;
        }
        const auto slash = path.find('/');
        parts.push_back(percent_decode(path.substr(0, slash)));
        path = slash == std::string_view::npos ? "" : path.substr(slash);
    }
    return parts;
}

// A request's target, split and decoded once for the UTF-8 check and the router.
struct Target {
    std::string path;                          // as sent, without the query
    std::vector<std::string> segments;         // decoded
    std::map<std::string, std::string> query;  // decoded
};

Target parse_target(std::string_view target) {
    const auto question = target.find('?');
    return {
        std::string(target.substr(0, question)), split_path(target.substr(0, question)),
        parse_url_encoded(question == std::string_view::npos ? "" : target.substr(question + 1))};
}

// Where the request holds bytes that are not UTF-8, or nullopt. Checked before routing,
// so that no id, log line, label or JSON answer is ever built from them: the path and
// query as sent and as decoded (%FF decodes to a bare byte), every header, the body.
std::optional<std::string> invalid_utf8_in(const HttpExchange& request, const Target& target) {
    const auto at = [](std::string_view where, std::size_t offset) {
        return "invalid UTF-8 in " + std::string(where) + " at byte " + std::to_string(offset);
    };
    if (const auto bad = first_invalid_utf8(request.target)) {
        return at("the request target", *bad);
    }
    for (const std::string& segment : target.segments) {
        if (const auto bad = first_invalid_utf8(segment)) {
            return at("the decoded path segment", *bad);
        }
    }
    for (const auto& [name, value] : target.query) {
        if (first_invalid_utf8(name)) {
            return std::string("invalid UTF-8 in a decoded query parameter name");
        }
        if (const auto bad = first_invalid_utf8(value)) {
            return at("the decoded query parameter " + name, *bad);
        }
    }
    for (const auto& [name, value] : request.headers) {
        if (const auto bad = first_invalid_utf8(value)) {
            return at("the header " + name, *bad);
        }
    }
    if (const auto bad = first_invalid_utf8(request.body)) {
        return at("the body", *bad);
    }
    return std::nullopt;
}

// The actions under /v1/mitigations/{id}/: the route label names one of them or none, so
// that a caller cannot add series to /metrics by inventing paths.
bool is_mitigation_action(std::string_view verb) {
    return verb == "approve" || verb == "reject" || verb == "revert" || verb == "keep";
}

int status_of(RequestStatus status) {
    switch (status) {
        case RequestStatus::done: return 200;
        case RequestStatus::accepted: return 202;
        case RequestStatus::invalid: return 400;
        case RequestStatus::not_found: return 404;
        case RequestStatus::forbidden: return 403;
        case RequestStatus::conflict: return 409;
    }
    return 500;
}

std::string_view code_of(RequestStatus status) {
    switch (status) {
        case RequestStatus::done: return "ok";
        case RequestStatus::accepted: return "accepted";
        case RequestStatus::invalid: return "invalid";
        case RequestStatus::not_found: return "not_found";
        case RequestStatus::forbidden: return "forbidden";
        case RequestStatus::conflict: return "conflict";
    }
    return "internal";
}

// An incident's alerts shown by GET /v1/incidents/ID; its counters say how many in all.
constexpr std::size_t incident_alerts_shown = 1000;

struct Caller {
    std::string identity;
    ApiRole role = ApiRole::viewer;
    std::vector<std::string> groups;
};

}  // namespace

void declare_api_metrics(Metrics& metrics) {
    metrics.declare_counter("mitigate_http_requests_total",
                            "API requests answered, by route and status code.");
    metrics.declare_histogram(
        "mitigate_http_request_seconds", "API request duration, by route.",
        {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    metrics.declare_counter("mitigate_api_requests_refused_total",
                            "API requests refused for their token, by reason: unauthenticated "
                            "(401: none, unknown or revoked), forbidden (403: the role).");
    metrics.declare_counter("mitigate_api_refusals_unaudited_total",
                            "Refused API requests past the audit budget of 60 a minute; "
                            "counted here instead.");
    metrics.declare_gauge("mitigate_http_connections_open", "API connections open now.");
    metrics.declare_gauge("mitigate_http_connections_max",
                          "API connections allowed at once (server.max_connections, lowered "
                          "to what the descriptor limit leaves room for).");
    metrics.declare_counter("mitigate_http_connections_refused_total",
                            "Requests refused before any handler, by reason: limit (no room "
                            "for the connection), body_budget (too many bodies being read), "
                            "framing (ambiguous framing or repeated headers).");
    metrics.declare_counter("mitigate_http_connections_closed_total",
                            "Connections the server closed, by reason: idle_for_room (the "
                            "longest idle, to admit a newcomer at the limit), timeout.");
    metrics.declare_counter("mitigate_http_accept_failures_total",
                            "accept() failures, such as running out of descriptors.");
}

struct ApiServer::State {
    Store& store;
    Engine& engine;
    Metrics& metrics;
    const Clock& clock;
    ApiServerHooks hooks;
    ApiTokenCache tokens;

    State(Store& store_in, Engine& engine_in, Metrics& metrics_in, const Clock& clock_in,
          ApiServerHooks hooks_in)
        : store(store_in),
          engine(engine_in),
          metrics(metrics_in),
          clock(clock_in),
          hooks(std::move(hooks_in)),
          tokens(store_in) {}

    // Refusals are audited like Slack's, within the same budget: anyone who reaches the
    // port can cause a 401.
    RefusalAuditBudget refusal_budget;

    void audit_refusal(const HttpExchange& request, const std::string& route,
                       const std::string& actor, std::string_view reason,
                       const std::string& message) {
        metrics.increment("mitigate_api_requests_refused_total", {{"reason", std::string(reason)}});
        const auto unaudited_before = refusal_budget.admit(clock.now());
        if (!unaudited_before) {
            metrics.increment("mitigate_api_refusals_unaudited_total");
            return;
        }
        json details = {{"channel", "api"},
                        {"route", route},
                        {"method", request.method},
                        {"peer", request.peer},
                        {"reason", message}};
        if (*unaudited_before > 0) {
            details["unaudited_before"] = *unaudited_before;
        }
        try {
            store.append_audit({clock.now(), actor, "api.request_refused", "", details});
        } catch (const std::exception& failure) {
            // The refusal stands; a store that cannot write says so in /readyz.
            spdlog::warn("could not audit a refused API request: {}", failure.what());
        }
    }

    // The caller, or the reply that refuses them (audited).
    std::variant<Caller, HttpReply> authenticate(const HttpExchange& request,
                                                 ApiPermission permission,
                                                 const std::string& route) {
        const auto refuse = [&](int status, std::string_view code, const std::string& actor,
                                const std::string& message) {
            audit_refusal(request, route, actor, code, message);
            return error_reply(status, code, message);
        };
        const auto header = request.headers.find("authorization");
        constexpr std::string_view scheme = "Bearer ";
        if (header == request.headers.end() || !header->second.starts_with(scheme)) {
            return refuse(401, "unauthenticated", "api",
                          "send Authorization: Bearer <token> (mitigate token create)");
        }
        const auto token = tokens.find(api_token_digest(header->second.substr(scheme.size())));
        if (!token || token->revoked_at) {
            return refuse(401, "unauthenticated", "api", "the token is unknown or revoked");
        }
        const auto role = parse_api_role(token->role);
        if (!role) {
            return refuse(403, "forbidden", "api:" + token->name,
                          "token " + token->name + " has an unknown role " + token->role);
        }
        if (!role_allows(*role, permission)) {
            return refuse(403, "forbidden", "api:" + token->name,
                          "token " + token->name + " (" + token->role +
                              ") may not do this; see docs/reference/api.md for roles");
        }
        return Caller{token->name, *role, token->groups};
    }

    std::optional<json> parse_body(const HttpExchange& request, HttpReply& refusal) {
        const auto type = request.headers.find("content-type");
        if (type != request.headers.end() && type->second.find("json") == std::string::npos) {
            refusal = error_reply(415, "unsupported_media_type",
                                  "the body must be JSON (Content-Type: application/json)");
            return std::nullopt;
        }
        if (request.body.empty()) {
            return json::object();
        }
        std::string error;
        auto body = parse_json_within(request.body, JsonTextLimits{}, error);
        if (!body) {
            refusal = error_reply(400, "invalid", "the body is refused: " + error);
        }
        return body;
    }

    // Answered once the signals are durable (or refused, or failed): the engine's group
    // commit shares one transaction among every webhook arriving meanwhile.
    void ingest(std::vector<Signal> signals, const HttpResponder& respond) {
        engine.accept_signals(std::move(signals), [respond](const SignalIntake& intake) {
            if (intake.refused || intake.failed) {
                HttpReply reply = error_reply(503, intake.refused ? "backlog_full" : "unavailable",
                                              intake.message);
                reply.headers["Retry-After"] = intake.refused ? "5" : "1";
                respond(std::move(reply));
                return;
            }
            respond(json_reply(202,
                               {{"accepted", intake.accepted}, {"duplicates", intake.duplicates}}));
        });
    }

    void post_alertmanager(const HttpExchange& request, const HttpResponder& respond) {
        HttpReply refusal;
        const auto body = parse_body(request, refusal);
        if (!body) {
            return respond(std::move(refusal));
        }
        auto signals = parse_alertmanager_webhook(*body, clock.now());
        if (!signals) {
            return respond(error_reply(400, "invalid", describe(signals.errors)));
        }
        ingest(std::move(*signals.value), respond);
    }

    void post_signals(const HttpExchange& request, const HttpResponder& respond) {
        HttpReply refusal;
        const auto body = parse_body(request, refusal);
        if (!body) {
            return respond(std::move(refusal));
        }
        auto signals = parse_signal_submission(*body, SignalSource::api, clock.now());
        if (!signals) {
            return respond(error_reply(400, "invalid", describe(signals.errors)));
        }
        ingest(std::move(*signals.value), respond);
    }

    HttpReply list_incidents(const std::map<std::string, std::string>& query) {
        IncidentFilter filter;
        if (const auto status = query.find("status"); status != query.end()) {
            filter.status = parse_incident_status(status->second);
            if (!filter.status) {
                return error_reply(400, "invalid", "status must be open or resolved");
            }
        }
        if (auto limit = read_limit(query)) {
            filter.limit = *limit;
        } else {
            return error_reply(400, "invalid", "limit must be a number from 1 to 1000");
        }
        json items = json::array();
        for (const Incident& incident : store.list_incidents(filter)) {
            items.push_back(incident);
        }
        return json_reply(200, {{"incidents", items}});
    }

    static std::optional<std::size_t> read_limit(const std::map<std::string, std::string>& query) {
        const auto found = query.find("limit");
        if (found == query.end()) {
            return 100;
        }
        std::size_t limit = 0;
        const auto& text = found->second;
        const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), limit);
        if (error != std::errc() || end != text.data() + text.size() || limit < 1 || limit > 1000) {
            return std::nullopt;
        }
        return limit;
    }

    HttpReply get_incident(const std::string& id) {
        const auto incident = store.find_incident(id);
        if (!incident) {
            return error_reply(404, "not_found", "no incident " + id);
        }
        MitigationFilter filter;
        filter.incident_id = id;
        json mitigations = json::array();
        for (const Mitigation& mitigation : store.list_mitigations(filter)) {
            mitigations.push_back(mitigation);
        }
        // Its alerts, firing first, at most a page of them: the counters say how many.
        json alerts = json::array();
        for (const IncidentAlert& alert : store.incident_alerts(id, incident_alerts_shown)) {
            alerts.push_back({{"fingerprint", alert.fingerprint},
                              {"status", alert.firing ? "firing" : "resolved"},
                              {"last_signal", alert.last_signal_id},
                              {"updated_at", format_rfc3339(alert.updated_at)}});
        }
        json body = *incident;
        body["alerts"] = alerts;
        body["mitigations"] = mitigations;
        return json_reply(200, body);
    }

    HttpReply list_mitigations(const std::map<std::string, std::string>& query) {
        MitigationFilter filter;
        if (const auto state = query.find("state"); state != query.end()) {
            for (const std::string& name : split_commas(state->second)) {
                const auto parsed = parse_mitigation_state(name);
                if (!parsed) {
                    return error_reply(400, "invalid",
                                       "state " + name + " is not one of: " +
                                           std::string(mitigation_state_names()));
                }
                filter.states.push_back(*parsed);
            }
        }
        if (const auto incident = query.find("incident"); incident != query.end()) {
            filter.incident_id = incident->second;
        }
        if (auto limit = read_limit(query)) {
            filter.limit = *limit;
        } else {
            return error_reply(400, "invalid", "limit must be a number from 1 to 1000");
        }
        json items = json::array();
        for (const Mitigation& mitigation : store.list_mitigations(filter)) {
            items.push_back(mitigation);
        }
        return json_reply(200, {{"mitigations", items}});
    }

    static std::vector<std::string> split_commas(const std::string& text) {
        std::vector<std::string> parts;
        std::size_t start = 0;
        while (start <= text.size()) {
            const auto comma = text.find(',', start);
            parts.push_back(text.substr(start, comma - start));
            if (comma == std::string::npos) {
                break;
            }
            start = comma + 1;
        }
        return parts;
    }

    HttpReply get_mitigation(const std::string& id) {
        const auto mitigation = store.find_mitigation(id);
        if (!mitigation) {
            return error_reply(404, "not_found", "no mitigation " + id);
        }
        json journal = json::array();
        for (const JournalEntry& entry : store.journal(id)) {
            journal.push_back({{"version", entry.version},
                               {"from", entry.from ? json(to_string(*entry.from)) : json(nullptr)},
                               {"to", to_string(entry.to)},
                               {"at", format_rfc3339(entry.at)},
                               {"actor", entry.actor},
                               {"reason", entry.reason}});
        }
        json body = *mitigation;
        body["journal"] = journal;
        // A step that keeps failing (a revert against a provider that is down) is shown
        // where people look, not only in the log.
        if (const auto retry = engine.retry_of(id)) {
            body["retry"] = {{"attempts", retry->attempts},
                             {"step", retry->step},
                             {"last_error", retry->last_error},
                             {"next_attempt_at", format_rfc3339(retry->next_attempt_at)}};
        } else {
            body["retry"] = nullptr;
        }
        return json_reply(200, body);
    }

    HttpReply result_reply(const RequestResult& result) {
        if (result.status != RequestStatus::done && result.status != RequestStatus::accepted) {
            return error_reply(status_of(result.status), code_of(result.status), result.message);
        }
        return json_reply(
            status_of(result.status),
            {{"message", result.message},
             {"mitigation", result.mitigation ? json(*result.mitigation) : json(nullptr)}});
    }

    // {"comment": "..."} or {"reason": "..."}: optional text, nothing else.
    std::optional<std::string> read_text(const HttpExchange& request, const char* key,
                                         HttpReply& refusal) {
        const auto body = parse_body(request, refusal);
        if (!body) {
            return std::nullopt;
        }
        std::vector<FieldError> errors;
        JsonObjectReader reader(*body, "body", errors);
        std::string text = reader.string(key, Presence::optional);
        reader.reject_unknown_fields();
        if (!errors.empty()) {
            refusal = error_reply(400, "invalid", describe(errors));
            return std::nullopt;
        }
        return text;
    }

    HttpReply post_drill_run(const HttpExchange& request, const Caller& caller) {
        if (hooks.drills == nullptr) {
            return error_reply(503, "not_ready", "this daemon runs no drills");
        }
        HttpReply refusal;
        const auto parsed = parse_body(request, refusal);
        if (!parsed) {
            return refusal;
        }
        const json& body = *parsed;
        if (!body.is_object() || !body.contains("definition") || !body["definition"].is_string()) {
            return error_reply(400, "invalid",
                               "the body is {\"definition\": \"<drill YAML>\", \"dry_run\": "
                               "false, \"file\": \"name.yaml\"}");
        }
        if (body.contains("dry_run") && !body["dry_run"].is_boolean()) {
            return error_reply(400, "invalid", "body.dry_run must be true or false");
        }
        if (body.contains("file") && !body["file"].is_string()) {
            return error_reply(400, "invalid", "body.file must be a string (a file name)");
        }
        const std::string file = body.value("file", std::string("definition"));
        const DrillLoad load = load_drill_text(body["definition"].get<std::string>(), file);
        if (load.drills.empty()) {
            std::string message = "the drill does not load:";
            for (const auto& error : load.errors) {
                message += "\n  " + error.to_string();
            }
            return error_reply(400, "invalid", message);
        }
        const DrillStart started = hooks.drills->start(
            load.drills.front(), body.value("dry_run", false), "api:" + caller.identity);
        if (!started.run) {
            return error_reply(409, "conflict", started.refusal);
        }
        return json_reply(202, {{"run", drill_run_json(*started.run)}});
    }

    HttpReply list_drill_runs(const std::map<std::string, std::string>& query) {
        std::size_t limit = 50;
        if (query.contains("limit")) {
            const auto parsed = read_limit(query);
            if (!parsed) {
                return error_reply(400, "invalid", "limit must be a number from 1 to 1000");
            }
            limit = *parsed;
        }
        const auto drill = query.find("drill");
        json runs = json::array();
        if (hooks.drill_runs != nullptr) {
            for (const DrillRun& run :
                 hooks.drill_runs->list(drill == query.end() ? "" : drill->second, {}, limit)) {
                runs.push_back(drill_run_json(run));
            }
        }
        return json_reply(200, {{"runs", runs}});
    }

    HttpReply get_drill_run(const std::string& id) {
        const auto run =
            hooks.drill_runs != nullptr ? hooks.drill_runs->find(id) : std::optional<DrillRun>();
        if (!run) {
            return error_reply(404, "not_found", "no drill run " + id);
        }
        return json_reply(200, drill_run_json(*run));
    }

    HttpReply post_mitigation_action(const HttpExchange& request, const Caller& caller,
                                     const std::string& id, const std::string& verb) {
        HttpReply refusal;
        if (verb == "approve" || verb == "reject") {
            const auto comment = read_text(request, "comment", refusal);
            if (!comment) {
                return refusal;
            }
            ApprovalRequest approval;
            approval.mitigation_id = id;
            approval.identity = caller.identity;
            approval.groups = caller.groups;
            approval.verdict =
                verb == "approve" ? ApprovalVerdict::approve : ApprovalVerdict::reject;
            approval.channel = ApprovalChannel::api;
            approval.comment = *comment;
            return result_reply(engine.approve(approval));
        }
        const auto reason = read_text(request, "reason", refusal);
        if (!reason) {
            return refusal;
        }
        const PersonRequest person{id, caller.identity, caller.groups, *reason, ""};
        return result_reply(verb == "revert" ? engine.revert(person) : engine.keep(person));
    }

    HttpReply post_proposal(const HttpExchange& request, const Caller& caller) {
        HttpReply refusal;
        const auto body = parse_body(request, refusal);
        if (!body) {
            return refusal;
        }
        std::vector<FieldError> errors;
        JsonObjectReader reader(*body, "body", errors);
        const std::string incident = reader.string("incident_id", Presence::optional);
        const json* raw_action = reader.member("action", Presence::required);
        reader.reject_unknown_fields();
        std::optional<Action> action;
        if (raw_action != nullptr) {
            auto parsed = parse_action(*raw_action, "body.action");
            if (parsed) {
                action = *parsed;
            } else {
                errors.insert(errors.end(), parsed.errors.begin(), parsed.errors.end());
            }
        }
        if (!errors.empty() || !action) {
            return error_reply(400, "invalid", describe(errors));
        }
        ProposalRequest proposal;
        proposal.action = *action;
        proposal.incident_id = incident;
        proposal.proposed_by = caller.identity;
        return result_reply(engine.propose(proposal));
    }

    // The reply, or nothing when `respond` will be called later (signals).
    std::optional<HttpReply> route(const HttpExchange& request, const Target& target,
                                   std::string& route_name, const HttpResponder& respond) {
        const std::vector<std::string>& path = target.segments;
        const std::map<std::string, std::string>& query = target.query;
        const std::string& method = request.method;
        const auto allow = [&](std::initializer_list<const char*> methods) {
            for (const char* allowed : methods) {
                if (method == allowed) {
                    return true;
                }
            }
            return false;
        };

        if (path.size() == 1 && (path[0] == "healthz" || path[0] == "readyz")) {
            route_name = "/" + path[0];
            if (!allow({"GET", "HEAD"})) {
                return error_reply(405, "method_not_allowed", "use GET");
            }
            if (path[0] == "readyz" && hooks.ready && !hooks.ready()) {
                return error_reply(503, "not_ready", "reconciling or the engine is not running");
            }
            if (path[0] == "readyz" && hooks.store_health) {
                const StoreHealth health = hooks.store_health();
                if (health.lost || health.failing) {
                    return error_reply(
                        503, "store_unavailable",
                        "the store: " + (health.lost ? *health.lost : *health.failing));
                }
            }
            return HttpReply{200, {{"Content-Type", "text/plain"}}, "ok\n"};
        }
        const auto extra = hooks.extra_routes.find(target.path);
        // Until the engine has loaded what the store holds, a request would be decided on
        // an empty picture (an equal proposal not merged): the caller retries shortly.
        const auto not_ready = [this] {
            HttpReply reply = error_reply(503, "not_ready", "the daemon is starting or stopping");
            reply.headers["Retry-After"] = "1";
            return reply;
        };
        if (extra != hooks.extra_routes.end()) {
            route_name = extra->first;
            if (hooks.ready && !hooks.ready()) {
                return not_ready();
            }
            return extra->second(request);
        }
        ApiPermission permission = ApiPermission::read;
        if (path.size() == 3 && path[0] == "v1" && path[1] == "alerts" &&
            path[2] == "alertmanager") {
            route_name = "/v1/alerts/alertmanager";
            permission = ApiPermission::send_signals;
        } else if (path.size() == 2 && path[0] == "v1" && path[1] == "signals") {
            route_name = "/v1/signals";
            permission = ApiPermission::send_signals;
        } else if (path.size() == 1 && path[0] == "metrics") {
            route_name = "/metrics";
        } else if (path.size() >= 2 && path.size() <= 3 && path[0] == "v1" &&
                   path[1] == "incidents") {
            route_name = path.size() == 2 ? "/v1/incidents" : "/v1/incidents/{id}";
        } else if (path.size() >= 2 && path.size() <= 4 && path[0] == "v1" &&
                   path[1] == "mitigations") {
            route_name = path.size() == 2                ? "/v1/mitigations"
                         : path.size() == 3              ? "/v1/mitigations/{id}"
                         : is_mitigation_action(path[3]) ? "/v1/mitigations/{id}/" + path[3]
                                                         : "/v1/mitigations/{id}/{unknown}";
            if (path.size() == 4) {
                permission = path[3] == "approve" || path[3] == "reject" ? ApiPermission::approve
                                                                         : ApiPermission::operate;
            } else if (path.size() == 2 && method == "POST") {
                permission = ApiPermission::operate;
            }
        } else if (path.size() >= 3 && path.size() <= 4 && path[0] == "v1" && path[1] == "drills" &&
                   path[2] == "runs") {
            route_name = path.size() == 3 ? "/v1/drills/runs" : "/v1/drills/runs/{id}";
            if (path.size() == 3 && method == "POST") {
                permission = ApiPermission::operate;
            }
        } else if (path.size() == 3 && path[0] == "v1" && path[1] == "circuit-breaker" &&
                   path[2] == "reset") {
            route_name = "/v1/circuit-breaker/reset";
            permission = ApiPermission::operate;
        } else {
            route_name = "unknown";
            return error_reply(404, "not_found", "no route " + std::string(request.target));
        }

        if (route_name != "/metrics" && hooks.ready && !hooks.ready()) {
            return not_ready();
        }
        if (route_name != "/metrics" && hooks.store_health) {
            if (const auto lost = hooks.store_health().lost) {
                HttpReply reply = error_reply(503, "store_unavailable", "the store: " + *lost);
                reply.headers["Retry-After"] = "30";
                return reply;
            }
        }
        const auto authenticated = authenticate(request, permission, route_name);
        if (const auto* refusal = std::get_if<HttpReply>(&authenticated)) {
            return *refusal;
        }
        const Caller& caller = std::get<Caller>(authenticated);

        if (route_name == "/v1/alerts/alertmanager" || route_name == "/v1/signals") {
            if (!allow({"POST"})) {
                return error_reply(405, "method_not_allowed", "use POST");
            }
            if (route_name == "/v1/signals") {
                post_signals(request, respond);
            } else {
                post_alertmanager(request, respond);
            }
            return std::nullopt;
        }
        if (route_name == "/metrics") {
            if (!allow({"GET"})) {
                return error_reply(405, "method_not_allowed", "use GET");
            }
            if (hooks.refresh_metrics) {
                hooks.refresh_metrics();
            }
            return HttpReply{
                200, {{"Content-Type", "text/plain; version=0.0.4"}}, metrics.render()};
        }
        if (route_name == "/v1/circuit-breaker/reset") {
            if (!allow({"POST"})) {
                return error_reply(405, "method_not_allowed", "use POST");
            }
            HttpReply refusal;
            const auto reason = read_text(request, "reason", refusal);
            if (!reason) {
                return refusal;
            }
            return result_reply(engine.reset_circuit_breaker(caller.identity, *reason));
        }
        if (path[1] == "drills") {
            if (path.size() == 4) {
                return allow({"GET"}) ? get_drill_run(path[3])
                                      : error_reply(405, "method_not_allowed", "use GET");
            }
            if (method == "GET") {
                return list_drill_runs(query);
            }
            if (method == "POST") {
                return post_drill_run(request, caller);
            }
            return error_reply(405, "method_not_allowed", "use GET or POST");
        }
        if (path[1] == "incidents") {
            if (!allow({"GET"})) {
                return error_reply(405, "method_not_allowed", "use GET");
            }
            return path.size() == 2 ? list_incidents(query) : get_incident(path[2]);
        }
        if (path.size() == 2) {
            if (method == "GET") {
                return list_mitigations(query);
            }
            if (method == "POST") {
                return post_proposal(request, caller);
            }
            return error_reply(405, "method_not_allowed", "use GET or POST");
        }
        if (path.size() == 3) {
            if (!allow({"GET"})) {
                return error_reply(405, "method_not_allowed", "use GET");
            }
            return get_mitigation(path[2]);
        }
        const std::string& verb = path[3];
        if (!is_mitigation_action(verb)) {
            return error_reply(404, "not_found",
                               "no action " + verb + "; use approve, reject, revert or keep");
        }
        if (!allow({"POST"})) {
            return error_reply(405, "method_not_allowed", "use POST");
        }
        return post_mitigation_action(request, caller, path[2], verb);
    }
};

ApiServer::ApiServer(Store& store, Engine& engine, Metrics& metrics, const Clock& clock,
                     ApiServerHooks hooks)
    : state_(std::make_unique<State>(store, engine, metrics, clock, std::move(hooks))) {}

ApiServer::~ApiServer() = default;

void ApiServer::handle(const HttpExchange& request, HttpResponder respond) {
    const auto started = std::chrono::steady_clock::now();
    auto route_name = std::make_shared<std::string>("unknown");
    Metrics& metrics = state_->metrics;
    HttpResponder measured = [&metrics, started, route_name,
                              respond = std::move(respond)](HttpReply reply) {
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        metrics.increment("mitigate_http_requests_total",
                          {{"route", *route_name}, {"code", std::to_string(reply.status)}});
        metrics.observe("mitigate_http_request_seconds", seconds, {{"route", *route_name}});
        respond(std::move(reply));
    };
    std::optional<HttpReply> reply;
    try {
        const Target target = parse_target(request.target);
        if (const auto problem = invalid_utf8_in(request, target)) {
            *route_name = "invalid";
            reply = error_reply(400, "invalid", *problem);
        } else {
            reply = state_->route(request, target, *route_name, measured);
        }
    } catch (const std::exception& failure) {
        spdlog::error("{} {}: {}", request.method, *route_name, failure.what());
        reply = error_reply(500, "internal", "internal error; see the daemon's log");
    }
    if (reply) {
        measured(std::move(*reply));
    }
}

HttpReply ApiServer::handle(const HttpExchange& request) {
    std::promise<HttpReply> answered;
    auto answer = answered.get_future();
    handle(request, [&answered](HttpReply reply) { answered.set_value(std::move(reply)); });
    return answer.get();
}

}  // namespace mitigate
