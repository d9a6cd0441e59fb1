// The HTTP server under clients that are hostile, slow or too many, over raw sockets on
// loopback so that every byte is the test's: smuggling attempts and repeated headers,
// deadlines (lowered to milliseconds so nothing waits long), the connection limit, the
// body memory budget, and running out of descriptors. After each, a normal request is
// answered.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/server/http_client.h"
#include "runtime/server/http_server.h"

namespace mitigate {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A raw client connection. Reads give up after 10 s (a safety net for a broken server,
// far above every deadline the tests set), so no test can hang.
class RawConnection {
  public:
    explicit RawConnection(std::uint16_t port) {
        descriptor_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (descriptor_ < 0) {
            return;
        }
        timeval timeout{10, 0};
        ::setsockopt(descriptor_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(descriptor_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
            ::close(descriptor_);
            descriptor_ = -1;
        }
    }
    ~RawConnection() {
        if (descriptor_ >= 0) {
            ::close(descriptor_);
        }
    }
    RawConnection(const RawConnection&) = delete;
    RawConnection& operator=(const RawConnection&) = delete;

    bool connected() const { return descriptor_ >= 0; }

    void send(std::string_view bytes) {
        ASSERT_EQ(::send(descriptor_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(bytes.size()));
    }

    // For a peer that may have stopped reading: a failure is not the test's.
    void send_if_open(std::string_view bytes) {
        ::send(descriptor_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    }

    // Everything until the server closes the connection (or 10 s pass).
    std::string read_until_closed() {
        std::string all;
        char chunk[4096];
        for (;;) {
            const ssize_t got = ::recv(descriptor_, chunk, sizeof chunk, 0);
            if (got <= 0) {
                closed_ = got == 0 || errno == ECONNRESET;
                return all;
            }
            all.append(chunk, static_cast<std::size_t>(got));
        }
    }

    // One response's head and body, read by Content-Length; the connection stays open.
    std::string read_response() {
        std::string all;
        char byte = 0;
        while (all.find("\r\n\r\n") == std::string::npos) {
            if (::recv(descriptor_, &byte, 1, 0) != 1) {
                return all;
            }
            all += byte;
        }
        const auto length_at = all.find("Content-Length: ");
        std::size_t length =
            length_at == std::string::npos ? 0 : std::stoul(all.substr(length_at + 16));
        while (length-- > 0 && ::recv(descriptor_, &byte, 1, 0) == 1) {
            all += byte;
        }
        return all;
    }

    bool closed_by_server() const { return closed_; }

  private:
    int descriptor_ = -1;
    bool closed_ = false;
};

class HttpServerTest : public ::testing::Test {
  protected:
    void start(HttpServerOptions options = {}) {
        server = std::make_unique<HttpServer>(
            [this](const HttpExchange& request) {
                std::lock_guard lock(mutex);
                seen.push_back(request);
                return HttpReply{200, {}, "ok " + request.target};
            },
            options);
    }

    // A request through the real client (curl), as a daemon's user would send it.
    int health_status() {
        HttpClientRequest request;
        request.url = server->url() + "/healthz";
        request.timeout = std::chrono::seconds(10);
        return http_request(request).status;
    }

    // Waits (bounded) until the server's own count says a connection has reached the
    // state the test set up: bytes the client sent are read on the server's threads.
    template <typename Predicate>
    void wait_until(Predicate done) {
        for (int attempt = 0; attempt < 5000 && !done(server->statistics()); ++attempt) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        ASSERT_TRUE(done(server->statistics()));
    }

    std::vector<std::string> targets_seen() {
        std::lock_guard lock(mutex);
        std::vector<std::string> targets;
        for (const auto& request : seen) {
            targets.push_back(request.target);
        }
        return targets;
    }

    std::mutex mutex;
    std::vector<HttpExchange> seen;
    std::unique_ptr<HttpServer> server;
};

// Each of these frames a request in a way some reader (a proxy in front, the next hop)
// could read differently: the bytes after the first request's body would be a second
// request to one reader and body to another.
class AmbiguousFraming : public HttpServerTest,
                         public ::testing::WithParamInterface<std::pair<const char*, const char*>> {
};

TEST_P(AmbiguousFraming, IsRefusedWith400AndTheConnectionClosedBeforeAnyHandlerRuns) {
    start();
    const auto& [headers, expected] = GetParam();
    RawConnection client(server->port());
    ASSERT_TRUE(client.connected());
    client.send(std::string("POST /first HTTP/1.1\r\nHost: x\r\n") + headers +
                "\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::string answer = client.read_until_closed();
    EXPECT_THAT(answer, StartsWith("HTTP/1.1 400"));
    EXPECT_THAT(answer, HasSubstr(expected));
    EXPECT_TRUE(client.closed_by_server());
    EXPECT_THAT(answer, ::testing::Not(HasSubstr("ok /smuggled")));
    EXPECT_TRUE(targets_seen().empty());
    EXPECT_EQ(health_status(), 200);
}

INSTANTIATE_TEST_SUITE_P(
    Smuggling, AmbiguousFraming,
    ::testing::Values(
        std::pair{"Transfer-Encoding: chunked, identity\r\nContent-Length: 5", "Transfer-Encoding"},
        std::pair{"Transfer-Encoding: xchunked\r\nContent-Length: 5", "Transfer-Encoding"},
        std::pair{"Transfer-Encoding: identity", "only Transfer-Encoding accepted is chunked"},
        std::pair{"Content-Length: 5\r\nTransfer-Encoding: chunked", "malformed request"},
        std::pair{"Transfer-Encoding: chunked\r\nContent-Length: 5", "malformed request"},
        std::pair{"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", "malformed"},
        std::pair{"Content-Length: 5\r\nContent-Length: 5", "content-length appears 2 times"},
        std::pair{"Content-Length: 5, 5", "one decimal number"},
        std::pair{"Content-Length: 5\r\nContent-Length: 6", "malformed request"},
        std::pair{"Content-Length: +5", "malformed request"},
        std::pair{"Authorization: Bearer a\r\nAuthorization: Bearer b\r\nContent-Length: 5",
                  "authorization appears 2 times"},
        std::pair{"Host: y\r\nContent-Length: 5", "host appears 2 times"},
        std::pair{"X-Slack-Signature: v0=1\r\nx-slack-signature: v0=2\r\nContent-Length: 5",
                  "x-slack-signature appears 2 times"}));

TEST_F(HttpServerTest, TransferEncodingNeedsHttp11AndListHeadersMayRepeat) {
    start();
    {
        RawConnection client(server->port());
        client.send("POST /old HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
        EXPECT_THAT(client.read_until_closed(), HasSubstr("needs HTTP/1.1"));
    }
    RawConnection client(server->port());
    client.send(
        "POST /chunked HTTP/1.1\r\nHost: x\r\nVia: 1.1 a\r\nVia: 1.1 b\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    EXPECT_THAT(client.read_response(), StartsWith("HTTP/1.1 200"));
    std::lock_guard lock(mutex);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].body, "abc");
    EXPECT_EQ(seen[0].headers.at("via"), "1.1 a, 1.1 b");
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
    start();
    RawConnection client(server->port());
    client.send(
        "GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\n"
        "Content-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_THAT(client.read_response(), HasSubstr("ok /one"));
    EXPECT_THAT(client.read_response(), HasSubstr("ok /two"));
    EXPECT_THAT(client.read_response(), HasSubstr("ok /three"));
    EXPECT_EQ(targets_seen(), (std::vector<std::string>{"/one", "/two", "/three"}));
}

TEST_F(HttpServerTest, SlowAndIdleClientsAreClosedAtTheirDeadlines) {
    HttpServerOptions options;
    options.header_timeout = std::chrono::milliseconds(100);
    options.body_timeout = std::chrono::milliseconds(100);
    options.idle_timeout = std::chrono::milliseconds(100);
    start(options);
    RawConnection idle(server->port());
    RawConnection slow_header(server->port());
    slow_header.send("GET /slow HTTP/1.1\r\nHost:");
    RawConnection slow_body(server->port());
    slow_body.send("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc");
    for (RawConnection* client : {&idle, &slow_header, &slow_body}) {
        EXPECT_EQ(client->read_until_closed(), "");
        EXPECT_TRUE(client->closed_by_server());
    }
    wait_until([](const HttpServerStatistics& now) { return now.timed_out == 3; });
    EXPECT_TRUE(targets_seen().empty());
    EXPECT_EQ(health_status(), 200);
}

TEST_F(HttpServerTest, AtTheConnectionLimitTheLongestIdleMakesRoomElseANewcomerGets503) {
    HttpServerOptions options;
    options.max_connections = 3;
    start(options);
    auto oldest = std::make_unique<RawConnection>(server->port());
    oldest->send("GET /warm HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_THAT(oldest->read_response(), StartsWith("HTTP/1.1 200"));
    // Idle once its answer is written; only then may the busy ones come, so that "one
    // idle" below cannot be a busy one not yet read beside an oldest not yet idle.
    wait_until([](const HttpServerStatistics& now) {
        return now.connections_open == 1 && now.connections_idle == 1;
    });
    RawConnection busy_one(server->port());
    busy_one.send("GET /busy HTTP/1.1\r\n");
    RawConnection busy_two(server->port());
    busy_two.send("GET /busy HTTP/1.1\r\n");
    wait_until([](const HttpServerStatistics& now) {
        return now.connections_open == 3 && now.connections_idle == 1;
    });
    // The limit is reached; a newcomer is served and the idle connection pays for it.
    EXPECT_EQ(health_status(), 200);
    EXPECT_EQ(oldest->read_until_closed(), "");
    EXPECT_TRUE(oldest->closed_by_server());
    EXPECT_EQ(server->statistics().idle_closed_for_room, 1u);
    // curl closed its connection; the server has let it go too.
    wait_until([](const HttpServerStatistics& now) { return now.connections_open == 2; });
    // Three requests in progress and nothing idle: the next one is told to come back.
    RawConnection busy_three(server->port());
    busy_three.send("GET /busy HTTP/1.1\r\n");
    wait_until([](const HttpServerStatistics& now) {
        return now.connections_open == 3 && now.connections_idle == 0;
    });
    RawConnection refused(server->port());
    const std::string answer = refused.read_until_closed();
    EXPECT_THAT(answer, StartsWith("HTTP/1.1 503"));
    EXPECT_THAT(answer, HasSubstr("Retry-After: 1"));
    EXPECT_EQ(server->statistics().refused_at_limit, 1u);
    // A request in progress finishes normally.
    busy_one.send("Host: x\r\n\r\n");
    EXPECT_THAT(busy_one.read_response(), StartsWith("HTTP/1.1 200"));
}

TEST_F(HttpServerTest, LargeBodiesBeingReadShareAMemoryBudgetThatSmallOnesNeverWaitFor) {
    HttpServerOptions options;
    options.body_memory_budget = 150 * 1024;
    start(options);
    const std::string large = std::to_string(100 * 1024);
    RawConnection first(server->port());
    first.send("POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: " + large + "\r\n\r\nhalf");
    wait_until([](const HttpServerStatistics& now) { return now.body_bytes_reserved > 0; });
    // The first body's 100 KiB are reserved until it is answered: 100 more do not fit.
    RawConnection second(server->port());
    second.send("POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: " + large + "\r\n\r\n");
    const std::string answer = second.read_until_closed();
    EXPECT_THAT(answer, StartsWith("HTTP/1.1 503"));
    EXPECT_THAT(answer, HasSubstr("Retry-After: 1"));
    // Nor does a chunked body, counted as its chunks arrive.
    RawConnection chunked(server->port());
    chunked.send("POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string chunk(32 * 1024, 'c');
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
    for (int i = 0; i < 3; ++i) {
        chunked.send(size_line + chunk + "\r\n");
    }
    EXPECT_THAT(chunked.read_until_closed(), StartsWith("HTTP/1.1 503"));
    // A small body (an approval, a revert) never waits for the budget.
    RawConnection small(server->port());
    small.send("POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    EXPECT_THAT(small.read_response(), StartsWith("HTTP/1.1 200"));
    first.send(std::string(100 * 1024 - 4, 'a'));
    EXPECT_THAT(first.read_response(), StartsWith("HTTP/1.1 200"));
    wait_until([](const HttpServerStatistics& now) { return now.body_bytes_reserved == 0; });
    RawConnection third(server->port());
    third.send("POST /third HTTP/1.1\r\nHost: x\r\nContent-Length: " + large + "\r\n\r\n" +
               std::string(100 * 1024, 'c'));
    EXPECT_THAT(third.read_response(), StartsWith("HTTP/1.1 200"));
    wait_until([](const HttpServerStatistics& now) { return now.body_bytes_reserved == 0; });
    EXPECT_EQ(server->statistics().refused_over_budget, 2u);
    EXPECT_EQ(targets_seen(), (std::vector<std::string>{"/small", "/first", "/third"}));
    // Larger than the per-request limit: 413 before any byte of it is read.
    RawConnection huge(server->port());
    huge.send("POST /huge HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n");
    EXPECT_THAT(huge.read_until_closed(), StartsWith("HTTP/1.1 413"));
}

// Beast puts trailer fields beside the headers: an Authorization after the body would
// pass for a header no proxy in front ever saw.
TEST_F(HttpServerTest, TrailerFieldsAreRefused) {
    start();
    RawConnection client(server->port());
    client.send(
        "POST /trailer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2\r\n{}\r\n0\r\nAuthorization: Bearer smuggled\r\n\r\n");
    const std::string answer = client.read_until_closed();
    EXPECT_THAT(answer, StartsWith("HTTP/1.1 400"));
    EXPECT_THAT(answer, HasSubstr("trailer fields are not accepted"));
    EXPECT_TRUE(targets_seen().empty());
}

// A chunk extension or a trailer line that never ends was buffered without bound.
TEST_F(HttpServerTest, EndlessChunkLinesAreCutOffAtTheUnparsedLimit) {
    start();
    for (const std::string& prefix : {std::string("1;name="), std::string("0\r\nX-Trailer: ")}) {
        RawConnection client(server->port());
        client.send("POST /endless HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                    prefix);
        const std::string filler(16 * 1024, 'a');
        for (int i = 0; i < 8; ++i) {
            client.send_if_open(filler);
        }
        const std::string answer = client.read_until_closed();
        EXPECT_THAT(answer, StartsWith("HTTP/1.1 400")) << prefix;
        EXPECT_THAT(answer, HasSubstr("longer than 65536 bytes")) << prefix;
    }
    EXPECT_TRUE(targets_seen().empty());
    EXPECT_EQ(health_status(), 200);
}

TEST_F(HttpServerTest, AHeadAnswerHasNoBodyAndTheNextAnswerIsIntact) {
    start();
    RawConnection client(server->port());
    client.send("HEAD /head HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::string head = client.read_response();
    EXPECT_THAT(head, StartsWith("HTTP/1.1 200"));
    EXPECT_THAT(head, HasSubstr("Content-Length: 0"));
    EXPECT_THAT(client.read_response(), ::testing::EndsWith("ok /after"));
}

// Out of descriptors, accept() fails; before, the server stopped accepting for good.
// Now it closes the connection it cannot take (the client sees it closed, not a hang),
// backs off, and serves again once descriptors are free.
TEST_F(HttpServerTest, RunningOutOfDescriptorsIsSurvived) {
    start();
    ASSERT_EQ(health_status(), 200);
    // Its connection closed on the server's side too, so no descriptor frees up later.
    wait_until([](const HttpServerStatistics& now) { return now.connections_open == 0; });
    rlimit original{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &original), 0);
    std::vector<int> fillers;
    rlimit lowered = original;
    lowered.rlim_cur = 256;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
    for (int descriptor = ::open("/dev/null", O_RDONLY | O_CLOEXEC); descriptor >= 0;
         descriptor = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) {
        fillers.push_back(descriptor);
    }
    ASSERT_EQ(errno, EMFILE);
    ::close(fillers.back());  // room for exactly the client's own socket
    fillers.pop_back();
    {
        RawConnection client(server->port());
        ASSERT_TRUE(client.connected());
        client.send("GET /starved HTTP/1.1\r\nHost: x\r\n\r\n");
        EXPECT_EQ(client.read_until_closed(), "");
        EXPECT_TRUE(client.closed_by_server());
    }
    EXPECT_GE(server->statistics().accept_failures, 1u);
    for (int descriptor : fillers) {
        ::close(descriptor);
    }
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &original), 0);
    EXPECT_EQ(health_status(), 200);
    EXPECT_EQ(targets_seen(), (std::vector<std::string>{"/healthz", "/healthz"}));
}

TEST_F(HttpServerTest, TheConnectionLimitLeavesDescriptorsForEverythingElse) {
    rlimit original{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &original), 0);
    rlimit lowered = original;
    lowered.rlim_cur = 1024;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
    start();
    EXPECT_EQ(server->max_connections(), 768u);  // a quarter stays free
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &original), 0);
    EXPECT_EQ(raise_descriptor_limit(), original.rlim_max == RLIM_INFINITY
                                            ? SIZE_MAX
                                            : static_cast<std::size_t>(original.rlim_max));
}

}  // namespace
}  // namespace mitigate
