#include "runtime/store/sqlite_database.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <sys/stat.h>

#include <array>
#include <chrono>
#include <fstream>

#include "runtime/store/schema.h"
#include "runtime/store/sqlite_store.h"

namespace mitigate {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::int64_t pragma_integer(sqlite3* database, const char* name) {
    SqliteStatement statement(database, std::string("PRAGMA ") + name);
    return statement.step() ? statement.integer(0) : 0;
}

void execute_on(sqlite3* database, const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(database, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
        std::string message = error != nullptr ? error : sqlite3_errmsg(database);
        sqlite3_free(error);
        throw StoreError("SQLite: " + message);
    }
}

}  // namespace

// ---- SqliteStatement -------------------------------------------------------------------

SqliteStatement::SqliteStatement(sqlite3* database, std::string_view sql) : database_(database) {
    if (sqlite3_prepare_v2(database, sql.data(), static_cast<int>(sql.size()), &statement_,
                           nullptr) != SQLITE_OK) {
        throw StoreError(std::string("SQLite cannot prepare a statement: ") +
                         sqlite3_errmsg(database));
    }
}

SqliteStatement::~SqliteStatement() {
    sqlite3_finalize(statement_);
}

SqliteStatement& SqliteStatement::bind(int index, std::string_view text) {
    check(sqlite3_bind_text(statement_, index, text.data(), static_cast<int>(text.size()),
                            SQLITE_TRANSIENT));
    return *this;
}

SqliteStatement& SqliteStatement::bind(int index, std::int64_t value) {
    check(sqlite3_bind_int64(statement_, index, value));
    return *this;
}

SqliteStatement& SqliteStatement::bind_null(int index) {
    check(sqlite3_bind_null(statement_, index));
    return *this;
}

void SqliteStatement::reset() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
}

bool SqliteStatement::step() {
    const int result = sqlite3_step(statement_);
    if (result == SQLITE_ROW) {
        return true;
    }
    if (result == SQLITE_DONE) {
        return false;
    }
    throw StoreError(std::string("SQLite: ") + sqlite3_errmsg(database_));
}

void SqliteStatement::run() {
    while (step()) {
    }
}

std::int64_t SqliteStatement::integer(int column) const {
    return sqlite3_column_int64(statement_, column);
}

bool SqliteStatement::is_null(int column) const {
    return sqlite3_column_type(statement_, column) == SQLITE_NULL;
}

std::string SqliteStatement::text(int column) const {
    const auto* bytes = sqlite3_column_text(statement_, column);
    return bytes == nullptr
               ? std::string()
               : std::string(reinterpret_cast<const char*>(bytes),
                             static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)));
}

void SqliteStatement::check(int result) {
    if (result != SQLITE_OK) {
        throw StoreError(std::string("SQLite cannot bind a value: ") + sqlite3_errmsg(database_));
    }
}

// ---- SqliteConnection ------------------------------------------------------------------

SqliteConnection::~SqliteConnection() {
    statements_.clear();  // finalized before the connection closes
    sqlite3_close_v2(database_);
}

SqliteConnection::Use SqliteConnection::statement(std::string_view sql) {
    auto found = statements_.find(sql);
    if (found == statements_.end()) {
        found =
            statements_.emplace(std::string(sql), std::make_unique<SqliteStatement>(database_, sql))
                .first;
    }
    return Use(*found->second);
}

void SqliteConnection::execute(const std::string& sql) {
    execute_on(database_, sql);
}

std::int64_t SqliteConnection::changes() const {
    return sqlite3_changes64(database_);
}

std::int64_t SqliteConnection::last_insert_rowid() const {
    return sqlite3_last_insert_rowid(database_);
}

std::optional<AuditHead> SqliteConnection::audit_head() {
    auto head = statement("SELECT sequence, hash FROM audit_head WHERE id = 1");
    if (!head->step()) {
        return std::nullopt;
    }
    return AuditHead{head->integer(0), head->text(1)};
}

AuditRecord SqliteConnection::append_audit(const AuditEntry& entry) {
    const auto head = audit_head();
    if (!head) {
        throw StoreError("the audit head is missing; run `mitigate audit verify`");
    }
    AuditRecord record;
    record.sequence = head->sequence + 1;
    record.at = entry.at;
    record.actor = entry.actor;
    record.event = entry.event;
    record.subject = entry.subject;
    // `{}` in a braced AuditEntry is JSON null, not an empty object: normalize, so that the
    // record reads back exactly as it was hashed.
    record.details = entry.details.is_null() ? json::object() : entry.details;
    record.previous_hash = head->hash;
    const std::string text = canonical_audit_text(record);
    record.hash = audit_chain_hash(record.previous_hash, text);
    {
        auto insert = statement("INSERT INTO audit_log (sequence, record, hash) VALUES (?, ?, ?)");
        insert->bind(1, record.sequence).bind(2, text).bind(3, record.hash);
        insert->run();
    }
    auto update = statement("UPDATE audit_head SET sequence = ?, hash = ? WHERE id = 1");
    update->bind(1, record.sequence).bind(2, record.hash);
    update->run();
    return record;
}

// ---- SqliteDatabase --------------------------------------------------------------------

SqliteDatabase::SqliteDatabase(fs::path path, SqliteDatabaseOptions options)
    : path_(std::move(path)), options_(options) {
    open();
}

SqliteDatabase::~SqliteDatabase() {
    {
        std::lock_guard lock(checkpoint_mutex_);
        closing_ = true;
    }
    checkpoint_due_.notify_all();
    if (checkpoint_thread_.joinable()) {
        checkpoint_thread_.join();
    }
}

void SqliteDatabase::checkpoints() {
    std::unique_lock lock(checkpoint_mutex_);
    while (!closing_) {
        checkpoint_due_.wait_for(lock, std::chrono::seconds(1),
                                 [this] { return closing_ || checkpoint_requested_; });
        if (closing_) {
            return;
        }
        checkpoint_requested_ = false;
        lock.unlock();
        // PASSIVE: copies what it can without waiting for (or blocking) anyone. A busy
        // database only defers it to the next round.
        sqlite3_wal_checkpoint_v2(checkpointer_->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                  nullptr, nullptr);
        lock.lock();
    }
}

namespace {

// After every commit on the writer: past 1000 pages, wake the checkpoint thread.
int wal_grew(void* database, sqlite3* /*connection*/, const char* /*schema*/, int pages) {
    if (pages >= 1000) {
        static_cast<SqliteDatabase*>(database)->request_checkpoint();
    }
    return SQLITE_OK;
}

}  // namespace

void SqliteDatabase::request_checkpoint() {
    {
        std::lock_guard lock(checkpoint_mutex_);
        checkpoint_requested_ = true;
    }
    checkpoint_due_.notify_one();
}

void SqliteDatabase::write(const std::function<void(SqliteConnection&)>& work) {
    if (options_.read_only) {
        throw std::logic_error("write to a store opened read-only");
    }
    std::lock_guard lock(writer_mutex_);
    if (const auto lost = lost_file()) {
        throw StoreError(path_.string() + ": " + *lost);
    }
    // The code of the statement that failed, read before ROLLBACK resets it: a store
    // that cannot write (locked, full, read-only, failing disk) is unhealthy until a write
    // succeeds; a refused row (a token name taken) says nothing about the store.
    const auto note_failure = [this](const StoreError& failure, int code) {
        switch (code & 0xff) {
            case SQLITE_BUSY:
            case SQLITE_LOCKED:
            case SQLITE_FULL:
            case SQLITE_IOERR:
            case SQLITE_READONLY:
            case SQLITE_CORRUPT:
            case SQLITE_CANTOPEN:
            case SQLITE_NOTADB:
            case SQLITE_NOMEM:
            case SQLITE_PROTOCOL: note_write(failure.what()); break;
            default: break;
        }
    };
    try {
        // BEGIN IMMEDIATE takes the write lock up front, so that a busy database makes us
        // wait (busy_timeout) instead of failing half-way through.
        writer_->statement("BEGIN IMMEDIATE")->run();
    } catch (const StoreError& failure) {
        note_failure(failure, sqlite3_extended_errcode(writer_->handle()));
        throw;
    }
    try {
        work(*writer_);
        writer_->statement("COMMIT")->run();
    } catch (const StoreError& failure) {
        note_failure(failure, sqlite3_extended_errcode(writer_->handle()));
        sqlite3_exec(writer_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    } catch (...) {
        sqlite3_exec(writer_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
    // Committed, but into the file opened: if that file was deleted or replaced
    // meanwhile, the commit is in no file anyone will open again, and must not be
    // acknowledged as stored.
    if (const auto moved = file_moved()) {
        const std::string why = *moved +
                                " since it was opened; what was written since is "
                                "in the old file, and the daemon stops writing";
        {
            std::lock_guard health(health_mutex_);
            lost_file_ = why;
        }
        spdlog::critical("store {}: {}", path_.string(), why);
        throw StoreError(path_.string() + ": " + why);
    }
    note_write(std::nullopt);
}

std::optional<std::string> SqliteDatabase::file_moved() const {
    struct stat now {};
    if (::stat(path_.c_str(), &now) != 0) {
        return std::string("the database file was deleted");
    }
    if (now.st_dev != opened_device_ || now.st_ino != opened_inode_) {
        return std::string("the database file was replaced by another file");
    }
    return std::nullopt;
}

void SqliteDatabase::note_write(std::optional<std::string> failure) {
    std::lock_guard lock(health_mutex_);
    last_write_failure_ = std::move(failure);
}

std::optional<std::string> SqliteDatabase::lost_file() const {
    std::lock_guard lock(health_mutex_);
    return lost_file_;
}

std::optional<std::string> SqliteDatabase::last_write_failure() const {
    std::lock_guard lock(health_mutex_);
    return last_write_failure_;
}

void SqliteDatabase::read(const std::function<void(SqliteConnection&)>& work) {
    // Each statement reads one consistent snapshot on its own (WAL); reads that must agree
    // across statements take snapshot().
    std::lock_guard lock(reader_mutex_);
    work(*reader_);
}

void SqliteDatabase::snapshot(const std::function<void(SqliteConnection&)>& work) {
    std::lock_guard lock(reader_mutex_);
    reader_->statement("BEGIN")->run();
    try {
        work(*reader_);
    } catch (...) {
        sqlite3_exec(reader_->handle(), "COMMIT", nullptr, nullptr, nullptr);
        throw;
    }
    reader_->statement("COMMIT")->run();
}

void SqliteDatabase::refuse(const std::string& why) const {
    throw StoreError(path_.string() + ": " + why);
}

void SqliteDatabase::open() {
    std::error_code error;
    const bool exists = fs::exists(path_, error);
    if (exists) {
        check_file_header();
    } else if (options_.read_only || !options_.create_if_missing) {
        refuse("no store here (the file does not exist)");
    }
    const auto connect = [this](int flags) {
        sqlite3* database = nullptr;
        if (sqlite3_open_v2(path_.c_str(), &database, flags | SQLITE_OPEN_NOMUTEX, nullptr) !=
            SQLITE_OK) {
            const std::string message =
                database != nullptr ? sqlite3_errmsg(database) : "out of memory";
            sqlite3_close_v2(database);
            refuse("cannot open: " + message);
        }
        // A connection is owned from here on, so a refusal below closes it and leaves a
        // refused file exactly as it was found (no -wal or -shm beside it).
        auto connection = std::make_unique<SqliteConnection>(database);
        sqlite3_busy_timeout(database, 10'000);
        sqlite3_extended_result_codes(database, 1);
        return connection;
    };
    int flags = options_.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if (!exists && !options_.read_only) {
        flags |= SQLITE_OPEN_CREATE;
    }
    auto first = connect(flags);
    // The file now open is the one every later write must still find at the path.
    struct stat opened {};
    if (::stat(path_.c_str(), &opened) != 0) {
        refuse("the file vanished while it was being opened");
    }
    opened_device_ = opened.st_dev;
    opened_inode_ = opened.st_ino;
    try {
        check_identity(first->handle());
    } catch (const StoreError& failure) {
        // SQLite reports damage as "file is not a database" or "malformed".
        const std::string what = failure.what();
        if (what.starts_with(path_.string())) {
            throw;
        }
        refuse("the database is damaged and was not changed (" + what + ")");
    }
    if (options_.read_only) {
        first->execute("PRAGMA query_only = ON");
        if (pragma_integer(first->handle(), "user_version") == 0) {
            refuse("the store is empty (never initialized)");
        }
        reader_ = std::move(first);
        return;
    }
    {
        SqliteStatement journal_mode(first->handle(), "PRAGMA journal_mode = WAL");
        if (!journal_mode.step() || journal_mode.text(0) != "wal") {
            refuse("cannot switch to WAL mode");
        }
    }
    first->execute("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON");
    // The writer touches index pages all over the signal and membership indexes (their keys
    // are hashes): a larger page cache keeps them parsed between batches.
    first->execute("PRAGMA cache_size = -65536");
    migrate(*first);
    writer_ = std::move(first);
    reader_ = connect(SQLITE_OPEN_READWRITE);
    reader_->execute("PRAGMA query_only = ON");
    // The writer no longer checkpoints inside its commits (wal_grew and the thread do).
    writer_->execute("PRAGMA wal_autocheckpoint = 0");
    sqlite3_wal_hook(writer_->handle(), wal_grew, this);
    checkpointer_ = connect(SQLITE_OPEN_READWRITE);
    checkpoint_thread_ = std::thread([this] { checkpoints(); });
}

// Before SQLite sees the file: anything that is not a SQLite database is refused here, so
// nothing (not even a journal-mode change) can ever be written into it.
void SqliteDatabase::check_file_header() const {
    std::ifstream file(path_, std::ios::binary);
    if (!file) {
        refuse("cannot read the file");
    }
    std::array<char, 16> header{};
    file.read(header.data(), header.size());
    const auto got = file.gcount();
    if (got == 0) {
        // SQLite would start a new, empty store in it: a store truncated to nothing (a
        // failed copy, a full disk during a restore) would silently lose every mitigation,
        // token and audit record. Only a missing file starts a new store.
        refuse(
            "the file is empty, not a mitigate store (a truncated store?); it was not "
            "changed. Remove it to start a new store, or restore the store from a backup");
    }
    static constexpr std::string_view magic{"SQLite format 3\0", 16};
    if (got != 16 || std::string_view(header.data(), 16) != magic) {
        refuse("not a mitigate store: the file is not a SQLite database; it was not changed");
    }
}

void SqliteDatabase::check_identity(sqlite3* database) const {
    const auto application_id = pragma_integer(database, "application_id");
    const auto version = pragma_integer(database, "user_version");
    SqliteStatement tables(database, "SELECT count(*) FROM sqlite_schema");
    const auto objects = tables.step() ? tables.integer(0) : 0;
    if (application_id == sqlite_application_id) {
        if (version > sqlite_schema_version) {
            refuse("written by a newer mitigate (schema " + std::to_string(version) +
                   ", this build knows up to " + std::to_string(sqlite_schema_version) +
                   "); upgrade mitigate, the file was not changed");
        }
    } else if (application_id != 0 || objects != 0) {
        refuse(
            "not a mitigate store: a SQLite database of another application "
            "(application_id " +
            std::to_string(application_id) + ", " + std::to_string(objects) +
            " schema objects); it was not changed");
    }
    SqliteStatement integrity(database, "PRAGMA quick_check");
    if (!integrity.step() || integrity.text(0) != "ok") {
        refuse("the database is damaged (quick_check: " + integrity.text(0) +
               "); it was not changed");
    }
}

void SqliteDatabase::migrate(SqliteConnection& connection) const {
    // The common case, an up-to-date file, takes no write lock.
    if (pragma_integer(connection.handle(), "user_version") >= sqlite_schema_version) {
        return;
    }
    for (const SqliteMigration& migration : sqlite_migrations()) {
        connection.execute("BEGIN IMMEDIATE");
        try {
            // Re-read inside the lock: another process may have migrated meanwhile.
            if (pragma_integer(connection.handle(), "user_version") >= migration.version) {
                connection.execute("COMMIT");
                continue;
            }
            connection.execute(std::string(migration.sql));
            connection.execute("PRAGMA application_id = " + std::to_string(sqlite_application_id));
            connection.execute("PRAGMA user_version = " + std::to_string(migration.version));
            connection.execute("COMMIT");
        } catch (...) {
            sqlite3_exec(connection.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
            throw;
        }
        spdlog::info("store {}: migrated to schema {} ({})", path_.string(), migration.version,
                     migration.description);
    }
}

}  // namespace mitigate
