// The lifecycle end to end, in-process with an injected clock: Alertmanager signals into
// incidents, a Lua playbook proposing, policy deciding, approvals, the real flags plugin
// in its confined host applying to a flagd file, verification by the incident's alerts,
// TTL revert, conflicts on one target, and revert conflicts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "runtime/core/time_format.h"
#include "runtime/engine/lifecycle.h"
#include "runtime/ingest/alertmanager.h"
#include "runtime/metrics/metrics.h"
#include "runtime/policy/policy_set.h"
#include "runtime/providers/provider_registry.h"
#include "runtime/store/sqlite_store.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using State = MitigationState;

class LifecycleTest : public ::testing::Test {
  protected:
    LifecycleTest() {
        flags = directory.write("flags.json", R"({"flags": {
            "checkout": {"state": "ENABLED", "variants": {"on": true, "off": false, "half": 0.5},
                         "defaultVariant": "on"}}})");
        config.source = "test";
        config.providers.push_back(testing::flagd_provider(flags));
        RegistryOptions options;
        options.executable = testing::mitigate_binary();
        registry = std::make_unique<ProviderRegistry>(config, options);
        store = open_sqlite_store(directory / "m.db");
        declare_lifecycle_metrics(metrics);
        lifecycle = make_lifecycle(EngineConfig{});
    }

    std::unique_ptr<Lifecycle> make_lifecycle(EngineConfig engine) {
        PolicyLoad policies =
            load_policy_files({{"test.yaml", std::string(testing::environment_policy)}});
        EXPECT_TRUE(policies.policy_set);
        LifecycleSetup setup;
        setup.engine = std::move(engine);
        setup.policies = std::make_shared<const PolicySet>(std::move(*policies.policy_set));
        setup.playbooks = {{"flag-off.lua", std::string(testing::flag_off_playbook)}};
        setup.playbook_environment.evaluate = [](const LuaCall& call, const LuaLimits& limits) {
            return run_sandboxed(call, limits);
        };
        return std::make_unique<Lifecycle>(*store, *registry, clock, metrics, std::move(setup));
    }

    // An Alertmanager webhook with one alert, parsed exactly as the API parses it.
    std::vector<Signal> alert(const std::string& status, const std::string& environment,
                              const std::string& variant = "off",
                              const std::string& fingerprint = "fp1") {
        const json payload = {
            {"version", "4"},
            {"groupKey", "{}"},
            {"status", status},
            {"receiver", "mitigate"},
            {"groupLabels", json::object()},
            {"commonLabels", json::object()},
            {"commonAnnotations", json::object()},
            {"externalURL", "http://alertmanager.invalid"},
            {"alerts",
             {{{"status", status},
               {"labels",
                {{"alertname", "HighErrorRate"},
                 {"service", "checkout"},
                 {"environment", environment},
                 {"flag", "checkout"},
                 {"variant", variant}}},
               {"annotations", json::object()},
               {"startsAt", "2026-11-23T11:59:00Z"},
               {"endsAt", status == "resolved" ? "2026-11-23T12:10:00Z" : "0001-01-01T00:00:00Z"},
               {"fingerprint", fingerprint}}}}};
        auto signals = parse_alertmanager_webhook(payload, clock.now());
        EXPECT_TRUE(signals) << describe(signals.errors);
        return *signals;
    }

    std::string variant() const {
        return json::parse(testing::read_file(flags))["flags"]["checkout"]["defaultVariant"];
    }
    void set_variant(const std::string& value) const {
        json document = json::parse(testing::read_file(flags));
        document["flags"]["checkout"]["defaultVariant"] = value;
        std::ofstream(flags) << document.dump(2);
    }
    std::vector<Mitigation> all() { return store->list_mitigations({}); }
    Mitigation only() {
        auto list = all();
        EXPECT_EQ(list.size(), 1u);
        return list.empty() ? Mitigation{} : list.front();
    }
    std::vector<State> journal(const std::string& id) {
        std::vector<State> states;
        for (const auto& entry : store->journal(id)) {
            states.push_back(entry.to);
        }
        return states;
    }
    ApprovalRequest approval(const std::string& id, const std::string& who,
                             std::vector<std::string> groups = {"sre"}) {
        ApprovalRequest request;
        request.mitigation_id = id;
        request.identity = who;
        request.groups = std::move(groups);
        return request;
    }

    testing::TemporaryDirectory directory;
    std::filesystem::path flags;
    Config config;
    ManualClock clock{*parse_rfc3339("2026-11-23T12:00:00Z")};
    Metrics metrics;
    std::unique_ptr<ProviderRegistry> registry;
    std::unique_ptr<Store> store;
    std::unique_ptr<Lifecycle> lifecycle;
};

TEST_F(LifecycleTest, AutoApprovedMitigationVerifiesWhenTheAlertResolvesAndRevertsAtItsTtl) {
    EXPECT_EQ(lifecycle->accept_signals(alert("firing", "dev")).accepted, 1u);
    lifecycle->step();
    Mitigation mitigation = only();
    EXPECT_EQ(mitigation.state, State::verifying);
    EXPECT_EQ(variant(), "off");
    ASSERT_TRUE(mitigation.expires_at);
    EXPECT_EQ(*mitigation.expires_at, clock.now() + std::chrono::minutes(30));
    const auto incidents = store->list_incidents({});
    ASSERT_EQ(incidents.size(), 1u);
    EXPECT_EQ(incidents[0].title, "HighErrorRate on checkout (dev)");
    EXPECT_EQ(mitigation.proposal.incident_id, incidents[0].id);

    clock.advance(std::chrono::minutes(2));
    lifecycle->accept_signals(alert("resolved", "dev"));
    const auto next = lifecycle->step();
    EXPECT_EQ(only().state, State::active);
    EXPECT_EQ(store->find_incident(incidents[0].id)->status, IncidentStatus::resolved);
    ASSERT_TRUE(next);
    EXPECT_EQ(*next, *mitigation.expires_at);  // the daemon sleeps until the TTL

    clock.set(*mitigation.expires_at);
    lifecycle->step();
    EXPECT_EQ(only().state, State::reverted);
    EXPECT_EQ(variant(), "on");
    EXPECT_THAT(journal(mitigation.id),
                ElementsAre(State::proposed, State::planned, State::approved, State::applying,
                            State::verifying, State::active, State::reverting, State::reverted));
    EXPECT_EQ(metrics.value("mitigate_reverts_total", {{"cause", "ttl"}}), 1);
    EXPECT_EQ(metrics.value("mitigate_applies_total"), 1);
    EXPECT_THAT(metrics.render(), HasSubstr("mitigate_signal_to_applied_seconds_count 1"));
    EXPECT_TRUE(store->verify_audit_chain().intact());
}

TEST_F(LifecycleTest, AMitigationWhoseAlertKeepsFiringIsRevertedAfterTheVerificationWindow) {
    lifecycle->accept_signals(alert("firing", "dev"));
    lifecycle->step();
    const Mitigation mitigation = only();
    ASSERT_EQ(mitigation.state, State::verifying);
    clock.advance(std::chrono::minutes(4));
    lifecycle->step();
    EXPECT_EQ(only().state, State::verifying);
    clock.advance(std::chrono::minutes(1));
    lifecycle->step();
    EXPECT_EQ(only().state, State::reverted);
    EXPECT_EQ(variant(), "on");
    EXPECT_THAT(store->journal(mitigation.id)[5].reason, HasSubstr("verification failed"));
    EXPECT_EQ(metrics.value("mitigate_reverts_total", {{"cause", "verification"}}), 1);
}

TEST_F(LifecycleTest, ARetriedWebhookIsStoredOnceAndOpensOneIncident) {
    EXPECT_EQ(lifecycle->accept_signals(alert("firing", "dev")).accepted, 1u);
    const SignalIntake again = lifecycle->accept_signals(alert("firing", "dev"));
    EXPECT_EQ(again.accepted, 0u);
    EXPECT_EQ(again.duplicates, 1u);
    lifecycle->step();
    lifecycle->accept_signals(alert("firing", "dev"));  // Alertmanager's repeat_interval
    lifecycle->step();
    EXPECT_EQ(store->list_incidents({}).size(), 1u);
    EXPECT_EQ(all().size(), 1u);
    EXPECT_EQ(metrics.value("mitigate_signals_duplicate_total"), 2);
}

TEST_F(LifecycleTest, AFullBacklogRefusesSignalsWithoutStoringAny) {
    EngineConfig small;
    small.pending_signal_limit = 1;
    lifecycle = make_lifecycle(small);
    EXPECT_EQ(lifecycle->accept_signals(alert("firing", "dev")).accepted, 1u);
    const SignalIntake refused = lifecycle->accept_signals(alert("firing", "dev", "off", "fp2"));
    EXPECT_TRUE(refused.refused);
    EXPECT_THAT(refused.message, HasSubstr("backlog is full"));
    EXPECT_EQ(store->count_pending_signals(), 1u);
    lifecycle->step();  // drains the backlog: accepted again
    EXPECT_EQ(lifecycle->accept_signals(alert("firing", "dev", "off", "fp2")).accepted, 1u);
}

TEST_F(LifecycleTest, QuorumOfTwoDistinctSreApproversRefusingSelfOutsidersAndRepeats) {
    lifecycle->accept_signals(alert("firing", "stage"));
    lifecycle->step();
    const Mitigation pending = only();
    ASSERT_EQ(pending.state, State::pending_approval);
    EXPECT_EQ(variant(), "on");

    EXPECT_EQ(lifecycle->approve(approval(pending.id, "mallory", {"web"})).status,
              RequestStatus::forbidden);
    EXPECT_EQ(lifecycle->approve(approval(pending.id, "alice")).status, RequestStatus::done);
    const RequestResult twice = lifecycle->approve(approval(pending.id, "alice"));
    EXPECT_EQ(twice.status, RequestStatus::conflict);
    EXPECT_THAT(twice.message, HasSubstr("distinct people"));
    EXPECT_EQ(only().state, State::pending_approval);
    lifecycle->step();
    EXPECT_EQ(variant(), "on");  // one approval of two applies nothing

    const RequestResult second = lifecycle->approve(approval(pending.id, "bob"));
    EXPECT_EQ(second.status, RequestStatus::done);
    EXPECT_EQ(second.mitigation->state, State::approved);
    lifecycle->step();
    EXPECT_EQ(only().state, State::verifying);
    EXPECT_EQ(variant(), "off");
    const RequestResult late = lifecycle->approve(approval(pending.id, "carol"));
    EXPECT_EQ(late.status, RequestStatus::conflict);
    EXPECT_THAT(late.message, HasSubstr("is verifying"));

    // Every refusal is in the audit log with who and why.
    int refusals = 0;
    for (const AuditRecord& record : store->audit_tail(100)) {
        refusals += record.event == "approval.refused" ? 1 : 0;
    }
    EXPECT_EQ(refusals, 3);
}

TEST_F(LifecycleTest, AProposerCannotApproveTheirOwnMitigation) {
    lifecycle->accept_signals(alert("firing", "stage"));
    lifecycle->step();
    // A person proposes a second change on another flag value of the same incident.
    const auto incident = store->list_incidents({}).front();
    const RequestResult proposed = lifecycle->propose(
        {"flags", "flag.set", "checkout", {{"variant", "half"}}, std::chrono::minutes(10), "half"},
        incident.id, "alice");
    ASSERT_EQ(proposed.status, RequestStatus::done);
    // The first mitigation (playbook) holds the target: rejecting it frees the queue.
    const auto playbook_one = store->list_mitigations(in_states({State::pending_approval}, 10));
    ASSERT_EQ(playbook_one.size(), 1u);
    EXPECT_EQ(lifecycle
                  ->approve({playbook_one[0].id,
                             "carol",
                             {"sre"},
                             ApprovalVerdict::reject,
                             ApprovalChannel::cli,
                             "not now",
                             ""})
                  .status,
              RequestStatus::done);
    lifecycle->step();
    const Mitigation mine = *store->find_mitigation(proposed.mitigation->id);
    ASSERT_EQ(mine.state, State::pending_approval);
    const RequestResult self = lifecycle->approve(approval(mine.id, "alice"));
    EXPECT_EQ(self.status, RequestStatus::forbidden);
    EXPECT_THAT(self.message, HasSubstr("proposed this mitigation"));
}

TEST_F(LifecycleTest, PendingApprovalsExpire) {
    lifecycle->accept_signals(alert("firing", "stage"));
    lifecycle->step();
    const Mitigation pending = only();
    clock.advance(std::chrono::minutes(31));
    const RequestResult late = lifecycle->approve(approval(pending.id, "alice"));
    EXPECT_EQ(late.status, RequestStatus::conflict);
    EXPECT_THAT(late.message, HasSubstr("approval window closed"));
    lifecycle->step();
    EXPECT_EQ(only().state, State::expired);
}

TEST_F(LifecycleTest, DenyAndDryRunApplyNothing) {
    lifecycle->accept_signals(alert("firing", "prod"));  // no rule: default deny
    lifecycle->accept_signals(alert("firing", "qa", "half", "fp2"));
    lifecycle->step();
    std::vector<State> states;
    for (const Mitigation& mitigation : all()) {
        states.push_back(mitigation.state);
    }
    EXPECT_THAT(states, ::testing::UnorderedElementsAre(State::denied, State::dry_run));
    EXPECT_EQ(variant(), "on");
    EXPECT_EQ(metrics.value("mitigate_decisions_total", {{"effect", "deny"}}), 1);
    EXPECT_EQ(metrics.value("mitigate_decisions_total", {{"effect", "dry_run"}}), 1);
}

TEST_F(LifecycleTest, ProposalsOnOneTargetAreSerializedAndEqualOnesMerge) {
    lifecycle->accept_signals(alert("firing", "dev", "off", "fp1"));
    lifecycle->step();
    const Mitigation first = only();
    ASSERT_EQ(first.state, State::verifying);
    // The same change again (another alert, same variant): merged, not a second one.
    const auto incident = store->list_incidents({}).front();
    const RequestResult merged = lifecycle->propose(first.proposal.action, incident.id, "alice");
    EXPECT_EQ(merged.mitigation->id, first.id);
    // A different change on the same flag: queued behind the first.
    const RequestResult queued = lifecycle->propose(
        {"flags", "flag.set", "checkout", {{"variant", "half"}}, std::chrono::minutes(10), "half"},
        incident.id, "alice");
    lifecycle->step();
    EXPECT_EQ(store->find_mitigation(queued.mitigation->id)->state, State::proposed);
    EXPECT_EQ(variant(), "off");
    // The first ends (a person reverts it); the queued one is planned from the state the
    // revert left, and runs.
    EXPECT_EQ(lifecycle->revert(first.id, "alice", "done with it").status, RequestStatus::done);
    lifecycle->step();
    const Mitigation second = *store->find_mitigation(queued.mitigation->id);
    EXPECT_EQ(second.state, State::verifying);
    EXPECT_EQ(variant(), "half");
    // Its inverse is what was there when it was planned: the revert restores "on".
    EXPECT_EQ(lifecycle->revert(second.id, "alice", "done").status, RequestStatus::done);
    EXPECT_EQ(variant(), "on");
    EXPECT_EQ(metrics.value("mitigate_proposals_merged_total"), 1);
}

TEST_F(LifecycleTest, ARevertThatWouldClobberAPersonsChangeBecomesAConflictThenIsKept) {
    lifecycle->accept_signals(alert("firing", "dev"));
    lifecycle->step();
    const Mitigation mitigation = only();
    set_variant("half");  // someone changed the flag by hand since
    clock.advance(std::chrono::minutes(31));
    lifecycle->step();
    EXPECT_EQ(only().state, State::conflict);
    EXPECT_EQ(variant(), "half");  // not clobbered
    EXPECT_EQ(metrics.value("mitigate_failures_total", {{"state", "conflict"}}), 1);
    EXPECT_EQ(lifecycle->keep(mitigation.id, "alice", "").status, RequestStatus::invalid);
    const RequestResult kept = lifecycle->keep(mitigation.id, "alice", "half is the new normal");
    EXPECT_EQ(kept.status, RequestStatus::done);
    EXPECT_EQ(only().state, State::kept);
    EXPECT_THAT(store->journal(mitigation.id).back().reason, HasSubstr("half is the new normal"));
}

TEST_F(LifecycleTest, RevertOnIncidentResolutionWhenConfigured) {
    EngineConfig engine;
    engine.revert_when_incident_resolves = true;
    lifecycle = make_lifecycle(engine);
    lifecycle->accept_signals(alert("firing", "dev"));
    lifecycle->step();
    lifecycle->accept_signals(alert("resolved", "dev"));
    lifecycle->step();  // verified by the resolution...
    lifecycle->step();  // ...then reverted because of it
    EXPECT_EQ(only().state, State::reverted);
    EXPECT_EQ(metrics.value("mitigate_reverts_total", {{"cause", "incident_resolved"}}), 1);
}

}  // namespace
}  // namespace mitigate
