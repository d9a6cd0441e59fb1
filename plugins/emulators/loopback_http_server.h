// A small HTTP/1.1 server on 127.0.0.1 for the provider emulators and tests: it binds
// port 0, reports the port the kernel chose, and hands every request to one handler on
// its own thread. The only translation unit of the emulators that sees Boost.Beast.
#pragma once

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
};

struct HttpReply {
    int status = 200;
    std::map<std::string, std::string> headers;
    std::string body;
};

using HttpHandler = std::function<HttpReply(const HttpExchange& request)>;

class LoopbackHttpServer {
  public:
    explicit LoopbackHttpServer(HttpHandler handler);
    ~LoopbackHttpServer();  // stops and joins
    LoopbackHttpServer(const LoopbackHttpServer&) = delete;
    LoopbackHttpServer& operator=(const LoopbackHttpServer&) = delete;

    std::uint16_t port() const;
    std::string url() const;  // "http://127.0.0.1:PORT"

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace mitigate
