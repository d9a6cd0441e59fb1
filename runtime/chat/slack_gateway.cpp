#include "runtime/chat/slack_gateway.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <sstream>
#include <variant>

#include "runtime/audit/refusal_audit_budget.h"
#include "runtime/chat/chat_state_store.h"
#include "runtime/chat/slack_message.h"
#include "runtime/chat/slack_signature.h"
#include "runtime/chat/slack_web_api.h"
#include "runtime/core/json_reader.h"
#include "runtime/core/mitigation_state.h"
#include "runtime/core/url_encoding.h"
#include "runtime/core/utf8.h"
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
    RefusalAuditBudget audit_budget;

    void audit_unverified(const std::string& route, const std::string& reason) {
        audit_budgeted("slack", "", route, reason);
    }

    void audit_budgeted(const std::string& actor, const std::string& subject,
                        const std::string& route, const std::string& reason) {
        const auto unaudited_before = audit_budget.admit(clock.now());
        if (!unaudited_before) {
            metrics.increment("mitigate_chat_requests_refused_total");
            metrics.increment("mitigate_chat_refusals_unaudited_total");
            return;
        }
        audit_refusal(actor, subject, route, reason, *unaudited_before);
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

    // A signed request that is not the shape Slack sends: 400, audited (within the same
    // per-minute budget as unsigned ones, since a bug in a proxy could send many).
    HttpReply refuse_shape(const std::string& route, const std::string& why) {
        audit_budgeted("slack", "", route, "malformed: " + why);
        return text_reply(400, "refused: " + why);
    }

    // A signed request from another workspace or app than the configured ones: 403.
    std::optional<HttpReply> refuse_origin(const std::string& route, const std::string& team,
                                           const std::string& app) {
        std::string why;
        if (!slack.team_id.empty() && team != slack.team_id) {
            why = "from workspace " + team + ", not " + slack.team_id + " (chat.slack.team_id)";
        } else if (!slack.app_id.empty() && app != slack.app_id) {
            why = "for app " + app + ", not " + slack.app_id + " (chat.slack.app_id)";
        } else {
            return std::nullopt;
        }
        audit_budgeted("slack", "", route, why);
        return text_reply(403, "refused: " + why);
    }

    // The form's fields, or why they are not acceptable: every decoded value must be UTF-8
    // (the raw body is checked before routing, but %FF decodes to a bare byte).
    static std::optional<std::string> form_problem(const std::map<std::string, std::string>& form) {
        for (const auto& [name, value] : form) {
            if (first_invalid_utf8(name) || first_invalid_utf8(value)) {
                return "the form field " + escape_control_characters(name) + " is not valid UTF-8";
            }
        }
        return std::nullopt;
    }

    HttpReply interaction(const HttpExchange& request) {
        const std::string route(slack_interactions_path);
        const auto form = parse_url_encoded(request.body);
        if (const auto problem = form_problem(form)) {
            return refuse_shape(route, *problem);
        }
        const auto payload_field = form.find("payload");
        if (payload_field == form.end()) {
            return refuse_shape(route, "an interaction is a form with one field, payload");
        }
        std::string unreadable;
        const auto payload =
            parse_json_within(payload_field->second, JsonTextLimits{1u << 20, 32}, unreadable);
        if (!payload) {
            return refuse_shape(route, "payload: " + unreadable);
        }
        // Only what is read is checked; Slack adds fields over time, and those pass.
        std::vector<FieldError> errors;
        JsonObjectReader reader(*payload, "payload", errors);
        const std::string type = reader.string("type");
        if (errors.empty() && type != "block_actions") {
            return refuse_shape(route, "payload.type is " + type + ", not block_actions");
        }
        std::string user_id;
        std::string team_id;
        if (const json* user = reader.member("user", Presence::required)) {
            JsonObjectReader user_reader(*user, "payload.user", errors);
            user_id = user_reader.string("id");
        }
        if (const json* team = reader.member("team", Presence::required)) {
            JsonObjectReader team_reader(*team, "payload.team", errors);
            team_id = team_reader.string("id");
        }
        const std::string app_id = reader.string("api_app_id");
        const std::string response_url = reader.string("response_url", Presence::optional);
        std::string message_ts;
        std::string channel_id;
        bool ephemeral_message = false;
        if (const json* container = reader.member("container", Presence::required)) {
            JsonObjectReader container_reader(*container, "payload.container", errors);
            message_ts = container_reader.string("message_ts");
            channel_id = container_reader.string("channel_id");
            ephemeral_message = container_reader.boolean("is_ephemeral", false);
        }
        std::vector<std::pair<std::string, std::string>> clicked;  // action_id, value
        if (const json* actions = reader.member("actions", Presence::required)) {
            if (!actions->is_array() || actions->empty() || actions->size() > 25) {
                errors.push_back({"payload.actions", "must be a list of 1 to 25 actions"});
            } else {
                for (std::size_t index = 0; index < actions->size(); ++index) {
                    JsonObjectReader action((*actions)[index],
                                            "payload.actions[" + std::to_string(index) + "]",
                                            errors);
                    const std::string action_id = action.string("action_id");
                    const std::string value = action.string("value", Presence::optional);
                    if (action_id == slack_approve_action || action_id == slack_reject_action) {
                        if (value.empty()) {
                            action.add_error("value", "must name the mitigation");
                        }
                        clicked.emplace_back(action_id, value);
                    }
                }
            }
        }
        if (!errors.empty()) {
            return refuse_shape(route, describe(errors));
        }
        if (auto refusal = refuse_origin(route, team_id, app_id)) {
            return *refusal;
        }
        // A button is honoured only on the message that shows its mitigation: the one the
        // notifier posted and keeps updating. An ephemeral message (the answer to
        // /mitigate show) is only ever shown by Slack to the person it answered.
        for (const auto& [action_id, mitigation_id] : clicked) {
            if (ephemeral_message) {
                continue;
            }
            const auto shown = hooks.messages != nullptr
                                   ? hooks.messages->find_chat_message(mitigation_id)
                                   : std::optional<ChatMessage>();
            if (!shown || shown->ts != message_ts || shown->channel != channel_id) {
                const std::string why = "the button names mitigation " + mitigation_id +
                                        " but was clicked on message " + message_ts +
                                        ", which does not show it";
                audit_refusal("slack:" + user_id, mitigation_id, route, why);
                return text_reply(403, "refused: " + why);
            }
        }
        for (const auto& [action_id, mitigation_id] : clicked) {
            enqueue({route, action_id == slack_approve_action ? "approve" : "reject", mitigation_id,
                     user_id, response_url, ""});
        }
        return {200, {}, ""};
    }

    HttpReply command(const HttpExchange& request) {
        const std::string route(slack_commands_path);
        auto form = parse_url_encoded(request.body);
        if (const auto problem = form_problem(form)) {
            return refuse_shape(route, *problem);
        }
        const std::string user_id = form["user_id"];
        if (user_id.empty()) {
            return refuse_shape(route, "a slash command carries user_id");
        }
        if (auto refusal = refuse_origin(route, form["team_id"], form["api_app_id"])) {
            return *refusal;
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
                const PersonRequest person{work.mitigation_id, user.identity, user.groups, reason,
                                           via};
                result =
                    work.verb == "revert" ? engine_api.revert(person) : engine_api.keep(person);
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
