// What chat keeps between restarts, beside the runtime's other state in the same database
// (runtime/store/sqlite_database.h for SQLite): the message that shows each mitigation, so
// every later state updates it in place, and the position in the audit log up to which
// the notifier has posted, so a restart neither reposts history nor skips what happened
// while it was down.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace mitigate {

class SqliteDatabase;

// The chat message that shows a mitigation: one per mitigation, updated in place.
struct ChatMessage {
    std::string mitigation_id;
    std::string channel;  // the channel id the chat service answered with
    std::string ts;       // the chat service's message id (Slack's "ts")
    bool operator==(const ChatMessage&) const = default;
};

class ChatStateStore {
  public:
    virtual ~ChatStateStore() = default;

    virtual std::optional<ChatMessage> find_chat_message(std::string_view mitigation_id) = 0;
    // Inserts, or replaces the one stored for that mitigation.
    virtual void save_chat_message(const ChatMessage& message) = 0;
    // A named position (an audit sequence) that a follower of the audit log has handled.
    virtual std::optional<std::int64_t> read_cursor(std::string_view name) = 0;
    virtual void write_cursor(std::string_view name, std::int64_t position) = 0;
};

std::unique_ptr<ChatStateStore> sqlite_chat_state_store(SqliteDatabase& database);

}  // namespace mitigate
