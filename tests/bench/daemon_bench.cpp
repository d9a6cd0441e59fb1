// The daemon's figures, each beside a baseline measured in the same run:
//
//   start        `mitigate serve` until it prints "listening" (process start, store open,
//                policies, playbooks, workers) | baseline: `mitigate --version`
//   idle RSS     of that daemon after it settled, and of its worker processes
//   applied      alert-to-applied latency on the auto-approve path with the flags
//                provider on a flagd file: from the webhook POST to the mitigation applied
//                and checked (verifying), with 1 open mitigation (the measured one) and
//                with 1,000 more open (pending approval, on a second flagd file, so that
//                the measured apply writes the same file in both runs); each measured
//                mitigation is reverted before the next alert | baseline: the bare
//                provider apply through the same confined plugin host
//   approve      approve request latency over HTTP while another provider call hangs for
//                30 s (an AWS emulator answering UpdateService 30 s late) | baseline: the
//                same approvals with nothing hanging
// Alert ingestion against Alertmanager is tests/bench/ingest_bench.cpp.
//
// Run by hand: build/bin/daemon_bench [iterations=200] [open=1000]
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "plugins/emulators/aws_emulator.h"
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
    return {
        {"version", "4"}, {"status", alerts.at(0).value("status", "firing")}, {"alerts", alerts}};
}

json alert(const std::string& status, const std::string& fingerprint, const json& labels) {
    return {{"status", status},
            {"labels", labels},
            {"startsAt", "2026-11-23T12:00:00Z"},
            {"fingerprint", fingerprint}};
}

HttpClientResponse post(const std::string& url, const std::string& path, const json& body,
                        const char* bearer = token) {
    HttpClientRequest request;
    request.method = "POST";
    request.url = url + path;
    request.headers = {{"Authorization", std::string("Bearer ") + bearer},
                       {"Content-Type", "application/json"}};
    request.body = body.dump();
    return http_request(request);
}

constexpr const char* approver_token = "bench-approver-token-not-a-secret";

// Proposes the alert's flag (label flag) on the alert's provider (label provider, default
// flags) to variant off, for 30 minutes.
constexpr std::string_view bench_playbook = R"lua(
return {
  name = "bench-flag-off",
  matches = { alerts = { "HighErrorRate" } },
  propose = function(incident)
    return { { provider = incident.labels.provider or "flags", action = "flag.set",
               target = incident.labels.flag, parameters = { variant = "off" }, ttl = "30m",
               reason = "bench" } }
  end,
}
)lua";

// dev is allowed; stage needs one approval from sre.
constexpr std::string_view bench_policy = R"yaml(
rules:
  - name: dev-allow
    match: {environment: dev}
    effect: allow
  - name: stage-one-sre
    match: {environment: stage}
    effect: require_approval
    approvals: {count: 1, groups: [sre]}
)yaml";

std::string flag_file(int flags, const std::string& prefix) {
    json document = {{"flags", json::object()}};
    for (int i = 0; i < flags; ++i) {
        document["flags"][prefix + std::to_string(i)] = {
            {"state", "ENABLED"},
            {"variants", {{"on", true}, {"off", false}}},
            {"defaultVariant", "on"}};
    }
    return document.dump(2);
}

struct World {
    testing::TemporaryDirectory directory;
    AwsEmulator aws{AwsEmulatorOptions{"us-east-1", "123456789012", "AKIDEXAMPLE",
                                       "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}};
    Config config;
    std::unique_ptr<Daemon> daemon;

    explicit World(int background_flags) {
        setenv("MITIGATE_BENCH_AWS_KEY", "AKIDEXAMPLE", 1);
        setenv("MITIGATE_BENCH_AWS_SECRET", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
        aws.add_ecs_service("default", "checkout", 4);
        const auto measured = directory.write("measured.json", flag_file(1, "measured-"));
        const auto background =
            directory.write("background.json", flag_file(std::max(1, background_flags), "bg-"));
        std::filesystem::create_directories(directory / "policies");
        std::filesystem::create_directories(directory / "playbooks");
        directory.write("policies/bench.yaml", bench_policy);
        directory.write("playbooks/bench.lua", bench_playbook);
        config = testing::runtime_config(directory);
        config.engine.approval_expiry_ms = 2LL * 60 * 60 * 1000;
        config.engine.verification_window_ms = 2LL * 60 * 60 * 1000;
        config.providers.push_back(testing::flagd_provider(measured));
        ProviderConfig other = testing::flagd_provider(background);
        other.name = "background";
        config.providers.push_back(other);
        ProviderConfig amazon = testing::emulated_aws_provider(aws.url(), "MITIGATE_BENCH_AWS_KEY",
                                                               "MITIGATE_BENCH_AWS_SECRET");
        config.providers.push_back(amazon);
        daemon = std::make_unique<Daemon>(testing::daemon_options(config));
        daemon->store().create_api_token(
            {"bench", "sender", {}, api_token_digest(token), SystemClock().now(), {}}, "bench");
        daemon->store().create_api_token({"approver",
                                          "approver",
                                          {"sre"},
                                          api_token_digest(approver_token),
                                          SystemClock().now(),
                                          {}},
                                         "bench");
        daemon->start();
    }

    // Opens `count` incidents on the background flags, each proposing a change that waits
    // for an approval: open mitigations that stay open.
    bool open_pending(int count) {
        for (int first = 0; first < count; first += 100) {
            std::vector<json> alerts;
            for (int i = first; i < std::min(count, first + 100); ++i) {
                const std::string flag = "bg-" + std::to_string(i);
                alerts.push_back(alert("firing", "bg-" + flag,
                                       {{"alertname", "HighErrorRate"},
                                        {"service", flag},
                                        {"environment", "stage"},
                                        {"provider", "background"},
                                        {"flag", flag}}));
            }
            if (post(daemon->url(), "/v1/alerts/alertmanager", webhook(alerts)).status != 202) {
                return false;
            }
        }
        for (int attempt = 0; attempt < 6000; ++attempt) {
            if (daemon->store()
                    .list_mitigations(in_states({MitigationState::pending_approval}, 100000))
                    .size() >= static_cast<std::size_t>(count)) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    }
};

// Waits (bounded) for the newest mitigation in `state`; nothing if none came.
std::optional<Mitigation> newest_in(Store& store, MitigationState state,
                                    std::chrono::milliseconds poll = std::chrono::milliseconds(1)) {
    for (int attempt = 0; attempt < 20000; ++attempt) {
        auto found = store.list_mitigations(in_states({state}, 1));
        if (!found.empty()) {
            return found.front();
        }
        std::this_thread::sleep_for(poll);
    }
    return std::nullopt;
}

void measure_applied(int iterations, int open) {
    World world(open);
    if (open > 0 && !world.open_pending(open)) {
        std::fprintf(stderr, "the %d open mitigations did not all reach pending approval\n", open);
        return;
    }
    Daemon& daemon = *world.daemon;
    std::vector<double> latencies;
    for (int i = 0; i < iterations; ++i) {
        const json labels = {{"alertname", "HighErrorRate"},
                             {"service", "measured"},
                             {"environment", "dev"},
                             {"flag", "measured-0"}};
        const std::string fingerprint = "measured-" + std::to_string(i);
        const auto started = Steady::now();
        const auto response = post(daemon.url(), "/v1/alerts/alertmanager",
                                   webhook({alert("firing", fingerprint, labels)}));
        if (response.status != 202) {
            std::fprintf(stderr, "POST answered %d\n", response.status);
            return;
        }
        std::optional<Mitigation> applied;
        for (int attempt = 0; attempt < 200000 && !applied; ++attempt) {
            auto verifying =
                daemon.store().list_mitigations(in_states({MitigationState::verifying}, 1));
            if (!verifying.empty()) {
                applied = verifying.front();
            } else {
                std::this_thread::sleep_for(std::chrono::microseconds(100));
            }
        }
        if (!applied) {
            std::fprintf(stderr, "alert %d was not applied\n", i);
            return;
        }
        latencies.push_back(milliseconds_since(started));
        // Put the flag back for the next alert: the alert resolves, a person reverts.
        post(daemon.url(), "/v1/alerts/alertmanager",
             webhook({alert("resolved", fingerprint, labels)}));
        newest_in(daemon.store(), MitigationState::active);
        const RequestResult reverting = daemon.engine().revert(applied->id, "bench", "next");
        for (int attempt = 0;
             daemon.store().find_mitigation(applied->id)->state != MitigationState::reverted;
             ++attempt) {
            if (attempt == 100000) {
                std::fprintf(
                    stderr, "alert %d: %s was not reverted (%s): %s\n", i, applied->id.c_str(),
                    std::string(to_string(daemon.store().find_mitigation(applied->id)->state))
                        .c_str(),
                    reverting.message.c_str());
                return;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }
    std::printf("applied    %4d open more: alert-to-applied p50 %.2f ms, p99 %.2f ms (%d alerts)\n",
                open, percentile(latencies, 0.5), percentile(latencies, 0.99), iterations);
}

void measure_bare_apply(int iterations) {
    testing::TemporaryDirectory directory;
    const auto file = directory.write("flags.json", flag_file(1, "measured-"));
    Config config;
    config.source = "bench";
    config.providers.push_back(testing::flagd_provider(file));
    RegistryOptions options;
    options.executable = testing::mitigate_binary();
    ProviderRegistry registry(config, options);
    std::vector<double> bare;
    const Action action{"flags", "flag.set", "measured-0", {{"variant", "off"}}, {}, "bench"};
    for (int i = 0; i < iterations; ++i) {
        const auto plan = registry.plan(action);
        const auto started = Steady::now();
        registry.apply(action, plan.value);
        bare.push_back(milliseconds_since(started));
        registry.revert(action, plan.value);
    }
    std::printf("applied    baseline bare provider apply p50 %.2f ms, p99 %.2f ms\n",
                percentile(bare, 0.5), percentile(bare, 0.99));
}

// Waits (bounded, polling every 100 us) until mitigation `id` is in one of `states`; the
// moment it saw it, or nothing.
std::optional<Steady::time_point> wait_for(Store& store, const std::string& id,
                                           std::initializer_list<MitigationState> states) {
    for (int attempt = 0; attempt < 100000; ++attempt) {
        const auto found = store.find_mitigation(id);
        if (found && std::find(states.begin(), states.end(), found->state) != states.end()) {
            return Steady::now();
        }
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    return std::nullopt;
}

// A proposal waiting for its target (held by an earlier mitigation) is applied once the
// target frees: the time from the holder's revert committed to the waiter applied. With
// `another_action`, the waiter is flag.kill_switch on the flag flag.set holds: one resource
// under two actions, which only the plan names, so the waiter plans, finds it held, and
// plans again once it frees.
void measure_handoff(int iterations, bool another_action) {
    World world(0);
    Daemon& daemon = *world.daemon;
    auto propose = [&](const std::string& variant) {
        ProposalRequest request;
        request.action = {
            "flags", "flag.set", "measured-0", {{"variant", variant}}, std::chrono::hours(1),
            "bench"};
        if (another_action && variant == "on") {
            request.action.action = "flag.kill_switch";
            request.action.parameters = nlohmann::json::object();
        }
        request.proposed_by = "bench";
        request.environment = "dev";
        const RequestResult result = daemon.engine().propose(request);
        return result.mitigation ? result.mitigation->id : std::string();
    };
    using enum MitigationState;
    std::vector<double> handoffs;
    for (int i = 0; i < iterations; ++i) {
        const std::string holder = propose("off");
        if (holder.empty() || !wait_for(daemon.store(), holder, {active})) {
            std::fprintf(stderr, "handoff %d: the holder was not applied\n", i);
            return;
        }
        const std::string waiter = propose("on");
        if (waiter.empty()) {
            std::fprintf(stderr, "handoff %d: the waiter was not proposed\n", i);
            return;
        }
        daemon.engine().revert(holder, "bench", "free the target");
        const auto freed = wait_for(daemon.store(), holder, {reverted});
        const auto applied = wait_for(daemon.store(), waiter, {verifying, active});
        if (!freed || !applied) {
            std::fprintf(stderr, "handoff %d: the target did not pass on\n", i);
            return;
        }
        handoffs.push_back(std::chrono::duration<double, std::milli>(*applied - *freed).count());
        const RequestResult reverting = daemon.engine().revert(waiter, "bench", "next");
        if (!wait_for(daemon.store(), waiter, {reverted})) {
            std::fprintf(
                stderr, "handoff %d: the waiter was not reverted (%s): %s\n", i,
                std::string(to_string(daemon.store().find_mitigation(waiter)->state)).c_str(),
                reverting.message.c_str());
            for (const JournalEntry& entry : daemon.store().journal(waiter)) {
                std::fprintf(stderr, "  %s %s: %s\n", std::string(to_string(entry.to)).c_str(),
                             entry.actor.c_str(), entry.reason.c_str());
            }
            return;
        }
    }
    std::printf(
        "handoff    %s freed to the waiting proposal applied: p50 %.2f ms, p99 %.2f ms "
        "(%d handoffs; goal at most 1000 ms)\n",
        another_action ? "resource (another action)" : "target", percentile(handoffs, 0.5),
        percentile(handoffs, 0.99), iterations);
}

// Approves `count` mitigations pending approval over HTTP, one at a time, and returns the
// request latencies.
std::vector<double> approve_all(World& world, int count) {
    std::vector<double> latencies;
    for (const Mitigation& pending : world.daemon->store().list_mitigations(
             in_states({MitigationState::pending_approval}, static_cast<std::size_t>(count)))) {
        const auto started = Steady::now();
        const auto answer = post(world.daemon->url(), "/v1/mitigations/" + pending.id + "/approve",
                                 json::object(), approver_token);
        latencies.push_back(milliseconds_since(started));
        if (answer.status != 200) {
            std::fprintf(stderr, "approve answered %d: %s\n", answer.status, answer.body.c_str());
        }
    }
    return latencies;
}

void measure_approve_while_hanging(int approvals) {
    World world(approvals * 2);
    if (!world.open_pending(approvals * 2)) {
        std::fprintf(stderr, "the pending approvals did not all arrive\n");
        return;
    }
    const std::vector<double> baseline = approve_all(world, approvals);
    // A provider call that does not answer for 30 s: UpdateService, 30 s late.
    Fault slow;
    slow.operation = "UpdateService";
    slow.kind = Fault::Kind::latency;
    slow.delay = std::chrono::seconds(30);
    world.aws.faults().add(slow);
    ProposalRequest request;
    request.action = {
        "aws",  "ecs.scale", "ecs/checkout", {{"desired_count", 6}}, std::chrono::minutes(10),
        "bench"};
    request.proposed_by = "bench";
    request.environment = "dev";
    world.daemon->engine().propose(request);
    // Wait until that apply is in the provider (journaled applying), then approve.
    if (!newest_in(world.daemon->store(), MitigationState::applying)) {
        std::fprintf(stderr, "the hanging apply never started\n");
        return;
    }
    const auto hang_started = Steady::now();
    const std::vector<double> during = approve_all(world, approvals);
    const double spent = milliseconds_since(hang_started);
    std::printf(
        "approve    while a provider call hangs 30 s: p50 %.2f ms, p99 %.2f ms (%d approvals in "
        "%.0f ms, all inside the hang) | baseline nothing hanging: p50 %.2f ms, p99 %.2f ms "
        "(ratio p99 %.2fx)\n",
        percentile(during, 0.5), percentile(during, 0.99), approvals, spent,
        percentile(baseline, 0.5), percentile(baseline, 0.99),
        percentile(during, 0.99) / percentile(baseline, 0.99));
    world.aws.faults().clear();
}

}  // namespace
}  // namespace mitigate

int main(int argc, char** argv) {
    const int iterations = argc > 1 ? std::atoi(argv[1]) : 200;
    const int open = argc > 2 ? std::atoi(argv[2]) : 1000;
    // Only the handoff and its baseline (a bare apply), for a quick look.
    if (std::getenv("MITIGATE_BENCH_ONLY_HANDOFF") != nullptr) {
        mitigate::measure_bare_apply(iterations);
        mitigate::measure_handoff(iterations, /*another_action=*/false);
        mitigate::measure_handoff(iterations, /*another_action=*/true);
        return 0;
    }
    mitigate::measure_start_and_rss();
    mitigate::measure_bare_apply(iterations);
    mitigate::measure_applied(iterations, 0);
    mitigate::measure_handoff(iterations, /*another_action=*/false);
    mitigate::measure_handoff(iterations, /*another_action=*/true);
    mitigate::measure_applied(iterations, open);
    mitigate::measure_approve_while_hanging(200);
    return 0;
}
