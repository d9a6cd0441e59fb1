#include "plugins/emulators/aws_emulator.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>

#include "plugins/emulators/sigv4_verifier.h"
#include "runtime/core/url_encoding.h"
#include "runtime/server/http_server.h"

namespace mitigate {

using nlohmann::json;

namespace {

const std::set<std::string> query_operations{"DescribeRules", "DescribeListeners", "ModifyRule",
                                             "ModifyListener"};

// An error AWS would return, carried up to the handler.
struct AwsError {
    int status;
    std::string code;
    std::string message;
};

[[noreturn]] void throw_error(int status, const std::string& code, const std::string& message) {
    throw AwsError{status, code, message};
}

std::string xml_escape(const std::string& text) {
    std::string escaped;
    for (char character : text) {
        switch (character) {
            case '&': escaped += "&amp;"; break;
            case '<': escaped += "&lt;"; break;
            case '>': escaped += "&gt;"; break;
            case '"': escaped += "&quot;"; break;
            default: escaped += character;
        }
    }
    return escaped;
}

// JSON as AWS Query XML: objects are elements, arrays are lists of <member>.
std::string to_xml(const json& value) {
    if (value.is_object()) {
        std::string text;
        for (const auto& [name, item] : value.items()) {
            text += "<" + name + ">" + to_xml(item) + "</" + name + ">";
        }
        return text;
    }
    if (value.is_array()) {
        std::string text;
        for (const json& item : value) {
            text += "<member>" + to_xml(item) + "</member>";
        }
        return text;
    }
    if (value.is_string()) {
        return xml_escape(value.get<std::string>());
    }
    return value.dump();  // numbers and booleans as they read
}

// A Query form (Actions.member.1.ForwardConfig.TargetGroups.member.2.Weight=10) under
// `prefix` as JSON: "member.N" makes a list. Values stay strings.
json from_query(const std::map<std::string, std::string>& form, const std::string& prefix) {
    json root = json::object();
    bool any = false;
    for (const auto& [key, value] : form) {
        if (key.rfind(prefix + ".", 0) != 0) {
            continue;
        }
        any = true;
        json* node = &root;
        std::string rest = key.substr(prefix.size() + 1);
        std::vector<std::string> parts;
        for (std::size_t start = 0;;) {
            const auto dot = rest.find('.', start);
            parts.push_back(rest.substr(start, dot - start));
            if (dot == std::string::npos) {
                break;
            }
            start = dot + 1;
        }
        // The prefix itself may be a list ("Actions.member").
        for (std::size_t index = 0; index < parts.size(); ++index) {
            const std::string& part = parts[index];
            const bool last = index + 1 == parts.size();
            if (part == "member" && !last) {
                const std::size_t position = std::stoul(parts[++index]);
                if (position < 1 || position > 100) {
                    throw_error(400, "ValidationError", "list index out of range in " + key);
                }
                if (!node->is_object() || !node->contains("member")) {
                    (*node)["member"] = json::object();
                }
                node = &(*node)["member"][std::to_string(position)];
                if (index + 1 == parts.size()) {
                    *node = value;
                }
                continue;
            }
            if (last) {
                (*node)[part] = value;
            } else {
                node = &(*node)[part];
            }
        }
    }
    if (!any) {
        return nullptr;
    }
    // {"member": {"1": x, "2": y}} -> [x, y], recursively.
    std::function<json(const json&)> lists = [&](const json& node) -> json {
        if (!node.is_object()) {
            return node;
        }
        if (node.size() == 1 && node.contains("member")) {
            json list = json::array();
            for (std::size_t position = 1; node["member"].contains(std::to_string(position));
                 ++position) {
                list.push_back(lists(node["member"][std::to_string(position)]));
            }
            if (list.size() != node["member"].size()) {
                throw_error(400, "ValidationError", "list members must be numbered from 1");
            }
            return list;
        }
        json result = json::object();
        for (const auto& [name, item] : node.items()) {
            result[name] = lists(item);
        }
        return result;
    };
    return lists(root);
}

int to_int(const json& value, const std::string& field) {
    try {
        if (value.is_number_integer()) {
            return value.get<int>();
        }
        std::size_t used = 0;
        const std::string text = value.get<std::string>();
        const int number = std::stoi(text, &used);
        if (used != text.size()) {
            throw std::invalid_argument(text);
        }
        return number;
    } catch (const std::exception&) {
        throw_error(400, "ValidationError", field + " must be an integer");
    }
}

std::string new_token(std::atomic<int>& counter) {
    static const char* const hex = "0123456789abcdef";
    std::string token = "3f0c";
    int value = ++counter;
    for (int index = 0; index < 8; ++index) {
        token += hex[(value * 7919 + index * 104729) % 16];
    }
    return token + "-" + std::to_string(value) + "-4b1d-9a7e-5c2f8d6e1a0b";
}

}  // namespace

struct AwsEmulator::State {
    AwsEmulatorOptions options;
    mutable std::mutex mutex;
    json ecs = json::object();            // "cluster/service" -> service document
    json autoscaling = json::object();    // "service/cluster/service" -> scalable target
    json acls = json::object();           // "scope/name/id" -> {"WebACL": ..., "LockToken": ...}
    json target_groups = json::object();  // arn -> name
    json listeners = json::object();      // arn -> {"ListenerArn", "DefaultActions"}
    json rules = json::object();          // arn -> rule
    std::map<std::string, int> write_counts;
    std::map<std::string, std::function<void()>> interferences;
    std::atomic<int> token_counter{0};
    std::atomic<int> request_counter{0};
    FaultInjector faults{
        [this](int status, const std::string& operation, const std::string& message) {
            const std::string code = status == 429   ? "ThrottlingException"
                                     : status >= 500 ? "ServiceUnavailable"
                                                     : "ValidationException";
            return error_reply(AwsError{status, code, message}, operation);
        }};
    std::unique_ptr<HttpServer> server;

    std::string arn(const std::string& service, const std::string& resource) const {
        return "arn:aws:" + service + ":" + options.region + ":" + options.account + ":" + resource;
    }

    std::string request_id() {
        return "b1e2c3d4-0000-4000-8000-" + std::to_string(100000000000 + ++request_counter);
    }

    HttpReply error_reply(const AwsError& error, const std::string& operation) {
        if (query_operations.contains(operation)) {
            return {error.status,
                    {{"Content-Type", "text/xml"}},
                    "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/"
                    "2015-12-01/\"><Error><Type>" +
                        std::string(error.status >= 500 ? "Receiver" : "Sender") + "</Type><Code>" +
                        error.code + "</Code><Message>" + xml_escape(error.message) +
                        "</Message></Error><RequestId>" + request_id() +
                        "</RequestId></ErrorResponse>",
                    false};
        }
        return {error.status,
                {{"Content-Type", "application/x-amz-json-1.1"},
                 {"x-amzn-RequestId", request_id()},
                 {"X-Amzn-Errortype", error.code}},
                json{{"__type", error.code}, {"message", error.message}}.dump(),
                false};
    }

    HttpReply handle(const HttpExchange& request) {
        std::string operation;
        std::string service;
        json input;
        std::map<std::string, std::string> form;
        try {
            if (request.method != "POST" ||
                request.target.substr(0, request.target.find('?')) != "/") {
                throw_error(404, "UnknownOperationException", "only POST / is served");
            }
            auto target = request.headers.find("x-amz-target");
            if (target != request.headers.end()) {
                const auto dot = target->second.find('.');
                const std::string prefix = target->second.substr(0, dot);
                operation = dot == std::string::npos ? "" : target->second.substr(dot + 1);
                service = prefix == "AmazonEC2ContainerServiceV20141113" ? "ecs"
                          : prefix == "AnyScaleFrontendService"          ? "application-autoscaling"
                          : prefix == "AWSWAF_20190729"                  ? "wafv2"
                                                                         : "";
                if (service.empty()) {
                    throw_error(400, "UnknownOperationException",
                                "unknown X-Amz-Target " + target->second);
                }
                auto type = request.headers.find("content-type");
                if (type == request.headers.end() ||
                    type->second.rfind("application/x-amz-json-1.1", 0) != 0) {
                    throw_error(400, "SerializationException",
                                "Content-Type must be application/x-amz-json-1.1");
                }
                input = json::parse(request.body.empty() ? "{}" : request.body, nullptr, false);
                if (!input.is_object()) {
                    throw_error(400, "SerializationException", "the body is not a JSON object");
                }
            } else {
                form = parse_url_encoded(request.body);
                operation = form.count("Action") ? form["Action"] : "";
                service = "elasticloadbalancing";
                if (!query_operations.contains(operation)) {
                    throw_error(400, "InvalidAction",
                                "The action " + operation + " is not valid for this web service.");
                }
                if (form["Version"] != "2015-12-01") {
                    throw_error(400, "InvalidParameterValue",
                                "Version must be 2015-12-01, not \"" + form["Version"] + "\"");
                }
            }
            SigV4Expectation expected;
            expected.secret_keys = {{options.access_key_id, options.secret_access_key}};
            expected.region = options.region;
            expected.service = service;
            expected.now = std::chrono::system_clock::now();
            if (auto refused = verify_sigv4(
                    {request.method, request.target, request.headers, request.body}, expected)) {
                std::string code = refused->code;
                if (query_operations.contains(operation) && code == "InvalidSignatureException") {
                    code = "SignatureDoesNotMatch";
                }
                throw_error(403, code, refused->message);
            }
            std::function<void()> interference;
            {
                std::lock_guard lock(mutex);
                auto found = interferences.find(operation);
                if (found != interferences.end()) {
                    interference = std::move(found->second);
                    interferences.erase(found);
                }
            }
            if (interference) {
                interference();
            }
            if (auto injected = faults.before(operation)) {
                return *injected;
            }
            HttpReply reply;
            {
                std::lock_guard lock(mutex);
                reply = query_operations.contains(operation) ? query(operation, form)
                                                             : json_operation(operation, input);
            }
            if (reply.status == 200 && is_write(operation) && faults.drop_after(operation)) {
                reply = {};
                reply.drop_connection = true;
            }
            return reply;
        } catch (const AwsError& error) {
            return error_reply(error, operation);
        } catch (const json::exception& error) {
            return error_reply({400, "SerializationException", error.what()}, operation);
        }
    }

    static bool is_write(const std::string& operation) {
        return operation == "UpdateService" || operation == "RegisterScalableTarget" ||
               operation == "UpdateWebACL" || operation == "ModifyRule" ||
               operation == "ModifyListener";
    }

    HttpReply json_answer(const json& body) {
        return {
            200,
            {{"Content-Type", "application/x-amz-json-1.1"}, {"x-amzn-RequestId", request_id()}},
            body.dump(),
            false};
    }

    static std::string required_string(const json& input, const char* field,
                                       const char* code = "InvalidParameterException") {
        if (!input.contains(field) || !input[field].is_string() ||
            input[field].get<std::string>().empty()) {
            throw_error(400, code, std::string(field) + " is required");
        }
        return input[field].get<std::string>();
    }

    HttpReply json_operation(const std::string& operation, const json& input) {
        if (operation == "DescribeServices") {
            return describe_services(input);
        }
        if (operation == "UpdateService") {
            return update_service(input);
        }
        if (operation == "DescribeScalableTargets") {
            return describe_scalable_targets(input);
        }
        if (operation == "RegisterScalableTarget") {
            return register_scalable_target(input);
        }
        if (operation == "GetWebACL") {
            return get_web_acl(input);
        }
        if (operation == "UpdateWebACL") {
            return update_web_acl(input);
        }
        throw_error(400, "UnknownOperationException", "unknown operation " + operation);
    }

    // ---- ECS --------------------------------------------------------------------------

    static std::string cluster_name(const json& input) {
        std::string cluster = input.value("cluster", "default");
        const auto slash = cluster.rfind('/');  // a cluster ARN names it after the last /
        return slash == std::string::npos ? cluster : cluster.substr(slash + 1);
    }

    HttpReply describe_services(const json& input) {
        if (!input.contains("services") || !input["services"].is_array() ||
            input["services"].empty() || input["services"].size() > 10) {
            throw_error(400, "InvalidParameterException",
                        "services: between 1 and 10 service names are required");
        }
        const std::string cluster = cluster_name(input);
        json services = json::array();
        json failures = json::array();
        for (const json& name : input["services"]) {
            std::string service = name.get<std::string>();
            service = service.substr(
                service.rfind('/') == std::string::npos ? 0 : service.rfind('/') + 1);
            const std::string key = cluster + "/" + service;
            if (ecs.contains(key)) {
                services.push_back(ecs[key]);
            } else {
                failures.push_back({{"arn", arn("ecs", "service/" + key)}, {"reason", "MISSING"}});
            }
        }
        return json_answer({{"services", services}, {"failures", failures}});
    }

    HttpReply update_service(const json& input) {
        const std::string service = required_string(input, "service");
        const std::string key = cluster_name(input) + "/" + service;
        if (!ecs.contains(key)) {
            throw_error(400, "ServiceNotFoundException", "Service not found.");
        }
        json& document = ecs[key];
        if (input.contains("desiredCount")) {
            if (!input["desiredCount"].is_number_integer() ||
                input["desiredCount"].get<int>() < 0) {
                throw_error(400, "InvalidParameterException",
                            "desiredCount must be a non-negative integer");
            }
            document["desiredCount"] = input["desiredCount"];
            document["runningCount"] = input["desiredCount"];
        }
        ++write_counts["UpdateService"];
        return json_answer({{"service", document}});
    }

    // ---- Application Auto Scaling ----------------------------------------------------

    HttpReply describe_scalable_targets(const json& input) {
        if (required_string(input, "ServiceNamespace", "ValidationException") != "ecs") {
            return json_answer({{"ScalableTargets", json::array()}});
        }
        json found = json::array();
        for (const auto& [resource, target] : autoscaling.items()) {
            const bool wanted = !input.contains("ResourceIds") ||
                                std::find(input["ResourceIds"].begin(), input["ResourceIds"].end(),
                                          resource) != input["ResourceIds"].end();
            if (wanted) {
                found.push_back(target);
            }
        }
        return json_answer({{"ScalableTargets", found}});
    }

    HttpReply register_scalable_target(const json& input) {
        required_string(input, "ServiceNamespace", "ValidationException");
        const std::string resource = required_string(input, "ResourceId", "ValidationException");
        if (required_string(input, "ScalableDimension", "ValidationException") !=
            "ecs:service:DesiredCount") {
            throw_error(400, "ValidationException", "unsupported ScalableDimension");
        }
        if (!autoscaling.contains(resource)) {
            throw_error(400, "ObjectNotFoundException",
                        "No scalable target registered for " + resource);
        }
        json& target = autoscaling[resource];
        const int min_capacity = input.value("MinCapacity", target["MinCapacity"].get<int>());
        const int max_capacity = input.value("MaxCapacity", target["MaxCapacity"].get<int>());
        if (min_capacity < 0 || max_capacity < min_capacity) {
            throw_error(400, "ValidationException",
                        "MinCapacity must be at least 0 and at most MaxCapacity");
        }
        target["MinCapacity"] = min_capacity;
        target["MaxCapacity"] = max_capacity;
        // As Auto Scaling does: the service's desired count is brought into the range.
        const std::string key = resource.substr(std::string("service/").size());
        if (ecs.contains(key)) {
            const int desired = ecs[key]["desiredCount"].get<int>();
            const int clamped = std::clamp(desired, min_capacity, max_capacity);
            ecs[key]["desiredCount"] = clamped;
            ecs[key]["runningCount"] = clamped;
        }
        ++write_counts["RegisterScalableTarget"];
        return json_answer(
            {{"ScalableTargetARN", arn("application-autoscaling", "scalable-target/" + resource)}});
    }

    // ---- WAFv2 -------------------------------------------------------------------------

    json& find_acl(const json& input) {
        const std::string key = required_string(input, "Scope", "WAFInvalidParameterException") +
                                "/" +
                                required_string(input, "Name", "WAFInvalidParameterException") +
                                "/" + required_string(input, "Id", "WAFInvalidParameterException");
        if (!acls.contains(key)) {
            throw_error(400, "WAFNonexistentItemException",
                        "AWS WAF couldn't perform the operation because your resource doesn't "
                        "exist.");
        }
        return acls[key];
    }

    HttpReply get_web_acl(const json& input) {
        const json& entry = find_acl(input);
        return json_answer({{"WebACL", entry["WebACL"]}, {"LockToken", entry["LockToken"]}});
    }

    static void check_rules(const json& new_rules) {
        if (!new_rules.is_array()) {
            throw_error(400, "WAFInvalidParameterException", "Rules must be a list");
        }
        std::set<std::string> names;
        std::set<int> priorities;
        for (const json& rule : new_rules) {
            for (const char* field : {"Name", "Priority", "Statement", "VisibilityConfig"}) {
                if (!rule.contains(field)) {
                    throw_error(
                        400, "WAFInvalidParameterException",
                        std::string("Error reason: A required field is missing, field: ") + field);
                }
            }
            if (!rule.contains("Action") && !rule.contains("OverrideAction")) {
                throw_error(400, "WAFInvalidParameterException",
                            "Error reason: A rule needs an Action or OverrideAction");
            }
            if (!names.insert(rule["Name"].get<std::string>()).second ||
                !priorities.insert(rule["Priority"].get<int>()).second) {
                throw_error(400, "WAFDuplicateItemException",
                            "rule names and priorities must be unique");
            }
            const json& statement = rule["Statement"];
            if (statement.contains("RateBasedStatement")) {
                const json& rate = statement["RateBasedStatement"];
                if (!rate.contains("Limit") || !rate["Limit"].is_number_integer() ||
                    rate["Limit"].get<long long>() < 10 ||
                    rate["Limit"].get<long long>() > 2000000000) {
                    throw_error(400, "WAFInvalidParameterException",
                                "Error reason: Limit must be between 10 and 2000000000, field: "
                                "RATE_LIMIT");
                }
                if (rate.contains("EvaluationWindowSec")) {
                    const int window = rate["EvaluationWindowSec"].get<int>();
                    if (window != 60 && window != 120 && window != 300 && window != 600) {
                        throw_error(400, "WAFInvalidParameterException",
                                    "EvaluationWindowSec must be 60, 120, 300 or 600");
                    }
                }
            }
        }
    }

    HttpReply update_web_acl(const json& input) {
        static const std::set<std::string> allowed{"Name",
                                                   "Scope",
                                                   "Id",
                                                   "DefaultAction",
                                                   "Description",
                                                   "Rules",
                                                   "VisibilityConfig",
                                                   "LockToken",
                                                   "CustomResponseBodies",
                                                   "CaptchaConfig",
                                                   "ChallengeConfig",
                                                   "TokenDomains",
                                                   "AssociationConfig",
                                                   "DataProtectionConfig"};
        for (const auto& [field, value] : input.items()) {
            if (!allowed.contains(field)) {
                throw_error(400, "SerializationException",
                            "Unrecognized field \"" + field + "\" in UpdateWebACLRequest");
            }
        }
        json& entry = find_acl(input);
        for (const char* field : {"DefaultAction", "VisibilityConfig"}) {
            if (!input.contains(field)) {
                throw_error(
                    400, "WAFInvalidParameterException",
                    std::string("Error reason: A required field is missing, field: ") + field);
            }
        }
        if (required_string(input, "LockToken", "WAFInvalidParameterException") !=
            entry["LockToken"].get<std::string>()) {
            throw_error(400, "WAFOptimisticLockException",
                        "AWS WAF couldn't save your changes because someone changed the resource "
                        "after you started to edit it. Reapply your changes.");
        }
        const json new_rules = input.value("Rules", json::array());
        check_rules(new_rules);
        json& acl = entry["WebACL"];
        acl["DefaultAction"] = input["DefaultAction"];
        acl["VisibilityConfig"] = input["VisibilityConfig"];
        acl["Rules"] = new_rules;  // replaced whole, as UpdateWebACL does
        acl["Description"] = input.value("Description", "");
        entry["LockToken"] = new_token(token_counter);
        ++write_counts["UpdateWebACL"];
        return json_answer({{"NextLockToken", entry["LockToken"]}});
    }

    // ---- ELBv2 -------------------------------------------------------------------------

    HttpReply query_answer(const std::string& operation, const json& result) {
        return {200,
                {{"Content-Type", "text/xml"}},
                "<" + operation +
                    "Response xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">"
                    "<" +
                    operation + "Result>" + to_xml(result) + "</" + operation +
                    "Result><ResponseMetadata><RequestId>" + request_id() +
                    "</RequestId></ResponseMetadata></" + operation + "Response>",
                false};
    }

    json checked_actions(const json& actions, const std::string& field) {
        if (!actions.is_array() || actions.empty()) {
            throw_error(400, "ValidationError", field + ".member.1 is required");
        }
        json checked = json::array();
        for (const json& action : actions) {
            if (action.value("Type", "") != "forward") {
                throw_error(400, "ValidationError",
                            "this emulator models forward actions only, not \"" +
                                action.value("Type", "") + "\"");
            }
            json result{{"Type", "forward"}};
            if (action.contains("Order")) {
                result["Order"] = to_int(action["Order"], field + ".Order");
            }
            json groups = json::array();
            if (action.contains("ForwardConfig") &&
                action["ForwardConfig"].contains("TargetGroups")) {
                for (const json& group : action["ForwardConfig"]["TargetGroups"]) {
                    const std::string target_group = group.value("TargetGroupArn", "");
                    if (!target_groups.contains(target_group)) {
                        throw_error(400, "TargetGroupNotFound",
                                    "Target groups '" + target_group + "' not found");
                    }
                    const int weight =
                        group.contains("Weight") ? to_int(group["Weight"], "Weight") : 1;
                    if (weight < 0 || weight > 999) {
                        throw_error(400, "ValidationError", "Weight must be between 0 and 999");
                    }
                    groups.push_back({{"TargetGroupArn", target_group}, {"Weight", weight}});
                }
            } else if (action.contains("TargetGroupArn")) {
                groups.push_back({{"TargetGroupArn", action["TargetGroupArn"]}, {"Weight", 1}});
            }
            if (groups.empty()) {
                throw_error(400, "ValidationError", "a forward action needs a target group");
            }
            result["ForwardConfig"] = {
                {"TargetGroups", groups},
                {"TargetGroupStickinessConfig",
                 {{"Enabled", action.contains("ForwardConfig") && action["ForwardConfig"].contains(
                                                                      "TargetGroupStickinessConfig")
                                  ? action["ForwardConfig"]["TargetGroupStickinessConfig"].value(
                                        "Enabled", "false") == "true"
                                  : false}}}};
            if (groups.size() == 1) {
                result["TargetGroupArn"] = groups[0]["TargetGroupArn"];
            }
            checked.push_back(result);
        }
        return checked;
    }

    HttpReply query(const std::string& operation, const std::map<std::string, std::string>& form) {
        auto field = [&](const std::string& name) {
            auto found = form.find(name);
            if (found == form.end() || found->second.empty()) {
                throw_error(400, "ValidationError", name + " is required");
            }
            return found->second;
        };
        if (operation == "DescribeRules") {
            json found = json::array();
            if (form.count("ListenerArn")) {
                const std::string listener = form.at("ListenerArn");
                if (!listeners.contains(listener)) {
                    throw_error(400, "ListenerNotFound", "One or more listeners not found");
                }
                for (const auto& [rule_arn, rule] : rules.items()) {
                    if (rule["ListenerArn"] == listener) {
                        found.push_back(rule_view(rule));
                    }
                }
            } else {
                const json arns = from_query(form, "RuleArns");
                if (!arns.is_array()) {
                    throw_error(400, "ValidationError", "ListenerArn or RuleArns is required");
                }
                for (const json& rule_arn : arns) {
                    if (!rules.contains(rule_arn.get<std::string>())) {
                        throw_error(400, "RuleNotFound", "One or more rules not found");
                    }
                    found.push_back(rule_view(rules[rule_arn.get<std::string>()]));
                }
            }
            return query_answer(operation, {{"Rules", found}});
        }
        if (operation == "DescribeListeners") {
            const json arns = from_query(form, "ListenerArns");
            json found = json::array();
            for (const json& listener_arn : arns.is_array() ? arns : json::array()) {
                if (!listeners.contains(listener_arn.get<std::string>())) {
                    throw_error(400, "ListenerNotFound", "One or more listeners not found");
                }
                found.push_back(listeners[listener_arn.get<std::string>()]);
            }
            return query_answer(operation, {{"Listeners", found}});
        }
        if (operation == "ModifyRule") {
            const std::string rule_arn = field("RuleArn");
            if (!rules.contains(rule_arn)) {
                throw_error(400, "RuleNotFound", "One or more rules not found");
            }
            if (rules[rule_arn]["IsDefault"].get<bool>()) {
                throw_error(
                    400, "OperationNotPermitted",
                    "Default rule '" + rule_arn + "' cannot be modified; use ModifyListener");
            }
            rules[rule_arn]["Actions"] = checked_actions(from_query(form, "Actions"), "Actions");
            ++write_counts["ModifyRule"];
            return query_answer(operation, {{"Rules", json::array({rule_view(rules[rule_arn])})}});
        }
        // ModifyListener
        const std::string listener_arn = field("ListenerArn");
        if (!listeners.contains(listener_arn)) {
            throw_error(400, "ListenerNotFound", "One or more listeners not found");
        }
        if (form.count("DefaultActions.member.1.Type")) {
            listeners[listener_arn]["DefaultActions"] =
                checked_actions(from_query(form, "DefaultActions"), "DefaultActions");
        }
        ++write_counts["ModifyListener"];
        return query_answer(operation, {{"Listeners", json::array({listeners[listener_arn]})}});
    }

    static json rule_view(const json& rule) {
        json view = rule;
        view.erase("ListenerArn");
        return view;
    }
};

AwsEmulator::AwsEmulator(AwsEmulatorOptions options) : state_(std::make_unique<State>()) {
    if (options.access_key_id.empty() || options.secret_access_key.empty()) {
        throw std::invalid_argument("the AWS emulator needs an access key id and secret");
    }
    state_->options = std::move(options);
    State* state = state_.get();
    state_->server =
        serve_emulator(state_->options.host, state_->options.port, state_->faults,
                       [state](const HttpExchange& request) { return state->handle(request); });
}

AwsEmulator::~AwsEmulator() {
    state_->server->stop();
}

std::string AwsEmulator::url() const {
    return state_->server->url();
}

FaultInjector& AwsEmulator::faults() {
    return state_->faults;
}

void AwsEmulator::add_ecs_service(const std::string& cluster, const std::string& service,
                                  int desired) {
    std::lock_guard lock(state_->mutex);
    state_->ecs[cluster + "/" + service] = {
        {"serviceArn", state_->arn("ecs", "service/" + cluster + "/" + service)},
        {"serviceName", service},
        {"clusterArn", state_->arn("ecs", "cluster/" + cluster)},
        {"status", "ACTIVE"},
        {"desiredCount", desired},
        {"runningCount", desired},
        {"pendingCount", 0},
        {"launchType", "FARGATE"},
        {"taskDefinition", state_->arn("ecs", "task-definition/" + service + ":7")},
        {"deployments", json::array()}};
}

void AwsEmulator::add_scalable_target(const std::string& cluster, const std::string& service,
                                      int min_capacity, int max_capacity) {
    std::lock_guard lock(state_->mutex);
    const std::string resource = "service/" + cluster + "/" + service;
    state_->autoscaling[resource] = {{"ServiceNamespace", "ecs"},
                                     {"ResourceId", resource},
                                     {"ScalableDimension", "ecs:service:DesiredCount"},
                                     {"MinCapacity", min_capacity},
                                     {"MaxCapacity", max_capacity},
                                     {"RoleARN", state_->arn("iam", "role/ecsAutoscaleRole")},
                                     {"SuspendedState",
                                      {{"DynamicScalingInSuspended", false},
                                       {"DynamicScalingOutSuspended", false},
                                       {"ScheduledScalingSuspended", false}}}};
}

json AwsEmulator::ecs_service(const std::string& cluster, const std::string& service) const {
    std::lock_guard lock(state_->mutex);
    return state_->ecs.value(cluster + "/" + service, json());
}

json AwsEmulator::scalable_target(const std::string& cluster, const std::string& service) const {
    std::lock_guard lock(state_->mutex);
    return state_->autoscaling.value("service/" + cluster + "/" + service, json());
}

void AwsEmulator::set_desired_count(const std::string& cluster, const std::string& service,
                                    int desired) {
    std::lock_guard lock(state_->mutex);
    state_->ecs[cluster + "/" + service]["desiredCount"] = desired;
    state_->ecs[cluster + "/" + service]["runningCount"] = desired;
}

std::string AwsEmulator::add_web_acl(const std::string& scope, const std::string& name,
                                     const json& rules) {
    std::lock_guard lock(state_->mutex);
    std::string id =
        "a1b2c3d4-5678-90ab-cdef-" + std::to_string(100000000000 + state_->acls.size());
    state_->acls[scope + "/" + name + "/" + id] = {
        {"WebACL",
         {{"Name", name},
          {"Id", id},
          {"ARN", state_->arn("wafv2", (scope == "CLOUDFRONT" ? "global" : "regional") +
                                           std::string("/webacl/") + name + "/" + id)},
          {"DefaultAction", {{"Allow", json::object()}}},
          {"Description", ""},
          {"Rules", rules},
          {"VisibilityConfig",
           {{"SampledRequestsEnabled", true},
            {"CloudWatchMetricsEnabled", true},
            {"MetricName", name}}},
          {"Capacity", 2},
          {"ManagedByFirewallManager", false},
          {"LabelNamespace", "awswaf:" + state_->options.account + ":webacl:" + name + ":"}}},
        {"LockToken", new_token(state_->token_counter)}};
    return id;
}

json AwsEmulator::web_acl(const std::string& scope, const std::string& name,
                          const std::string& id) const {
    std::lock_guard lock(state_->mutex);
    return state_->acls.value(scope + "/" + name + "/" + id, json());
}

void AwsEmulator::set_rate_limit(const std::string& scope, const std::string& name,
                                 const std::string& id, const std::string& rule, long long limit) {
    std::lock_guard lock(state_->mutex);
    json& entry = state_->acls[scope + "/" + name + "/" + id];
    for (json& candidate : entry["WebACL"]["Rules"]) {
        if (candidate["Name"] == rule) {
            candidate["Statement"]["RateBasedStatement"]["Limit"] = limit;
        }
    }
    entry["LockToken"] = new_token(state_->token_counter);
}

namespace {

json forward_to(const std::map<std::string, int>& weights) {
    json groups = json::array();
    for (const auto& [target_group, weight] : weights) {
        groups.push_back({{"TargetGroupArn", target_group}, {"Weight", weight}});
    }
    return json::array(
        {{{"Type", "forward"},
          {"Order", 1},
          {"ForwardConfig",
           {{"TargetGroups", groups}, {"TargetGroupStickinessConfig", {{"Enabled", false}}}}}}});
}

}  // namespace

std::string AwsEmulator::add_target_group(const std::string& name) {
    std::lock_guard lock(state_->mutex);
    std::string arn =
        state_->arn("elasticloadbalancing",
                    "targetgroup/" + name + "/" +
                        std::to_string(7300000000000000 + state_->target_groups.size()));
    state_->target_groups[arn] = name;
    return arn;
}

std::string AwsEmulator::add_listener(const std::string& load_balancer,
                                      const std::map<std::string, int>& weights) {
    std::lock_guard lock(state_->mutex);
    const std::string suffix = "app/" + load_balancer + "/50dc6c495c0c9188/" +
                               std::to_string(9600000000000000 + state_->listeners.size());
    std::string listener = state_->arn("elasticloadbalancing", "listener/" + suffix);
    state_->listeners[listener] = {{"ListenerArn", listener},
                                   {"Port", 443},
                                   {"Protocol", "HTTPS"},
                                   {"DefaultActions", forward_to(weights)}};
    return listener;
}

std::string AwsEmulator::add_rule(const std::string& listener_arn, int priority,
                                  const std::map<std::string, int>& weights) {
    std::lock_guard lock(state_->mutex);
    const std::string suffix = listener_arn.substr(listener_arn.find("listener/") + 9);
    std::string rule =
        state_->arn("elasticloadbalancing",
                    "listener-rule/" + suffix + "/" + std::to_string(4100000000000000 + priority));
    state_->rules[rule] = {
        {"RuleArn", rule},
        {"ListenerArn", listener_arn},
        {"Priority", std::to_string(priority)},
        {"IsDefault", false},
        {"Conditions",
         json::array({{{"Field", "path-pattern"}, {"Values", json::array({"/api/*"})}}})},
        {"Actions", forward_to(weights)}};
    return rule;
}

std::map<std::string, int> AwsEmulator::weights(const std::string& arn) const {
    std::lock_guard lock(state_->mutex);
    const json& actions = state_->rules.contains(arn) ? state_->rules[arn]["Actions"]
                                                      : state_->listeners[arn]["DefaultActions"];
    std::map<std::string, int> result;
    for (const json& group : actions[0]["ForwardConfig"]["TargetGroups"]) {
        result[group["TargetGroupArn"]] = group["Weight"].get<int>();
    }
    return result;
}

void AwsEmulator::before_next(const std::string& operation, std::function<void()> change) {
    std::lock_guard lock(state_->mutex);
    state_->interferences[operation] = std::move(change);
}

int AwsEmulator::writes(const std::string& operation) const {
    std::lock_guard lock(state_->mutex);
    auto found = state_->write_counts.find(operation);
    return found == state_->write_counts.end() ? 0 : found->second;
}

}  // namespace mitigate
