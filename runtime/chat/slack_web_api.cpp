#include "runtime/chat/slack_web_api.h"

#include <charconv>

#include "runtime/core/json_reader.h"
#include "runtime/server/http_client.h"

namespace mitigate {
namespace {

using nlohmann::json;

std::string origin_of(const std::string& url) {
    const auto scheme = url.find("://");
    if (scheme == std::string::npos) {
        return url;
    }
    const auto path = url.find('/', scheme + 3);
    return path == std::string::npos ? url : url.substr(0, path);
}

SlackCallResult result_of(const HttpClientResponse& response) {
    SlackCallResult result;
    if (response.status == 0) {
        result.error = "no answer: " + response.error;
        result.retryable = true;
        return result;
    }
    if (response.status == 429) {
        result.error = "ratelimited";
        result.retryable = true;
        const auto header = response.headers.find("retry-after");
        long long seconds = 1;
        if (header != response.headers.end()) {
            const std::string& text = header->second;
            std::from_chars(text.data(), text.data() + text.size(), seconds);
        }
        result.retry_after = std::chrono::seconds(std::max(seconds, 0LL));
        return result;
    }
    if (response.status >= 500) {
        result.error = "HTTP " + std::to_string(response.status);
        result.retryable = true;
        return result;
    }
    return result;
}

}  // namespace

SlackWebApi::SlackWebApi(std::string api_url, SecretReference bot_token,
                         std::chrono::milliseconds timeout)
    : api_url_(std::move(api_url)),
      api_origin_(origin_of(api_url_)),
      bot_token_(std::move(bot_token)),
      timeout_(timeout) {
    while (!api_url_.empty() && api_url_.back() == '/') {
        api_url_.pop_back();
    }
}

SlackCallResult SlackWebApi::call(const std::string& method, const json& message) const {
    SecretResolution token = resolve_secret(bot_token_);
    if (!token.value) {
        return {false, "", "", "the bot token is unavailable: " + token.error, false, {}};
    }
    HttpClientRequest request;
    request.method = "POST";
    request.url = api_url_ + "/" + method;
    request.headers["Content-Type"] = "application/json; charset=utf-8";
    request.headers["Authorization"] = "Bearer " + std::string(token.value->reveal());
    request.body = message.dump();
    request.timeout = timeout_;
    const HttpClientResponse response = http_request(request);
    request.headers.clear();  // the copy of the token goes now, not when the request does
    SlackCallResult result = result_of(response);
    if (!result.error.empty()) {
        return result;
    }
    std::string unreadable;
    const json body =
        parse_json_within(response.body, JsonTextLimits{}, unreadable).value_or(json());
    if (response.status != 200 || !body.is_object() || !body.contains("ok")) {
        result.error = "HTTP " + std::to_string(response.status) + " without a Slack answer";
        return result;
    }
    result.ok = body.value("ok", false);
    result.error = body.value("error", "");
    result.channel = body.value("channel", "");
    result.ts = body.value("ts", "");
    return result;
}

SlackCallResult SlackWebApi::post_message(const json& message) const {
    return call("chat.postMessage", message);
}

SlackCallResult SlackWebApi::update_message(const json& message) const {
    return call("chat.update", message);
}

bool SlackWebApi::response_url_allowed(const std::string& response_url) const {
    return response_url.starts_with("https://hooks.slack.com/") ||
           response_url.starts_with(api_origin_ + "/");
}

SlackCallResult SlackWebApi::respond(const std::string& response_url, const json& message) const {
    if (!response_url_allowed(response_url)) {
        return {false, "", "", "response_url is neither on hooks.slack.com nor on " + api_origin_,
                false, {}};
    }
    HttpClientRequest request;
    request.method = "POST";
    request.url = response_url;
    request.headers["Content-Type"] = "application/json; charset=utf-8";
    request.body = message.dump();
    request.timeout = timeout_;
    const HttpClientResponse response = http_request(request);
    SlackCallResult result = result_of(response);
    if (result.error.empty()) {
        result.ok = response.status == 200;
        if (!result.ok) {
            result.error = "HTTP " + std::to_string(response.status);
        }
    }
    return result;
}

}  // namespace mitigate
