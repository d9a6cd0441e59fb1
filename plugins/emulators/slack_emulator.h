// A Slack emulator on loopback, for tests and `mitigate demo`. It plays both sides of
// Slack that mitigate meets:
//
// The Web API, strict where Slack is (../shared/reference/providers.md#slack):
//   POST /api/chat.postMessage   JSON, Authorization: Bearer <bot token>;
//        channel (a known channel), text or blocks; thread_ts must name a message
//   POST /api/chat.update        channel and ts of an existing message
//   answers {"ok": true, "channel", "ts", ...} or HTTP 200 {"ok": false, "error"} with
//   Slack's codes (not_authed, invalid_auth, channel_not_found, no_text, invalid_blocks,
//   message_not_found, thread_not_found, invalid_json), and 429 with Retry-After when told
//   to rate limit (rate_limit_next)
//   POST /hooks/response/{id}    the response_url of a click or a command
//
// The Slack app: a person clicking a message's button or typing /mitigate, sent to the
// app's interactivity and slash command URLs as Slack sends them (form-encoded, signed
// with the signing secret over the raw body, timestamped by the injected clock).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/server/http_client.h"

namespace mitigate {

struct SlackEmulatorMessage {
    std::string channel;
    std::string ts;
    std::string thread_ts;  // empty for a message in the channel
    std::string text;
    nlohmann::json blocks = nlohmann::json::array();
    int updates = 0;  // chat.update calls that rewrote it
};

// A request as Slack would send it; tests alter it to forge, replay or age one.
struct SlackSignedRequest {
    std::string url;
    std::string body;
    std::string timestamp;
    std::string signature;
};

class SlackEmulator {
  public:
    // `now_seconds` dates the requests it signs (the system clock when empty).
    SlackEmulator(std::string bot_token, std::string signing_secret,
                  std::function<std::int64_t()> now_seconds = {});
    ~SlackEmulator();
    SlackEmulator(const SlackEmulator&) = delete;
    SlackEmulator& operator=(const SlackEmulator&) = delete;

    std::string url() const;
    std::string api_url() const;  // url() + "/api": chat.slack.api_url
    static constexpr std::string_view channel = "C0MITIGATE";

    // Where the Slack app's interactivity and /mitigate requests go (the daemon).
    void point_app_at(std::string interactions_url, std::string commands_url);

    // Every message, channel and thread, in the order posted, as last updated.
    std::vector<SlackEmulatorMessage> messages() const;
    // Everything posted to a response_url, in order.
    std::vector<nlohmann::json> responses() const;
    int refused_calls() const;  // Web API calls answered ok:false or 429
    // As a person in Slack would: the message and its thread replies are gone.
    void delete_message(const std::string& ts);
    // The next `calls` Web API calls answer 429 with Retry-After: retry_after_seconds.
    void rate_limit_next(int calls, int retry_after_seconds);

    // Waits until `ready` holds (checked at each change), at most `timeout`.
    bool wait_until(const std::function<bool(const SlackEmulator&)>& ready,
                    std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;

    // A person clicks `action_id` on the message `message_ts`.
    SlackSignedRequest click(const std::string& user_id, const std::string& message_ts,
                             std::string_view action_id) const;
    // A person types "/mitigate <text>".
    SlackSignedRequest slash_command(const std::string& user_id, const std::string& text) const;
    HttpClientResponse deliver(const SlackSignedRequest& request) const;

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace mitigate
