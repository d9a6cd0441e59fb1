// The SQLite store: compare-and-set transitions, atomicity, append-only journal and audit,
// readers during writes, migrations, and refusing files that are not ours.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sqlite3.h>

#include "runtime/core/time_format.h"
#include "runtime/store/schema.h"
#include "runtime/store/sqlite_database.h"
#include "runtime/store/sqlite_store.h"
#include "tests/support/store_fixtures.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using testing::advance;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::make_mitigation;

class SqliteStoreTest : public ::testing::Test {
  protected:
    std::unique_ptr<Store> open(const SqliteStoreOptions& options = {}) {
        return open_sqlite_store(path_, options);
    }
    std::unique_ptr<Store> open_read_only() {
        SqliteStoreOptions options;
        options.read_only = true;
        return open_sqlite_store(path_, options);
    }
    // Opening must fail with a message containing `expected`, and leave the bytes alone.
    void expect_refused_untouched(const std::string& expected) {
        const std::string before = testing::read_file(path_);
        try {
            open();
            ADD_FAILURE() << "opened a file it should refuse";
        } catch (const StoreError& error) {
            EXPECT_THAT(error.what(), HasSubstr(expected));
            EXPECT_THAT(error.what(), HasSubstr(path_.string()));
        }
        EXPECT_EQ(testing::read_file(path_), before);
        EXPECT_FALSE(std::filesystem::exists(path_.string() + "-wal"));
    }

    testing::TemporaryDirectory directory_;
    std::filesystem::path path_ = directory_ / "mitigate.db";
    ManualClock clock_{*parse_rfc3339("2026-11-23T07:00:00Z")};
};

TEST_F(SqliteStoreTest, CreatesTransitionsAndReadsBack) {
    auto store = open();
    const Mitigation created = make_mitigation("m1", clock_.now());
    store->create_mitigation(created, "alice", "because");
    EXPECT_EQ(store->find_mitigation("m1"), created);

    clock_.advance(Duration{1000});
    Mitigation next = created;
    next.state = MitigationState::planned;
    next.plan = Plan{};
    next.plan->idempotency_key = "k";
    const TransitionResult result =
        store->transition({next, 1, clock_.now(), "runtime", "planned it", {{"extra", 1}}});
    ASSERT_EQ(result.outcome, TransitionOutcome::done) << result.message;
    EXPECT_EQ(result.current->version, 2);
    EXPECT_EQ(result.current->updated_at, clock_.now());

    const auto stored = store->find_mitigation("m1");
    ASSERT_TRUE(stored);
    EXPECT_EQ(*stored, *result.current);
    const auto journal = store->journal("m1");
    ASSERT_EQ(journal.size(), 2u);
    EXPECT_EQ(journal[0].from, std::nullopt);
    EXPECT_EQ(journal[0].to, MitigationState::proposed);
    EXPECT_EQ(journal[0].actor, "alice");
    EXPECT_EQ(journal[1].from, MitigationState::proposed);
    EXPECT_EQ(journal[1].to, MitigationState::planned);
    EXPECT_EQ(journal[1].reason, "planned it");

    const auto audit = store->audit_tail(10);
    ASSERT_EQ(audit.size(), 2u);
    EXPECT_EQ(audit[0].event, "mitigation.created");
    EXPECT_EQ(audit[1].event, "mitigation.transition");
    EXPECT_EQ(audit[1].details["from"], "proposed");
    EXPECT_EQ(audit[1].details["extra"], 1);
    EXPECT_EQ(audit[1].previous_hash, audit[0].hash);
    EXPECT_EQ(store->audit_head(), (AuditHead{2, audit[1].hash}));
}

TEST_F(SqliteStoreTest, RefusedTransitionsWriteNothing) {
    auto store = open();
    store->create_mitigation(make_mitigation("m1", clock_.now()), "alice", "because");
    Mitigation next = *store->find_mitigation("m1");

    next.state = MitigationState::planned;
    auto stale = store->transition({next, 7, clock_.now(), "x", "stale", {}});
    EXPECT_EQ(stale.outcome, TransitionOutcome::version_conflict);
    EXPECT_THAT(stale.message, HasSubstr("version 1, not 7"));

    next.state = MitigationState::active;  // proposed -> active skips the decision
    auto shortcut = store->transition({next, 1, clock_.now(), "x", "skip", {}});
    EXPECT_EQ(shortcut.outcome, TransitionOutcome::not_allowed);
    EXPECT_THAT(shortcut.message, HasSubstr("from proposed to active"));

    next.state = MitigationState::planned;
    next.proposal.action.target = "something-else";  // swapping the action is refused
    auto swapped = store->transition({next, 1, clock_.now(), "x", "swap", {}});
    EXPECT_EQ(swapped.outcome, TransitionOutcome::not_allowed);
    EXPECT_THAT(swapped.message, HasSubstr("proposal"));

    next.id = "nope";
    EXPECT_EQ(store->transition({next, 1, clock_.now(), "x", "y", {}}).outcome,
              TransitionOutcome::not_found);

    EXPECT_EQ(store->find_mitigation("m1")->version, 1);
    EXPECT_EQ(store->journal("m1").size(), 1u);
    EXPECT_EQ(store->audit_head().sequence, 1);
}

TEST_F(SqliteStoreTest, TwoWritersCannotBothWinTheSameVersion) {
    auto first = open();
    auto second = open();
    first->create_mitigation(make_mitigation("m1", clock_.now()), "a", "r");
    const Mitigation read_by_both = *second->find_mitigation("m1");
    Mitigation planned = read_by_both;
    planned.state = MitigationState::planned;
    Mitigation failed = read_by_both;
    failed.state = MitigationState::failed;
    EXPECT_EQ(first->transition({planned, 1, clock_.now(), "a", "r", {}}).outcome,
              TransitionOutcome::done);
    EXPECT_EQ(second->transition({failed, 1, clock_.now(), "b", "r", {}}).outcome,
              TransitionOutcome::version_conflict);
    EXPECT_EQ(first->find_mitigation("m1")->state, MitigationState::planned);
}

TEST_F(SqliteStoreTest, DuplicateIdIsRefusedAndRolledBack) {
    auto store = open();
    store->create_mitigation(make_mitigation("m1", clock_.now()), "a", "r");
    EXPECT_THROW(store->create_mitigation(make_mitigation("m1", clock_.now()), "a", "r"),
                 StoreError);
    EXPECT_EQ(store->audit_head().sequence, 1);
}

TEST_F(SqliteStoreTest, FailureInsideATransitionRollsBackEveryWrite) {
    SqliteStoreOptions options;
    options.fault_point = [](std::string_view point) {
        if (point == "transition.journal_written") {
            throw std::runtime_error("injected failure");
        }
    };
    auto store = open(options);
    store->create_mitigation(make_mitigation("m1", clock_.now()), "a", "r");
    EXPECT_THROW(advance(*store, "m1", clock_.now()), std::runtime_error);
    EXPECT_EQ(store->find_mitigation("m1")->state, MitigationState::proposed);
    EXPECT_THAT(testing::consistency_problems(path_), IsEmpty());
}

TEST_F(SqliteStoreTest, ListsNewestFirstAndFiltersByState) {
    auto store = open();
    for (int i = 0; i < 5; ++i) {
        clock_.advance(Duration{1000});
        store->create_mitigation(make_mitigation("m" + std::to_string(i), clock_.now()), "a", "r");
    }
    advance(*store, "m1", clock_.now());
    advance(*store, "m3", clock_.now());
    MitigationFilter planned;
    planned.states = {MitigationState::planned};
    const auto found = store->list_mitigations(planned);
    ASSERT_EQ(found.size(), 2u);
    EXPECT_EQ(found[0].id, "m3");
    EXPECT_EQ(found[1].id, "m1");
    MitigationFilter two;
    two.limit = 2;
    EXPECT_EQ(store->list_mitigations(two).size(), 2u);
}

TEST_F(SqliteStoreTest, MitigationsCreatedInOneMillisecondListInTheOrderTheyWereStored) {
    // Ids are random after the second: "z" is stored first, then "a", at the same instant.
    auto store = open();
    store->create_mitigation(make_mitigation("mit_z", clock_.now()), "a", "r");
    store->create_mitigation(make_mitigation("mit_a", clock_.now()), "a", "r");
    store->create_mitigation(make_mitigation("mit_m", clock_.now()), "a", "r");
    const auto found = store->list_mitigations({});
    ASSERT_EQ(found.size(), 3u);
    EXPECT_EQ(found[0].id, "mit_m");  // newest first
    EXPECT_EQ(found[1].id, "mit_a");
    EXPECT_EQ(found[2].id, "mit_z");
}

TEST_F(SqliteStoreTest, ReadersSeeTheLastCommitWhileAWriteIsInProgress) {
    std::unique_ptr<Store> reader;
    std::optional<MitigationState> seen_during_write;
    SqliteStoreOptions options;
    options.fault_point = [&](std::string_view point) {
        if (point == "transition.before_commit") {
            // The writer holds its write lock here; a reader must neither block nor see
            // the uncommitted state.
            seen_during_write = reader->find_mitigation("m1")->state;
        }
    };
    auto writer = open(options);
    writer->create_mitigation(make_mitigation("m1", clock_.now()), "a", "r");
    reader = open_read_only();
    ASSERT_EQ(advance(*writer, "m1", clock_.now()), TransitionOutcome::done);
    EXPECT_EQ(seen_during_write, MitigationState::proposed);
    EXPECT_EQ(reader->find_mitigation("m1")->state, MitigationState::planned);
}

TEST_F(SqliteStoreTest, JournalAndAuditAreAppendOnlyInTheDatabaseItself) {
    open()->create_mitigation(make_mitigation("m1", clock_.now()), "a", "r");
    for (const char* sql :
         {"UPDATE transitions SET actor = 'mallory'", "DELETE FROM transitions",
          "UPDATE audit_log SET hash = 'x'", "DELETE FROM audit_log", "DELETE FROM audit_head"}) {
        EXPECT_THROW(testing::execute_sql(path_, sql), std::runtime_error) << sql;
    }
}

TEST_F(SqliteStoreTest, ReadOnlyStoreRefusesWritesAndMissingFiles) {
    EXPECT_THROW(open_read_only(), StoreError);
    EXPECT_FALSE(std::filesystem::exists(path_));
    open()->create_mitigation(make_mitigation("m1", clock_.now()), "a", "r");
    auto reader = open_read_only();
    EXPECT_TRUE(reader->find_mitigation("m1"));
    EXPECT_THROW(reader->append_audit({clock_.now(), "a", "e", "", {}}), std::logic_error);
}

TEST_F(SqliteStoreTest, MigratesAVersion1DatabaseKeepingItsRows) {
    // Build the database exactly as a build with only migration 1 left it.
    {
        sqlite3* raw = nullptr;
        ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
        const std::string sql = std::string(sqlite_migrations()[0].sql) +
                                "PRAGMA application_id = " + std::to_string(sqlite_application_id) +
                                "; PRAGMA user_version = 1;";
        ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
        const std::string body = nlohmann::json(make_mitigation("old", clock_.now())).dump();
        const std::string insert =
            "INSERT INTO mitigations VALUES ('old', 'proposed', 1, 'inc_1', 0, 0, NULL, '" + body +
            "'); INSERT INTO transitions (mitigation_id, version, from_state, to_state, at_ms, "
            "actor, reason) VALUES ('old', 1, NULL, 'proposed', 0, 'a', 'r');";
        ASSERT_EQ(sqlite3_exec(raw, insert.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
        sqlite3_close(raw);
    }
    auto store = open();
    EXPECT_EQ(testing::query_text(path_, "PRAGMA user_version"),
              std::to_string(sqlite_schema_version));
    ASSERT_TRUE(store->find_mitigation("old"));
    ASSERT_EQ(advance(*store, "old", clock_.now()), TransitionOutcome::done);
    EXPECT_EQ(store->audit_head().sequence, 1);  // the audit log starts with the migration
    EXPECT_TRUE(store->verify_audit_chain().intact());
    store.reset();
    open();  // opening a current database again migrates nothing
    EXPECT_EQ(testing::query_text(path_, "PRAGMA user_version"),
              std::to_string(sqlite_schema_version));
}

TEST_F(SqliteStoreTest, MigratesSchema5IncidentsIntoMembershipRows) {
    // An incident as schema 5 kept it: its firing fingerprints and signal ids in the body.
    {
        sqlite3* raw = nullptr;
        ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
        std::string sql;
        for (const SqliteMigration& migration : sqlite_migrations()) {
            if (migration.version <= 5) {
                sql += std::string(migration.sql);
            }
        }
        sql += "PRAGMA application_id = " + std::to_string(sqlite_application_id) +
               "; PRAGMA user_version = 5;";
        ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
        const std::string body =
            R"({"id":"inc_old","group_key":"service=checkout","title":"t","status":"open",)"
            R"("service":"checkout","environment":"dev","labels":{},)"
            R"("signal_ids":["s1","s2","s3"],"firing":["fp1","fp2"],)"
            R"("opened_at":"2026-11-23T12:00:00.000Z","resolved_at":null,"drill":false})";
        const std::string insert =
            "INSERT INTO incidents (id, group_key, status, opened_at_ms, body) VALUES "
            "('inc_old', 'service=checkout', 'open', 0, '" +
            body + "');";
        ASSERT_EQ(sqlite3_exec(raw, insert.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
        sqlite3_close(raw);
    }
    auto store = open();
    const auto incident = store->find_incident("inc_old");
    ASSERT_TRUE(incident);
    EXPECT_EQ(incident->counters, (Incident::Counters{2, 2, 3}));
    EXPECT_EQ(store->incident_alerts("inc_old", 10).size(), 2u);
    EXPECT_EQ(store->open_incident_alerts().size(), 2u);
    EXPECT_TRUE(store->incidents_awaiting_playbooks(10).empty());  // they ran, back then
}

TEST(SqliteSchema, MigrationsAreNumberedOneByOneUpToTheCurrentVersion) {
    const auto migrations = sqlite_migrations();
    for (std::size_t i = 0; i < migrations.size(); ++i) {
        EXPECT_EQ(migrations[i].version, static_cast<int>(i) + 1);
    }
    EXPECT_EQ(migrations.back().version, sqlite_schema_version);
}

TEST_F(SqliteStoreTest, FreshDatabaseIsMarkedAsOurs) {
    open();
    EXPECT_EQ(testing::query_text(path_, "PRAGMA application_id"),
              std::to_string(sqlite_application_id));
    EXPECT_EQ(testing::query_text(path_, "PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteStoreTest, RefusesAFileThatIsNotSQLite) {
    directory_.write("mitigate.db", "# this is someone's notes file\nimportant: yes\n");
    expect_refused_untouched("not a SQLite database");
}

// SQLite would start a new database in an empty file: a store truncated to nothing would
// come back empty, every mitigation, token and audit record gone, without a word.
TEST_F(SqliteStoreTest, RefusesAnEmptyFileInsteadOfStartingAfresh) {
    directory_.write("mitigate.db", "");
    expect_refused_untouched("the file is empty");
    EXPECT_FALSE(std::filesystem::exists(path_.string() + "-shm"));
}

// A store whose file is deleted or replaced while open writes into a file nobody will open
// again: each such write must fail (so nothing is acknowledged as stored), for good.
TEST_F(SqliteStoreTest, AWriteAfterTheFileWasDeletedOrReplacedFailsAndKeepsFailing) {
    for (const bool replace : {false, true}) {
        std::filesystem::remove(path_);
        auto store = open_sqlite_store(path_);
        store->create_mitigation(make_mitigation("before", clock_.now()), "a", "stored");
        EXPECT_EQ(store->database().lost_file(), std::nullopt);
        if (replace) {
            const auto other = directory_ / "other.db";
            std::filesystem::copy_file(path_, other);
            std::filesystem::rename(other, path_);
        } else {
            std::filesystem::remove(path_);
        }
        EXPECT_THROW(store->create_mitigation(make_mitigation("after", clock_.now()), "a", "x"),
                     StoreError);
        ASSERT_TRUE(store->database().lost_file().has_value());
        EXPECT_THAT(*store->database().lost_file(),
                    HasSubstr(replace ? "replaced by another file" : "was deleted"));
        EXPECT_THROW(store->create_mitigation(make_mitigation("later", clock_.now()), "a", "x"),
                     StoreError);
    }
}

// Health is about the store, not the row: a refused row leaves it healthy.
TEST_F(SqliteStoreTest, ARefusedRowDoesNotMakeTheStoreUnhealthy) {
    auto store = open_sqlite_store(path_);
    store->create_mitigation(make_mitigation("same", clock_.now()), "a", "x");
    EXPECT_THROW(store->create_mitigation(make_mitigation("same", clock_.now()), "a", "x"),
                 StoreError);
    EXPECT_EQ(store->database().last_write_failure(), std::nullopt);
    EXPECT_EQ(store->database().lost_file(), std::nullopt);
}

TEST_F(SqliteStoreTest, RefusesAnotherApplicationsDatabase) {
    testing::execute_sql(path_,
                         "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"
                         "INSERT INTO customers VALUES (1, 'ada');");
    expect_refused_untouched("another application");
}

TEST_F(SqliteStoreTest, RefusesADatabaseFromANewerMitigate) {
    open();
    testing::execute_sql(path_, "PRAGMA user_version = 99");
    expect_refused_untouched("newer mitigate (schema 99");
}

TEST_F(SqliteStoreTest, RefusesACorruptDatabase) {
    {
        auto store = open();
        for (int i = 0; i < 50; ++i) {
            store->create_mitigation(make_mitigation("m" + std::to_string(i), clock_.now()), "a",
                                     std::string(200, 'r'));
        }
    }
    // Keep the SQLite header, overwrite the pages after the first with garbage.
    std::string bytes = testing::read_file(path_);
    ASSERT_GT(bytes.size(), 8192u);
    for (std::size_t i = 4096; i < bytes.size(); ++i) {
        bytes[i] = static_cast<char>((i * 131) & 0xff);
    }
    std::filesystem::remove(path_.string() + "-wal");
    std::filesystem::remove(path_.string() + "-shm");
    directory_.write("mitigate.db", bytes);
    expect_refused_untouched("damaged");
}

}  // namespace
}  // namespace mitigate

namespace mitigate {
namespace {

Signal make_signal(const std::string& id, TimePoint at) {
    Signal signal;
    signal.id = id;
    signal.name = "HighErrorRate";
    signal.fingerprint = "fp-" + id;
    signal.labels = {{"alertname", "HighErrorRate"}, {"service", "checkout"}};
    signal.starts_at = at;
    signal.received_at = at;
    return signal;
}

// A grouping that puts every signal into one incident, opened by the first batch.
struct OneIncident {
    TimePoint at;
    bool opened = false;
    Incident::Counters counters;
    GroupedSignals operator()(const std::vector<const Signal*>& signals) {
        GroupedSignals grouped;
        Incident incident;
        incident.id = "inc_1";
        incident.group_key = "service=checkout";
        incident.title = "HighErrorRate";
        incident.opened_at = at;
        if (!opened) {
            grouped.incidents.push_back({incident, true});
            grouped.audit.push_back({at, "runtime", "incident.opened", "inc_1", {}});
            opened = true;
        }
        for (const Signal* signal : signals) {
            grouped.alerts.push_back({"inc_1", {signal->fingerprint, true, signal->id, at}});
            ++counters.alerts;
            ++counters.firing;
            ++counters.signals;
            grouped.signal_incidents.push_back("inc_1");
        }
        grouped.counters["inc_1"] = counters;
        return grouped;
    }
};

TEST_F(SqliteStoreTest, ARedeliveredSignalIsRecordedOnceAndGroupedOnce) {
    auto store = open();
    OneIncident grouping{clock_.now(), false, {}};
    std::vector<std::size_t> grouped_sizes;
    const auto group = [&](const std::vector<const Signal*>& signals) {
        grouped_sizes.push_back(signals.size());
        return grouping(signals);
    };
    const auto first_batch =
        encode_signals({make_signal("s1", clock_.now()), make_signal("s2", clock_.now())});
    const auto first = store->record_signals(first_batch, group);
    EXPECT_EQ(first.size(), 2u);
    // Again, and twice in one batch: only s3 is new, and only s3 is grouped.
    const auto second_batch =
        encode_signals({make_signal("s2", clock_.now()), make_signal("s3", clock_.now()),
                        make_signal("s3", clock_.now())});
    const auto again = store->record_signals(second_batch, group);
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0]->id, "s3");
    EXPECT_EQ(grouped_sizes, (std::vector<std::size_t>{2, 1}));
    EXPECT_EQ(store->find_signals({"s2", "nope"}).size(), 1u);
    EXPECT_TRUE(store->ungrouped_signals(10).empty());
    EXPECT_EQ(store->incident_signals("inc_1", 10).size(), 3u);
    const auto incident = store->find_incident("inc_1");
    ASSERT_TRUE(incident);
    EXPECT_EQ(incident->counters, (Incident::Counters{3, 3, 3}));
    EXPECT_EQ(store->incident_alerts("inc_1", 10).size(), 3u);
    EXPECT_EQ(store->open_incident_alerts().size(), 3u);
    EXPECT_EQ(store->incidents_awaiting_playbooks(10).size(), 1u);
    store->mark_playbooks_run("inc_1", clock_.now());
    EXPECT_TRUE(store->incidents_awaiting_playbooks(10).empty());
    EXPECT_TRUE(store->verify_audit_chain().intact());
}

TEST_F(SqliteStoreTest, AGroupingThatCannotBeWrittenStoresNoneOfItsSignals) {
    auto store = open();
    OneIncident grouping{clock_.now(), false, {}};
    store->record_signals(encode_signals({make_signal("s1", clock_.now())}), grouping);
    const auto head = store->audit_head().sequence;
    // A second open incident of the same group would split it: refused, nothing written,
    // not even the signals.
    const auto twin = [&](const std::vector<const Signal*>& signals) {
        GroupedSignals grouped;
        Incident incident;
        incident.id = "inc_2";
        incident.group_key = "service=checkout";
        incident.title = "twin";
        incident.opened_at = clock_.now();
        grouped.incidents.push_back({incident, true});
        grouped.signal_incidents.assign(signals.size(), "inc_2");
        return grouped;
    };
    EXPECT_THROW(store->record_signals(encode_signals({make_signal("s2", clock_.now())}), twin),
                 StoreError);
    EXPECT_FALSE(store->find_incident("inc_2"));
    EXPECT_TRUE(store->find_signals({"s2"}).empty());
    EXPECT_EQ(store->audit_head().sequence, head);
    // A grouping that does not place every signal is a bug, refused the same way.
    const auto short_answer = [](const std::vector<const Signal*>&) { return GroupedSignals{}; };
    EXPECT_THROW(
        store->record_signals(encode_signals({make_signal("s3", clock_.now())}), short_answer),
        std::logic_error);
    EXPECT_TRUE(store->find_signals({"s3"}).empty());
}

TEST_F(SqliteStoreTest, AResolvedIncidentKeepsItsBodyAndItsCounters) {
    auto store = open();
    OneIncident grouping{clock_.now(), false, {}};
    store->record_signals(encode_signals({make_signal("s1", clock_.now())}), grouping);
    const auto resolve = [&](const std::vector<const Signal*>& signals) {
        GroupedSignals grouped;
        Incident incident = *store->find_incident("inc_1");
        incident.status = IncidentStatus::resolved;
        incident.resolved_at = clock_.now();
        grouped.incidents.push_back({incident, false});
        grouped.alerts.push_back({"inc_1", {"fp-s1", false, signals[0]->id, clock_.now()}});
        grouped.counters["inc_1"] = {1, 0, 2};
        grouped.signal_incidents = {"inc_1"};
        return grouped;
    };
    Signal resolution = make_signal("s1-resolved", clock_.now());
    resolution.fingerprint = "fp-s1";
    resolution.status = SignalStatus::resolved;
    store->record_signals(encode_signals({resolution}), resolve);
    const auto incident = store->find_incident("inc_1");
    EXPECT_EQ(incident->status, IncidentStatus::resolved);
    EXPECT_EQ(incident->counters, (Incident::Counters{1, 0, 2}));
    IncidentFilter open_only;
    open_only.status = IncidentStatus::open;
    EXPECT_THAT(store->list_incidents(open_only), IsEmpty());
    EXPECT_TRUE(store->open_incident_alerts().empty());
    EXPECT_FALSE(store->incident_alerts("inc_1", 10).at(0).firing);
}

TEST_F(SqliteStoreTest, ApiTokensAreFoundByDigestAndRevoked) {
    auto store = open();
    ApiToken token{"alice", "approver", {"sre"}, std::string(64, 'a'), clock_.now(), {}};
    store->create_api_token(token, "admin");
    EXPECT_EQ(store->find_api_token(std::string(64, 'a')), token);
    EXPECT_THROW(store->create_api_token(token, "admin"), StoreError);
    EXPECT_TRUE(store->revoke_api_token("alice", clock_.now(), "admin"));
    EXPECT_FALSE(store->revoke_api_token("alice", clock_.now(), "admin"));
    EXPECT_TRUE(store->find_api_token(std::string(64, 'a'))->revoked_at);
    // The audit log says who made and revoked it, never the digest.
    for (const AuditRecord& record : store->audit_tail(10)) {
        EXPECT_THAT(record.details.dump(), ::testing::Not(HasSubstr(std::string(64, 'a'))));
    }
}

}  // namespace
}  // namespace mitigate

namespace mitigate {
namespace {

TEST_F(SqliteStoreTest, AnAuditEntryWithNullDetailsKeepsTheChainIntact) {
    auto store = open();
    store->append_audit({clock_.now(), "runtime", "daemon.stopped", "", {}});
    EXPECT_TRUE(store->verify_audit_chain().intact());
    EXPECT_TRUE(store->audit_tail(1).at(0).details.is_object());
}

}  // namespace
}  // namespace mitigate
