// Tells the Slack channel what happens to mitigations. It follows the audit log from a
// durable cursor (Store::read_cursor), so it never blocks the engine (it runs on its own
// loop; the engine does not know it exists), a restart neither reposts history nor skips
// what happened while it was down, and a Slack outage only delays messages.
//
// For each transition of a mitigation:
//   - no message yet, and it needs approval, was applied, reverted, conflicts or failed:
//     chat.postMessage to the channel; the message's channel and ts are stored
//   - a message already: chat.update rewrites it with the current state (buttons only
//     while it waits for approval), and the step is a reply in its thread; if someone
//     deleted the message in Slack, a new one is posted in its place
// A 429 pauses everything for its Retry-After; a 5xx or no answer backs off (1 s doubling
// to 60 s). Slack refusing a call (invalid_auth, channel_not_found) is logged and counted,
// and after `give_up_after` attempts the record is skipped, so one bad message cannot stop
// the rest. Delivery is at least once: a crash between Slack's answer and the stored ts
// posts that message again.
#pragma once

#include <memory>
#include <optional>

#include "runtime/config/config.h"
#include "runtime/core/clock.h"

namespace mitigate {

class Store;
class ChatStateStore;
class Metrics;

class SlackNotifier {
  public:
    // Declares its metrics on `metrics`. On the first start ever (no cursor) it starts at
    // the end of the audit log.
    SlackNotifier(Store& store, ChatStateStore& chat, const Clock& clock, Metrics& metrics,
                  SlackConfig slack, EngineConfig engine, int give_up_after = 8);
    ~SlackNotifier();
    SlackNotifier(const SlackNotifier&) = delete;
    SlackNotifier& operator=(const SlackNotifier&) = delete;

    // Handles every audit record past the cursor. Returns when to run again (a rate limit
    // or a backoff is running, or there is more than one batch), nothing when caught up.
    std::optional<TimePoint> step();

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace mitigate
