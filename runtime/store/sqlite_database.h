// The SQLite file under a mitigate store, as a handle that every library keeping state in
// that file shares: runtime/store's interfaces, runtime/drills' runs, runtime/chat's
// messages. Each of those owns its queries; this owns the connections, the transactions
// and the audit chain, which every write may extend.
//
// Connections, because WAL lets readers run beside the writer:
//   writer      every write, in BEGIN IMMEDIATE, synchronous=FULL; one at a time (a mutex)
//   reader      reads that need no write lock, so an API read never waits for an fsync
//   checkpoint  a thread of its own copies the WAL into the database (a passive
//               checkpoint, which never blocks the writer) once a second or once the WAL
//               holds 1000 pages, instead of the writer doing it inside a commit that
//               every sender of a batch waits for
// Statements are prepared once per connection and kept (statement()).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "runtime/audit/audit_chain.h"
#include "runtime/store/audit_log.h"

struct sqlite3;
struct sqlite3_stmt;

namespace mitigate {

// A prepared statement. Binds are 1-based, as in SQLite; columns 0-based.
class SqliteStatement {
  public:
    SqliteStatement(sqlite3* database, std::string_view sql);
    ~SqliteStatement();
    SqliteStatement(const SqliteStatement&) = delete;
    SqliteStatement& operator=(const SqliteStatement&) = delete;

    SqliteStatement& bind(int index, std::string_view text);
    SqliteStatement& bind(int index, std::int64_t value);
    SqliteStatement& bind_null(int index);
    // Ready to run again with new bindings.
    void reset();
    // True while there is a row to read; throws StoreError on failure.
    bool step();
    void run();

    std::int64_t integer(int column) const;
    bool is_null(int column) const;
    std::string text(int column) const;

  private:
    void check(int result);
    sqlite3* database_;
    sqlite3_stmt* statement_ = nullptr;
};

class SqliteConnection {
  public:
    // A kept statement, reset (bindings cleared) when this goes out of scope.
    class Use {
      public:
        explicit Use(SqliteStatement& statement) : statement_(&statement) {}
        ~Use() { statement_->reset(); }
        Use(const Use&) = delete;
        Use& operator=(const Use&) = delete;
        SqliteStatement* operator->() const { return statement_; }
        SqliteStatement& operator*() const { return *statement_; }

      private:
        SqliteStatement* statement_;
    };

    explicit SqliteConnection(sqlite3* database) : database_(database) {}
    ~SqliteConnection();
    SqliteConnection(const SqliteConnection&) = delete;
    SqliteConnection& operator=(const SqliteConnection&) = delete;

    // Prepared on first use of this SQL text, then kept for the connection's life.
    Use statement(std::string_view sql);
    void execute(const std::string& sql);
    // Rows changed by the last INSERT, UPDATE or DELETE.
    std::int64_t changes() const;
    std::int64_t last_insert_rowid() const;

    // Inside a write transaction: numbers and chains the record after the current head.
    AuditRecord append_audit(const AuditEntry& entry);
    std::optional<AuditHead> audit_head();

    sqlite3* handle() const { return database_; }

  private:
    // Found by the SQL text without building a string: statement() is on every path.
    struct TextHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view text) const {
            return std::hash<std::string_view>{}(text);
        }
    };
    sqlite3* database_;
    std::unordered_map<std::string, std::unique_ptr<SqliteStatement>, TextHash, std::equal_to<>>
        statements_;
};

struct SqliteDatabaseOptions {
    // Read-only: no migration, no write; for `mitigate audit verify/tail` on a live store.
    bool read_only = false;
    // Create the file if missing (read_only excludes it).
    bool create_if_missing = true;
};

class SqliteDatabase {
  public:
    // Opens (creating, checking and migrating as the options say); throws StoreError with
    // the path and what is wrong. A file that is not a mitigate store is never changed.
    SqliteDatabase(std::filesystem::path path, SqliteDatabaseOptions options);
    ~SqliteDatabase();
    SqliteDatabase(const SqliteDatabase&) = delete;
    SqliteDatabase& operator=(const SqliteDatabase&) = delete;

    // One write transaction on the writer connection: committed (durably) when `work`
    // returns, rolled back when it throws (the exception goes on).
    void write(const std::function<void(SqliteConnection&)>& work);
    // Reads on the reader connection: each statement sees one committed state.
    void read(const std::function<void(SqliteConnection&)>& work);
    // Reads that must all see the same committed state (one read transaction).
    void snapshot(const std::function<void(SqliteConnection&)>& work);

    const std::filesystem::path& path() const { return path_; }
    bool read_only() const { return options_.read_only; }

    // Why this store must not be trusted with anything more, for good: its file was
    // deleted or replaced by another file since it was opened (checked before and after
    // every write transaction, so a write that went to the unlinked file throws rather
    // than counting as stored). Nullopt while the file is the one opened.
    std::optional<std::string> lost_file() const;
    // The last write transaction's failure (locked past the busy timeout, disk full,
    // I/O error), until a write succeeds; nullopt when the last write committed.
    std::optional<std::string> last_write_failure() const;
    // Asks the checkpoint thread to copy the WAL into the database now.
    void request_checkpoint();

  private:
    void open();
    void checkpoints();
    void check_file_header() const;
    void check_identity(sqlite3* database) const;
    void migrate(SqliteConnection& connection) const;
    [[noreturn]] void refuse(const std::string& why) const;
    // Whether the path still names the file opened (same device and inode).
    std::optional<std::string> file_moved() const;
    void note_write(std::optional<std::string> failure);

    std::filesystem::path path_;
    SqliteDatabaseOptions options_;
    std::unique_ptr<SqliteConnection> writer_;
    std::unique_ptr<SqliteConnection> reader_;
    std::mutex writer_mutex_;
    std::mutex reader_mutex_;

    std::unique_ptr<SqliteConnection> checkpointer_;
    std::thread checkpoint_thread_;
    std::mutex checkpoint_mutex_;
    std::condition_variable checkpoint_due_;
    bool checkpoint_requested_ = false;
    bool closing_ = false;

    std::uint64_t opened_device_ = 0;
    std::uint64_t opened_inode_ = 0;
    mutable std::mutex health_mutex_;
    std::optional<std::string> lost_file_;
    std::optional<std::string> last_write_failure_;
};

}  // namespace mitigate
