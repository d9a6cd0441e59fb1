// What grouping an alert into an incident costs as the incident grows: the signal intake's
// own path (IncidentGrouping deciding in memory, the store writing the signal, the alert's
// membership row and the incident's counters, one durable transaction per batch of 100).
// The store holds the same 100,000 alerts in every case, grouped into incidents of 10,
// 1,000 or 100,000 alerts, so that only the size of the incident differs; each measured
// batch adds 100 new alerts to one incident of that size. The baseline is the smallest
// incident: per-alert cost should not grow with the incident.
//
// Run by hand: build/bin/grouping_bench
#include <benchmark/benchmark.h>

#include "runtime/core/time_format.h"
#include "runtime/engine/incident_grouping.h"
#include "runtime/store/sqlite_store.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

constexpr int stored_alerts = 100'000;
constexpr int batch = 100;

TimePoint now() {
    return *parse_rfc3339("2026-11-23T07:00:00Z");
}

Signal alert(const std::string& service, const std::string& fingerprint) {
    Signal signal;
    signal.source = SignalSource::alertmanager;
    signal.name = "LoadTest";
    signal.fingerprint = fingerprint;
    signal.labels = {{"alertname", "LoadTest"}, {"service", service}, {"instance", fingerprint}};
    signal.starts_at = signal.received_at = now();
    signal.id = "sig_" + fingerprint;
    return signal;
}

// Records and groups one batch as the signal intake does.
void record(Store& store, IncidentGrouping& grouping, std::vector<Signal> signals) {
    const std::vector<EncodedSignal> encoded = encode_signals(std::move(signals));
    std::unique_ptr<GroupingBatch> grouped;
    store.record_signals(encoded, [&](const std::vector<const Signal*>& fresh) {
        grouped = grouping.group(fresh, now());
        return std::move(grouped->writes);
    });
    grouping.apply(*grouped);
}

void grouping_per_alert(benchmark::State& state) {
    const int incident_size = static_cast<int>(state.range(0));
    testing::TemporaryDirectory directory;
    auto store = open_sqlite_store(directory / "bench.db");
    IncidentGrouping grouping({"alertname", "service"});
    // The same 100,000 alerts in every case, in incidents of `incident_size`.
    std::vector<Signal> signals;
    for (int i = 0; i < stored_alerts; ++i) {
        signals.push_back(
            alert("s" + std::to_string(i / incident_size), "setup-" + std::to_string(i)));
        if (signals.size() == 5000) {
            record(*store, grouping, std::move(signals));
            signals.clear();
        }
    }
    int next = 0;
    for (auto _ : state) {
        state.PauseTiming();
        std::vector<Signal> added;
        for (int i = 0; i < batch; ++i) {
            added.push_back(alert("s0", "added-" + std::to_string(next++)));
        }
        state.ResumeTiming();
        record(*store, grouping, std::move(added));
    }
    state.SetItemsProcessed(state.iterations() * batch);  // alerts per second
}
BENCHMARK(grouping_per_alert)
    ->Arg(10)
    ->Arg(1000)
    ->Arg(100'000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(200);

}  // namespace
}  // namespace mitigate

BENCHMARK_MAIN();
