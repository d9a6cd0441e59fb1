#include "runtime/audit/audit_chain.h"

#include "runtime/core/sha256.h"
#include "runtime/core/time_format.h"

namespace mitigate {

std::string canonical_audit_text(const AuditRecord& record) {
    // nlohmann's default object type is an ordered std::map, so dump() sorts keys at
    // every depth; numbers print in their shortest round-trip form. Invalid UTF-8 in a
    // detail is replaced rather than thrown on: the record must always be writable.
    const nlohmann::json canonical{
        {"sequence", record.sequence},
        {"at", format_rfc3339(record.at)},
        {"actor", record.actor},
        {"event", record.event},
        {"subject", record.subject},
        {"details", record.details},
        {"previous_hash", record.previous_hash},
    };
    return canonical.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string audit_chain_hash(std::string_view previous_hash, std::string_view canonical_text) {
    return Sha256().update(previous_hash).update("\n").update(canonical_text).hex_digest();
}

bool AuditChainVerifier::fail(std::int64_t sequence, std::string problem) {
    first_bad_sequence_ = sequence;
    problem_ = std::move(problem);
    return false;
}

bool AuditChainVerifier::add(std::int64_t stored_sequence, std::string_view stored_text,
                             std::string_view stored_hash) {
    if (!intact()) {
        return false;
    }
    const std::int64_t expected = head_.sequence + 1;
    const std::string where = "record " + std::to_string(stored_sequence);
    if (stored_sequence != expected) {
        return fail(
            stored_sequence < expected ? stored_sequence : expected,
            stored_sequence < expected
                ? where + ": sequence out of order (expected " + std::to_string(expected) + ")"
                : "record " + std::to_string(expected) + " is missing (next stored is " +
                      std::to_string(stored_sequence) + "): records were deleted");
    }
    const nlohmann::json parsed =
        nlohmann::json::parse(stored_text.begin(), stored_text.end(), nullptr, false);
    auto record = parse_audit_record(parsed);
    if (!record) {
        return fail(stored_sequence,
                    where + ": not a valid audit record: " + describe(record.errors));
    }
    if (canonical_audit_text(*record) != stored_text) {
        return fail(stored_sequence, where + ": stored text is not in canonical form (edited)");
    }
    if (record->sequence != stored_sequence) {
        return fail(stored_sequence, where + ": holds the content of record " +
                                         std::to_string(record->sequence) +
                                         " (records were reordered or renumbered)");
    }
    if (record->previous_hash != head_.hash) {
        return fail(stored_sequence,
                    where +
                        ": does not link to the record before it (a record before it was "
                        "inserted, deleted, replaced or reordered)");
    }
    const std::string computed = audit_chain_hash(record->previous_hash, stored_text);
    if (computed != stored_hash) {
        return fail(stored_sequence, where + ": hash mismatch (the record was edited)");
    }
    head_ = {stored_sequence, computed};
    ++records_;
    return true;
}

bool AuditChainVerifier::finish(const std::optional<AuditHead>& recorded) {
    if (!intact()) {
        return false;
    }
    if (!recorded) {
        return fail(head_.sequence + 1, "the recorded head of the chain is missing (deleted)");
    }
    const AuditHead& recorded_head = *recorded;
    if (recorded_head.sequence != head_.sequence || recorded_head.hash != head_.hash) {
        const std::int64_t at = std::min(recorded_head.sequence, head_.sequence) + 1;
        return fail(at, "the chain ends at record " + std::to_string(head_.sequence) +
                            " but the recorded head is record " +
                            std::to_string(recorded_head.sequence) +
                            ": records were deleted from or added at the end");
    }
    return true;
}

}  // namespace mitigate
