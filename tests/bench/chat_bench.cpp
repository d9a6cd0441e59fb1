// How fast the daemon answers Slack, which wants an answer within 3 s whatever the engine
// is doing. Each figure beside a baseline from the same run, on the same daemon:
//
//   command    `/mitigate help` over HTTP: signature check, replay check, form parse,
//              answer | baseline: GET /healthz
//   queued     `/mitigate approve ID` by a mapped approver: the same, plus a store read
//              for nothing (the mitigation does not exist) once dequeued; the figure is
//              the time to Slack's acknowledgement, not to the result
//
// Run by hand: build/bin/chat_bench [requests=500]
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "plugins/emulators/slack_emulator.h"
#include "runtime/server/daemon.h"
#include "runtime/server/http_client.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using Steady = std::chrono::steady_clock;

double percentile(std::vector<double> values, double fraction) {
    std::sort(values.begin(), values.end());
    return values.empty() ? 0 : values[static_cast<std::size_t>(fraction * (values.size() - 1))];
}

template <typename Call>
std::vector<double> timed(int requests, Call call) {
    std::vector<double> milliseconds;
    for (int i = 0; i < requests; ++i) {
        const auto started = Steady::now();
        if (call() != 200) {
            std::fprintf(stderr, "a request failed\n");
        }
        milliseconds.push_back(
            std::chrono::duration<double, std::milli>(Steady::now() - started).count());
    }
    return milliseconds;
}

void report(const char* name, const std::vector<double>& measured,
            const std::vector<double>& baseline) {
    std::printf(
        "%-9s p50 %.3f ms p99 %.3f ms | baseline GET /healthz p50 %.3f ms p99 %.3f ms "
        "(ratio p50 %.1fx)\n",
        name, percentile(measured, 0.5), percentile(measured, 0.99), percentile(baseline, 0.5),
        percentile(baseline, 0.99), percentile(measured, 0.5) / percentile(baseline, 0.5));
}

void measure(int requests) {
    testing::TemporaryDirectory directory;
    testing::write_policy_and_playbook(directory, testing::environment_policy);
    const std::string bot_token = "xoxb-bench-not-a-real-token";
    const std::string signing_secret = "bench-signing-secret-not-real";
    SlackEmulator slack(bot_token, signing_secret);
    Config config = testing::runtime_config(directory);
    config.log.level = LogLevel::warn;
    config.chat.slack =
        testing::emulated_slack(directory, slack.api_url(), bot_token, signing_secret,
                                {{"U_BENCH", "bench", {"sre"}, "approver"}});
    DaemonOptions options = testing::daemon_options(config);
    Daemon daemon(options);
    daemon.start();
    slack.point_app_at(daemon.url() + "/v1/chat/slack/interactions",
                       daemon.url() + "/v1/chat/slack/commands");

    HttpClientRequest health;
    health.url = daemon.url() + "/healthz";
    const auto healthz = [&] { return http_request(health).status; };
    timed(50, healthz);  // warm up
    const auto baseline = timed(requests, healthz);
    const auto help = timed(
        requests, [&] { return slack.deliver(slack.slash_command("U_BENCH", "help")).status; });
    const auto queued = timed(requests, [&] {
        return slack.deliver(slack.slash_command("U_BENCH", "approve mit_none")).status;
    });
    report("command", help, baseline);
    report("queued", queued, baseline);
    slack.wait_until([&](const SlackEmulator& emulator) {
        return emulator.responses().size() >= static_cast<std::size_t>(requests);
    });
    std::printf("answered  %zu of %d queued requests on their response_url\n",
                slack.responses().size(), requests);
}

}  // namespace
}  // namespace mitigate

int main(int argc, char** argv) {
    mitigate::measure(argc > 1 ? std::atoi(argv[1]) : 500);
    return 0;
}
