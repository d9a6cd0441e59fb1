// A small HTTP/1.1 server: the only translation unit of the runtime that sees Boost.Beast
// and Boost.Asio. It accepts on one address (port 0 asks the kernel for a free one, read
// back with port()), reads each request with limits, hands it to one handler on a pool of
// threads, and writes the reply, which the handler may give later and from another
// thread (deferred()). Both the daemon's API and the provider emulators serve through it.
//
// It is written for clients that are slow, hostile or simply too many, because the API
// is how an on-call engineer stops an incident:
// - every wait has a deadline: the idle wait for a request, the headers, the body, the
//   reply's write;
// - at most max_connections are open; at the limit the connection idle the longest is
//   closed to make room, and when none is idle the newcomer gets a 503;
// - when the process runs out of descriptors, accept() backs off and resumes; a reserve
//   descriptor lets it close the connection it cannot serve instead of leaving it hanging;
// - all request bodies being read at once share a memory budget (503 when it is spent);
// - ambiguous framing (Content-Length with Transfer-Encoding, a coding other than
//   chunked, repeated lengths) and repeated single-valued headers (Authorization, Host)
//   are refused with 400 and the connection closed, so no second request can hide in a
//   body another reader would have framed differently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace mitigate {

struct HttpExchange {
    std::string method;
    std::string target;                          // path and query, as received
    std::map<std::string, std::string> headers;  // names in lower case; repeated list
                                                 // headers (Via...) joined with ", "
    std::string body;
    std::string peer;  // "127.0.0.1:53122"
};

struct HttpReply {
    int status = 200;
    std::map<std::string, std::string> headers;
    std::string body;
    // Close the connection without answering: the emulators' "the provider applied it
    // and the connection dropped" fault.
    bool drop_connection = false;
};

using HttpHandler = std::function<HttpReply(const HttpExchange& request)>;

// Answers one request, once, from any thread. A responder dropped without answering
// answers 500, so a request is never left hanging.
using HttpResponder = std::function<void(HttpReply reply)>;
// A handler that may answer later (after a commit it waits for), without holding an I/O
// thread meanwhile.
using DeferredHttpHandler = std::function<void(const HttpExchange& request, HttpResponder respond)>;

// The defaults suit the daemon's API; docs/configuration.md (server:) documents each.
struct HttpServerOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    int threads = 2;
    std::size_t body_limit = 1u << 20;  // larger bodies get 413 without reaching the handler
    // Every request body being read at once, together; past it new requests get 503.
    std::size_t body_memory_budget = 64u << 20;
    // Open connections. Lowered at start to what the descriptor limit leaves room for.
    std::size_t max_connections = 1024;
    std::chrono::milliseconds header_timeout{10'000};  // from a request's first byte
    std::chrono::milliseconds body_timeout{30'000};    // to read the body and write the reply
    std::chrono::milliseconds idle_timeout{60'000};    // between requests on one connection
};

// Counts since the server started, for metrics and tests.
struct HttpServerStatistics {
    std::size_t connections_open = 0;
    std::size_t connections_idle = 0;     // waiting for their next request
    std::size_t body_bytes_reserved = 0;  // of the body memory budget, now
    std::size_t connections_accepted = 0;
    std::size_t idle_closed_for_room = 0;  // closed at the limit to let a newcomer in
    std::size_t refused_at_limit = 0;      // 503: the limit reached and none idle
    std::size_t refused_over_budget = 0;   // 503: the body memory budget spent
    std::size_t refused_framing = 0;       // 400: ambiguous framing or repeated headers
    std::size_t timed_out = 0;             // closed at a deadline
    std::size_t accept_failures = 0;       // accept() failed (descriptors ran out...)
};

class HttpServer {
  public:
    // Binds and listens at once (throws std::runtime_error naming the address when it
    // cannot), then serves on its own threads until destroyed or stop()ped.
    HttpServer(HttpHandler handler, HttpServerOptions options = {});
    // The same, for a handler that answers through `respond`, possibly later.
    static std::unique_ptr<HttpServer> deferred(DeferredHttpHandler handler,
                                                HttpServerOptions options = {});
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    std::uint16_t port() const;
    std::string url() const;  // "http://HOST:PORT"
    // max_connections as applied, after the descriptor limit was taken into account.
    std::size_t max_connections() const;
    HttpServerStatistics statistics() const;

    // Stops accepting, lets the requests being handled finish and answer, then returns.
    void stop();

  private:
    HttpServer(DeferredHttpHandler handler, HttpServerOptions options, int deferred);
    struct State;
    std::unique_ptr<State> state_;
};

// Raises this process's soft limit on open descriptors to its hard limit (a systemd
// service starts with 1,024 soft) and returns the soft limit now in force.
std::size_t raise_descriptor_limit();

}  // namespace mitigate
