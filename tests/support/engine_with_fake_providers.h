// The engine driven with providers in memory (tests/support/fake_providers.h), a manual
// clock and a real SQLite store, no process: the fixture of the engine's unit tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "runtime/core/time_format.h"
#include "runtime/engine/engine.h"
#include "runtime/metrics/metrics.h"
#include "runtime/policy/policy_set.h"
#include "runtime/store/sqlite_store.h"
#include "tests/support/fake_providers.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {

using State = MitigationState;

inline constexpr std::string_view policy = R"yaml(
rules:
  - name: dev-allow
    match: {environment: dev}
    effect: allow
  - name: stage-one-sre
    match: {environment: stage}
    effect: require_approval
    approvals: {count: 1, groups: [sre]}
)yaml";

class EngineWithFakeProviders : public ::testing::Test {
  protected:
    EngineWithFakeProviders() {
        for (const char* target : {"a", "b", "c", "d"}) {
            providers.set("fast", target, "on");
            providers.set("slow", target, "on");
        }
        store = open_sqlite_store(directory / "m.db");
        start(2);
    }

    ~EngineWithFakeProviders() override {
        providers.release();
        if (engine) {
            engine->stop();
        }
    }

    void start(int workers, std::string_view policy_text = policy) {
        if (engine) {
            providers.release();
            engine->stop();
        }
        PolicyLoad loaded = load_policy_files({{"test.yaml", std::string(policy_text)}});
        ASSERT_TRUE(loaded.policy_set);
        EngineSetup setup;
        setup.policies = std::make_shared<const PolicySet>(std::move(*loaded.policy_set));
        setup.workers = workers;
        metrics = std::make_unique<Metrics>();
        engine = std::make_unique<Engine>(*store, providers, clock, *metrics, std::move(setup));
        engine->start();
    }

    void settle() { ASSERT_TRUE(engine->settle()) << "the engine did not settle"; }

    // Polls (bounded) for a condition that another thread makes true: for tests where a
    // hanging call keeps the engine from ever settling.
    static bool eventually(const std::function<bool()>& condition) {
        for (int attempt = 0; attempt < 2000; ++attempt) {
            if (condition()) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return condition();
    }

    std::string propose(const std::string& provider, const std::string& target,
                        const std::string& environment = "dev",
                        Duration ttl = std::chrono::minutes(30)) {
        ProposalRequest request;
        request.action = {provider, "set", target, {{"value", "off"}}, ttl, "test"};
        request.proposed_by = "alice";
        request.environment = environment;
        const RequestResult result = engine->propose(request);
        EXPECT_EQ(result.status, RequestStatus::done) << result.message;
        return result.mitigation ? result.mitigation->id : "";
    }

    State state_of(const std::string& id) { return store->find_mitigation(id)->state; }

    // Opens an incident of its own (service `service`, environment `environment`).
    std::string open_incident(const std::string& service, const std::string& environment) {
        EXPECT_EQ(
            engine->accept_signals({alert_of(service, environment, SignalStatus::firing)}).accepted,
            1u);
        for (const Incident& found : store->list_incidents({})) {
            if (found.service == service) {
                return found.id;
            }
        }
        return "";
    }

    void resolve_incident(const std::string& service, const std::string& environment) {
        EXPECT_EQ(engine->accept_signals({alert_of(service, environment, SignalStatus::resolved)})
                      .accepted,
                  1u);
    }

    // A mitigation of `incident` setting `target` off.
    std::string propose_for(const std::string& incident, const std::string& target = "a",
                            Duration ttl = std::chrono::minutes(30)) {
        ProposalRequest request;
        request.action = {"fast", "set", target, {{"value", "off"}}, ttl, "test"};
        request.incident_id = incident;
        request.proposed_by = "playbook:test";
        const RequestResult result = engine->propose(request);
        EXPECT_EQ(result.status, RequestStatus::done) << result.message;
        return result.mitigation ? result.mitigation->id : "";
    }

    Signal alert_of(const std::string& service, const std::string& environment,
                    SignalStatus status) const {
        Signal alert;
        alert.id = "sig_" + service + (status == SignalStatus::resolved ? "_resolved" : "");
        alert.name = "HighErrorRate";
        alert.status = status;
        alert.fingerprint = "fp_" + service;
        alert.labels = {
            {"alertname", "HighErrorRate"}, {"environment", environment}, {"service", service}};
        alert.starts_at = alert.received_at = clock.now();
        if (status == SignalStatus::resolved) {
            alert.ends_at = clock.now();
        }
        return alert;
    }

    int audited(const std::string& event, const std::string& subject) {
        int count = 0;
        for (const AuditRecord& record : store->audit_tail(1000)) {
            count += record.event == event && record.subject == subject ? 1 : 0;
        }
        return count;
    }

    testing::TemporaryDirectory directory;
    testing::FakeProviders providers;
    ManualClock clock{*parse_rfc3339("2026-11-23T12:00:00Z")};
    std::unique_ptr<Metrics> metrics;
    std::unique_ptr<Store> store;
    std::unique_ptr<Engine> engine;
};

}  // namespace mitigate
