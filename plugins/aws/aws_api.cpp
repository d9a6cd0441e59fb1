#include "plugins/aws/aws_api.h"

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>

#include <sstream>

namespace mitigate::plugin {
namespace {

// AWS's error code, as its SDKs read it: "aws.protocoljson#ThrottlingException:http://..."
// -> "ThrottlingException".
std::string clean_code(std::string code) {
    const auto hash = code.find('#');
    if (hash != std::string::npos) {
        code = code.substr(hash + 1);
    }
    return code.substr(0, code.find(':'));
}

[[noreturn]] void fail_aws(int http_status, const std::string& code, const std::string& message) {
    mitigate_status status = MITIGATE_PROVIDER;
    if (http_status == 429 || http_status >= 500 || code == "ThrottlingException" ||
        code == "Throttling" || code == "TooManyRequestsException" ||
        code == "RequestLimitExceeded" || code == "ServiceUnavailable" ||
        code == "ServerException" || code == "InternalFailure") {
        status = MITIGATE_UNAVAILABLE;
    } else if (code == "WAFOptimisticLockException") {
        status = MITIGATE_CONFLICT;
    } else if (code.find("NotFound") != std::string::npos ||
               code == "WAFNonexistentItemException" || code == "ServiceNotActiveException") {
        status = MITIGATE_INVALID;
    }
    throw AwsFailure(status, code.empty() ? "HTTP " + std::to_string(http_status) : code,
                     message.empty() ? "(no message)" : message);
}

// XML as the Query protocol shapes it: elements with children are objects, a run of
// <member> is a list, text is a string.
json from_tree(const boost::property_tree::ptree& tree) {
    if (tree.empty()) {
        return tree.data();
    }
    bool members = false;
    for (const auto& [name, child] : tree) {
        members = members || name == "member";
    }
    if (members) {
        json list = json::array();
        for (const auto& [name, child] : tree) {
            if (name == "member") {
                list.push_back(from_tree(child));
            }
        }
        return list;
    }
    json object = json::object();
    for (const auto& [name, child] : tree) {
        if (name != "<xmlattr>" && name != "<xmlcomment>") {
            object[name] = from_tree(child);
        }
    }
    return object;
}

json parse_xml(const std::string& body) {
    boost::property_tree::ptree tree;
    std::istringstream input(body);
    try {
        boost::property_tree::read_xml(input, tree,
                                       boost::property_tree::xml_parser::trim_whitespace);
    } catch (const boost::property_tree::xml_parser_error& error) {
        fail_provider(std::string("ELBv2 answered with malformed XML: ") + error.what());
    }
    return from_tree(tree);
}

}  // namespace

AwsSettings read_aws_settings(const json& settings) {
    AwsSettings result;
    result.region = settings.value("region", "");
    result.endpoint = settings.value("endpoint", "");
    while (!result.endpoint.empty() && result.endpoint.back() == '/') {
        result.endpoint.pop_back();
    }
    result.credential = settings.value("credential", "");
    result.ecs_cluster = settings.value("ecs_cluster", "default");
    return result;
}

void append_query(QueryParameters& parameters, const std::string& prefix, const json& value) {
    if (value.is_object()) {
        for (const auto& [name, item] : value.items()) {
            append_query(parameters, prefix + "." + name, item);
        }
    } else if (value.is_array()) {
        for (std::size_t index = 0; index < value.size(); ++index) {
            append_query(parameters, prefix + ".member." + std::to_string(index + 1), value[index]);
        }
    } else if (value.is_string()) {
        parameters.emplace_back(prefix, value.get<std::string>());
    } else if (!value.is_null()) {
        parameters.emplace_back(prefix, value.dump());
    }
}

std::string AwsApi::endpoint(const std::string& service) const {
    if (!settings_.endpoint.empty()) {
        return settings_.endpoint + "/";
    }
    return "https://" + service + "." + settings_.region + ".amazonaws.com/";
}

json AwsApi::call_json(const std::string& service, const std::string& target_prefix,
                       const std::string& operation, const json& input, CallKind kind) const {
    HttpRequest request;
    request.method = "POST";
    request.url = endpoint(service);
    request.headers = {{"Content-Type", "application/x-amz-json-1.1"},
                       {"X-Amz-Target", target_prefix + "." + operation}};
    request.body = input.dump();
    request.credential = settings_.credential;
    request.signing_service = service;
    request.idempotent = kind == CallKind::read;
    const HttpResponse response = host_.send(request);
    json body = json::parse(response.body.empty() ? "{}" : response.body, nullptr, false);
    if (response.status >= 200 && response.status < 300) {
        if (body.is_discarded()) {
            fail_provider(operation + ": the answer is not JSON");
        }
        return body;
    }
    std::string code;
    std::string message;
    if (body.is_object()) {
        code = body.value("__type", body.value("code", ""));
        message = body.value("message", body.value("Message", ""));
    }
    if (code.empty()) {
        auto header = response.headers.find("x-amzn-errortype");
        code = header != response.headers.end() ? header->second : "";
    }
    fail_aws(response.status, clean_code(code), message);
}

json AwsApi::call_elbv2(const std::string& operation, const QueryParameters& parameters,
                        CallKind kind) const {
    std::string body = "Action=" + url_encode(operation) + "&Version=2015-12-01";
    for (const auto& [name, value] : parameters) {
        body += "&" + url_encode(name) + "=" + url_encode(value);
    }
    HttpRequest request;
    request.method = "POST";
    request.url = endpoint("elasticloadbalancing");
    request.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    request.body = body;
    request.credential = settings_.credential;
    request.signing_service = "elasticloadbalancing";
    request.idempotent = kind == CallKind::read;
    const HttpResponse response = host_.send(request);
    if (response.status >= 200 && response.status < 300) {
        const json document = parse_xml(response.body);
        const std::string root = operation + "Response";
        const std::string result = operation + "Result";
        if (!document.contains(root) || !document[root].is_object() ||
            !document[root].contains(result)) {
            fail_provider(operation + ": the answer has no <" + result + ">");
        }
        return document[root][result];
    }
    std::string code;
    std::string message;
    if (response.body.find("<ErrorResponse") != std::string::npos) {
        const json document = parse_xml(response.body);
        const json error = document.value("ErrorResponse", json::object()).value("Error", json());
        if (error.is_object()) {
            code = error.value("Code", "");
            message = error.value("Message", "");
        }
    }
    fail_aws(response.status, code, message);
}

}  // namespace mitigate::plugin
