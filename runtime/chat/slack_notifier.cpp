#include "runtime/chat/slack_notifier.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "runtime/chat/chat_state_store.h"
#include "runtime/chat/slack_message.h"
#include "runtime/chat/slack_web_api.h"
#include "runtime/core/mitigation_state.h"
#include "runtime/engine/engine.h"
#include "runtime/metrics/metrics.h"
#include "runtime/store/store.h"

namespace mitigate {
namespace {

using nlohmann::json;

constexpr std::string_view cursor_name = "chat.slack";
constexpr std::size_t batch = 200;

// States worth a new message: a person must act, or the target changed.
bool starts_message(MitigationState state) {
    switch (state) {
        case MitigationState::pending_approval:
        case MitigationState::verifying:
        case MitigationState::reverted:
        case MitigationState::conflict:
        case MitigationState::failed: return true;
        default: return false;
    }
}

// Steps worth a line in the thread; the transient ones (applying, reverting) are not.
bool worth_a_reply(MitigationState state) {
    switch (state) {
        case MitigationState::applying:
        case MitigationState::reverting:
        case MitigationState::proposed:
        case MitigationState::planned: return false;
        default: return true;
    }
}

enum class Handled { done, retry, give_up };

}  // namespace

struct SlackNotifier::State {
    Store& store;
    ChatStateStore& chat;
    const Clock& clock;
    Metrics& metrics;
    SlackConfig slack;
    EngineConfig engine;
    int give_up_after;
    SlackWebApi api;
    std::optional<TimePoint> not_before;
    int attempts = 0;  // for the record at the cursor
    std::chrono::seconds backoff{1};

    State(Store& store_in, ChatStateStore& chat_in, const Clock& clock_in, Metrics& metrics_in,
          SlackConfig slack_in, EngineConfig engine_in, int give_up_after_in)
        : store(store_in),
          chat(chat_in),
          clock(clock_in),
          metrics(metrics_in),
          slack(std::move(slack_in)),
          engine(std::move(engine_in)),
          give_up_after(give_up_after_in),
          api(slack.api_url, *slack.bot_token) {}

    // Counts the call, and turns Slack's answer into what to do next.
    Handled account(std::string_view kind, const SlackCallResult& result,
                    const std::string& mitigation_id) {
        const std::string outcome = result.ok                        ? "ok"
                                    : result.retry_after.has_value() ? "ratelimited"
                                                                     : "error";
        metrics.increment("mitigate_chat_calls_total",
                          {{"call", std::string(kind)}, {"outcome", outcome}});
        if (result.ok) {
            return Handled::done;
        }
        const TimePoint now = clock.now();
        if (result.retry_after) {
            not_before = now + *result.retry_after;
            spdlog::warn("slack: {} rate limited; waiting {} s", kind, result.retry_after->count());
        } else {
            // Slack's own refusals (invalid_auth) are retried too, on the same backoff: the
            // token is read at each call, so fixing the secret fixes the next attempt.
            spdlog::error("slack: {} for {} failed: {}", kind, mitigation_id, result.error);
            not_before = now + backoff;
            backoff = std::min(backoff * 2, std::chrono::seconds(60));
        }
        return ++attempts >= give_up_after ? Handled::give_up : Handled::retry;
    }

    Handled handle(const AuditRecord& record) {
        if (record.event == "mitigation.step_failed") {
            return step_failed(record);
        }
        if (record.event != "mitigation.transition") {
            return Handled::done;
        }
        const auto to = parse_mitigation_state(record.details.value("to", std::string()));
        const auto mitigation = store.find_mitigation(record.subject);
        if (!to || !mitigation) {
            return Handled::done;
        }
        const auto existing = chat.find_chat_message(mitigation->id);
        if (!existing && !starts_message(*to)) {
            return Handled::done;
        }
        if (existing && !worth_a_reply(*to)) {
            return Handled::done;
        }
        std::optional<Incident> incident;
        if (!mitigation->proposal.incident_id.empty()) {
            incident = store.find_incident(mitigation->proposal.incident_id);
        }
        json message =
            slack_mitigation_message(*mitigation, incident, approval_expiry(*mitigation, engine));
        if (!existing) {
            return post_new(message, mitigation->id);
        }
        message["channel"] = existing->channel;
        message["ts"] = existing->ts;
        const SlackCallResult update = api.update_message(message);
        if (!update.ok && update.error == "message_not_found") {
            return replace_deleted("chat.update", message, mitigation->id);
        }
        const Handled updated = account("chat.update", update, mitigation->id);
        if (updated != Handled::done) {
            return updated;
        }
        const json reply = {{"channel", existing->channel},
                            {"thread_ts", existing->ts},
                            {"text", slack_transition_line(record)}};
        const SlackCallResult replied = api.post_message(reply);
        if (!replied.ok && replied.error == "thread_not_found") {
            return replace_deleted("chat.postMessage", message, mitigation->id);
        }
        return account("chat.postMessage", replied, mitigation->id);
    }

    // A step the engine keeps retrying (a revert against a provider that is down) is told
    // in the mitigation's thread: the engine audits the first three failures and then every
    // tenth, so the thread hears of it without a line per retry.
    Handled step_failed(const AuditRecord& record) {
        const auto existing = chat.find_chat_message(record.subject);
        if (!existing) {
            return Handled::done;
        }
        const json reply = {{"channel", existing->channel},
                            {"thread_ts", existing->ts},
                            {"text", slack_step_failed_line(record)}};
        const SlackCallResult replied = api.post_message(reply);
        if (!replied.ok && replied.error == "thread_not_found") {
            return Handled::done;  // the next transition posts the message anew
        }
        return account("chat.postMessage", replied, record.subject);
    }

    Handled post_new(json message, const std::string& mitigation_id) {
        message.erase("ts");
        message["channel"] = slack.channel;
        const SlackCallResult posted = api.post_message(message);
        const Handled handled = account("chat.postMessage", posted, mitigation_id);
        if (handled == Handled::done) {
            chat.save_chat_message({mitigation_id, posted.channel, posted.ts});
        }
        return handled;
    }

    // Someone deleted the message in Slack. The state must still be visible somewhere: a
    // new message, which later steps update.
    Handled replace_deleted(std::string_view call, json message, const std::string& mitigation_id) {
        metrics.increment("mitigate_chat_calls_total",
                          {{"call", std::string(call)}, {"outcome", "message_deleted"}});
        spdlog::warn("slack: the message for {} was deleted; posting it again", mitigation_id);
        return post_new(std::move(message), mitigation_id);
    }

    std::optional<TimePoint> step() {
        if (not_before && clock.now() < *not_before) {
            return not_before;
        }
        not_before.reset();
        const std::int64_t cursor = chat.read_cursor(cursor_name).value_or(0);
        const std::vector<AuditRecord> records = store.audit_records(cursor, batch);
        for (const AuditRecord& record : records) {
            const Handled handled = handle(record);
            if (handled == Handled::retry) {
                return not_before;
            }
            if (handled == Handled::give_up) {
                metrics.increment("mitigate_chat_records_skipped_total");
                spdlog::error("slack: gave up on audit record {} ({} {}) after {} attempts",
                              record.sequence, record.event, record.subject, attempts);
                not_before.reset();
            }
            attempts = 0;
            backoff = std::chrono::seconds(1);
            chat.write_cursor(cursor_name, record.sequence);
        }
        if (records.size() == batch) {
            return clock.now();
        }
        return std::nullopt;
    }
};

SlackNotifier::SlackNotifier(Store& store, ChatStateStore& chat, const Clock& clock,
                             Metrics& metrics, SlackConfig slack, EngineConfig engine,
                             int give_up_after) {
    if (!slack.bot_token) {
        throw std::invalid_argument("chat.slack.bot_token is required to post messages");
    }
    metrics.declare_counter("mitigate_chat_calls_total",
                            "Slack Web API calls, by call and outcome (ok, ratelimited, error).");
    metrics.declare_counter("mitigate_chat_records_skipped_total",
                            "Audit records the Slack notifier gave up on after repeated failures.");
    state_ = std::make_unique<State>(store, chat, clock, metrics, std::move(slack),
                                     std::move(engine), give_up_after);
    if (!chat.read_cursor(cursor_name)) {
        chat.write_cursor(cursor_name, store.audit_head().sequence);
    }
}

SlackNotifier::~SlackNotifier() = default;

std::optional<TimePoint> SlackNotifier::step() {
    return state_->step();
}

}  // namespace mitigate
