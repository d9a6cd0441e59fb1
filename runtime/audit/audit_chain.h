// The tamper-evident audit log's chain rule, independent of where records are stored.
//
//   hash(n) = hex SHA-256( previous_hash(n) || "\n" || canonical(n) )
//   previous_hash(n) = hash(n-1); previous_hash(1) = 64 zeros
//
// canonical(n) is the record as compact JSON with sorted keys and without its own hash;
// it contains the sequence number, so records cannot be renumbered or reordered without
// breaking the chain. A chain only proves its own prefix: deleting records from the end
// leaves an intact shorter chain. The store therefore also keeps the head (last sequence
// and hash) and verification compares against it; for an attacker who can rewrite the
// head too, compare against a head saved elsewhere (`mitigate audit verify --expect-head`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/core/model.h"

namespace mitigate {

inline constexpr std::string_view genesis_hash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// The exact bytes that are hashed and stored for a record (its `hash` field ignored).
std::string canonical_audit_text(const AuditRecord& record);

std::string audit_chain_hash(std::string_view previous_hash, std::string_view canonical_text);

// The last link: what a store says its chain ends with.
struct AuditHead {
    std::int64_t sequence = 0;  // 0 for an empty log
    std::string hash = std::string(genesis_hash);
    bool operator==(const AuditHead&) const = default;
};

// Checks records one at a time, in stored order, without holding them all in memory.
class AuditChainVerifier {
  public:
    // `stored_text` is the record exactly as stored; `stored_hash` the hash stored with it.
    // Returns false at the first bad record; problem() then says what and where.
    bool add(std::int64_t stored_sequence, std::string_view stored_text,
             std::string_view stored_hash);

    // Checks that the chain ends where the store's head says it does (no head at all is
    // itself a failure: it was deleted).
    bool finish(const std::optional<AuditHead>& recorded_head);

    bool intact() const { return !first_bad_sequence_.has_value(); }
    std::int64_t records() const { return records_; }
    const AuditHead& head() const { return head_; }
    std::optional<std::int64_t> first_bad_sequence() const { return first_bad_sequence_; }
    const std::string& problem() const { return problem_; }

  private:
    bool fail(std::int64_t sequence, std::string problem);

    AuditHead head_;
    std::int64_t records_ = 0;
    std::optional<std::int64_t> first_bad_sequence_;
    std::string problem_;
};

}  // namespace mitigate
