#include "plugins/emulators/loopback_http_server.h"

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <thread>

namespace mitigate {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct LoopbackHttpServer::State {
    HttpHandler handler;
    asio::io_context context;
    tcp::acceptor acceptor{context};
    std::thread thread;

    void accept() {
        acceptor.async_accept([this](beast::error_code error, tcp::socket socket) {
            if (error) {
                return;  // closed: the server is stopping
            }
            serve(std::make_shared<tcp::socket>(std::move(socket)));
            accept();
        });
    }

    // One connection, requests in order, on the server's single thread.
    void serve(std::shared_ptr<tcp::socket> socket) {
        auto buffer = std::make_shared<beast::flat_buffer>();
        auto request = std::make_shared<http::request<http::string_body>>();
        http::async_read(*socket, *buffer, *request,
                         [this, socket, buffer, request](beast::error_code error, std::size_t) {
                             if (error) {
                                 return;
                             }
                             HttpExchange exchange;
                             exchange.method = std::string(request->method_string());
                             exchange.target = std::string(request->target());
                             for (const auto& field : request->base()) {
                                 std::string name(field.name_string());
                                 std::transform(name.begin(), name.end(), name.begin(),
                                                [](unsigned char c) { return std::tolower(c); });
                                 exchange.headers[name] = std::string(field.value());
                             }
                             exchange.body = request->body();
                             HttpReply reply;
                             try {
                                 reply = handler(exchange);
                             } catch (const std::exception& failure) {
                                 reply = {500, {{"Content-Type", "text/plain"}}, failure.what()};
                             }
                             auto response = std::make_shared<http::response<http::string_body>>(
                                 static_cast<http::status>(reply.status), request->version());
                             for (const auto& [name, value] : reply.headers) {
                                 response->set(name, value);
                             }
                             response->body() = reply.body;
                             response->keep_alive(request->keep_alive());
                             response->prepare_payload();
                             http::async_write(*socket, *response,
                                               [this, socket, response](
                                                   beast::error_code write_error, std::size_t) {
                                                   if (!write_error && response->keep_alive()) {
                                                       serve(socket);
                                                   }
                                               });
                         });
    }
};

LoopbackHttpServer::LoopbackHttpServer(HttpHandler handler) : state_(std::make_unique<State>()) {
    state_->handler = std::move(handler);
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    state_->acceptor.open(endpoint.protocol());
    state_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    state_->acceptor.bind(endpoint);
    state_->acceptor.listen();
    state_->accept();
    state_->thread = std::thread([state = state_.get()] { state->context.run(); });
}

LoopbackHttpServer::~LoopbackHttpServer() {
    asio::post(state_->context, [state = state_.get()] {
        beast::error_code ignored;
        state->acceptor.close(ignored);
        state->context.stop();
    });
    state_->thread.join();
}

std::uint16_t LoopbackHttpServer::port() const {
    return state_->acceptor.local_endpoint().port();
}

std::string LoopbackHttpServer::url() const {
    return "http://127.0.0.1:" + std::to_string(port());
}

}  // namespace mitigate
