// The three Slack calls the runtime makes, over libcurl (runtime/server/http_client.h):
//   chat.postMessage   a new message, or a reply in a thread (thread_ts)
//   chat.update        the same message, rewritten as the mitigation moves
//   response_url       the answer to the person who clicked or typed a command
// Slack answers HTTP 200 with {"ok": false, "error": "..."} for most failures and 429
// with Retry-After when rate limited; both come back as values, never as exceptions.
//
// The bot token is read from its secret reference at each call and goes only into the
// Authorization header; no error message or log line carries it.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/config/secret.h"

namespace mitigate {

struct SlackCallResult {
    bool ok = false;
    std::string channel;  // chat.postMessage / chat.update: where the message is
    std::string ts;       // ... and its id
    std::string error;    // Slack's error code ("channel_not_found"), or what failed on the way
    // Worth trying again: rate limited, a 5xx, or no answer at all. Slack's own errors
    // (invalid_auth, channel_not_found) are not: they need a person.
    bool retryable = false;
    std::optional<std::chrono::seconds> retry_after;  // from a 429's Retry-After
};

class SlackWebApi {
  public:
    // `api_url` is "https://slack.com/api" or an emulator's; response URLs are accepted
    // only on hooks.slack.com or on the api_url's own origin, so a forged payload cannot
    // make the runtime post anywhere else.
    SlackWebApi(std::string api_url, SecretReference bot_token,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

    SlackCallResult post_message(const nlohmann::json& message) const;
    SlackCallResult update_message(const nlohmann::json& message) const;
    SlackCallResult respond(const std::string& response_url, const nlohmann::json& message) const;

    bool response_url_allowed(const std::string& response_url) const;

  private:
    SlackCallResult call(const std::string& method, const nlohmann::json& message) const;

    std::string api_url_;
    std::string api_origin_;  // scheme://host[:port]
    SecretReference bot_token_;
    std::chrono::milliseconds timeout_;
};

}  // namespace mitigate
