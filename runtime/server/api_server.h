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
//   POST /v1/mitigations/ID/revert  | /keep      operator (a revert answers 202: the
//                                                engine carries it out)
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
#include <optional>
#include <string>

#include "runtime/server/http_server.h"

namespace mitigate {

class Store;
class Engine;
class Metrics;
class Clock;
class DrillRunner;
class DrillRunStore;

// What the store's own checks say (runtime/store/sqlite_database.h).
struct StoreHealth {
    // Its file was deleted or replaced: nothing written from now on would be kept, so
    // every route but /healthz, /readyz and /metrics answers 503.
    std::optional<std::string> lost;
    // The last write failed (locked, disk full, read-only): /readyz answers 503 until a
    // write succeeds; reads go on.
    std::optional<std::string> failing;
};

struct ApiServerHooks {
    std::function<bool()> ready;                // /readyz: loaded and the engine is running
    std::function<StoreHealth()> store_health;  // /readyz and the 503 above; never blocks
    // Called before /metrics renders, for figures kept elsewhere (the HTTP server's).
    std::function<void()> refresh_metrics;
    // Routes that authenticate requests their own way, by exact path (Slack's signed
    // requests: runtime/chat). Counted in the request metrics like every other route.
    std::map<std::string, HttpHandler> extra_routes;
    // Runs drills for POST /v1/drills/runs (runtime/drills); null: drills cannot be started.
    DrillRunner* drills = nullptr;
    // Where runs are read from for GET /v1/drills/runs; null: none.
    DrillRunStore* drill_runs = nullptr;
};

class ApiServer {
  public:
    ApiServer(Store& store, Engine& engine, Metrics& metrics, const Clock& clock,
              ApiServerHooks hooks);
    ~ApiServer();
    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    // Answers through `respond`: at once, or, for signals, once they are durable (the
    // engine's group commit), without holding the calling thread meanwhile.
    void handle(const HttpExchange& request, HttpResponder respond);
    // The same, waiting for the answer (tests, tools).
    HttpReply handle(const HttpExchange& request);

  private:
    struct State;
    std::unique_ptr<State> state_;
};

// Names the HTTP request metrics the API records (declared on `metrics`).
void declare_api_metrics(Metrics& metrics);

}  // namespace mitigate
