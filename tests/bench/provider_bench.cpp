// What a provider call costs end to end, in one run: the runtime's ProviderRegistry, the
// confined plugin host, the egress broker, libcurl and the provider's emulator on
// loopback. The baseline is the flags provider reading a flagd file (the same path
// without a network call); against it:
//   aws_waf_read     one SigV4-signed GetWebACL, verified by the AWS emulator
//   aws_ecs_read     two signed calls (DescribeServices, DescribeScalableTargets)
//   vercel_read      one bearer GET /v9/projects
//   flags_cycle      apply then revert of flag.set on the flagd file: read-check-write each
//                    way, each write replacing the file durably (fsync, rename, fsync)
//   aws_ecs_cycle    apply then revert of ecs.scale: read-check-write each way
// p50 and p99 per call are reported as counters (microseconds).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "plugins/emulators/aws_emulator.h"
#include "plugins/emulators/vercel_emulator.h"
#include "runtime/providers/provider_registry.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

struct World {
    World() {
        setenv("MITIGATE_BENCH_AWS_KEY", "AKIDEXAMPLE", 1);
        setenv("MITIGATE_BENCH_AWS_SECRET", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
        setenv("MITIGATE_BENCH_VERCEL_TOKEN", "bench-token-not-a-secret", 1);
        aws.add_ecs_service("default", "checkout", 4);
        aws.add_scalable_target("default", "checkout", 2, 10);
        const json rule = json::parse(R"({"Name": "per-ip", "Priority": 1,
          "Statement": {"RateBasedStatement": {"Limit": 2000, "AggregateKeyType": "IP"}},
          "Action": {"Block": {}}, "VisibilityConfig": {"SampledRequestsEnabled": true,
          "CloudWatchMetricsEnabled": true, "MetricName": "per-ip"}})");
        acl = aws.add_web_acl("REGIONAL", "edge", json::array({rule}));
        vercel.add_project("prj_web", "web");
        vercel.add_deployment("prj_web", "dpl_1", true, 7200);
        vercel.add_deployment("prj_web", "dpl_2", true, 600);
        const auto flag_file =
            directory.write("flags.json", R"({"flags": {"checkout": {"state": "ENABLED",
              "variants": {"on": true, "off": false}, "defaultVariant": "on"}}})");

        config.source = "bench";
        ProviderConfig flags;
        flags.name = flags.plugin = "flags";
        flags.egress.allow_files = {flag_file};
        flags.settings = {{"backend", "flagd"}, {"path", flag_file.string()}};
        config.providers.push_back(flags);

        ProviderConfig amazon = testing::emulated_aws_provider(aws.url(), "MITIGATE_BENCH_AWS_KEY",
                                                               "MITIGATE_BENCH_AWS_SECRET");
        config.providers.push_back(amazon);

        ProviderConfig deployments;
        deployments.name = deployments.plugin = "vercel";
        deployments.egress.allow_hosts = {vercel.url().substr(7)};
        deployments.egress.allow_loopback = true;
        CredentialProfile token;
        token.name = "bench";
        token.kind = CredentialKind::bearer;
        token.secrets.emplace("token", *SecretReference::parse("env:MITIGATE_BENCH_VERCEL_TOKEN"));
        token.origins = {testing::origin_of(vercel.url())};
        deployments.credentials.push_back(token);
        deployments.settings = {{"url", vercel.url()}, {"credential", "bench"}};
        config.providers.push_back(deployments);

        RegistryOptions options;
        options.executable = testing::mitigate_binary();
        registry = std::make_unique<ProviderRegistry>(config, options);
    }

    testing::TemporaryDirectory directory;
    AwsEmulator aws{AwsEmulatorOptions{"us-east-1", "123456789012", "AKIDEXAMPLE",
                                       "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}};
    VercelEmulator vercel{VercelEmulatorOptions{"bench-token-not-a-secret"}};
    std::string acl;
    Config config;
    std::unique_ptr<ProviderRegistry> registry;
};

World& world() {
    static World instance;
    return instance;
}

void run_calls(benchmark::State& state, const std::string& provider,
               const std::vector<json>& requests) {
    World& shared = world();
    std::vector<double> microseconds;
    for (auto _ : state) {
        const auto start = SteadyClock::now();
        for (const json& request : requests) {
            const PluginCallResult result = shared.registry->call(provider, request);
            if (!result.ok()) {
                state.SkipWithError(result.error.c_str());
                return;
            }
        }
        microseconds.push_back(
            std::chrono::duration<double, std::micro>(SteadyClock::now() - start).count());
    }
    std::sort(microseconds.begin(), microseconds.end());
    state.counters["p50_us"] = microseconds[microseconds.size() / 2];
    state.counters["p99_us"] = microseconds[microseconds.size() * 99 / 100];
}

void flags_read(benchmark::State& state) {
    run_calls(state, "flags",
              {{{"operation", "read"}, {"action", "flag.set"}, {"target", "checkout"}}});
}

void aws_waf_read(benchmark::State& state) {
    run_calls(state, "aws",
              {{{"operation", "read"},
                {"action", "waf.rate_limit"},
                {"target", "waf/REGIONAL/edge/" + world().acl + "/per-ip"}}});
}

void aws_ecs_read(benchmark::State& state) {
    run_calls(state, "aws",
              {{{"operation", "read"}, {"action", "ecs.scale"}, {"target", "ecs/checkout"}}});
}

void vercel_read(benchmark::State& state) {
    run_calls(state, "vercel",
              {{{"operation", "read"}, {"action", "rollback"}, {"target", "web"}}});
}

void aws_ecs_cycle(benchmark::State& state) {
    const PluginCallResult plan =
        world().registry->call("aws", {{"operation", "plan"},
                                       {"action", "ecs.scale"},
                                       {"target", "ecs/checkout"},
                                       {"parameters", {{"desired_count", 6}}}});
    if (!plan.ok()) {
        state.SkipWithError(plan.error.c_str());
        return;
    }
    const json base{{"action", "ecs.scale"}, {"target", "ecs/checkout"}, {"plan", plan.response}};
    json apply = base;
    apply["operation"] = "apply";
    json revert = base;
    revert["operation"] = "revert";
    run_calls(state, "aws", {apply, revert});
}

void flags_cycle(benchmark::State& state) {
    const PluginCallResult plan =
        world().registry->call("flags", {{"operation", "plan"},
                                         {"action", "flag.set"},
                                         {"target", "checkout"},
                                         {"parameters", {{"variant", "off"}}}});
    if (!plan.ok()) {
        state.SkipWithError(plan.error.c_str());
        return;
    }
    const json base{{"action", "flag.set"}, {"target", "checkout"}, {"plan", plan.response}};
    json apply = base;
    apply["operation"] = "apply";
    json revert = base;
    revert["operation"] = "revert";
    run_calls(state, "flags", {apply, revert});
}

BENCHMARK(flags_read)->Iterations(300)->Unit(benchmark::kMicrosecond);
BENCHMARK(flags_cycle)->Iterations(100)->Unit(benchmark::kMicrosecond);
BENCHMARK(aws_waf_read)->Iterations(300)->Unit(benchmark::kMicrosecond);
BENCHMARK(aws_ecs_read)->Iterations(300)->Unit(benchmark::kMicrosecond);
BENCHMARK(vercel_read)->Iterations(300)->Unit(benchmark::kMicrosecond);
BENCHMARK(aws_ecs_cycle)->Iterations(100)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace mitigate

BENCHMARK_MAIN();
