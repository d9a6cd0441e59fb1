// Alert ingestion: `mitigate serve` against Prometheus Alertmanager run beside it, both
// driven by the same load generator (wrk, 2 threads, 16 connections) for the same time,
// with 1 and with 100 alerts per request, every alert new (distinct labels and
// fingerprint). Alertmanager is the baseline: it keeps alerts in memory; mitigate answers
// 2xx only once the alerts are committed to its store (synchronous=FULL), so nothing it
// acknowledged can be lost.
//
// Reported per run: alerts/s from wrk's 2xx responses, request latency p50/p99, CPU per
// alert of the server process (utime + stime, /proc), /healthz (Alertmanager: /-/healthy)
// latency p50/p99 from a probe every 5 ms during the load; for mitigate, the alerts its
// API acknowledged (202s it sent, from its own metrics) against the signals found in the
// store afterwards, which must be equal.
//
// Run by hand: build/bin/ingest_bench [seconds=10] [connections=16]
// Needs wrk and prometheus-alertmanager (tools/setup-debian installs both).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "runtime/server/api_token.h"
#include "runtime/server/http_client.h"
#include "runtime/store/sqlite_store.h"
#include "tests/support/child_process.h"
#include "tests/support/store_fixtures.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using Steady = std::chrono::steady_clock;
constexpr const char* sender_token = "bench-sender-token-not-a-secret";
constexpr const char* viewer_token = "bench-viewer-token-not-a-secret";

// The request each wrk connection sends, built in wrk's Lua: every alert is new.
constexpr std::string_view wrk_script = R"lua(
local per_request = tonumber(os.getenv("BENCH_ALERTS_PER_REQUEST"))
local target = os.getenv("BENCH_TARGET")
local token = os.getenv("BENCH_TOKEN")
local run = os.getenv("BENCH_RUN")
local threads = 0
function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end
local counter = 0
function request()
  counter = counter + 1
  local alerts = {}
  for i = 1, per_request do
    local name = string.format("%s-%d-%d-%d", run, thread_id, counter, i)
    if target == "mitigate" then
      alerts[i] = string.format(
        '{"status":"firing","labels":{"alertname":"LoadTest","service":"bench","instance":"%s"},' ..
        '"annotations":{},"startsAt":"2026-11-28T00:00:00Z","endsAt":"0001-01-01T00:00:00Z",' ..
        '"fingerprint":"%s"}', name, name)
    else
      alerts[i] = string.format(
        '{"labels":{"alertname":"LoadTest","service":"bench","instance":"%s"},' ..
        '"startsAt":"2026-11-28T00:00:00Z"}', name)
    end
  end
  if target == "mitigate" then
    return wrk.format("POST", "/v1/alerts/alertmanager",
      {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token},
      '{"version":"4","status":"firing","receiver":"mitigate","groupKey":"{}","alerts":[' ..
      table.concat(alerts, ",") .. ']}')
  end
  return wrk.format("POST", "/api/v2/alerts", {["Content-Type"] = "application/json"},
    "[" .. table.concat(alerts, ",") .. "]")
end
function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d non2xx=%d errors=%d duration_us=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99)))
end
)lua";

double percentile(std::vector<double> values, double fraction) {
    if (values.empty()) {
        return 0;
    }
    std::sort(values.begin(), values.end());
    return values[static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1))];
}

// CPU time used so far by a process, in milliseconds (utime + stime).
double cpu_milliseconds(int pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto after_name = text.rfind(')');
    if (after_name == std::string::npos) {
        return 0;
    }
    std::istringstream fields(text.substr(after_name + 2));
    std::string field;
    double utime = 0;
    double stime = 0;
    for (int index = 3; fields >> field; ++index) {
        if (index == 14) {
            utime = std::stod(field);
        } else if (index == 15) {
            stime = std::stod(field);
            break;
        }
    }
    return (utime + stime) * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct RunResult {
    std::string target;
    int per_request = 0;
    double seconds = 0;
    long requests = 0;
    long refused = 0;  // non-2xx
    long errors = 0;   // connection errors and timeouts
    double latency_p50_ms = 0;
    double latency_p99_ms = 0;
    double cpu_ms = 0;
    double health_p50_ms = 0;
    double health_p99_ms = 0;
    std::size_t health_probes = 0;
    long acknowledged_alerts() const { return (requests - refused) * per_request; }
    double alerts_per_second() const {
        return static_cast<double>(acknowledged_alerts()) / seconds;
    }
    double cpu_ms_per_alert() const {
        return acknowledged_alerts() > 0 ? cpu_ms / static_cast<double>(acknowledged_alerts()) : 0;
    }
};

RunResult run_load(const std::string& wrk_binary, const std::string& target, const std::string& url,
                   const std::string& health_url, int pid, int per_request, int seconds,
                   int connections, const std::string& script, const std::string& run_name) {
    RunResult result;
    result.target = target;
    result.per_request = per_request;
    std::atomic<bool> probing{true};
    std::vector<double> health;
    std::thread prober([&] {
        while (probing) {
            const auto started = Steady::now();
            const auto answer = http_request({"GET", health_url, {}, "", std::chrono::seconds(5)});
            if (answer.status == 200) {
                health.push_back(
                    std::chrono::duration<double, std::milli>(Steady::now() - started).count());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    const double cpu_before = cpu_milliseconds(pid);
    const auto wrk = testing::run_process(
        {wrk_binary, "-t2", "-c" + std::to_string(connections),
         "-d" + std::to_string(seconds) + "s", "--timeout", "10s", "-s", script, url},
        {{"BENCH_ALERTS_PER_REQUEST", std::to_string(per_request)},
         {"BENCH_TARGET", target},
         {"BENCH_TOKEN", sender_token},
         {"BENCH_RUN", run_name}});
    result.cpu_ms = cpu_milliseconds(pid) - cpu_before;
    probing = false;
    prober.join();
    std::smatch match;
    const std::regex line(
        R"(RESULT requests=(\d+) non2xx=(\d+) errors=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+))");
    if (!std::regex_search(wrk.out, match, line)) {
        std::fprintf(stderr, "wrk did not report (exit %d): %s %s\n", wrk.exit_code,
                     wrk.out.c_str(), wrk.err.c_str());
        return result;
    }
    result.requests = std::stol(match[1]);
    result.refused = std::stol(match[2]);
    result.errors = std::stol(match[3]);
    result.seconds = std::stod(match[4]) / 1e6;
    result.latency_p50_ms = std::stod(match[5]) / 1000;
    result.latency_p99_ms = std::stod(match[6]) / 1000;
    result.health_p50_ms = percentile(health, 0.5);
    result.health_p99_ms = percentile(health, 0.99);
    result.health_probes = health.size();
    return result;
}

// mitigate's own count of alerts it acknowledged: 202 responses on the webhook route,
// read once it stopped moving (requests wrk left in flight are still answered).
long scrape_acknowledged(const std::string& url);

long acknowledged_requests(const std::string& url) {
    long last = scrape_acknowledged(url);
    for (int attempt = 0; attempt < 100; ++attempt) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        const long now = scrape_acknowledged(url);
        if (now == last) {
            return now;
        }
        last = now;
    }
    return last;
}

// One sample of mitigate's /metrics, by its exact series text; -1 when absent.
long scrape(const std::string& url, const std::string& series) {
    const auto metrics = http_request({"GET",
                                       url + "/metrics",
                                       {{"Authorization", std::string("Bearer ") + viewer_token}},
                                       "",
                                       std::chrono::seconds(10)});
    const auto at = metrics.body.find("\n" + series + " ");
    if (at == std::string::npos) {
        return -1;
    }
    return std::stol(metrics.body.substr(at + series.size() + 2));
}

long scrape_acknowledged(const std::string& url) {
    return std::max(
        0L,
        scrape(url, R"(mitigate_http_requests_total{code="202",route="/v1/alerts/alertmanager"})"));
}

void print(const RunResult& run) {
    std::printf(
        "%-9s %3d/req  %9.0f alerts/s  %6.0f req/s  latency p50 %6.2f ms p99 %7.2f ms  "
        "CPU %.4f ms/alert  health p50 %5.2f ms p99 %6.2f ms (%zu probes)  refused %ld, "
        "errors %ld\n",
        run.target.c_str(), run.per_request, run.alerts_per_second(),
        static_cast<double>(run.requests) / run.seconds, run.latency_p50_ms, run.latency_p99_ms,
        run.cpu_ms_per_alert(), run.health_p50_ms, run.health_p99_ms, run.health_probes,
        run.refused, run.errors);
}

// A program on PATH, as its full path (the processes here are started without a shell).
std::string on_path(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::istringstream directories(path != nullptr ? path : "/usr/bin:/bin");
    std::string directory;
    while (std::getline(directories, directory, ':')) {
        const std::filesystem::path candidate = std::filesystem::path(directory) / program;
        if (access(candidate.c_str(), X_OK) == 0) {
            return candidate.string();
        }
    }
    return "";
}

int bench(int seconds, int connections) {
    const std::string wrk = on_path("wrk");
    const std::string alertmanager_binary = on_path("prometheus-alertmanager");
    if (wrk.empty() || alertmanager_binary.empty()) {
        std::fprintf(stderr,
                     "ingest_bench needs wrk and prometheus-alertmanager on PATH "
                     "(tools/setup-debian installs both)\n");
        return 1;
    }
    testing::TemporaryDirectory directory;
    const std::string script = directory.write("load.lua", wrk_script).string();

    // mitigate: an empty policy set and no playbook, so this is ingestion alone.
    std::filesystem::create_directories(directory / "policies");
    std::filesystem::create_directories(directory / "playbooks");
    const std::string config =
        directory
            .write("mitigate.yaml",
                   "server: {listen: \"127.0.0.1:0\"}\nstore: {path: " +
                       (directory / "m.db").string() +
                       "}\ndirectories: {policies: policies, playbooks: playbooks, drills: none}\n"
                       "log: {level: warn}\n")
            .string();
    {
        auto store = open_sqlite_store(directory / "m.db");
        store->create_api_token(
            {"bench", "sender", {}, api_token_digest(sender_token), SystemClock().now(), {}},
            "bench");
        store->create_api_token(
            {"viewer", "viewer", {}, api_token_digest(viewer_token), SystemClock().now(), {}},
            "bench");
    }
    testing::BackgroundProcess mitigate({testing::mitigate_binary(), "--config", config, "serve"},
                                        {}, (directory / "serve.log").string());
    const std::string mitigate_url = mitigate.wait_for_line("mitigate: listening on ");
    if (mitigate_url.empty()) {
        std::fprintf(stderr, "mitigate serve did not start; see %s\n",
                     (directory / "serve.log").c_str());
        return 1;
    }

    // Alertmanager 0.25 from Debian, one route to a receiver that sends nothing.
    directory.write("alertmanager.yml", "route: {receiver: none}\nreceivers: [{name: none}]\n");
    std::filesystem::create_directories(directory / "alertmanager-data");
    testing::BackgroundProcess alertmanager(
        {alertmanager_binary, "--config.file=" + (directory / "alertmanager.yml").string(),
         "--storage.path=" + (directory / "alertmanager-data").string(),
         "--web.listen-address=127.0.0.1:0", "--cluster.listen-address="},
        {}, (directory / "alertmanager.log").string());
    const std::string alertmanager_url =
        testing::wait_for_listening_url((directory / "alertmanager.log").string());
    if (alertmanager_url.empty()) {
        std::fprintf(stderr, "Alertmanager did not start; see %s\n",
                     (directory / "alertmanager.log").c_str());
        return 1;
    }

    std::printf("ingestion, %d s per run, wrk -t2 -c%d, every alert new\n", seconds, connections);
    std::vector<RunResult> runs;
    long mitigate_acknowledged = 0;
    for (const int per_request : {1, 100}) {
        const RunResult baseline =
            run_load(wrk, "alertmanager", alertmanager_url, alertmanager_url + "/-/healthy",
                     alertmanager.pid(), per_request, seconds, connections, script,
                     "am" + std::to_string(per_request));
        print(baseline);
        const long before = acknowledged_requests(mitigate_url);
        const RunResult measured =
            run_load(wrk, "mitigate", mitigate_url, mitigate_url + "/healthz", mitigate.pid(),
                     per_request, seconds, connections, script, "mt" + std::to_string(per_request));
        print(measured);
        mitigate_acknowledged += (acknowledged_requests(mitigate_url) - before) * per_request;
        std::printf(
            "  ratio   %3d/req  alerts/s %.2fx Alertmanager's; CPU per alert %.2fx; health p99 "
            "%.2f ms\n",
            per_request, measured.alerts_per_second() / baseline.alerts_per_second(),
            measured.cpu_ms_per_alert() / baseline.cpu_ms_per_alert(), measured.health_p99_ms);
        runs.push_back(baseline);
        runs.push_back(measured);
    }
    const long received =
        scrape(mitigate_url, R"(mitigate_signals_received_total{source="alertmanager"})");
    const long duplicates = scrape(mitigate_url, "mitigate_signals_duplicate_total");
    mitigate.send(SIGTERM);
    mitigate.wait();
    const long stored =
        std::stol(testing::query_text(directory / "m.db", "SELECT count(*) FROM signals"));
    long seen_by_wrk = 0;
    for (const RunResult& run : runs) {
        seen_by_wrk += run.target == "mitigate" ? run.acknowledged_alerts() : 0;
    }
    // Every alert acknowledged is either new, and stored, or a redelivery of one stored
    // before: acknowledged = new + duplicates, and stored = new.
    const bool durable =
        mitigate_acknowledged == received + std::max(0L, duplicates) && stored == received;
    std::printf(
        "durability  mitigate acknowledged %ld alerts (202s it sent; wrk saw %ld before it "
        "stopped): %ld new + %ld duplicate; stored %ld: %s\n",
        mitigate_acknowledged, seen_by_wrk, received, std::max(0L, duplicates), stored,
        durable ? "every acknowledged alert is stored" : "MISMATCH");
    return durable ? 0 : 1;
}

}  // namespace
}  // namespace mitigate

int main(int argc, char** argv) {
    const int seconds = argc > 1 ? std::atoi(argv[1]) : 10;
    const int connections = argc > 2 ? std::atoi(argv[2]) : 16;
    return mitigate::bench(seconds, connections);
}
