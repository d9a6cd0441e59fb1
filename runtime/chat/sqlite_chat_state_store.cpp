#include "runtime/chat/chat_state_store.h"

#include "runtime/store/sqlite_database.h"

namespace mitigate {
namespace {

class SqliteChatStateStore final : public ChatStateStore {
  public:
    explicit SqliteChatStateStore(SqliteDatabase& database) : database_(database) {}

    std::optional<ChatMessage> find_chat_message(std::string_view mitigation_id) override {
        std::optional<ChatMessage> found;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement(
                "SELECT channel, ts FROM chat_messages WHERE mitigation_id = ?");
            statement->bind(1, mitigation_id);
            if (statement->step()) {
                found =
                    ChatMessage{std::string(mitigation_id), statement->text(0), statement->text(1)};
            }
        });
        return found;
    }

    void save_chat_message(const ChatMessage& message) override {
        database_.write([&](SqliteConnection& connection) {
            auto upsert = connection.statement(
                "INSERT INTO chat_messages (mitigation_id, channel, ts) VALUES (?, ?, ?) "
                "ON CONFLICT (mitigation_id) DO UPDATE SET channel = excluded.channel, "
                "ts = excluded.ts");
            upsert->bind(1, message.mitigation_id).bind(2, message.channel).bind(3, message.ts);
            upsert->run();
        });
    }

    std::optional<std::int64_t> read_cursor(std::string_view name) override {
        std::optional<std::int64_t> position;
        database_.read([&](SqliteConnection& connection) {
            auto statement = connection.statement("SELECT position FROM cursors WHERE name = ?");
            statement->bind(1, name);
            if (statement->step()) {
                position = statement->integer(0);
            }
        });
        return position;
    }

    void write_cursor(std::string_view name, std::int64_t position) override {
        database_.write([&](SqliteConnection& connection) {
            auto upsert = connection.statement(
                "INSERT INTO cursors (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position");
            upsert->bind(1, name).bind(2, position);
            upsert->run();
        });
    }

  private:
    SqliteDatabase& database_;
};

}  // namespace

std::unique_ptr<ChatStateStore> sqlite_chat_state_store(SqliteDatabase& database) {
    return std::make_unique<SqliteChatStateStore>(database);
}

}  // namespace mitigate
