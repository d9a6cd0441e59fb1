// The audit log: append-only and hash-chained (runtime/audit/audit_chain.h), so that any
// edit, deletion or reordering is detected by `mitigate audit verify`. Transitions write
// their own records (mitigation_store.h); this is for everything else and for reading.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/audit/audit_chain.h"
#include "runtime/core/model.h"

namespace mitigate {

// Failure to reach or write the store. The caller must stop and must not perform the side
// effect that the write was announcing.
class StoreError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// What an audit record says before the store numbers and chains it.
struct AuditEntry {
    TimePoint at;
    std::string actor;
    std::string event;
    std::string subject;
    nlohmann::json details = nlohmann::json::object();
};

class AuditLog {
  public:
    virtual ~AuditLog() = default;

    // Audit events that are not transitions (config loaded, approval refused, ...).
    virtual AuditRecord append_audit(const AuditEntry& entry) = 0;
    // Up to `limit` records with sequence > after_sequence, in order.
    virtual std::vector<AuditRecord> audit_records(std::int64_t after_sequence,
                                                   std::size_t limit) = 0;
    // The last `count` records, oldest first.
    virtual std::vector<AuditRecord> audit_tail(std::size_t count) = 0;
    virtual AuditHead audit_head() = 0;
    // Walks the whole log, checking every link and the head.
    virtual AuditChainVerifier verify_audit_chain() = 0;
};

}  // namespace mitigate
