#include "tests/support/store_fixtures.h"

#include <sqlite3.h>

#include <stdexcept>

#include "runtime/store/sqlite_store.h"

namespace mitigate::testing {

Mitigation make_mitigation(const std::string& id, TimePoint now) {
    Mitigation mitigation;
    mitigation.id = id;
    mitigation.proposal.id = "prop_" + id;
    mitigation.proposal.incident_id = "inc_1";
    mitigation.proposal.proposed_by = "playbook:test";
    mitigation.proposal.action.provider = "flags";
    mitigation.proposal.action.action = "flag.set";
    mitigation.proposal.action.target = "checkout-" + id;
    mitigation.proposal.action.parameters = {{"variant", "off"}};
    mitigation.proposal.action.ttl = Duration{std::chrono::minutes{30}};
    mitigation.proposal.action.reason = "test";
    mitigation.proposal.created_at = now;
    mitigation.created_at = mitigation.updated_at = now;
    return mitigation;
}

const std::vector<MitigationState>& lifecycle_path() {
    using enum MitigationState;
    static const std::vector<MitigationState> path{proposed,  planned, approved,  applying,
                                                   verifying, active,  reverting, reverted};
    return path;
}

TransitionOutcome advance(Store& store, const std::string& id, TimePoint now) {
    const auto current = store.find_mitigation(id);
    if (!current) {
        return TransitionOutcome::not_found;
    }
    const auto& path = lifecycle_path();
    const auto position = std::find(path.begin(), path.end(), current->state);
    if (position == path.end() || position + 1 == path.end()) {
        return TransitionOutcome::not_allowed;
    }
    Mitigation next = *current;
    next.state = *(position + 1);
    return store.transition({next, current->version, now, "test", "step", {}}).outcome;
}

namespace {

struct Connection {
    explicit Connection(const std::filesystem::path& path) {
        if (sqlite3_open_v2(path.c_str(), &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            nullptr) != SQLITE_OK) {
            throw std::runtime_error("cannot open " + path.string());
        }
    }
    ~Connection() { sqlite3_close_v2(handle); }
    sqlite3* handle = nullptr;
};

}  // namespace

void execute_sql(const std::filesystem::path& database, const std::string& sql) {
    Connection connection(database);
    char* error = nullptr;
    if (sqlite3_exec(connection.handle, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
        const std::string message = error != nullptr ? error : "unknown";
        sqlite3_free(error);
        throw std::runtime_error("SQL failed: " + message + ": " + sql);
    }
}

std::string query_text(const std::filesystem::path& database, const std::string& sql) {
    Connection connection(database);
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(connection.handle, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
        throw std::runtime_error(std::string("SQL failed: ") + sqlite3_errmsg(connection.handle));
    }
    std::string result;
    if (sqlite3_step(statement) == SQLITE_ROW && sqlite3_column_text(statement, 0) != nullptr) {
        result = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
    }
    sqlite3_finalize(statement);
    return result;
}

std::vector<std::string> consistency_problems(const std::filesystem::path& database) {
    std::vector<std::string> problems;
    SqliteStoreOptions options;
    options.read_only = true;
    auto store = open_sqlite_store(database, options);
    MitigationFilter all;
    all.limit = 100000;
    std::size_t journal_entries = 0;
    for (const Mitigation& mitigation : store->list_mitigations(all)) {
        const auto journal = store->journal(mitigation.id);
        journal_entries += journal.size();
        if (journal.empty()) {
            problems.push_back(mitigation.id + ": no journal");
            continue;
        }
        for (std::size_t i = 0; i < journal.size(); ++i) {
            if (journal[i].version != static_cast<std::int64_t>(i) + 1) {
                problems.push_back(mitigation.id + ": journal version gap");
            }
            if (i > 0 && journal[i].from != journal[i - 1].to) {
                problems.push_back(mitigation.id + ": journal does not chain");
            }
        }
        if (journal.back().to != mitigation.state || journal.back().version != mitigation.version) {
            problems.push_back(mitigation.id + ": row says " +
                               std::string(to_string(mitigation.state)) + " v" +
                               std::to_string(mitigation.version) + ", journal says " +
                               std::string(to_string(journal.back().to)) + " v" +
                               std::to_string(journal.back().version));
        }
    }
    const AuditChainVerifier chain = store->verify_audit_chain();
    if (!chain.intact()) {
        problems.push_back("audit: " + chain.problem());
    }
    // Every journal entry has its audit record; other events (incidents, approvals
    // refused, the daemon starting) have no journal entry.
    std::size_t mitigation_records = 0;
    for (const AuditRecord& record : store->audit_records(0, 10'000'000)) {
        mitigation_records += record.event.starts_with("mitigation.") ? 1 : 0;
    }
    if (mitigation_records != journal_entries) {
        problems.push_back("audit has " + std::to_string(mitigation_records) +
                           " mitigation records for " + std::to_string(journal_entries) +
                           " journal entries");
    }
    return problems;
}

StoreWriteLock::StoreWriteLock(const std::filesystem::path& database) {
    sqlite3* connection = nullptr;
    if (sqlite3_open(database.c_str(), &connection) != SQLITE_OK ||
        sqlite3_exec(connection, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
        sqlite3_close(connection);
        throw std::runtime_error("cannot take the write lock of " + database.string());
    }
    connection_ = connection;
}

StoreWriteLock::~StoreWriteLock() {
    release();
}

void StoreWriteLock::release() {
    if (connection_ != nullptr) {
        auto* connection = static_cast<sqlite3*>(connection_);
        sqlite3_exec(connection, "ROLLBACK", nullptr, nullptr, nullptr);
        sqlite3_close(connection);
        connection_ = nullptr;
    }
}

}  // namespace mitigate::testing
