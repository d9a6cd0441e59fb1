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
    HttpHandler handler;
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
                HttpReply reply;
                ++in_flight;
                try {
                    reply = handler(exchange);
                } catch (const std::exception& failure) {
                    reply = plain(500, std::string("internal error: ") + failure.what());
                }
                if (reply.drop_connection) {
                    --in_flight;
                    stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
                    stream->socket().close(ignored);
                    return;
                }
                write(stream, buffer, std::move(reply), request.version(),
                      request.keep_alive() && !stopping);
            });
    }

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
