// The daemon's HTTP API, as a handler from request to reply (http_server.h carries it).
// docs/reference/api.md lists every route; in short:
//
//   GET  /healthz  /readyz                       no token
//   GET  /metrics                                viewer (Prometheus text format)
//   POST /v1/alerts/alertmanager  /v1/signals    sender or operator
//   GET  /v1/incidents[?status=open|resolved]  /v1/incidents/ID          viewer
//   GET  /v1/mitigations[?state=S&incident=ID&limit=N]  /v1/mitigations/ID  viewer
//   POST /v1/mitigations                         operator (a person proposes)
//   POST /v1/mitigations/ID/approve | /reject    approver
//   POST /v1/mitigations/ID/revert  | /keep      operator
//   GET  /v1/drills/runs[?drill=NAME&limit=N]  /v1/drills/runs/ID          viewer
//   POST /v1/drills/runs                         operator (runs a drill now)
//   POST /v1/chat/slack/interactions | /commands  Slack's signature, not a token
//
// Every request but health carries `Authorization: Bearer <token>`. Errors are JSON,
// {"error": {"code": "...", "message": "..."}}, with the status saying what kind.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "runtime/server/http_server.h"

namespace mitigate {

class Store;
class Lifecycle;
class Metrics;
class Clock;
class DrillRunner;

struct ApiServerHooks {
    std::function<void()> wake_engine;  // after anything the engine should act on at once
    std::function<bool()> ready;        // /readyz: reconciled and the engine is running
    // Routes that authenticate requests their own way, by exact path (Slack's signed
    // requests: runtime/chat). Counted in the request metrics like every other route.
    std::map<std::string, HttpHandler> extra_routes;
    // Runs drills for POST /v1/drills/runs (runtime/drills); null: drills cannot be started.
    DrillRunner* drills = nullptr;
};

class ApiServer {
  public:
    ApiServer(Store& store, Lifecycle& lifecycle, Metrics& metrics, const Clock& clock,
              ApiServerHooks hooks);
    ~ApiServer();
    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    HttpReply handle(const HttpExchange& request);

  private:
    struct State;
    std::unique_ptr<State> state_;
};

// Names the HTTP request metrics the API records (declared on `metrics`).
void declare_api_metrics(Metrics& metrics);

}  // namespace mitigate
