#include "runtime/server/http_server.h"

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

namespace mitigate {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpServer::State {
    DeferredHttpHandler handler;
    HttpServerOptions options;
    asio::io_context context;
    tcp::acceptor acceptor{context};
    std::vector<std::thread> threads;
    std::atomic<bool> stopping{false};
    std::atomic<int> in_flight{0};  // from a request read to its reply written
    bool stopped = false;
    std::uint16_t port = 0;

    void accept() {
        acceptor.async_accept(asio::make_strand(context),
                              [this](beast::error_code error, tcp::socket socket) {
                                  if (error) {
                                      return;  // closed: the server is stopping
                                  }
                                  read(std::make_shared<beast::tcp_stream>(std::move(socket)),
                                       std::make_shared<beast::flat_buffer>());
                                  accept();
                              });
    }

    static HttpReply plain(int status, std::string text) {
        return {status, {{"Content-Type", "text/plain; charset=utf-8"}}, std::move(text) + "\n"};
    }

    // One connection: requests in order, each read with a deadline and size limits.
    void read(std::shared_ptr<beast::tcp_stream> stream,
              std::shared_ptr<beast::flat_buffer> buffer) {
        auto parser = std::make_shared<http::request_parser<http::string_body>>();
        parser->body_limit(options.body_limit);
        parser->header_limit(16 * 1024);
        stream->expires_after(options.read_timeout);
        http::async_read(
            *stream, *buffer, *parser,
            [this, stream, buffer, parser](beast::error_code error, std::size_t) {
                if (error == http::error::body_limit) {
                    ++in_flight;
                    write(stream, buffer,
                          plain(413, "request body larger than " +
                                         std::to_string(options.body_limit) + " bytes"),
                          11, false);
                    return;
                }
                if (error) {
                    return;  // closed, timed out, or not HTTP: drop the connection
                }
                auto& request = parser->get();
                HttpExchange exchange;
                exchange.method = std::string(request.method_string());
                exchange.target = std::string(request.target());
                for (const auto& field : request.base()) {
                    std::string name(field.name_string());
                    std::transform(name.begin(), name.end(), name.begin(),
                                   [](unsigned char c) { return std::tolower(c); });
                    exchange.headers[name] = std::string(field.value());
                }
                exchange.body = std::move(request.body());
                beast::error_code ignored;
                const auto remote = stream->socket().remote_endpoint(ignored);
                exchange.peer = remote.address().to_string() + ":" + std::to_string(remote.port());
                ++in_flight;
                const unsigned version = request.version();
                const bool keep_alive = request.keep_alive();
                // The reply goes back through the connection's own executor, whichever
                // thread answers; answered once, and a 500 if the responder is dropped.
                auto pending =
                    std::make_shared<PendingReply>(this, stream, buffer, version, keep_alive);
                try {
                    handler(exchange,
                            [pending](HttpReply reply) { pending->send(std::move(reply)); });
                } catch (const std::exception& failure) {
                    pending->send(plain(500, std::string("internal error: ") + failure.what()));
                }
            });
    }

    struct PendingReply {
        State* state;
        std::shared_ptr<beast::tcp_stream> stream;
        std::shared_ptr<beast::flat_buffer> buffer;
        unsigned version;
        bool keep_alive;
        std::atomic<bool> answered{false};

        PendingReply(State* state_in, std::shared_ptr<beast::tcp_stream> stream_in,
                     std::shared_ptr<beast::flat_buffer> buffer_in, unsigned version_in,
                     bool keep_alive_in)
            : state(state_in),
              stream(std::move(stream_in)),
              buffer(std::move(buffer_in)),
              version(version_in),
              keep_alive(keep_alive_in) {}
        PendingReply(const PendingReply&) = delete;
        PendingReply& operator=(const PendingReply&) = delete;
        ~PendingReply() {
            if (!answered.exchange(true)) {
                deliver(plain(500, "internal error: the request was not answered"));
            }
        }

        void send(HttpReply reply) {
            if (answered.exchange(true)) {
                return;  // answered already: a second answer is a bug, and is dropped
            }
            deliver(std::move(reply));
        }

        void deliver(HttpReply reply) {
            asio::post(stream->get_executor(),
                       [state = state, stream = stream, buffer = buffer, version = version,
                        keep_alive = keep_alive, reply = std::move(reply)]() mutable {
                           if (reply.drop_connection) {
                               --state->in_flight;
                               beast::error_code ignored;
                               stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
                               stream->socket().close(ignored);
                               return;
                           }
                           state->write(stream, buffer, std::move(reply), version,
                                        keep_alive && !state->stopping);
                       });
        }
    };

    void write(std::shared_ptr<beast::tcp_stream> stream,
               std::shared_ptr<beast::flat_buffer> buffer, HttpReply reply, unsigned version,
               bool keep_alive) {
        auto response = std::make_shared<http::response<http::string_body>>(
            static_cast<http::status>(reply.status), version);
        for (const auto& [name, value] : reply.headers) {
            response->set(name, value);
        }
        response->body() = std::move(reply.body);
        response->keep_alive(keep_alive);
        response->prepare_payload();
        stream->expires_after(options.read_timeout);
        http::async_write(*stream, *response,
                          [this, stream, buffer, response](beast::error_code error, std::size_t) {
                              --in_flight;
                              if (!error && response->keep_alive()) {
                                  read(stream, buffer);
                              } else {
                                  beast::error_code ignored;
                                  stream->socket().shutdown(tcp::socket::shutdown_send, ignored);
                              }
                          });
    }
};

HttpServer::HttpServer(HttpHandler handler, HttpServerOptions options)
    : HttpServer(DeferredHttpHandler([handler = std::move(handler)](const HttpExchange& request,
                                                                    const HttpResponder& respond) {
                     respond(handler(request));
                 }),
                 options, 0) {}

std::unique_ptr<HttpServer> HttpServer::deferred(DeferredHttpHandler handler,
                                                 HttpServerOptions options) {
    return std::unique_ptr<HttpServer>(new HttpServer(std::move(handler), options, 0));
}

HttpServer::HttpServer(DeferredHttpHandler handler, HttpServerOptions options, int /*deferred*/)
    : state_(std::make_unique<State>()) {
    state_->handler = std::move(handler);
    state_->options = options;
    const std::string where = options.host + ":" + std::to_string(options.port);
    try {
        const tcp::endpoint endpoint(asio::ip::make_address(options.host), options.port);
        state_->acceptor.open(endpoint.protocol());
        state_->acceptor.set_option(tcp::acceptor::reuse_address(true));
        state_->acceptor.bind(endpoint);
        state_->acceptor.listen();
        state_->port = state_->acceptor.local_endpoint().port();
    } catch (const std::exception& failure) {
        throw std::runtime_error("cannot listen on " + where + ": " + failure.what());
    }
    state_->accept();
    for (int i = 0; i < std::max(1, options.threads); ++i) {
        state_->threads.emplace_back([state = state_.get()] { state->context.run(); });
    }
}

HttpServer::~HttpServer() {
    stop();
}

void HttpServer::stop() {
    if (state_->stopped) {
        return;
    }
    state_->stopped = true;
    state_->stopping = true;
    asio::post(state_->context, [state = state_.get()] {
        beast::error_code ignored;
        state->acceptor.close(ignored);
    });
    // Requests being handled finish and are answered (each write has the read deadline);
    // idle keep-alive connections are not waited for.
    const auto give_up = std::chrono::steady_clock::now() + state_->options.read_timeout;
    while (state_->in_flight.load() > 0 && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    state_->context.stop();
    for (auto& thread : state_->threads) {
        thread.join();
    }
}

std::uint16_t HttpServer::port() const {
    return state_->port;
}

std::string HttpServer::url() const {
    return "http://" + state_->options.host + ":" + std::to_string(port());
}

}  // namespace mitigate
