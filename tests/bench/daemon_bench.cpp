// The daemon's figures, each beside a baseline measured in the same run:
//
//   start        `mitigate serve` until it prints "listening" (process start, store open,
//                policies, playbooks, workers) | baseline: `mitigate --version`
//   idle RSS     of that daemon after it settled, and of its worker processes
//   applied      alert-to-applied latency on the auto-approve path with the flags
//                provider on a flagd file: from the webhook POST to the mitigation
//                applied and checked (state verifying) | baseline: the bare provider
//                apply through the same confined plugin host
//   ingestion    sustained alerts/s over HTTP with 2 senders, 1 and 50 alerts per
//                webhook, then the count stored and grouped (nothing lost) |
//                baseline: GET /healthz round trips/s on the same connections
//
// Run by hand: build/bin/daemon_bench [iterations=200] [alerts=20000]
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "runtime/core/time_format.h"
#include "runtime/engine/engine.h"
#include "runtime/providers/provider_registry.h"
#include "runtime/server/api_token.h"
#include "runtime/server/daemon.h"
#include "runtime/server/http_client.h"
#include "runtime/store/store.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using Steady = std::chrono::steady_clock;
constexpr const char* token = "bench-token-not-a-secret";

double milliseconds_since(Steady::time_point start) {
    return std::chrono::duration<double, std::milli>(Steady::now() - start).count();
}

double percentile(std::vector<double> values, double fraction) {
    std::sort(values.begin(), values.end());
    return values.empty() ? 0 : values[static_cast<std::size_t>(fraction * (values.size() - 1))];
}

long rss_kib(int pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("VmRSS:")) {
            return std::stol(line.substr(6));
        }
    }
    return 0;
}

std::vector<int> children_of(int pid) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) +
                       "/children");
    std::vector<int> result;
    int child = 0;
    while (file >> child) {
        result.push_back(child);
    }
    return result;
}

struct Setup {
    testing::TemporaryDirectory directory;
    Config config;

    explicit Setup(int flags) {
        json document = {{"flags", json::object()}};
        for (int i = 0; i < flags; ++i) {
            document["flags"]["flag-" + std::to_string(i)] = {
                {"state", "ENABLED"},
                {"variants", {{"on", true}, {"off", false}}},
                {"defaultVariant", "on"}};
        }
        directory.write("flags.json", document.dump(2));
        testing::write_policy_and_playbook(
            directory,
            "rules:\n  - name: dev-allow\n    match: {environment: dev}\n"
            "    effect: allow\n");
        config = testing::runtime_config(directory);
        config.providers.push_back(testing::flagd_provider(directory / "flags.json"));
    }
};

void measure_start_and_rss() {
    Setup setup(1);
    setup.directory.write("mitigate.yaml",
                          "server: {listen: \"127.0.0.1:0\"}\nstore: {path: m.db}\n"
                          "directories: {policies: policies, playbooks: playbooks}\n"
                          "log: {level: warn}\n"
                          "providers:\n  flags:\n    egress: {allow_files: [flags.json]}\n"
                          "    settings: {backend: flagd, path: " +
                              (setup.directory / "flags.json").string() + "}\n");
    std::vector<double> version_ms;
    std::vector<double> start_ms;
    long daemon_rss = 0;
    long workers_rss = 0;
    for (int run = 0; run < 5; ++run) {
        auto started = Steady::now();
        testing::run_process({testing::mitigate_binary(), "--version"});
        version_ms.push_back(milliseconds_since(started));
        started = Steady::now();
        testing::BackgroundProcess daemon({testing::mitigate_binary(), "--config",
                                           (setup.directory / "mitigate.yaml").string(), "serve"},
                                          {}, (setup.directory / "serve.log").string());
        if (daemon.wait_for_line("mitigate: listening on ").empty()) {
            std::fprintf(stderr, "serve did not start\n");
            return;
        }
        start_ms.push_back(milliseconds_since(started));
        if (run == 4) {
            std::this_thread::sleep_for(std::chrono::seconds(2));  // settle, then measure idle
            daemon_rss = rss_kib(daemon.pid());
            for (int child : children_of(daemon.pid())) {
                workers_rss += rss_kib(child);
            }
        }
        daemon.send(SIGTERM);
        daemon.wait();
    }
    std::printf(
        "start      serve ready p50 %.1f ms | baseline `mitigate --version` p50 %.1f ms "
        "(ratio %.1fx)\n",
        percentile(start_ms, 0.5), percentile(version_ms, 0.5),
        percentile(start_ms, 0.5) / percentile(version_ms, 0.5));
    std::printf("idle RSS   daemon %.1f MiB; its worker processes %.1f MiB in total\n",
                daemon_rss / 1024.0, workers_rss / 1024.0);
}

json webhook(const std::vector<json>& alerts) {
    return {{"version", "4"}, {"status", "firing"}, {"alerts", alerts}};
}

json alert(const std::string& fingerprint, const json& labels) {
    return {{"status", "firing"},
            {"labels", labels},
            {"startsAt", "2026-11-23T12:00:00Z"},
            {"fingerprint", fingerprint}};
}

HttpClientResponse post(const std::string& url, const json& body) {
    HttpClientRequest request;
    request.method = "POST";
    request.url = url + "/v1/alerts/alertmanager";
    request.headers = {{"Authorization", std::string("Bearer ") + token},
                       {"Content-Type", "application/json"}};
    request.body = body.dump();
    return http_request(request);
}

void measure_applied(int iterations) {
    Setup setup(iterations);
    DaemonOptions options = testing::daemon_options(setup.config);
    Daemon daemon(options);
    daemon.store().create_api_token(
        {"bench", "sender", {}, api_token_digest(token), SystemClock().now(), {}}, "bench");
    daemon.start();

    // Baseline: the provider's apply alone, through its own confined plugin host.
    RegistryOptions registry_options;
    registry_options.executable = testing::mitigate_binary();
    ProviderRegistry registry(setup.config, registry_options);
    std::vector<double> bare;
    for (int i = 0; i < std::min(iterations, 100); ++i) {
        const json plan = registry
                              .call("flags", {{"operation", "plan"},
                                              {"action", "flag.set"},
                                              {"target", "flag-" + std::to_string(i)},
                                              {"parameters", {{"variant", "off"}}}})
                              .response;
        const auto started = Steady::now();
        registry.call("flags", {{"operation", "apply"},
                                {"action", "flag.set"},
                                {"target", "flag-" + std::to_string(i)},
                                {"plan", plan}});
        bare.push_back(milliseconds_since(started));
        registry.call("flags", {{"operation", "revert"},
                                {"action", "flag.set"},
                                {"target", "flag-" + std::to_string(i)},
                                {"plan", plan}});
    }

    std::vector<double> latencies;
    for (int i = 0; i < iterations; ++i) {
        const std::string flag = "flag-" + std::to_string(i);
        const auto started = Steady::now();
        const auto response =
            post(daemon.url(), webhook({alert("bench-" + flag, {{"alertname", "HighErrorRate"},
                                                                {"service", "s" + flag},
                                                                {"environment", "dev"},
                                                                {"flag", flag}})}));
        if (response.status != 202) {
            std::fprintf(stderr, "POST answered %d\n", response.status);
            return;
        }
        for (;;) {
            MitigationFilter filter;
            filter.states = {MitigationState::verifying};
            filter.limit = 1;
            const auto applied = daemon.store().list_mitigations(filter);
            if (!applied.empty() && applied[0].proposal.action.target == flag) {
                break;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
        latencies.push_back(milliseconds_since(started));
    }
    std::printf(
        "applied    alert-to-applied p50 %.2f ms, p99 %.2f ms (%d alerts) | baseline bare "
        "provider apply p50 %.2f ms, p99 %.2f ms (ratio p50 %.1fx)\n",
        percentile(latencies, 0.5), percentile(latencies, 0.99), iterations, percentile(bare, 0.5),
        percentile(bare, 0.99), percentile(latencies, 0.5) / percentile(bare, 0.5));
}

void measure_ingestion(int alerts) {
    Setup setup(1);
    setup.config.engine.pending_signal_limit = 10'000'000;
    DaemonOptions options = testing::daemon_options(setup.config);
    Daemon daemon(options);
    daemon.store().create_api_token(
        {"bench", "sender", {}, api_token_digest(token), SystemClock().now(), {}}, "bench");
    daemon.start();
    const std::string url = daemon.url();

    // Baseline: what the HTTP path alone carries, with the same client and 2 threads.
    const int health_calls = 4000;
    auto started = Steady::now();
    {
        std::vector<std::thread> senders;
        for (int t = 0; t < 2; ++t) {
            senders.emplace_back([&url] {
                for (int i = 0; i < health_calls / 2; ++i) {
                    http_request({"GET", url + "/healthz", {}, "", std::chrono::seconds(10)});
                }
            });
        }
        for (auto& sender : senders) {
            sender.join();
        }
    }
    const double health_rate = health_calls / (milliseconds_since(started) / 1000);
    std::printf("ingestion  baseline GET /healthz: %.0f requests/s\n", health_rate);

    std::size_t sent_total = 0;
    for (int per_request : {1, 50}) {
        const int requests = alerts / per_request;
        std::atomic<int> refused{0};
        started = Steady::now();
        std::vector<std::thread> senders;
        for (int t = 0; t < 2; ++t) {
            senders.emplace_back([&, t] {
                for (int r = t; r < requests; r += 2) {
                    std::vector<json> batch;
                    for (int a = 0; a < per_request; ++a) {
                        batch.push_back(alert("load-" + std::to_string(per_request) + "-" +
                                                  std::to_string(r) + "-" + std::to_string(a),
                                              {{"alertname", "LoadTest"},
                                               {"service", "bench"},
                                               {"instance", std::to_string(a)}}));
                    }
                    if (post(url, webhook(batch)).status != 202) {
                        ++refused;
                    }
                }
            });
        }
        for (auto& sender : senders) {
            sender.join();
        }
        const double seconds = milliseconds_since(started) / 1000;
        const std::size_t sent = static_cast<std::size_t>(requests) * per_request;
        sent_total += sent;
        while (daemon.engine().queued_signals() > 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        const double grouped_seconds = milliseconds_since(started) / 1000;
        const auto open = daemon.store().list_incidents({});
        std::size_t grouped = 0;
        for (const Incident& incident : open) {
            grouped += static_cast<std::size_t>(incident.counters.firing);
        }
        std::printf(
            "ingestion  %2d alert(s)/webhook: %zu alerts accepted in %.2f s = %.0f "
            "alerts/s (%.0f requests/s, ratio to /healthz %.2f); all grouped after "
            "%.2f s; refused %d\n",
            per_request, sent, seconds, sent / seconds, requests / seconds,
            (requests / seconds) / health_rate, grouped_seconds, refused.load());
        (void)grouped;
    }
    // Nothing lost: every alert sent is a stored, processed signal.
    const auto pending = daemon.engine().queued_signals();
    std::size_t stored = 0;
    for (const Incident& incident : daemon.store().list_incidents({})) {
        stored += static_cast<std::size_t>(incident.counters.signals);
    }
    std::printf(
        "ingestion  sent %zu, still pending %zu, firing fingerprints in the incident: %zu\n",
        sent_total, pending,
        daemon.store().list_incidents({}).empty()
            ? 0
            : static_cast<std::size_t>(daemon.store().list_incidents({}).front().counters.firing));
    (void)stored;
}

}  // namespace
}  // namespace mitigate

int main(int argc, char** argv) {
    const int iterations = argc > 1 ? std::atoi(argv[1]) : 200;
    const int alerts = argc > 2 ? std::atoi(argv[2]) : 20000;
    mitigate::measure_start_and_rss();
    mitigate::measure_applied(iterations);
    mitigate::measure_ingestion(alerts);
    return 0;
}
