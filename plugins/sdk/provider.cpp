#include "plugins/sdk/provider.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <exception>
#include <new>
#include <random>
#include <thread>

#include "plugins/sdk/json_schema.h"

namespace mitigate::plugin {
namespace {

using Milliseconds = std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

RetryPolicy policy_in_force;
// When the current operation must be over; the policy's deadline from its start.
SteadyClock::time_point operation_deadline = SteadyClock::time_point::max();

// A transport failure the runtime reports as having happened before anything was sent
// (the name did not resolve, the connection was refused): always safe to retry.
class NotSent : public Failure {
  public:
    explicit NotSent(const std::string& message) : Failure(MITIGATE_UNAVAILABLE, message) {}
};

std::string sha256_hex(const std::string& text) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr);
    std::string hex;
    for (unsigned int index = 0; index < length; ++index) {
        char pair[3];
        std::snprintf(pair, sizeof pair, "%02x", digest[index]);
        hex += pair;
    }
    return hex;
}

const json& required_field(const json& request, const char* name) {
    if (!request.contains(name)) {
        fail_invalid(std::string("request.") + name + ": is required");
    }
    return request[name];
}

// Plans arrive back from the runtime as it stored them; only these fields matter here.
const json& plan_field(const json& plan, const char* name) {
    if (!plan.is_object() || !plan.contains(name) || !plan[name].is_object()) {
        fail_invalid(std::string("plan.") + name + ": is required (an object)");
    }
    return plan[name];
}

json plan_operation(Provider& provider, Action& action, const std::string& action_name,
                    const std::string& target, const json& request) {
    const json parameters = request.value("parameters", json::object());
    const json manifest = provider.manifest();
    const json schema = manifest["actions"][action_name].value("parameters", json::object());
    if (auto problem = schema_violation(parameters, schema, "parameters")) {
        fail_invalid(*problem);
    }
    const json state = request.contains("state") && !request["state"].is_null()
                           ? request["state"]
                           : action.read(target);
    const PlannedChange change = action.plan(target, parameters, state);
    json blast{{"ratio", change.blast_ratio}, {"description", change.blast_description}};
    if (change.resulting_fraction) {
        blast["resulting_fraction"] = *change.resulting_fraction;
    }
    // Same provider, action, target, and the same change from the same state: the same
    // key, so the runtime recognises a retried apply of one plan.
    const std::string key = sha256_hex(
        json{manifest.value("name", ""), action_name, target, change.forward, change.inverse}
            .dump());
    json answer{{"observed_state", state},
                {"forward", change.forward},
                {"inverse", change.inverse},
                {"blast_radius", blast},
                {"idempotency_key", key},
                {"reversible", change.reversible},
                {"resource", action.resource(target)},
                {"settle_margin_ms", action.settle_margin().count()}};
    if (!change.steps.empty()) {
        json steps = json::array();
        for (const PlannedStep& step : change.steps) {
            steps.push_back({{"name", step.name}, {"fields", step.fields}});
        }
        answer["steps"] = std::move(steps);
        answer["revert_order"] = change.revert_in_apply_order ? "apply_order" : "reverse";
    }
    return answer;
}

}  // namespace

void fail_invalid(const std::string& message) {
    throw Failure(MITIGATE_INVALID, message);
}
void fail_conflict(const std::string& message) {
    throw Failure(MITIGATE_CONFLICT, message);
}
void fail_provider(const std::string& message) {
    throw Failure(MITIGATE_PROVIDER, message);
}
void fail_unavailable(const std::string& message) {
    throw Failure(MITIGATE_UNAVAILABLE, message);
}

json HttpResponse::json_body() const {
    json parsed = json::parse(body, nullptr, false);
    if (parsed.is_discarded()) {
        fail_provider("HTTP " + std::to_string(status) + " with a body that is not JSON");
    }
    return parsed;
}

json Host::egress(const json& request) const {
    const std::string text = request.dump();
    const char* response = nullptr;
    const int32_t status = api_->egress(api_->host, text.c_str(), &response);
    json parsed = json::parse(response != nullptr ? response : "", nullptr, false);
    if (status != MITIGATE_OK) {
        const std::string why = parsed.is_object() ? parsed.value("error", "refused") : "refused";
        if (status == MITIGATE_UNAVAILABLE && parsed.is_object() &&
            parsed.value("not_sent", false)) {
            throw NotSent(why);
        }
        throw Failure(static_cast<mitigate_status>(status), why);
    }
    if (!parsed.is_object()) {
        fail_unavailable("the host answered an egress request with something other than JSON");
    }
    return parsed;
}

namespace {

// An egress request given what is left of the operation's deadline, so that the runtime
// gives up in time; fails when nothing is left.
json with_time_left(json request) {
    const Milliseconds left = time_left();
    if (left <= Milliseconds(0)) {
        fail_unavailable("the operation's deadline of " +
                         std::to_string(policy_in_force.deadline.count()) + " ms has passed");
    }
    if (left < Milliseconds(24LL * 3600 * 1000)) {
        request["timeout_ms"] = left.count();
    }
    return request;
}

}  // namespace

HttpResponse Host::http(const HttpRequest& request) const {
    json description{{"kind", "http"},       {"method", request.method},
                     {"url", request.url},   {"headers", request.headers},
                     {"body", request.body}, {"credential", request.credential}};
    if (!request.signing_service.empty()) {
        description["signing_service"] = request.signing_service;
    }
    const json answer = egress(with_time_left(description));
    HttpResponse response;
    response.status = answer.value("status", 0);
    response.headers = answer.value("headers", std::map<std::string, std::string>{});
    response.body = answer.value("body", "");
    return response;
}

namespace {

// Retry-After in seconds (the HTTP-date form is not used by the providers here).
Milliseconds retry_after(const HttpResponse& response) {
    auto found = response.headers.find("retry-after");
    if (found == response.headers.end()) {
        return Milliseconds(0);
    }
    char* end = nullptr;
    const long seconds = std::strtol(found->second.c_str(), &end, 10);
    return seconds > 0 && end != found->second.c_str() ? Milliseconds(seconds * 1000)
                                                       : Milliseconds(0);
}

}  // namespace

HttpResponse Host::send(const HttpRequest& request) const {
    for (int attempt = 1;; ++attempt) {
        const bool last = attempt >= policy_in_force.attempts;
        HttpResponse response;
        try {
            response = http(request);
        } catch (const NotSent& failure) {
            if (last || !back_off(attempt)) {
                throw;
            }
            log(MITIGATE_LOG_WARN, request.method + " " + request.url + " not sent (" +
                                       failure.what() + "); retry " + std::to_string(attempt));
            continue;
        } catch (const Failure& failure) {
            // Sent, and no answer: only a request that may happen twice is sent again.
            if (failure.status() != MITIGATE_UNAVAILABLE || !request.idempotent || last ||
                !back_off(attempt)) {
                throw;
            }
            log(MITIGATE_LOG_WARN, request.method + " " + request.url + " got no answer (" +
                                       failure.what() + "); retry " + std::to_string(attempt));
            continue;
        }
        // 429 and 503 say the request was not processed; another 5xx may have been.
        const bool refused_unprocessed = response.status == 429 || response.status == 503;
        const bool server_error = response.status >= 500 && response.status != 501;
        if (!(refused_unprocessed || (server_error && request.idempotent)) || last ||
            !back_off(attempt, retry_after(response))) {
            return response;
        }
        log(MITIGATE_LOG_WARN, request.method + " " + request.url + " answered " +
                                   std::to_string(response.status) + "; retry " +
                                   std::to_string(attempt));
    }
}

std::string url_encode(std::string_view text) {
    static const char* const hex = "0123456789ABCDEF";
    std::string encoded;
    for (unsigned char character : text) {
        if (std::isalnum(character) || character == '-' || character == '_' || character == '.' ||
            character == '~') {
            encoded += static_cast<char>(character);
        } else {
            encoded += '%';
            encoded += hex[character >> 4];
            encoded += hex[character & 15];
        }
    }
    return encoded;
}

const RetryPolicy& retry_policy() {
    return policy_in_force;
}

Milliseconds time_left() {
    if (operation_deadline == SteadyClock::time_point::max()) {
        return Milliseconds::max();
    }
    return std::max(Milliseconds(0), std::chrono::duration_cast<Milliseconds>(operation_deadline -
                                                                              SteadyClock::now()));
}

bool back_off(int retry, Milliseconds at_least) {
    // Full jitter (a uniform draw below the exponential ceiling) spreads the retries of
    // many callers; a Retry-After is a floor the provider asked for.
    const int doublings = std::clamp(retry - 1, 0, 20);
    const Milliseconds ceiling = std::min(
        policy_in_force.max_delay, Milliseconds(policy_in_force.base_delay.count() << doublings));
    static std::mt19937_64 generator{std::random_device{}()};
    std::uniform_int_distribution<long long> draw(0, std::max<long long>(0, ceiling.count()));
    const Milliseconds delay = std::max(Milliseconds(draw(generator)), at_least);
    if (delay >= time_left()) {
        return false;
    }
    std::this_thread::sleep_for(delay);
    return true;
}

SqlResult Host::sql(const SqlRequest& request) const {
    json parameters = json::array();
    for (const auto& parameter : request.parameters) {
        parameters.push_back(parameter ? json(*parameter) : json());
    }
    json description{{"kind", "sql"},
                     {"credential", request.credential},
                     {"query", request.query},
                     {"parameters", parameters}};
    for (int attempt = 1;; ++attempt) {
        json answer;
        try {
            answer = egress(with_time_left(description));
        } catch (const NotSent&) {
            if (attempt >= policy_in_force.attempts || !back_off(attempt)) {
                throw;
            }
            continue;
        } catch (const Failure& failure) {
            if (failure.status() != MITIGATE_UNAVAILABLE || !request.idempotent ||
                attempt >= policy_in_force.attempts || !back_off(attempt)) {
                throw;
            }
            continue;
        }
        SqlResult result;
        result.columns = answer.value("columns", std::vector<std::string>{});
        for (const json& row : answer.value("rows", json::array())) {
            std::vector<std::optional<std::string>> values;
            for (const json& value : row) {
                values.push_back(value.is_null() ? std::nullopt
                                                 : std::optional(value.get<std::string>()));
            }
            result.rows.push_back(std::move(values));
        }
        result.affected = answer.value("affected", 0LL);
        return result;
    }
}

FileContent Host::read_file(const std::string& path) const {
    const json answer = egress({{"kind", "file_read"}, {"path", path}});
    return {answer.value("content", ""), answer.value("etag", "")};
}

std::string Host::write_file(const std::string& path, const std::string& content,
                             const std::string& if_match) const {
    const json answer = egress(
        {{"kind", "file_write"}, {"path", path}, {"content", content}, {"if_match", if_match}});
    return answer.value("etag", "");
}

void Host::log(mitigate_log_level level, const std::string& message) const {
    api_->log(api_->host, level, message.c_str());
}

json Provider::state(const std::string& target) {
    fail_invalid("this provider offers no state to playbooks (asked for " + target + ")");
}

std::string Action::resource(const std::string& target) {
    return target;
}

std::chrono::milliseconds Action::settle_margin() const {
    return std::chrono::seconds(30);
}

bool Action::matches(const json& live, const json& expected) const {
    if (!expected.is_object() || !live.is_object()) {
        return live == expected;
    }
    for (const auto& [key, value] : expected.items()) {
        if (!live.contains(key) || live[key] != value) {
            return false;
        }
    }
    return true;
}

namespace {

// A write whose outcome is unknown (no answer, a 5xx) is settled by reading again, never
// by writing blindly: see the top of provider.h.
void write_once(Action& action, const std::string& target, const json& from, const json& to) {
    for (int attempt = 1;; ++attempt) {
        try {
            action.write(target, from, to);
            return;
        } catch (const Failure& failure) {
            if (failure.status() != MITIGATE_UNAVAILABLE || attempt >= policy_in_force.attempts) {
                throw;
            }
            const json live = action.read(target);
            if (action.matches(live, to)) {
                return;  // it landed; the answer was lost
            }
            if (!action.matches(live, from)) {
                fail_conflict("after a write to " + target + " failed (" + failure.what() +
                              "), its state is neither the old nor the new one (" + live.dump() +
                              ")");
            }
            if (!back_off(attempt)) {
                throw;
            }
        }
    }
}

}  // namespace

json handle_request(Provider& provider, const json& request) {
    operation_deadline = policy_in_force.deadline.count() > 0
                             ? SteadyClock::now() + policy_in_force.deadline
                             : SteadyClock::time_point::max();
    if (!request.is_object()) {
        fail_invalid("request: must be a JSON object");
    }
    const std::string operation = required_field(request, "operation").get<std::string>();
    const std::string target = required_field(request, "target").get<std::string>();
    if (target.empty()) {
        fail_invalid("request.target: must not be empty");
    }
    if (operation == "state") {
        return {{"state", provider.state(target)}};
    }
    const std::string action_name = required_field(request, "action").get<std::string>();
    Action* action = provider.action(action_name);
    if (action == nullptr) {
        fail_invalid("request.action: \"" + action_name + "\" is not an action of this provider");
    }
    if (operation == "read") {
        return {{"state", action->read(target)}};
    }
    if (operation == "plan") {
        return plan_operation(provider, *action, action_name, target, request);
    }
    const json& plan = required_field(request, "plan");
    const json& forward = plan_field(plan, "forward");
    const json& inverse = plan_field(plan, "inverse");
    const json live = action->read(target);
    if (operation == "check") {
        return {{"applied", action->matches(live, forward)}, {"state", live}};
    }
    if (operation == "apply") {
        if (action->matches(live, forward)) {
            return {{"applied", true}, {"changed", false}};
        }
        if (!action->matches(live, inverse)) {
            fail_conflict("the live state of " + target + " is no longer the one planned from (" +
                          live.dump() + "); plan again");
        }
        write_once(*action, target, inverse, forward);
        return {{"applied", true}, {"changed", true}};
    }
    if (operation == "revert") {
        if (action->matches(live, inverse)) {
            return {{"reverted", true}, {"changed", false}};
        }
        if (!action->matches(live, forward)) {
            fail_conflict("the live state of " + target + " changed since mitigate set it (" +
                          live.dump() + " instead of " + forward.dump() +
                          "); not reverting over someone else's change");
        }
        write_once(*action, target, forward, inverse);
        return {{"reverted", true}, {"changed", true}};
    }
    fail_invalid("request.operation: \"" + operation +
                 "\" is not one of read, plan, apply, check, revert");
}

namespace {

// The plugin's side of the boundary. One plugin per process and one call at a time (the
// host serialises), so plain statics hold the strings the ABI says stay valid until the
// next call.
Provider& (*provider_instance)() = nullptr;
const mitigate_host_api* host_api = nullptr;
std::string manifest_text;
std::string response_text;
std::string error_text;

int32_t record_failure(mitigate_status status, const std::string& message) {
    error_text = message.substr(0, MITIGATE_PLUGIN_ERROR_MAX);
    return status;
}

template <typename Body>
int32_t guarded(Body body) {
    try {
        return body();
    } catch (const Failure& failure) {
        return record_failure(failure.status(), failure.what());
    } catch (const json::exception& error) {
        return record_failure(MITIGATE_INVALID, std::string("malformed JSON: ") + error.what());
    } catch (const std::bad_alloc&) {
        return record_failure(MITIGATE_INTERNAL, "out of memory");
    } catch (const std::exception& error) {
        return record_failure(MITIGATE_INTERNAL, std::string("plugin error: ") + error.what());
    } catch (...) {
        return record_failure(MITIGATE_INTERNAL, "plugin error: unknown exception");
    }
}

RetryPolicy parse_retry_policy(const json& retry) {
    const json schema = json::parse(R"json({
      "type": "object",
      "properties": {
        "attempts": {"type": "integer", "minimum": 1, "maximum": 10},
        "base_delay_ms": {"type": "integer", "minimum": 0, "maximum": 60000},
        "max_delay_ms": {"type": "integer", "minimum": 0, "maximum": 300000},
        "deadline_ms": {"type": "integer", "minimum": 1, "maximum": 600000}
      },
      "additionalProperties": false
    })json");
    if (auto problem = schema_violation(retry, schema, "settings.retry")) {
        fail_invalid(*problem);
    }
    RetryPolicy policy;
    policy.attempts = retry.value("attempts", policy.attempts);
    policy.base_delay = Milliseconds(retry.value("base_delay_ms", policy.base_delay.count()));
    policy.max_delay = Milliseconds(retry.value("max_delay_ms", policy.max_delay.count()));
    policy.deadline = Milliseconds(retry.value("deadline_ms", policy.deadline.count()));
    return policy;
}

const char* exported_manifest() {
    if (manifest_text.empty()) {
        try {
            manifest_text = provider_instance().manifest().dump();
        } catch (...) {
            manifest_text = "{}";
        }
    }
    return manifest_text.c_str();
}

int32_t exported_init(const mitigate_host_api* host, const char* settings_json) {
    return guarded([&] {
        if (host == nullptr || host->abi_major != MITIGATE_PLUGIN_ABI_MAJOR) {
            return record_failure(MITIGATE_INTERNAL, "host ABI major differs from the plugin's");
        }
        if (host->struct_size < MITIGATE_HOST_API_FIRST_SIZE) {
            return record_failure(MITIGATE_INTERNAL,
                                  "the host's API table is smaller than ABI "
                                  "1.0's; refusing to read past its end");
        }
        host_api = host;
        json settings = json::parse(settings_json != nullptr ? settings_json : "{}");
        if (settings.is_object() && settings.contains("retry")) {
            policy_in_force = parse_retry_policy(settings["retry"]);
            settings.erase("retry");
        }
        const json schema = provider_instance().manifest().value("settings", json::object());
        if (auto problem = schema_violation(settings, schema, "settings")) {
            fail_invalid(*problem);
        }
        provider_instance().configure(settings, Host(host_api));
        return static_cast<int32_t>(MITIGATE_OK);
    });
}

int32_t exported_call(const char* request_json, const char** response_json) {
    *response_json = nullptr;
    return guarded([&] {
        if (host_api == nullptr) {
            return record_failure(MITIGATE_INTERNAL, "call before init");
        }
        const json request = json::parse(request_json != nullptr ? request_json : "");
        response_text = handle_request(provider_instance(), request).dump();
        *response_json = response_text.c_str();
        return static_cast<int32_t>(MITIGATE_OK);
    });
}

const char* exported_last_error() {
    return error_text.c_str();
}

}  // namespace

const mitigate_plugin_api* export_provider(Provider& (*instance)()) {
    provider_instance = instance;
    static const mitigate_plugin_api api{MITIGATE_PLUGIN_ABI_MAJOR,
                                         MITIGATE_PLUGIN_ABI_MINOR,
                                         sizeof(mitigate_plugin_api),
                                         exported_manifest,
                                         exported_init,
                                         exported_call,
                                         exported_last_error};
    return &api;
}

}  // namespace mitigate::plugin
