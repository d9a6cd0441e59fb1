// Where the runtime's durable state lives: a few focused interfaces, each small enough
// that a second backend (PostgreSQL, for replicas) implements it beside SQLite
// (sqlite_store.h, the embedded default). Code takes the narrowest one it needs.
//
//   MitigationStore   mitigations and their transition journal   mitigation_store.h
//   IncidentStore     signals and incidents                       incident_store.h
//   TokenStore        API tokens                                  token_store.h
//   AuditLog          the hash-chained audit log                  audit_log.h
//
// Drill runs (runtime/drills) and chat state (runtime/chat) are kept by their own
// libraries over the same database (sqlite_database.h).
#pragma once

#include "runtime/store/audit_log.h"
#include "runtime/store/incident_store.h"
#include "runtime/store/mitigation_store.h"
#include "runtime/store/token_store.h"

namespace mitigate {

class Store : public MitigationStore, public IncidentStore, public TokenStore, public AuditLog {
  public:
    ~Store() override = default;
};

}  // namespace mitigate
