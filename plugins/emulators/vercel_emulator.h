// A Vercel REST API emulator on loopback, for the vercel provider:
//   GET  /v6/deployments?projectId=&target=production&state=READY&limit=N
//        {"pagination": {...}, "deployments": [...newest first]}
//   GET  /v9/projects/{idOrName}[?rollbackInfo=true]
//        the project with targets.production (the deployment serving production) and
//        lastRollbackTarget {fromDeploymentId, toDeploymentId, jobStatus, requestedAt}
//   POST /v1/projects/{projectId}/rollback/{deploymentId}   201; an asynchronous job
//   POST /v10/projects/{projectId}/promote/{deploymentId}   201; 409 while a rollback
//        job runs
// Every request needs `Authorization: Bearer <token>` (403 forbidden otherwise); a
// `teamId` query parameter, when given, must be the emulator's team. Errors are
// {"error": {"code", "message"}} (forbidden, bad_request, not_found, conflict,
// rate_limited, internal_server_error).
//
// A rollback job is pending, then in-progress, then succeeded (production moves to the
// target) as the project is read: one step per GET /v9/projects, so a test needs no
// clock. fail_next_rollback() makes the next job end `failed` with production unchanged.
// Faults: faults() (fault_injector.h) by operation: "list_deployments", "get_project",
// "rollback", "promote"; and /_emulator/faults.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "plugins/emulators/fault_injector.h"

namespace mitigate {

struct VercelEmulatorOptions {
    std::string token;
    std::string team_id = "team_mitigate";
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
};

class VercelEmulator {
  public:
    explicit VercelEmulator(VercelEmulatorOptions options);
    ~VercelEmulator();
    VercelEmulator(const VercelEmulator&) = delete;
    VercelEmulator& operator=(const VercelEmulator&) = delete;

    std::string url() const;
    FaultInjector& faults();

    void add_project(const std::string& id, const std::string& name);
    // A production deployment made `age_seconds` ago; READY unless `ready` is false. The
    // newest READY one added becomes production.
    void add_deployment(const std::string& project_id, const std::string& uid, bool ready,
                        std::int64_t age_seconds);
    std::string production(const std::string& project_id) const;
    nlohmann::json last_rollback(const std::string& project_id) const;
    // As a person would from the dashboard: promote now, no job.
    void promote_now(const std::string& project_id, const std::string& uid);
    void fail_next_rollback();

    int rollbacks_requested() const;  // accepted POST .../rollback/...
    int promotions_requested() const;

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace mitigate
