// What the plugin sandbox costs, in one run:
//   direct_call   the plugin's call() in this process, through the C ABI (the baseline)
//   worker_call   the same request through a confined plugin-host process: a frame each
//                 way over the socketpair, JSON parsed on both sides
//   worker_start  starting a plugin-host process until it has loaded the plugin and said
//                 ready (fork, exec, confinement, dlopen)
// The plugin is the test plugin's "echo" action, so what is measured is the trip, not a
// provider. p50 and p99 per call are reported as counters (microseconds).
#include <benchmark/benchmark.h>

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "plugins/sdk/mitigate_plugin.h"
#include "sandbox/plugin_host/plugin_process.h"
#include "tests/support/child_process.h"

namespace mitigate {
namespace {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

const std::string plugin_path = std::string(MITIGATE_TEST_PLUGIN_DIRECTORY) + "/hostile.so";
const json echo_request{{"operation", "read"},
                        {"action", "echo"},
                        {"target", "flag-key"},
                        {"parameters", {{"variant", "off"}}}};

void report_percentiles(benchmark::State& state, std::vector<double>& microseconds) {
    if (microseconds.empty()) {
        return;
    }
    std::sort(microseconds.begin(), microseconds.end());
    state.counters["p50_us"] = microseconds[microseconds.size() / 2];
    state.counters["p99_us"] = microseconds[microseconds.size() * 99 / 100];
    state.SetItemsProcessed(state.iterations());
}

int32_t no_egress(void*, const char*, const char** response) {
    *response = "{}";
    return MITIGATE_UNAVAILABLE;
}
void no_log(void*, int32_t, const char*) {}

void direct_call(benchmark::State& state) {
    void* library = dlopen(plugin_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
        state.SkipWithError("cannot load the test plugin");
        return;
    }
    const auto entry = reinterpret_cast<mitigate_plugin_entry_function>(
        dlsym(library, MITIGATE_PLUGIN_ENTRY_NAME));
    const mitigate_plugin_api* api = entry();
    static const mitigate_host_api host{MITIGATE_PLUGIN_ABI_MAJOR,
                                        MITIGATE_PLUGIN_ABI_MINOR,
                                        sizeof(mitigate_host_api),
                                        nullptr,
                                        no_egress,
                                        no_log};
    api->init(&host, "{}");
    std::vector<double> samples;
    for (auto _ : state) {
        const auto start = SteadyClock::now();
        // As the runtime would: serialise the request, parse the answer.
        const std::string text = echo_request.dump();
        const char* response = nullptr;
        api->call(text.c_str(), &response);
        benchmark::DoNotOptimize(json::parse(response));
        samples.push_back(
            std::chrono::duration<double, std::micro>(SteadyClock::now() - start).count());
    }
    report_percentiles(state, samples);
}
BENCHMARK(direct_call)->UseRealTime();

void worker_call(benchmark::State& state) {
    PluginProcessOptions options;
    options.executable = testing::mitigate_binary();
    options.plugin = plugin_path;
    PluginProcess plugin(options, nullptr);
    if (!plugin.call(echo_request).ok()) {
        state.SkipWithError("the plugin host did not answer");
        return;
    }
    std::vector<double> samples;
    for (auto _ : state) {
        const auto start = SteadyClock::now();
        benchmark::DoNotOptimize(plugin.call(echo_request));
        samples.push_back(
            std::chrono::duration<double, std::micro>(SteadyClock::now() - start).count());
    }
    report_percentiles(state, samples);
}
BENCHMARK(worker_call)->UseRealTime();

void worker_start(benchmark::State& state) {
    PluginProcessOptions options;
    options.executable = testing::mitigate_binary();
    options.plugin = plugin_path;
    std::vector<double> samples;
    for (auto _ : state) {
        const auto start = SteadyClock::now();
        PluginProcess plugin(options, nullptr);
        if (!plugin.ensure_started().ok()) {
            state.SkipWithError("the plugin host did not start");
            return;
        }
        samples.push_back(
            std::chrono::duration<double, std::micro>(SteadyClock::now() - start).count());
    }
    report_percentiles(state, samples);
}
BENCHMARK(worker_start)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace mitigate

BENCHMARK_MAIN();
