// Faults an emulator injects on request, so that tests and drills can see what a plugin
// does when the provider misbehaves. Each emulator names its operations ("UpdateService",
// "rollback", "PATCH config_flags") and asks the injector before and after handling one.
//
// Kinds:
//   latency           answer late (delay_ms), correctly
//   error             answer `status` with the provider's own error shape, change nothing
//   rate_limit        answer 429 with Retry-After: retry_after_s, change nothing
//   timeout           hold the request for delay_ms, then close without answering;
//                     nothing changes
//   drop_after_apply  do the change, then close without answering: the client cannot
//                     tell whether it happened
// A fault hits the next `count` matching requests (operation "" matches any), in the
// order the faults were added.
//
// Over HTTP, on every emulator (loopback only, no credential: it is a test double):
//   POST   /_emulator/faults  {"operation":"UpdateService","kind":"error","status":503}
//   GET    /_emulator/faults  the faults still pending and how many were injected
//   DELETE /_emulator/faults  clears them
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/server/http_server.h"

namespace mitigate {

struct Fault {
    enum class Kind { latency, error, rate_limit, timeout, drop_after_apply };
    std::string operation;  // "" for any
    Kind kind = Kind::error;
    int status = 500;
    std::chrono::milliseconds delay{0};
    int retry_after_seconds = 1;
    int count = 1;
};

// Throws std::invalid_argument naming the field.
Fault parse_fault(const nlohmann::json& description);
nlohmann::json fault_json(const Fault& fault);

// The provider's error reply for a status, in its own body shape (which may depend on
// the operation: AWS speaks JSON to some services and XML to others).
using ErrorReply =
    std::function<HttpReply(int status, const std::string& operation, const std::string& message)>;

class FaultInjector {
  public:
    explicit FaultInjector(ErrorReply error_reply);

    void add(Fault fault);
    void clear();

    // Before `operation` is handled: a reply to send instead (which may be
    // drop_connection), or nothing to let it through. Sleeps a latency fault's delay.
    std::optional<HttpReply> before(const std::string& operation);
    // After `operation` changed something: true when the connection must be dropped
    // instead of answering.
    bool drop_after(const std::string& operation);

    // GET, POST and DELETE /_emulator/faults; nothing for any other path.
    std::optional<HttpReply> control(const HttpExchange& request);

    int injected() const;  // faults that hit a request so far

  private:
    std::optional<Fault> take(const std::string& operation, bool after_apply);

    ErrorReply error_reply_;
    mutable std::mutex mutex_;
    std::deque<Fault> faults_;
    int injected_ = 0;
};

// An emulator's server on host:port (0: any free port): /_emulator/faults is answered by
// `faults`, everything else by `handler`. Four threads, so that a request held by a
// timeout fault does not stall the others.
std::unique_ptr<HttpServer> serve_emulator(const std::string& host, std::uint16_t port,
                                           FaultInjector& faults, HttpHandler handler);

}  // namespace mitigate
