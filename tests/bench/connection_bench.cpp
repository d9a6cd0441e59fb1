// Connections: /healthz latency of `mitigate serve` while a crowd holds connections open,
// against the same probes with no crowd, in the same run:
//
//   crowd     IDLE connections that connect and send nothing, and SLOW ones that send a
//             request line and then one header byte every 500 ms (reconnecting when the
//             daemon closes them at server.header_timeout, 2 s here)
//   probe     a new connection per GET /healthz (curl), as a load balancer's check does
//
// Twice: with server.max_connections above the crowd (the daemon holds it all), and with
// the default 1,024 (the daemon closes the longest-idle connections to make room).
// Prints p50/p99 of each and the daemon's own connection figures from /metrics.
//
// Run by hand: build/bin/connection_bench [idle=5000] [slow=300] [probes=300]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/core/clock.h"
#include "runtime/server/api_token.h"
#include "runtime/server/http_client.h"
#include "runtime/server/http_server.h"
#include "runtime/store/sqlite_store.h"
#include "tests/support/child_process.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using Steady = std::chrono::steady_clock;
constexpr const char* viewer_token = "bench-viewer-token-not-a-secret";

double percentile(std::vector<double> values, double fraction) {
    std::sort(values.begin(), values.end());
    return values.empty() ? 0 : values[static_cast<std::size_t>(fraction * (values.size() - 1))];
}

int connect_to(std::uint16_t port) {
    const int descriptor = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (descriptor < 0) {
        return -1;
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(descriptor, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(descriptor);
        return -1;
    }
    return descriptor;
}

std::uint16_t port_of(const std::string& url) {
    return static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
}

struct Probes {
    double p50 = 0;
    double p99 = 0;
    int failed = 0;
};

Probes probe(const std::string& url, int count) {
    std::vector<double> milliseconds;
    Probes result;
    for (int i = 0; i < count; ++i) {
        HttpClientRequest request;
        request.url = url + "/healthz";
        request.timeout = std::chrono::seconds(10);
        const auto started = Steady::now();
        const auto response = http_request(request);
        milliseconds.push_back(
            std::chrono::duration<double, std::milli>(Steady::now() - started).count());
        result.failed += response.status == 200 ? 0 : 1;
    }
    result.p50 = percentile(milliseconds, 0.5);
    result.p99 = percentile(milliseconds, 0.99);
    return result;
}

// The value of one sample line of the daemon's /metrics, or -1.
double scrape(const std::string& url, const std::string& series) {
    HttpClientRequest request;
    request.url = url + "/metrics";
    request.headers["Authorization"] = std::string("Bearer ") + viewer_token;
    const std::string text = http_request(request).body;
    const auto at = text.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

// Slow clients: each sends a request line, then a header byte every 500 ms; when the
// daemon closes one (its header deadline), it connects again.
class SlowCrowd {
  public:
    SlowCrowd(std::uint16_t port, int count) : port_(port) {
        for (int i = 0; i < count; ++i) {
            descriptors_.push_back(open_one());
        }
        thread_ = std::thread([this] {
            while (!stop_) {
                for (int& descriptor : descriptors_) {
                    if (descriptor < 0 || ::send(descriptor, "x", 1, MSG_NOSIGNAL) != 1) {
                        if (descriptor >= 0) {
                            ::close(descriptor);
                        }
                        descriptor = open_one();
                        ++reconnects_;
                    }
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
            }
        });
    }
    ~SlowCrowd() {
        stop_ = true;
        thread_.join();
        for (int descriptor : descriptors_) {
            if (descriptor >= 0) {
                ::close(descriptor);
            }
        }
    }
    SlowCrowd(const SlowCrowd&) = delete;
    SlowCrowd& operator=(const SlowCrowd&) = delete;
    int reconnects() const { return reconnects_; }

  private:
    int open_one() const {
        const int descriptor = connect_to(port_);
        if (descriptor >= 0) {
            const char line[] = "GET /healthz HTTP/1.1\r\nX-Slow: ";
            ::send(descriptor, line, sizeof line - 1, MSG_NOSIGNAL);
        }
        return descriptor;
    }

    std::uint16_t port_;
    std::vector<int> descriptors_;
    std::atomic<bool> stop_{false};
    std::atomic<int> reconnects_{0};
    std::thread thread_;
};

void run(const std::string& label, int max_connections, int idle, int slow, int probes) {
    testing::TemporaryDirectory directory;
    std::filesystem::create_directories(directory / "policies");
    std::filesystem::create_directories(directory / "playbooks");
    const std::string config =
        directory
            .write("mitigate.yaml",
                   "server: {listen: \"127.0.0.1:0\", max_connections: " +
                       std::to_string(max_connections) +
                       ", header_timeout: 2s}\nstore: {path: " + (directory / "m.db").string() +
                       "}\ndirectories: {policies: policies, playbooks: playbooks, drills: none}\n"
                       "log: {level: warn}\n")
            .string();
    {
        auto store = open_sqlite_store(directory / "m.db");
        store->create_api_token(
            {"viewer", "viewer", {}, api_token_digest(viewer_token), SystemClock().now(), {}},
            "bench");
    }
    testing::BackgroundProcess daemon({testing::mitigate_binary(), "--config", config, "serve"}, {},
                                      (directory / "serve.log").string());
    const std::string url = daemon.wait_for_line("mitigate: listening on ");
    if (url.empty()) {
        std::fprintf(stderr, "mitigate serve did not start; see %s\n",
                     (directory / "serve.log").c_str());
        return;
    }
    const Probes quiet = probe(url, probes);

    std::vector<int> idle_connections;
    for (int i = 0; i < idle; ++i) {
        const int descriptor = connect_to(port_of(url));
        if (descriptor >= 0) {
            idle_connections.push_back(descriptor);
        }
    }
    Probes crowded;
    double open = 0;
    int reconnects = 0;
    {
        SlowCrowd slow_crowd(port_of(url), slow);
        // Long enough for the daemon to cut the slow ones at their 2 s header deadline
        // while the probes run.
        std::this_thread::sleep_for(std::chrono::milliseconds(2500));
        crowded = probe(url, probes);
        open = scrape(url, "mitigate_http_connections_open");
        reconnects = slow_crowd.reconnects();
    }
    const double closed_for_room =
        scrape(url, R"(mitigate_http_connections_closed_total{reason="idle_for_room"})");
    const double refused =
        scrape(url, R"(mitigate_http_connections_refused_total{reason="limit"})");
    for (int descriptor : idle_connections) {
        ::close(descriptor);
    }
    const Probes after = probe(url, probes);

    std::printf("%s (server.max_connections: %d)\n", label.c_str(), max_connections);
    std::printf(
        "  crowd: %zu idle + %d slow connected; daemon held %.0f; closed %.0f idle "
        "for room; refused %.0f at the limit; slow reconnects %d\n",
        idle_connections.size(), slow, open, std::max(0.0, closed_for_room), std::max(0.0, refused),
        reconnects);
    std::printf(
        "  /healthz p50 / p99 ms: no crowd %.2f / %.2f | crowd %.2f / %.2f "
        "(x%.2f / x%.2f) | after %.2f / %.2f; failed %d / %d / %d of %d each\n",
        quiet.p50, quiet.p99, crowded.p50, crowded.p99, crowded.p50 / quiet.p50,
        crowded.p99 / quiet.p99, after.p50, after.p99, quiet.failed, crowded.failed, after.failed,
        probes);
}

}  // namespace
}  // namespace mitigate

int main(int argc, char** argv) {
    const int idle = argc > 1 ? std::atoi(argv[1]) : 5000;
    const int slow = argc > 2 ? std::atoi(argv[2]) : 300;
    const int probes = argc > 3 ? std::atoi(argv[3]) : 300;
    mitigate::raise_descriptor_limit();  // the crowd's sockets are this process's
    mitigate::run("room for the crowd", idle + slow + 1000, idle, slow, probes);
    mitigate::run("default limit", 1024, idle, slow, probes);
    return 0;
}
