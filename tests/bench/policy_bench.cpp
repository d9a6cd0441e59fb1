// Decision latency of the policy engine with 10, 100 and 1000 rules. Each evaluation is
// timed on its own so that p50 and p99 can be reported, not only the mean. The rules
// are a realistic mix (globs, labels, a time-zone window, blast radius), the default
// constraints are on, and the history holds 50 recent mitigations. The 10-rule case is
// the baseline the others are compared with. The decision the engine makes explains the
// rules that matched; explaining every rule is on demand and measured beside it.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>

#include "runtime/core/time_format.h"
#include "runtime/policy/policy_engine.h"

namespace mitigate {
namespace {

PolicySet make_policies(int rule_count) {
    std::string text = R"yaml(windows:
  business-hours: {schedule: "0 9 * * mon-fri", duration: 8h, timezone: Europe/Berlin}
constraints:
  ttl: {max: 4h}
  rate_limits: [{scope: target, max: 3, per: 1h}, {scope: service, max: 5, per: 1h}, {scope: global, max: 20, per: 1h}]
  cooldown: {after: 15m}
  circuit_breaker: {failures: 3, window: 1h}
  blast_radius_caps: [{provider: aws, action: ecs.scale, min_resulting_fraction: 0.5}]
rules:
)yaml";
    const char* environments[] = {"dev", "stage", "prod", "qa"};
    const char* actions[] = {"flag.*", "ecs.scale", "waf.rate_limit", "rollback", "*"};
    for (int i = 0; i < rule_count; ++i) {
        text += "  - name: rule-" + std::to_string(i) +
                "\n    match: {environment: " + environments[i % 4] + ", action: \"" +
                actions[i % 5] + "\", service: [svc-" + std::to_string(i % 17) + ", checkout]";
        if (i % 3 == 0) {
            text += ", labels: {team: payments}";
        }
        if (i % 7 == 0) {
            text += ", within: business-hours";
        }
        if (i % 5 == 0) {
            text += ", max_blast_radius: 0.5, reversible: true";
        }
        text += "}\n";
        text +=
            i % 4 == 2
                ? "    effect: require_approval\n    approvals: {count: 2, groups: [sre-oncall]}\n"
                : "    effect: allow\n";
    }
    PolicyLoad load = load_policy_files({{"bench.yaml", text}});
    if (!load.policy_set) {
        throw std::runtime_error(load.errors.front().to_string());
    }
    return std::move(*load.policy_set);
}

void measure(benchmark::State& state, PolicyExplanation explanation) {
    const PolicySet policies = make_policies(static_cast<int>(state.range(0)));
    const TimePoint now = *parse_rfc3339("2026-11-24T10:00:00Z");
    PolicyInput input;
    input.action = {"flags",
                    "flag.set",
                    "checkout-new-flow",
                    {{"variant", "off"}},
                    Duration{std::chrono::minutes{30}},
                    "bench"};
    input.environment = "prod";
    input.service = "checkout";
    input.labels = {{"team", "payments"}};
    input.plan = Plan{};
    input.plan->blast_radius.ratio = 0.1;
    PolicyHistory history;
    for (int i = 0; i < 50; ++i) {
        history.mitigations.push_back({"flags", "flag.set", "target-" + std::to_string(i % 10),
                                       "svc-" + std::to_string(i % 4), "prod",
                                       now - Duration{std::chrono::minutes{i * 3}}, std::nullopt});
    }
    std::vector<double> samples;
    samples.reserve(1 << 20);
    for (auto _ : state) {
        const auto start = std::chrono::steady_clock::now();
        Decision decision = evaluate_policy(policies, input, history, now, explanation);
        const auto stop = std::chrono::steady_clock::now();
        benchmark::DoNotOptimize(decision);
        samples.push_back(std::chrono::duration<double, std::micro>(stop - start).count());
    }
    std::sort(samples.begin(), samples.end());
    const auto at = [&](double quantile) {
        return samples[static_cast<std::size_t>(quantile *
                                                static_cast<double>(samples.size() - 1))];
    };
    state.counters["p50_us"] = at(0.50);
    state.counters["p90_us"] = at(0.90);
    state.counters["p99_us"] = at(0.99);
    state.counters["decisions_per_s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
// What the engine runs: the decision, explaining the rules that matched.
void decision_latency(benchmark::State& state) {
    measure(state, PolicyExplanation::matched_rules);
}
// On demand (`mitigate policy eval`, `policy test`): why every other rule did not match.
void decision_latency_explaining_every_rule(benchmark::State& state) {
    measure(state, PolicyExplanation::every_rule);
}
BENCHMARK(decision_latency)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(decision_latency_explaining_every_rule)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace mitigate

BENCHMARK_MAIN();
