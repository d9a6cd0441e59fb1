// What durability costs. Every transition is one SQLite transaction (mitigation row,
// journal entry, audit record) committed with synchronous=FULL. The baseline is a bare
// audit append, itself one durable transaction, measured in the same run, so the ratio
// says what the journal and row cost on top of the fsync every commit pays anyway.
// Also measures `audit verify` throughput, which bounds how long a verify of a large
// log takes.
#include <benchmark/benchmark.h>

#include "runtime/core/time_format.h"
#include "runtime/store/sqlite_store.h"
#include "tests/support/store_fixtures.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

TimePoint now() {
    return *parse_rfc3339("2026-11-23T07:00:00Z");
}

void audit_append_baseline(benchmark::State& state) {
    testing::TemporaryDirectory directory;
    auto store = open_sqlite_store(directory / "bench.db");
    for (auto _ : state) {
        store->append_audit({now(), "bench", "bench.event", "subject", {{"n", 1}}});
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(audit_append_baseline)->Unit(benchmark::kMicrosecond)->UseRealTime();

void transition(benchmark::State& state) {
    testing::TemporaryDirectory directory;
    auto store = open_sqlite_store(directory / "bench.db");
    int created = 0;
    std::string id;
    for (auto _ : state) {
        if (id.empty() || testing::advance(*store, id, now()) != TransitionOutcome::done) {
            state.PauseTiming();
            id = "m" + std::to_string(created++);
            store->create_mitigation(testing::make_mitigation(id, now()), "bench", "r");
            state.ResumeTiming();
        }
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(transition)->Unit(benchmark::kMicrosecond)->UseRealTime();

void verify_chain(benchmark::State& state) {
    testing::TemporaryDirectory directory;
    const auto path = directory / "bench.db";
    {
        auto store = open_sqlite_store(path);
        for (int64_t i = 0; i < state.range(0); ++i) {
            store->append_audit({now(), "bench", "bench.event", "subject", {{"n", i}}});
        }
    }
    SqliteStoreOptions read_only;
    read_only.read_only = true;
    auto reader = open_sqlite_store(path, read_only);
    for (auto _ : state) {
        const AuditChainVerifier result = reader->verify_audit_chain();
        if (!result.intact()) {
            state.SkipWithError("chain broken");
        }
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(verify_chain)->Arg(2000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace mitigate

BENCHMARK_MAIN();
