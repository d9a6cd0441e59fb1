#include "runtime/server/http_server.h"

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace mitigate {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

using RequestParser = http::request_parser<http::string_body>;

constexpr std::size_t header_limit = 16 * 1024;
// Bytes read but not yet parsed: a request's header, then a chunk-size line or a trailer
// line at a time. Beast's header limit does not cover the last two, so without this bound
// one endless chunk extension or trailer grows memory without end.
constexpr std::size_t unparsed_limit = 64 * 1024;
// Bodies up to this size do not draw on the body memory budget (their total is bounded by
// the connection limit instead): a crowd declaring large bodies can then never keep an
// approval, a revert or an ordinary webhook out.
constexpr std::size_t small_body_bytes = 64 * 1024;

HttpReply plain(int status, std::string text) {
    return {status, {{"Content-Type", "text/plain; charset=utf-8"}}, std::move(text) + "\n"};
}

// Boost 1.74's Beast hands out boost::string_view.
std::string_view view(beast::string_view text) {
    return {text.data(), text.size()};
}

std::string lower_case(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trimmed(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

// Headers whose values are lists (RFC 9110 5.3): a repeat is the same as one line with
// commas, and proxies add them. Any other header repeated is ambiguous: which of two
// Authorization headers counts depends on who reads it, so neither does.
bool may_repeat(std::string_view name) {
    static const std::set<std::string_view> lists = {
        "accept",          "accept-charset", "accept-encoding",
        "accept-language", "cache-control",  "connection",
        "forwarded",       "pragma",         "te",
        "trailer",         "upgrade",        "via",
        "warning",         "x-forwarded-for"};
    return lists.contains(name);
}

// Why this request's framing or headers are ambiguous, or nullopt. Beast already refuses
// a Content-Length that follows a chunked Transfer-Encoding and unequal repeated lengths;
// what it lets through (a coding list such as "chunked, identity" before a length, equal
// repeated lengths, "5, 5") is refused here: a proxy in front may frame those
// differently, and the bytes it thinks are a body would be our next request.
std::optional<std::string> framing_problem(const http::request_header<>& header) {
    std::map<std::string, int> counts;
    for (const auto& field : header) {
        ++counts[lower_case(view(field.name_string()))];
    }
    for (const auto& [name, count] : counts) {
        if (count > 1 && !may_repeat(name)) {
            return "the header " + name + " appears " + std::to_string(count) + " times";
        }
    }
    const auto length = header.find(http::field::content_length);
    if (length != header.end()) {
        const std::string_view value = trimmed(view(length->value()));
        if (value.empty() ||
            !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            return std::string("Content-Length must be one decimal number");
        }
    }
    const auto coding = header.find(http::field::transfer_encoding);
    if (coding != header.end()) {
        if (length != header.end()) {
            return std::string("a request may not have both Content-Length and Transfer-Encoding");
        }
        if (lower_case(trimmed(view(coding->value()))) != "chunked") {
            return std::string("the only Transfer-Encoding accepted is chunked");
        }
        if (header.version() < 11) {
            return std::string("Transfer-Encoding needs HTTP/1.1");
        }
    }
    return std::nullopt;
}

// The parser's "this is not valid HTTP" errors, as opposed to the connection ending or a
// deadline passing: those get a 400 before the connection closes.
bool is_malformed(const beast::error_code& error) {
    static const std::set<beast::error_code> malformed = {
        http::error::bad_line_ending,    http::error::bad_method,
        http::error::bad_target,         http::error::bad_version,
        http::error::bad_field,          http::error::bad_value,
        http::error::bad_content_length, http::error::bad_transfer_encoding,
        http::error::bad_chunk,          http::error::bad_chunk_extension,
        http::error::bad_obs_fold};
    return malformed.contains(error);
}

}  // namespace

std::size_t raise_descriptor_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return 1024;
    }
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            limit = raised;
        }
    }
    return limit.rlim_cur == RLIM_INFINITY ? SIZE_MAX : static_cast<std::size_t>(limit.rlim_cur);
}

struct HttpServer::State {
    struct Connection;

    // Who is connected, for the connection limit: an idle connection (waiting for its
    // next request) is the one to close when a newcomer needs room.
    struct Registered {
        std::weak_ptr<Connection> connection;
        bool idle = true;
        Clock::time_point idle_since;
    };

    DeferredHttpHandler handler;
    HttpServerOptions options;
    // Declared before the io_context, so that they outlive the handlers (and the
    // connections those hold) that the context destroys when it goes.
    mutable std::mutex registry_mutex;
    std::map<std::uint64_t, Registered> registry;
    std::atomic<std::uint64_t> next_id{0};
    std::size_t body_bytes_reserved = 0;  // under registry_mutex
    struct Counters {
        std::atomic<std::size_t> accepted{0}, idle_closed{0}, refused_at_limit{0},
            refused_over_budget{0}, refused_framing{0}, timed_out{0}, accept_failures{0};
    } counters;
    std::atomic<bool> stopping{false};
    std::atomic<int> in_flight{0};  // from a request read to its reply written
    std::atomic<bool> stopped{false};
    std::uint16_t port = 0;
    int reserve_descriptor = -1;
    std::chrono::milliseconds accept_backoff{0};

    asio::io_context context;
    // The acceptor, its back-off timer and stop() touch them only through this strand:
    // the I/O threads would otherwise race on them.
    asio::strand<asio::io_context::executor_type> accept_strand = asio::make_strand(context);
    tcp::acceptor acceptor{accept_strand};
    asio::steady_timer accept_timer{accept_strand};
    std::vector<std::thread> threads;

    ~State() {
        if (reserve_descriptor >= 0) {
            ::close(reserve_descriptor);
        }
    }

    void accept() {
        acceptor.async_accept(asio::make_strand(context),
                              [this](beast::error_code error, tcp::socket socket) {
                                  if (stopping || error == asio::error::operation_aborted) {
                                      return;  // closed: the server is stopping
                                  }
                                  if (error) {
                                      accept_failed(error);
                                      return;
                                  }
                                  accept_backoff = std::chrono::milliseconds(0);
                                  ++counters.accepted;
                                  admit(std::move(socket));
                                  accept();
                              });
    }

    // accept() failed: out of descriptors (EMFILE, ENFILE) or kernel memory. The
    // connection waiting in the backlog would otherwise wait there for good, and the
    // listening socket would stay readable, so accept would spin: close the reserve
    // descriptor, take that one connection and close it (its client sees a refusal, not
    // a hang), take the reserve back, and try again after a pause that doubles up to 1 s.
    void accept_failed(const beast::error_code& error) {
        ++counters.accept_failures;
        if (error == asio::error::no_descriptors || error == asio::error::no_buffer_space ||
            error.value() == ENFILE) {
            if (reserve_descriptor >= 0) {
                ::close(reserve_descriptor);
                reserve_descriptor = -1;
            }
            const int waiting =
                ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (waiting >= 0) {
                ::close(waiting);
            }
            reserve_descriptor = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        accept_backoff = std::clamp(accept_backoff * 2, std::chrono::milliseconds(10),
                                    std::chrono::milliseconds(1000));
        accept_timer.expires_after(accept_backoff);
        accept_timer.async_wait([this](beast::error_code waited) {
            if (!waited && !stopping) {
                accept();
            }
        });
    }

    // A new connection takes a place, making room by closing the longest-idle one when
    // the limit is reached; with no idle one to close, it is told 503 and closed.
    void admit(tcp::socket socket) {
        auto connection = std::make_shared<Connection>(*this, std::move(socket), ++next_id);
        std::shared_ptr<Connection> evicted;
        {
            std::lock_guard lock(registry_mutex);
            if (registry.size() >= options.max_connections) {
                auto oldest = registry.end();
                for (auto entry = registry.begin(); entry != registry.end(); ++entry) {
                    if (entry->second.idle &&
                        (oldest == registry.end() ||
                         entry->second.idle_since < oldest->second.idle_since)) {
                        oldest = entry;
                    }
                }
                if (oldest == registry.end()) {
                    ++counters.refused_at_limit;
                    refuse(connection->stream.release_socket());
                    return;
                }
                evicted = oldest->second.connection.lock();
                registry.erase(oldest);
                ++counters.idle_closed;
            }
            registry[connection->id] = {connection, true, Clock::now()};
        }
        if (evicted) {
            asio::post(evicted->stream.get_executor(), [evicted] { evicted->close(); });
        }
        connection->wait_for_request();
    }

    // 503 written on a connection that never gets a place (at most 1 s to write it).
    static void refuse(tcp::socket socket) {
        static const std::string answer =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
            "Retry-After: 1\r\nConnection: close\r\nContent-Length: 26\r\n\r\n"
            "too many open connections\n";
        auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
        stream->expires_after(std::chrono::seconds(1));
        asio::async_write(*stream, asio::buffer(answer), [stream](beast::error_code, std::size_t) {
            beast::error_code ignored;
            stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
        });
    }

    void set_idle(std::uint64_t id, bool idle) {
        std::lock_guard lock(registry_mutex);
        if (auto entry = registry.find(id); entry != registry.end()) {
            entry->second.idle = idle;
            entry->second.idle_since = Clock::now();
        }
    }

    void forget(std::uint64_t id, std::size_t reserved) {
        std::lock_guard lock(registry_mutex);
        registry.erase(id);
        body_bytes_reserved -= reserved;
    }

    bool reserve_body(std::size_t bytes) {
        std::lock_guard lock(registry_mutex);
        if (body_bytes_reserved + bytes > options.body_memory_budget) {
            return false;
        }
        body_bytes_reserved += bytes;
        return true;
    }

    void release_body(std::size_t bytes) {
        std::lock_guard lock(registry_mutex);
        body_bytes_reserved -= bytes;
    }

    // One connection: requests in order, each read with deadlines and size limits. Every
    // step runs on the connection's strand; the handlers hold it alive.
    struct Connection : std::enable_shared_from_this<Connection> {
        State& server;
        beast::tcp_stream stream;
        beast::flat_buffer buffer{unparsed_limit};
        std::uint64_t id;
        std::shared_ptr<RequestParser> parser;
        std::size_t reserved = 0;  // of the body memory budget, for the current request
        std::size_t header_fields = 0;
        bool over_budget = false;  // a chunked body ran past what the budget could give
        bool closed = false;       // closed to make room: nothing more is handled
        // Chunked bodies are counted as their bytes arrive (a declared length is reserved
        // up front instead, since the body is allocated at that size).
        std::function<std::size_t(std::uint64_t, beast::string_view, beast::error_code&)>
            chunk_body;

        Connection(State& server_in, tcp::socket socket, std::uint64_t id_in)
            : server(server_in), stream(std::move(socket)), id(id_in) {
            chunk_body = [this](std::uint64_t, beast::string_view bytes, beast::error_code& error) {
                std::string& body = parser->get().body();
                const std::size_t total = body.size() + bytes.size();
                if (total > small_body_bytes && total > reserved) {
                    const std::size_t wanted = std::max(total, reserved + small_body_bytes);
                    if (!server.reserve_body(wanted - reserved)) {
                        over_budget = true;
                        error = http::error::body_limit;
                        return std::size_t{0};
                    }
                    reserved = wanted;
                }
                body.append(bytes.data(), bytes.size());
                return bytes.size();
            };
        }
        Connection(const Connection&) = delete;
        Connection& operator=(const Connection&) = delete;
        ~Connection() { server.forget(id, reserved); }

        void close() {
            closed = true;
            beast::error_code ignored;
            stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
            stream.socket().close(ignored);
        }

        void note_failure(const beast::error_code& error) {
            if (error == beast::error::timeout) {
                ++server.counters.timed_out;
            }
        }

        // Idle until the next request's first byte (bytes already buffered are a
        // pipelined request: read at once).
        void wait_for_request() {
            if (buffer.size() > 0) {
                read_header();
                return;
            }
            server.set_idle(id, true);
            stream.expires_after(server.options.idle_timeout);
            stream.async_read_some(
                buffer.prepare(4096),
                [self = shared_from_this()](beast::error_code error, std::size_t bytes) {
                    if (error) {
                        self->note_failure(error);
                        return;  // closed by the client, idle too long, or closed for room
                    }
                    self->buffer.commit(bytes);
                    self->server.set_idle(self->id, false);
                    self->read_header();
                });
        }

        void read_header() {
            parser = std::make_shared<RequestParser>();
            parser->body_limit(server.options.body_limit);
            parser->header_limit(header_limit);
            parser->on_chunk_body(chunk_body);
            over_budget = false;
            stream.expires_after(server.options.header_timeout);
            http::async_read_header(
                stream, buffer, *parser,
                [self = shared_from_this()](beast::error_code error, std::size_t) {
                    self->header_read(error);
                });
        }

        void header_read(const beast::error_code& error) {
            if (error == http::error::body_limit) {
                return answer_and_close(413, "request body larger than " +
                                                 std::to_string(server.options.body_limit) +
                                                 " bytes");
            }
            if (error == http::error::header_limit || error == http::error::buffer_overflow) {
                return answer_and_close(431, "request headers larger than 16384 bytes");
            }
            if (is_malformed(error)) {
                ++server.counters.refused_framing;
                return answer_and_close(400, "malformed request: " + error.message());
            }
            if (error) {
                note_failure(error);
                return;  // closed mid-request or timed out: drop the connection
            }
            if (const auto problem = framing_problem(parser->get().base())) {
                ++server.counters.refused_framing;
                return answer_and_close(400, *problem);
            }
            header_fields = static_cast<std::size_t>(
                std::distance(parser->get().base().begin(), parser->get().base().end()));
            const auto length = parser->content_length();
            const std::size_t body_bytes = length ? static_cast<std::size_t>(*length) : 0;
            if (body_bytes > small_body_bytes) {
                if (!server.reserve_body(body_bytes)) {
                    ++server.counters.refused_over_budget;
                    HttpReply reply = plain(503, "too many request bodies are being received");
                    reply.headers["Retry-After"] = "1";
                    return answer(std::move(reply), false);
                }
                reserved = body_bytes;
            }
            stream.expires_after(server.options.body_timeout);
            http::async_read(stream, buffer, *parser,
                             [self = shared_from_this()](beast::error_code failure, std::size_t) {
                                 self->body_read(failure);
                             });
        }

        void body_read(const beast::error_code& error) {
            if (over_budget) {
                ++server.counters.refused_over_budget;
                HttpReply reply = plain(503, "too many request bodies are being received");
                reply.headers["Retry-After"] = "1";
                return answer(std::move(reply), false);
            }
            if (error == http::error::buffer_overflow) {
                ++server.counters.refused_framing;
                return answer_and_close(400,
                                        "a chunk-size line or trailer longer than 65536 bytes");
            }
            if (error == http::error::body_limit) {
                return answer_and_close(413, "request body larger than " +
                                                 std::to_string(server.options.body_limit) +
                                                 " bytes");
            }
            if (error) {
                note_failure(error);
                if (is_malformed(error)) {
                    ++server.counters.refused_framing;
                    return answer_and_close(400, "malformed request: " + error.message());
                }
                return;
            }
            // Beast adds trailer fields to the header's list, where they would pass for
            // headers no proxy in front saw (an Authorization after the body).
            if (static_cast<std::size_t>(std::distance(
                    parser->get().base().begin(), parser->get().base().end())) != header_fields) {
                ++server.counters.refused_framing;
                return answer_and_close(400, "trailer fields are not accepted");
            }
            dispatch();
        }

        void dispatch() {
            if (closed) {
                return;  // closed to make room before its request was read: not handled
            }
            auto& request = parser->get();
            HttpExchange exchange;
            exchange.method = std::string(request.method_string());
            exchange.target = std::string(request.target());
            for (const auto& field : request.base()) {
                std::string& value = exchange.headers[lower_case(view(field.name_string()))];
                value += (value.empty() ? "" : ", ") + std::string(field.value());
            }
            exchange.body = std::move(request.body());
            beast::error_code ignored;
            const auto remote = stream.socket().remote_endpoint(ignored);
            exchange.peer = remote.address().to_string() + ":" + std::to_string(remote.port());
            const bool keep_alive = request.keep_alive();
            ++server.in_flight;
            // The reply goes back through the connection's own strand, whichever thread
            // answers; answered once, and a 500 if the responder is dropped.
            auto pending = std::make_shared<PendingReply>(shared_from_this(), keep_alive);
            try {
                server.handler(exchange,
                               [pending](HttpReply reply) { pending->send(std::move(reply)); });
            } catch (const std::exception& failure) {
                pending->send(plain(500, std::string("internal error: ") + failure.what()));
            }
        }

        // For refusals before the handler: the connection is not trusted to be in step.
        void answer_and_close(int status, std::string text) {
            answer(plain(status, std::move(text)), false);
        }

        void answer(HttpReply reply, bool keep_alive) {
            ++server.in_flight;
            write(std::move(reply), keep_alive);
        }

        void write(HttpReply reply, bool keep_alive) {
            if (reply.drop_connection) {
                --server.in_flight;
                close();
                return;
            }
            const unsigned version = parser ? parser->get().version() : 11;
            auto response = std::make_shared<http::response<http::string_body>>(
                static_cast<http::status>(reply.status), version);
            for (const auto& [name, value] : reply.headers) {
                response->set(name, value);
            }
            // A HEAD answer carries no body: one sent anyway would be read by a keep-alive
            // client as the start of its next response.
            const bool head = parser && parser->get().method() == http::verb::head;
            response->body() = head ? std::string() : std::move(reply.body);
            response->keep_alive(keep_alive && !server.stopping);
            response->prepare_payload();
            stream.expires_after(server.options.body_timeout);
            http::async_write(
                stream, *response,
                [self = shared_from_this(), response](beast::error_code error, std::size_t) {
                    --self->server.in_flight;
                    self->server.release_body(self->reserved);
                    self->reserved = 0;
                    self->parser.reset();
                    if (!error && response->keep_alive()) {
                        self->wait_for_request();
                    } else if (error) {
                        self->note_failure(error);
                    } else {
                        beast::error_code ignored;
                        self->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
                        self->linger(0);
                    }
                });
        }

        // After the last answer, reads and drops what the client still sends (for at most
        // 1 s and 1 MiB) before closing: closing with unread bytes makes the kernel send a
        // reset, and a reset can destroy the answer (a 400, a 413) before the client
        // reads it.
        void linger(std::size_t drained) {
            if (closed) {
                return;
            }
            auto scratch = std::make_shared<std::array<char, 4096>>();
            stream.expires_after(std::chrono::seconds(1));
            stream.async_read_some(asio::buffer(*scratch),
                                   [self = shared_from_this(), scratch, drained](
                                       beast::error_code error, std::size_t bytes) {
                                       if (!error && drained + bytes < (1u << 20)) {
                                           self->linger(drained + bytes);
                                       }
                                   });
        }
    };

    struct PendingReply {
        std::shared_ptr<Connection> connection;
        bool keep_alive;
        std::atomic<bool> answered{false};

        PendingReply(std::shared_ptr<Connection> connection_in, bool keep_alive_in)
            : connection(std::move(connection_in)), keep_alive(keep_alive_in) {}
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
            asio::post(connection->stream.get_executor(),
                       [connection = connection, keep_alive = keep_alive,
                        reply = std::move(reply)]() mutable {
                           connection->write(std::move(reply), keep_alive);
                       });
        }
    };
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
    // Room for the store, plugin workers, logs and outgoing calls: a quarter of the
    // descriptors (at least 64) is never taken by connections.
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
        const auto soft = static_cast<std::size_t>(limit.rlim_cur);
        const std::size_t headroom = std::max<std::size_t>(64, soft / 4);
        options.max_connections =
            std::min(options.max_connections, soft > headroom + 1 ? soft - headroom : 1);
    }
    options.max_connections = std::max<std::size_t>(1, options.max_connections);
    state_->handler = std::move(handler);
    state_->options = options;
    state_->reserve_descriptor = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const std::string where = options.host + ":" + std::to_string(options.port);
    try {
        const tcp::endpoint endpoint(asio::ip::make_address(options.host), options.port);
        state_->acceptor.open(endpoint.protocol());
        state_->acceptor.set_option(tcp::acceptor::reuse_address(true));
        state_->acceptor.bind(endpoint);
        state_->acceptor.listen(asio::socket_base::max_listen_connections);
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
    if (state_->stopped.exchange(true)) {
        return;
    }
    state_->stopping = true;
    asio::post(state_->accept_strand, [state = state_.get()] {
        beast::error_code ignored;
        state->acceptor.close(ignored);
        state->accept_timer.cancel();
    });
    // Requests being handled finish and are answered (each write has a deadline); idle
    // keep-alive connections are not waited for.
    const auto give_up = Clock::now() + state_->options.body_timeout;
    while (state_->in_flight.load() > 0 && Clock::now() < give_up) {
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

std::size_t HttpServer::max_connections() const {
    return state_->options.max_connections;
}

HttpServerStatistics HttpServer::statistics() const {
    HttpServerStatistics statistics;
    {
        std::lock_guard lock(state_->registry_mutex);
        statistics.connections_open = state_->registry.size();
        statistics.connections_idle = static_cast<std::size_t>(
            std::count_if(state_->registry.begin(), state_->registry.end(),
                          [](const auto& entry) { return entry.second.idle; }));
        statistics.body_bytes_reserved = state_->body_bytes_reserved;
    }
    const auto& counters = state_->counters;
    statistics.connections_accepted = counters.accepted;
    statistics.idle_closed_for_room = counters.idle_closed;
    statistics.refused_at_limit = counters.refused_at_limit;
    statistics.refused_over_budget = counters.refused_over_budget;
    statistics.refused_framing = counters.refused_framing;
    statistics.timed_out = counters.timed_out;
    statistics.accept_failures = counters.accept_failures;
    return statistics;
}

}  // namespace mitigate
