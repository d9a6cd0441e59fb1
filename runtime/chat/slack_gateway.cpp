#include "runtime/chat/slack_gateway.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <sstream>
#include <variant>

#include "runtime/chat/slack_message.h"
#include "runtime/chat/slack_signature.h"
#include "runtime/chat/slack_web_api.h"
#include "runtime/core/mitigation_state.h"
#include "runtime/core/url_encoding.h"
#include "runtime/engine/engine.h"
#include "runtime/metrics/metrics.h"
#include "runtime/store/store.h"

namespace mitigate {
namespace {

using nlohmann::json;

enum class ChatRole { viewer = 0, approver = 1, operator_role = 2 };

ChatRole role_of(const SlackUser& user) {
    return user.role == "operator"   ? ChatRole::operator_role
           : user.role == "approver" ? ChatRole::approver
                                     : ChatRole::viewer;
}

HttpReply text_reply(int status, const std::string& text) {
    return {status, {{"Content-Type", "text/plain; charset=utf-8"}}, text + "\n"};
}

// What Slack shows only to the person who clicked or typed.
json ephemeral(const std::string& text) {
    return {{"response_type", "ephemeral"}, {"replace_original", false}, {"text", text}};
}

HttpReply ephemeral_reply(const json& message) {
    return {200, {{"Content-Type", "application/json"}}, message.dump()};
}

// One thing a person asked for that moves a mitigation.
struct Work {
    std::string route;  // the path it came on, for the audit
    std::string verb;   // approve, reject, revert, keep
    std::string mitigation_id;
    std::string slack_user_id;
    std::string response_url;
    std::string comment;
};

const char* const help_text =
    "*/mitigate* commands:\n"
    "• `list`: mitigations that are not finished\n"
    "• `show ID`: one mitigation, with its plan and policy decision\n"
    "• `approve ID [comment]`, `reject ID [reason]`: decide on one pending approval\n"
    "• `revert ID [reason]`: undo an applied mitigation now\n"
    "• `keep ID reason`: make an applied mitigation permanent (a reason is required)\n"
    "• `help`: this text";

}  // namespace

struct SlackGateway::State {
    Store& store;
    Engine& engine_api;
    const Clock& clock;
    Metrics& metrics;
    SlackConfig slack;
    EngineConfig engine;
    SlackGatewayHooks hooks;
    SlackWebApi api;

    std::mutex mutex;
    std::map<std::string, std::int64_t> seen_signatures;  // signature -> its timestamp
    std::deque<Work> queue;

    State(Store& store_in, Engine& engine_api_in, const Clock& clock_in, Metrics& metrics_in,
          SlackConfig slack_in, EngineConfig engine_in, SlackGatewayHooks hooks_in)
        : store(store_in),
          engine_api(engine_api_in),
          clock(clock_in),
          metrics(metrics_in),
          slack(std::move(slack_in)),
          engine(std::move(engine_in)),
          hooks(std::move(hooks_in)),
          api(slack.api_url, *slack.bot_token) {}

    void audit_refusal(const std::string& actor, const std::string& subject,
                       const std::string& route, const std::string& reason,
                       std::int64_t unaudited_before = 0) {
        metrics.increment("mitigate_chat_requests_refused_total");
        nlohmann::json details = {{"channel", "slack"}, {"route", route}, {"reason", reason}};
        if (unaudited_before > 0) {
            details["unaudited_before"] = unaudited_before;
        }
        store.append_audit({clock.now(), actor, "chat.request_refused", subject, details});
    }

    // A request that fails the signature can come from anyone who reaches the URL. Each is
    // audited, up to unverified_audits_per_minute; past that in one minute they are only
    // counted, so a flood cannot grow the audit log without bound, and the next audited
    // refusal says how many went unaudited.
    static constexpr int unverified_audits_per_minute = 60;
    std::int64_t unverified_minute = 0;
    int unverified_audited = 0;
    std::int64_t unverified_unaudited = 0;

    void audit_unverified(const std::string& route, const std::string& reason) {
        std::int64_t unaudited_before = 0;
        {
            std::lock_guard lock(mutex);
            const std::int64_t minute =
                std::chrono::duration_cast<std::chrono::minutes>(clock.now().time_since_epoch())
                    .count();
            if (minute != unverified_minute) {
                unverified_minute = minute;
                unverified_audited = 0;
            }
            if (unverified_audited >= unverified_audits_per_minute) {
                ++unverified_unaudited;
                metrics.increment("mitigate_chat_requests_refused_total");
                metrics.increment("mitigate_chat_refusals_unaudited_total");
                return;
            }
            ++unverified_audited;
            std::swap(unaudited_before, unverified_unaudited);
        }
        audit_refusal("slack", "", route, reason, unaudited_before);
    }

    // 1 and 2 of the checks; the refusal, or nothing when the request is Slack's.
    std::optional<HttpReply> verify(const HttpExchange& request, const std::string& route) {
        const auto header = [&](const char* name) -> std::string {
            const auto found = request.headers.find(name);
            return found == request.headers.end() ? std::string() : found->second;
        };
        const std::string timestamp = header("x-slack-request-timestamp");
        const std::string signature = header("x-slack-signature");
        SecretResolution secret = resolve_secret(*slack.signing_secret);
        if (!secret.value) {
            spdlog::error("slack: cannot verify requests: {}", secret.error);
            return text_reply(503, "the signing secret is unavailable; see the daemon's log");
        }
        const SlackVerification verification = verify_slack_signature(
            secret.value->reveal(), timestamp, signature, request.body, clock.now());
        if (verification != SlackVerification::verified) {
            audit_unverified(route, std::string(to_string(verification)));
            return text_reply(401, "refused: " + std::string(to_string(verification)));
        }
        bool replayed = false;
        {
            std::lock_guard lock(mutex);
            const std::int64_t now_seconds =
                std::chrono::duration_cast<std::chrono::seconds>(clock.now().time_since_epoch())
                    .count();
            std::erase_if(seen_signatures, [&](const auto& entry) {
                return entry.second < now_seconds - 2 * slack_timestamp_tolerance.count();
            });
            replayed = !seen_signatures.emplace(signature, std::stoll(timestamp)).second;
        }
        if (replayed) {
            audit_unverified(route, "replayed: this signed request was already handled");
            return text_reply(401, "refused: this request was already handled");
        }
        return std::nullopt;
    }

    // 4: the mapped user if they may do `verb`; otherwise why not, audited.
    std::variant<SlackUser, std::string> authorize(const std::string& slack_user_id,
                                                   ChatRole needed, const std::string& verb,
                                                   const std::string& subject,
                                                   const std::string& route) {
        const auto user = std::find_if(
            slack.users.begin(), slack.users.end(),
            [&](const SlackUser& mapped) { return mapped.slack_user_id == slack_user_id; });
        std::string why;
        if (user == slack.users.end()) {
            why = "Slack user " + slack_user_id +
                  " is not mapped to a mitigate identity (chat.slack.users)";
        } else if (role_of(*user) < needed) {
            why = user->identity + " has the " + user->role + " role, which may not " + verb;
        } else {
            return *user;
        }
        audit_refusal("slack:" + slack_user_id, subject, route, why);
        return why;
    }

    void enqueue(Work work) {
        {
            std::lock_guard lock(mutex);
            queue.push_back(std::move(work));
        }
        if (hooks.work_queued) {
            hooks.work_queued();
        }
    }

    HttpReply interaction(const HttpExchange& request) {
        const auto form = parse_url_encoded(request.body);
        const auto payload_field = form.find("payload");
        if (payload_field == form.end()) {
            return text_reply(400, "an interaction is a form with one field, payload");
        }
        const json payload = json::parse(payload_field->second, nullptr, false);
        if (!payload.is_object() || payload.value("type", "") != "block_actions") {
            return text_reply(400, "payload is not a block_actions interaction");
        }
        const json user = payload.value("user", json::object());
        const json actions = payload.value("actions", json::array());
        const std::string response_url = payload.value("response_url", "");
        if (!user.is_object() || !user.contains("id") || !user["id"].is_string() ||
            !actions.is_array() || actions.empty()) {
            return text_reply(400, "payload needs user.id and actions");
        }
        for (const json& action : actions) {
            const std::string action_id = action.value("action_id", "");
            const std::string value = action.value("value", "");
            if (action_id != slack_approve_action && action_id != slack_reject_action) {
                continue;  // not one of our buttons
            }
            enqueue({std::string(slack_interactions_path),
                     action_id == slack_approve_action ? "approve" : "reject", value,
                     user["id"].get<std::string>(), response_url, ""});
        }
        return {200, {}, ""};
    }

    HttpReply command(const HttpExchange& request) {
        auto form = parse_url_encoded(request.body);
        const std::string user_id = form["user_id"];
        if (user_id.empty()) {
            return text_reply(400, "a slash command carries user_id");
        }
        std::istringstream words(form["text"]);
        std::string verb;
        std::string id;
        words >> verb >> id;
        std::string rest;
        std::getline(words >> std::ws, rest);
        if (verb.empty() || verb == "help") {
            return ephemeral_reply(ephemeral(help_text));
        }
        const std::string route(slack_commands_path);
        if (verb == "list" || verb == "show") {
            const auto user = authorize(user_id, ChatRole::viewer, verb, id, route);
            if (const auto* why = std::get_if<std::string>(&user)) {
                return ephemeral_reply(ephemeral(*why));
            }
            return verb == "list" ? list() : show(id);
        }
        const ChatRole needed = verb == "approve" || verb == "reject" ? ChatRole::approver
                                : verb == "revert" || verb == "keep"  ? ChatRole::operator_role
                                                                      : ChatRole::viewer;
        if (needed == ChatRole::viewer) {
            return ephemeral_reply(ephemeral("no command `" + verb + "`.\n" + help_text));
        }
        if (id.empty()) {
            return ephemeral_reply(ephemeral("`" + verb + "` needs a mitigation id"));
        }
        if (verb == "keep" && rest.empty()) {
            return ephemeral_reply(ephemeral("`keep` needs a reason: /mitigate keep ID reason"));
        }
        const auto user = authorize(user_id, needed, verb, id, route);
        if (const auto* why = std::get_if<std::string>(&user)) {
            return ephemeral_reply(ephemeral(*why));
        }
        enqueue({route, verb, id, user_id, form["response_url"], rest});
        return ephemeral_reply(ephemeral("Working on it: " + verb + " " + id + "…"));
    }

    HttpReply list() {
        std::vector<MitigationState> open;
        for (int value = 0; value <= static_cast<int>(MitigationState::failed); ++value) {
            const auto state = static_cast<MitigationState>(value);
            if (!is_final(state)) {
                open.push_back(state);
            }
        }
        const auto mitigations = store.list_mitigations(in_states(open, 20));
        std::string text = mitigations.empty() ? "No mitigation is open." : "*Open mitigations*";
        for (const Mitigation& mitigation : mitigations) {
            text += "\n• " + slack_mitigation_line(mitigation);
        }
        return ephemeral_reply(ephemeral(text));
    }

    HttpReply show(const std::string& id) {
        const auto mitigation = store.find_mitigation(id);
        if (!mitigation) {
            return ephemeral_reply(ephemeral("no mitigation " + id));
        }
        std::optional<Incident> incident;
        if (!mitigation->proposal.incident_id.empty()) {
            incident = store.find_incident(mitigation->proposal.incident_id);
        }
        json message =
            slack_mitigation_message(*mitigation, incident, approval_expiry(*mitigation, engine));
        message["response_type"] = "ephemeral";
        return ephemeral_reply(message);
    }

    // The queued work, one item: authorize, ask the engine, answer the person.
    void perform(const Work& work) {
        const ChatRole needed = work.verb == "approve" || work.verb == "reject"
                                    ? ChatRole::approver
                                    : ChatRole::operator_role;
        const auto authorized =
            authorize(work.slack_user_id, needed, work.verb, work.mitigation_id, work.route);
        std::string answer;
        if (const auto* why = std::get_if<std::string>(&authorized)) {
            answer = "Refused: " + *why;
        } else {
            const SlackUser& user = std::get<SlackUser>(authorized);
            const std::string via = "slack:" + work.slack_user_id;
            RequestResult result;
            if (work.verb == "approve" || work.verb == "reject") {
                ApprovalRequest approval;
                approval.mitigation_id = work.mitigation_id;
                approval.identity = user.identity;
                approval.groups = user.groups;
                approval.verdict =
                    work.verb == "approve" ? ApprovalVerdict::approve : ApprovalVerdict::reject;
                approval.channel = ApprovalChannel::chat;
                approval.comment = work.comment;
                approval.via = via;
                result = engine_api.approve(approval);
            } else {
                const std::string reason =
                    (work.comment.empty() ? work.verb + " from Slack" : work.comment) + " (via " +
                    via + ")";
                result = work.verb == "revert"
                             ? engine_api.revert(work.mitigation_id, user.identity, reason)
                             : engine_api.keep(work.mitigation_id, user.identity, reason);
            }
            const bool recorded =
                result.status == RequestStatus::done || result.status == RequestStatus::accepted;
            answer = (recorded ? "Done: " : "Refused: ") + result.message;
        }
        metrics.increment("mitigate_chat_commands_total", {{"verb", work.verb}});
        if (work.response_url.empty()) {
            return;
        }
        const SlackCallResult answered = api.respond(work.response_url, ephemeral(answer));
        if (!answered.ok) {
            spdlog::warn("slack: could not answer on response_url: {}", answered.error);
        }
    }
};

SlackGateway::SlackGateway(Store& store, Engine& engine_api, const Clock& clock, Metrics& metrics,
                           SlackConfig slack, EngineConfig engine, SlackGatewayHooks hooks) {
    if (!slack.signing_secret || !slack.bot_token) {
        throw std::invalid_argument("chat.slack needs signing_secret and bot_token");
    }
    metrics.declare_counter("mitigate_chat_requests_refused_total",
                            "Slack requests refused: bad signature, replay, unknown user, role.");
    metrics.declare_counter("mitigate_chat_refusals_unaudited_total",
                            "Unsigned or replayed Slack requests refused past the audit budget "
                            "of 60 a minute; counted here instead.");
    metrics.declare_counter("mitigate_chat_commands_total",
                            "Approvals, rejections, reverts and keeps asked for from Slack.");
    state_ = std::make_unique<State>(store, engine_api, clock, metrics, std::move(slack),
                                     std::move(engine), std::move(hooks));
}

SlackGateway::~SlackGateway() = default;

HttpReply SlackGateway::handle(const HttpExchange& request) {
    State& state = *state_;
    const std::string path = request.target.substr(0, request.target.find('?'));
    if (request.method != "POST") {
        return text_reply(405, "use POST");
    }
    if (auto refusal = state.verify(request, path)) {
        return *refusal;
    }
    return path == slack_interactions_path ? state.interaction(request) : state.command(request);
}

std::optional<TimePoint> SlackGateway::step() {
    State& state = *state_;
    while (true) {
        Work work;
        {
            std::lock_guard lock(state.mutex);
            if (state.queue.empty()) {
                return std::nullopt;
            }
            work = std::move(state.queue.front());
            state.queue.pop_front();
        }
        state.perform(work);
    }
}

}  // namespace mitigate
