#include "plugins/emulators/slack_emulator.h"

#include <condition_variable>
#include <mutex>

#include "runtime/chat/slack_signature.h"
#include "runtime/core/url_encoding.h"
#include "runtime/server/http_server.h"

namespace mitigate {

using nlohmann::json;

namespace {

HttpReply slack_reply(const json& body) {
    return {200, {{"Content-Type", "application/json; charset=utf-8"}}, body.dump()};
}

HttpReply slack_error(const std::string& error) {
    return slack_reply({{"ok", false}, {"error", error}});
}

// Slack's limits on what mitigate sends: refused as invalid_blocks, as Slack would.
bool blocks_valid(const json& blocks) {
    if (!blocks.is_array() || blocks.size() > 50) {
        return false;
    }
    for (const json& block : blocks) {
        if (!block.is_object() || !block.contains("type") || !block["type"].is_string()) {
            return false;
        }
        const std::string type = block["type"];
        if (type == "header" || type == "section") {
            const json text = block.value("text", json());
            const std::size_t limit = type == "header" ? 150 : 3000;
            if (!text.is_object() || !text.contains("text") || !text["text"].is_string() ||
                text["text"].get<std::string>().empty() ||
                text["text"].get<std::string>().size() > limit) {
                return false;
            }
        } else if (type == "actions") {
            const json elements = block.value("elements", json());
            if (!elements.is_array() || elements.empty() || elements.size() > 25) {
                return false;
            }
            for (const json& element : elements) {
                if (element.value("type", "") != "button" ||
                    element.value("action_id", "").size() > 255 ||
                    element.value("value", "").size() > 2000 || !element.contains("text")) {
                    return false;
                }
            }
        } else if (type != "divider" && type != "context") {
            return false;
        }
    }
    return true;
}

}  // namespace

struct SlackEmulator::State {
    std::string bot_token;
    std::string signing_secret;
    std::function<std::int64_t()> now_seconds;
    std::string interactions_url;
    std::string commands_url;

    mutable std::mutex mutex;
    mutable std::condition_variable changed;
    std::vector<SlackEmulatorMessage> messages;
    std::vector<json> responses;
    int refused = 0;
    int rate_limited_calls = 0;
    int retry_after_seconds = 1;
    int next_ts = 1;
    mutable int next_response = 1;
    std::unique_ptr<HttpServer> server;

    HttpReply refuse(const std::string& error) {
        ++refused;
        changed.notify_all();
        return slack_error(error);
    }

    SlackEmulatorMessage* find(const std::string& channel_id, const std::string& ts) {
        for (auto& message : messages) {
            if (message.channel == channel_id && message.ts == ts) {
                return &message;
            }
        }
        return nullptr;
    }

    HttpReply web_api(const HttpExchange& request, const std::string& method) {
        if (rate_limited_calls > 0) {
            --rate_limited_calls;
            ++refused;
            changed.notify_all();
            return {429,
                    {{"Retry-After", std::to_string(retry_after_seconds)},
                     {"Content-Type", "application/json"}},
                    json{{"ok", false}, {"error", "ratelimited"}}.dump()};
        }
        const auto authorization = request.headers.find("authorization");
        if (authorization == request.headers.end()) {
            return refuse("not_authed");
        }
        if (authorization->second != "Bearer " + bot_token) {
            return refuse("invalid_auth");
        }
        const auto content_type = request.headers.find("content-type");
        if (content_type == request.headers.end() ||
            !content_type->second.starts_with("application/json")) {
            return refuse("invalid_arguments");
        }
        const json body = json::parse(request.body, nullptr, false);
        if (!body.is_object()) {
            return refuse("invalid_json");
        }
        const std::string channel_id = body.value("channel", "");
        if (channel_id != channel) {
            return refuse("channel_not_found");
        }
        const bool has_blocks = body.contains("blocks");
        if (has_blocks && !blocks_valid(body["blocks"])) {
            return refuse("invalid_blocks");
        }
        if (!has_blocks && body.value("text", "").empty()) {
            return refuse("no_text");
        }
        if (method == "chat.postMessage") {
            const std::string thread_ts = body.value("thread_ts", "");
            if (!thread_ts.empty() && find(channel_id, thread_ts) == nullptr) {
                return refuse("thread_not_found");
            }
            char ts[32];
            std::snprintf(ts, sizeof ts, "1700000000.%06d", next_ts++);
            messages.push_back({channel_id, ts, thread_ts, body.value("text", ""),
                                body.value("blocks", json::array()), 0});
            changed.notify_all();
            return slack_reply({{"ok", true}, {"channel", channel_id}, {"ts", ts}});
        }
        SlackEmulatorMessage* message = find(channel_id, body.value("ts", ""));
        if (message == nullptr) {
            return refuse("message_not_found");
        }
        message->text = body.value("text", "");
        message->blocks = body.value("blocks", json::array());
        ++message->updates;
        changed.notify_all();
        return slack_reply({{"ok", true}, {"channel", channel_id}, {"ts", message->ts}});
    }

    HttpReply handle(const HttpExchange& request) {
        const std::string path = request.target.substr(0, request.target.find('?'));
        std::lock_guard lock(mutex);
        if (request.method != "POST") {
            return {405, {}, "use POST\n"};
        }
        if (path == "/api/chat.postMessage" || path == "/api/chat.update") {
            return web_api(request, path.substr(5));
        }
        if (path.starts_with("/hooks/response/")) {
            const json body = json::parse(request.body, nullptr, false);
            if (!body.is_object()) {
                return {400, {}, "invalid_payload\n"};
            }
            responses.push_back(body);
            changed.notify_all();
            return {200, {{"Content-Type", "text/plain"}}, "ok"};
        }
        return {404, {}, "no such route\n"};
    }

    std::string response_url() const {
        return server->url() + "/hooks/response/" + std::to_string(next_response++);
    }

    SlackSignedRequest sign(const std::string& url, const std::string& body) const {
        const std::string timestamp = std::to_string(now_seconds());
        return {url, body, timestamp, slack_signature(signing_secret, timestamp, body)};
    }
};

SlackEmulator::SlackEmulator(std::string bot_token, std::string signing_secret,
                             std::function<std::int64_t()> now_seconds)
    : state_(std::make_unique<State>()) {
    state_->bot_token = std::move(bot_token);
    state_->signing_secret = std::move(signing_secret);
    state_->now_seconds = now_seconds ? std::move(now_seconds) : [] {
        return std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    };
    State* state = state_.get();
    state_->server = std::make_unique<HttpServer>(
        [state](const HttpExchange& request) { return state->handle(request); });
}

SlackEmulator::~SlackEmulator() {
    state_->server->stop();
}

std::string SlackEmulator::url() const {
    return state_->server->url();
}

std::string SlackEmulator::api_url() const {
    return url() + "/api";
}

void SlackEmulator::point_app_at(std::string interactions_url, std::string commands_url) {
    std::lock_guard lock(state_->mutex);
    state_->interactions_url = std::move(interactions_url);
    state_->commands_url = std::move(commands_url);
}

std::vector<SlackEmulatorMessage> SlackEmulator::messages() const {
    std::lock_guard lock(state_->mutex);
    return state_->messages;
}

std::vector<json> SlackEmulator::responses() const {
    std::lock_guard lock(state_->mutex);
    return state_->responses;
}

int SlackEmulator::refused_calls() const {
    std::lock_guard lock(state_->mutex);
    return state_->refused;
}

void SlackEmulator::delete_message(const std::string& ts) {
    std::lock_guard lock(state_->mutex);
    std::erase_if(state_->messages, [&](const SlackEmulatorMessage& message) {
        return message.ts == ts || message.thread_ts == ts;
    });
    state_->changed.notify_all();
}

void SlackEmulator::rate_limit_next(int calls, int retry_after_seconds) {
    std::lock_guard lock(state_->mutex);
    state_->rate_limited_calls = calls;
    state_->retry_after_seconds = retry_after_seconds;
}

bool SlackEmulator::wait_until(const std::function<bool(const SlackEmulator&)>& ready,
                               std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(state_->mutex);
    while (true) {
        lock.unlock();
        if (ready(*this)) {
            return true;
        }
        lock.lock();
        // Re-checked at each change, and at least every 50 ms for state outside the
        // emulator (the predicate may also read the daemon's store).
        if (state_->changed.wait_until(
                lock, std::min(deadline,
                               std::chrono::steady_clock::now() + std::chrono::milliseconds(50))) ==
                std::cv_status::timeout &&
            std::chrono::steady_clock::now() >= deadline) {
            lock.unlock();
            return ready(*this);
        }
    }
}

SlackSignedRequest SlackEmulator::click(const std::string& user_id, const std::string& message_ts,
                                        std::string_view action_id) const {
    std::lock_guard lock(state_->mutex);
    json clicked;
    for (const auto& message : state_->messages) {
        if (message.ts != message_ts) {
            continue;
        }
        for (const json& block : message.blocks) {
            for (const json& element : block.value("elements", json::array())) {
                if (element.value("action_id", "") == action_id) {
                    clicked = element;
                }
            }
        }
    }
    if (clicked.is_null()) {
        throw std::invalid_argument("message " + message_ts + " has no button " +
                                    std::string(action_id));
    }
    const json payload = {
        {"type", "block_actions"},
        {"user", {{"id", user_id}, {"username", "user-" + user_id}, {"team_id", "T0EMULATED"}}},
        {"team", {{"id", "T0EMULATED"}}},
        {"api_app_id", "A0EMULATED"},
        {"container",
         {{"type", "message"}, {"message_ts", message_ts}, {"channel_id", std::string(channel)}}},
        {"channel", {{"id", std::string(channel)}}},
        {"trigger_id", "1.2.emulated"},
        {"response_url", state_->response_url()},
        {"actions",
         {{{"type", "button"},
           {"action_id", clicked["action_id"]},
           {"block_id", "mitigate.decide"},
           {"value", clicked["value"]},
           {"action_ts", std::to_string(state_->now_seconds()) + ".000001"}}}}};
    return state_->sign(state_->interactions_url, "payload=" + percent_encode(payload.dump()));
}

SlackSignedRequest SlackEmulator::slash_command(const std::string& user_id,
                                                const std::string& text) const {
    std::lock_guard lock(state_->mutex);
    const std::string body =
        "token=deprecated-verification-token&team_id=T0EMULATED&api_app_id=A0EMULATED"
        "&team_domain=emulated&channel_id=" +
        std::string(channel) + "&channel_name=mitigations&user_id=" + percent_encode(user_id) +
        "&user_name=user-" + percent_encode(user_id) +
        "&command=%2Fmitigate&text=" + percent_encode(text) +
        "&response_url=" + percent_encode(state_->response_url()) + "&trigger_id=1.2.emulated";
    return state_->sign(state_->commands_url, body);
}

HttpClientResponse SlackEmulator::deliver(const SlackSignedRequest& request) const {
    HttpClientRequest http;
    http.method = "POST";
    http.url = request.url;
    http.headers["Content-Type"] = "application/x-www-form-urlencoded";
    http.headers["X-Slack-Request-Timestamp"] = request.timestamp;
    http.headers["X-Slack-Signature"] = request.signature;
    http.body = request.body;
    return http_request(http);
}

}  // namespace mitigate
