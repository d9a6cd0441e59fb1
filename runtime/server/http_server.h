// A small HTTP/1.1 server: the only translation unit of the runtime that sees Boost.Beast
// and Boost.Asio. It accepts on one address (port 0 asks the kernel for a free one, read
// back with port()), reads each request with limits (header and body size, a read
// deadline), hands it to one handler on a pool of threads, and writes the reply, which
// the handler may give later and from another thread (deferred()).
// Both the daemon's API and the provider emulators serve through it.
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
    std::map<std::string, std::string> headers;  // names in lower case
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

struct HttpServerOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    int threads = 2;
    std::size_t body_limit = 1u << 20;  // larger bodies get 413 without reaching the handler
    std::chrono::seconds read_timeout{30};
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

    // Stops accepting, lets the requests being handled finish and answer, then returns.
    void stop();

  private:
    HttpServer(DeferredHttpHandler handler, HttpServerOptions options, int deferred);
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace mitigate
