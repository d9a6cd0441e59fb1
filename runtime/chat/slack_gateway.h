// What arrives from Slack: button clicks (POST /v1/chat/slack/interactions) and the
// /mitigate slash command (POST /v1/chat/slack/commands).
//
// Order of checks, each refusal audited as chat.request_refused and nothing changed:
//   1. the signature over the raw body and the 5-minute window (slack_signature.h),
//      before a byte is parsed; 401
//   2. a replay: the same signature seen within the window; 401
//   3. the form (every decoded field UTF-8) and, for a click, its JSON payload, read
//      strictly (type, user.id, team.id, api_app_id, container, actions[].action_id and
//      value, each of its type); 400
//   3b. the workspace (team id) and app, when chat.slack.team_id / app_id are set; 403
//   3c. for a click, the message it was clicked on must be the one the notifier posted
//      for the mitigation the button names (ephemeral answers to `show` excepted); 403
//   4. the Slack user, mapped to a mitigate identity, groups and role by config
//      (chat.slack.users); an unknown user or too small a role is told why, ephemerally
//   5. the policy's approval rules, in the lifecycle (groups, no self-approval, distinct
//      approvers, expiry, state), audited there as approval.refused with via=slack:<user>
// Slack wants an answer within 3 s and the engine may be busy with a slow provider, so
// anything that moves a mitigation is queued: the request is answered at once, and
// step() (on its own loop) does the work and answers on the request's response_url.
//
// Slash command: /mitigate help | list | show ID | approve ID [comment] |
//                reject ID [reason] | revert ID [reason] | keep ID reason
// Roles: viewer (help, list, show), approver (and approve, reject), operator (and revert,
// keep).
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "runtime/config/config.h"
#include "runtime/core/clock.h"
#include "runtime/server/http_server.h"

namespace mitigate {

class Store;
class Engine;
class Metrics;

inline constexpr std::string_view slack_interactions_path = "/v1/chat/slack/interactions";
inline constexpr std::string_view slack_commands_path = "/v1/chat/slack/commands";

class ChatStateStore;

struct SlackGatewayHooks {
    std::function<void()> work_queued;  // wake whatever runs step()
    // The message each mitigation is shown in: a click counts only on that message.
    ChatStateStore* messages = nullptr;
};

class SlackGateway {
  public:
    SlackGateway(Store& store, Engine& engine_api, const Clock& clock, Metrics& metrics,
                 SlackConfig slack, EngineConfig engine, SlackGatewayHooks hooks);
    ~SlackGateway();
    SlackGateway(const SlackGateway&) = delete;
    SlackGateway& operator=(const SlackGateway&) = delete;

    // Either path; answers within milliseconds (the work is queued).
    HttpReply handle(const HttpExchange& request);

    // Does the queued work and answers each on its response_url. Nothing is ever due
    // later: only a new request brings work.
    std::optional<TimePoint> step();

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace mitigate
