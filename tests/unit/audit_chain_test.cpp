// The audit chain rule, and detection of every kind of tampering on a real store file:
// edit, deletion, insertion, reordering, truncation of the tail, and head removal.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/audit/audit_chain.h"
#include "runtime/core/time_format.h"
#include "runtime/store/sqlite_store.h"
#include "tests/support/store_fixtures.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using ::testing::HasSubstr;

TEST(AuditChain, CanonicalTextIsStableAndSorted) {
    AuditRecord record;
    record.sequence = 1;
    record.at = *parse_rfc3339("2026-11-23T07:00:00Z");
    record.actor = "alice";
    record.event = "e";
    record.details = {{"zeta", 1}, {"alpha", {{"b", 2}, {"a", 0.1}}}};
    record.previous_hash = std::string(genesis_hash);
    record.hash = "ignored";
    EXPECT_EQ(
        canonical_audit_text(record),
        R"({"actor":"alice","at":"2026-11-23T07:00:00Z","details":{"alpha":{"a":0.1,"b":2},"zeta":1},"event":"e","previous_hash":"0000000000000000000000000000000000000000000000000000000000000000","sequence":1,"subject":""})");
    record.details["zeta"] = 2;
    EXPECT_THAT(canonical_audit_text(record), HasSubstr("\"zeta\":2"));
}

TEST(AuditChain, HashIsSha256OverPreviousHashNewlineAndText) {
    // printf '\nabc' | sha256sum (an empty previous hash, the separator, then the text)
    EXPECT_EQ(audit_chain_hash("", "abc"),
              "f39d39bfc99287b848780d4110eb663f0e7c344ae41f46a390c4135b89dc2756");
}

class AuditTamperTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto store = open_sqlite_store(path_);
        ManualClock clock(*parse_rfc3339("2026-11-23T07:00:00Z"));
        for (int i = 1; i <= 3; ++i) {
            store->create_mitigation(testing::make_mitigation("m" + std::to_string(i), clock.now()),
                                     "alice", "r");
            clock.advance(Duration{1000});
            testing::advance(*store, "m" + std::to_string(i), clock.now());
        }
        // 6 records: created m1, planned m1, created m2, planned m2, created m3, planned m3.
        ASSERT_EQ(store->audit_head().sequence, 6);
        ASSERT_TRUE(store->verify_audit_chain().intact());
    }

    // Tampering as someone with write access to the file would: triggers dropped first.
    void tamper(const std::string& sql) {
        testing::execute_sql(path_,
                             "DROP TRIGGER IF EXISTS audit_log_no_update;"
                             "DROP TRIGGER IF EXISTS audit_log_no_delete;"
                             "DROP TRIGGER IF EXISTS audit_head_no_delete;" +
                                 sql);
    }

    AuditChainVerifier verify() {
        SqliteStoreOptions options;
        options.read_only = true;
        return open_sqlite_store(path_, options)->verify_audit_chain();
    }

    void expect_broken_at(std::int64_t sequence, const std::string& problem) {
        const AuditChainVerifier result = verify();
        EXPECT_FALSE(result.intact());
        EXPECT_EQ(result.first_bad_sequence(), sequence) << result.problem();
        EXPECT_THAT(result.problem(), HasSubstr(problem));
    }

    testing::TemporaryDirectory directory_;
    std::filesystem::path path_ = directory_ / "mitigate.db";
};

TEST_F(AuditTamperTest, EditOfARecordIsDetected) {
    tamper(
        "UPDATE audit_log SET record = replace(record, '\"alice\"', '\"mallory\"') "
        "WHERE sequence = 3");
    expect_broken_at(3, "hash mismatch");
}

TEST_F(AuditTamperTest, EditWithARecomputedHashBreaksTheNextLink) {
    // Re-chaining one record is not enough: the next record still points at the old hash.
    AuditRecord forged;
    {
        SqliteStoreOptions options;
        options.read_only = true;
        forged = open_sqlite_store(path_, options)->audit_records(2, 1).front();
    }
    forged.actor = "mallory";
    const std::string text = canonical_audit_text(forged);
    const std::string hash = audit_chain_hash(forged.previous_hash, text);
    tamper("UPDATE audit_log SET record = '" + text + "', hash = '" + hash +
           "' WHERE sequence = 3");
    expect_broken_at(4, "does not link");
}

TEST_F(AuditTamperTest, DeletionIsDetected) {
    tamper("DELETE FROM audit_log WHERE sequence = 2");
    expect_broken_at(2, "missing");
}

TEST_F(AuditTamperTest, DeletionWithRenumberingIsDetected) {
    tamper(
        "DELETE FROM audit_log WHERE sequence = 2;"
        "UPDATE audit_log SET sequence = sequence - 1 WHERE sequence > 2;"
        "UPDATE audit_head SET sequence = 5");
    expect_broken_at(2, "holds the content of record 3");
}

TEST_F(AuditTamperTest, InsertionIsDetected) {
    tamper(
        "UPDATE audit_log SET sequence = sequence + 1000 WHERE sequence >= 3;"
        "UPDATE audit_log SET sequence = sequence - 999 WHERE sequence >= 1000;");
    // Make room, then insert a self-consistent looking record at 3.
    AuditRecord inserted;
    inserted.sequence = 3;
    inserted.at = *parse_rfc3339("2026-11-23T07:00:01Z");
    inserted.actor = "mallory";
    inserted.event = "mitigation.created";
    {
        SqliteStoreOptions options;
        options.read_only = true;
        inserted.previous_hash =
            open_sqlite_store(path_, options)->audit_records(1, 1).front().hash;
    }
    const std::string text = canonical_audit_text(inserted);
    tamper("INSERT INTO audit_log VALUES (3, '" + text + "', '" +
           audit_chain_hash(inserted.previous_hash, text) + "')");
    expect_broken_at(4, "holds the content of record 3");
}

TEST_F(AuditTamperTest, ReorderingIsDetected) {
    tamper(
        "UPDATE audit_log SET sequence = 100 WHERE sequence = 2;"
        "UPDATE audit_log SET sequence = 2 WHERE sequence = 3;"
        "UPDATE audit_log SET sequence = 3 WHERE sequence = 100;");
    expect_broken_at(2, "holds the content of record 3");
}

TEST_F(AuditTamperTest, TruncatingTheTailIsDetectedByTheHead) {
    tamper("DELETE FROM audit_log WHERE sequence >= 5");
    expect_broken_at(5, "recorded head is record 6");
}

TEST_F(AuditTamperTest, DeletingTheHeadIsDetected) {
    tamper("DELETE FROM audit_head");
    expect_broken_at(7, "head of the chain is missing");
}

TEST_F(AuditTamperTest, AnIntactChainVerifies) {
    const AuditChainVerifier result = verify();
    EXPECT_TRUE(result.intact()) << result.problem();
    EXPECT_EQ(result.records(), 6);
    EXPECT_EQ(result.head().sequence, 6);
}

}  // namespace
}  // namespace mitigate
