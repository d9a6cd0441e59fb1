// The engine end to end, in-process with an injected clock and the real parts around it:
// Alertmanager signals into incidents, a Lua playbook proposing, policy deciding,
// approvals, the real flags plugin in its confined host applying to a flagd file, a real
// SQLite store; verification by the incident's alerts, TTL revert, one change at a time
// per target, revert conflicts, and a crash at each point between a journal entry and its
// effect, finished when the next engine starts. (tests/unit/engine_test.cpp drives the
// same engine with an in-memory provider, for the failure cases a real plugin cannot
// produce on demand.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <future>

#include "runtime/core/time_format.h"
#include "runtime/engine/engine.h"
#include "runtime/ingest/alertmanager.h"
#include "runtime/metrics/metrics.h"
#include "runtime/policy/policy_set.h"
#include "runtime/providers/plugin_protocol.h"
#include "runtime/providers/provider_registry.h"
#include "runtime/store/sqlite_store.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"
#include "tests/support/store_fixtures.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using State = MitigationState;

class EngineTest : public ::testing::Test {
  protected:
    EngineTest() {
        flags = directory.write("flags.json", R"({"flags": {
            "checkout": {"state": "ENABLED", "variants": {"on": true, "off": false, "half": 0.5},
                         "defaultVariant": "on"},
            "checkout-m1": {"state": "ENABLED", "variants": {"on": true, "off": false},
                            "defaultVariant": "on"}}})");
        config.source = "test";
        config.providers.push_back(testing::flagd_provider(flags));
        RegistryOptions options;
        options.executable = testing::mitigate_binary();
        registry = std::make_unique<ProviderRegistry>(config, options);
        store = open_sqlite_store(directory / "m.db");
        start_engine(EngineConfig{});
    }

    ~EngineTest() override {
        if (engine) {
            engine->stop();
        }
    }

    void start_engine(EngineConfig settings,
                      std::vector<std::pair<std::string, std::string>> playbooks = {
                          {"flag-off.lua", std::string(testing::flag_off_playbook)}}) {
        if (engine) {
            engine->stop();
        }
        engine.reset();
        PolicyLoad policies =
            load_policy_files({{"test.yaml", std::string(testing::environment_policy)}});
        ASSERT_TRUE(policies.policy_set);
        EngineSetup setup;
        setup.engine = std::move(settings);
        setup.policies = std::make_shared<const PolicySet>(std::move(*policies.policy_set));
        setup.playbooks = std::move(playbooks);
        setup.playbook_environment.evaluate = [](const LuaCall& call, const LuaLimits& limits) {
            return run_sandboxed(call, limits);
        };
        metrics = std::make_unique<Metrics>();
        engine = std::make_unique<Engine>(*store, *registry, clock, *metrics, std::move(setup));
        engine->start();
    }

    // Everything due now is done: the engine's threads are idle.
    void settle() { ASSERT_TRUE(engine->settle()) << "the engine did not settle"; }

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

    std::string variant(const std::string& flag = "checkout") const {
        return json::parse(testing::read_file(flags))["flags"][flag]["defaultVariant"];
    }
    void set_variant(const std::string& value, const std::string& flag = "checkout") const {
        json document = json::parse(testing::read_file(flags));
        document["flags"][flag]["defaultVariant"] = value;
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
    // What a runtime that died right after journaling `state` leaves in the store, for a
    // mitigation with no incident (so that its check makes it active).
    void journal_only(const std::string& id, State state) {
        Mitigation next = *store->find_mitigation(id);
        const std::int64_t version = next.version;
        next.state = state;
        if (state == State::applying) {
            next.expires_at = clock.now() + std::chrono::minutes(30);
        }
        ASSERT_EQ(store->transition({next, version, clock.now(), "runtime", "crash test"}).outcome,
                  TransitionOutcome::done);
    }
    // A mitigation planned and approved by a process that is gone.
    void approved_by_an_earlier_process(const std::string& id) {
        Mitigation created = testing::make_mitigation(id, clock.now());
        created.proposal.incident_id.clear();
        // Where the policy still allows it: policy is asked again before the apply.
        created.proposal.environment = "dev";
        store->create_mitigation(created, "playbook:test", "r");
        const auto plan = registry->plan(created.proposal.action);
        ASSERT_TRUE(plan.ok()) << plan.error;
        Mitigation planned = created;
        planned.plan = plan.value;
        planned.plan->planned_at = clock.now();
        planned.state = State::planned;
        ASSERT_EQ(store->transition({planned, 1, clock.now(), "runtime", "planned"}).outcome,
                  TransitionOutcome::done);
        Mitigation approved = *store->find_mitigation(id);
        approved.state = State::approved;
        ASSERT_EQ(store->transition({approved, 2, clock.now(), "policy", "allowed"}).outcome,
                  TransitionOutcome::done);
    }

    testing::TemporaryDirectory directory;
    std::filesystem::path flags;
    Config config;
    ManualClock clock{*parse_rfc3339("2026-11-23T12:00:00Z")};
    std::unique_ptr<Metrics> metrics;
    std::unique_ptr<ProviderRegistry> registry;
    std::unique_ptr<Store> store;
    std::unique_ptr<Engine> engine;
};

TEST_F(EngineTest, AutoApprovedMitigationVerifiesWhenTheAlertResolvesAndRevertsAtItsTtl) {
    EXPECT_EQ(engine->accept_signals(alert("firing", "dev")).accepted, 1u);
    settle();
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
    engine->accept_signals(alert("resolved", "dev"));
    settle();
    EXPECT_EQ(only().state, State::active);
    EXPECT_EQ(store->find_incident(incidents[0].id)->status, IncidentStatus::resolved);

    clock.set(*mitigation.expires_at - std::chrono::milliseconds(1));
    settle();
    EXPECT_EQ(only().state, State::active);  // not a millisecond early
    clock.set(*mitigation.expires_at);
    settle();
    EXPECT_EQ(only().state, State::reverted);
    EXPECT_EQ(variant(), "on");
    EXPECT_THAT(journal(mitigation.id),
                ElementsAre(State::proposed, State::planned, State::approved, State::applying,
                            State::verifying, State::active, State::reverting, State::reverted));
    EXPECT_EQ(metrics->value("mitigate_reverts_total", {{"cause", "ttl"}}), 1);
    EXPECT_EQ(metrics->value("mitigate_applies_total"), 1);
    EXPECT_THAT(metrics->render(), HasSubstr("mitigate_signal_to_applied_seconds_count 1"));
    EXPECT_TRUE(store->verify_audit_chain().intact());
}

TEST_F(EngineTest, AMitigationWhoseAlertKeepsFiringIsRevertedAfterTheVerificationWindow) {
    engine->accept_signals(alert("firing", "dev"));
    settle();
    const Mitigation mitigation = only();
    ASSERT_EQ(mitigation.state, State::verifying);
    clock.advance(std::chrono::minutes(4));
    settle();
    EXPECT_EQ(only().state, State::verifying);
    clock.advance(std::chrono::minutes(1));
    settle();
    EXPECT_EQ(only().state, State::reverted);
    EXPECT_EQ(variant(), "on");
    EXPECT_THAT(store->journal(mitigation.id)[5].reason, HasSubstr("verification failed"));
    EXPECT_EQ(metrics->value("mitigate_reverts_total", {{"cause", "verification"}}), 1);
}

TEST_F(EngineTest, ARetriedWebhookIsStoredOnceAndOpensOneIncident) {
    EXPECT_EQ(engine->accept_signals(alert("firing", "dev")).accepted, 1u);
    const SignalIntake again = engine->accept_signals(alert("firing", "dev"));
    EXPECT_EQ(again.accepted, 0u);
    EXPECT_EQ(again.duplicates, 1u);
    settle();
    engine->accept_signals(alert("firing", "dev"));  // Alertmanager's repeat_interval
    settle();
    ASSERT_EQ(store->list_incidents({}).size(), 1u);
    EXPECT_EQ(all().size(), 1u);
    EXPECT_EQ(metrics->value("mitigate_signals_duplicate_total"), 2);
    const Incident incident = store->list_incidents({}).front();
    EXPECT_EQ(incident.counters, (Incident::Counters{1, 1, 1}));
    EXPECT_THAT(store->incident_alerts(incident.id, 10),
                ElementsAre(::testing::Field(&IncidentAlert::fingerprint, "fp1")));
}

TEST_F(EngineTest, AFullBacklogRefusesSignalsWithoutStoringAny) {
    EngineConfig small;
    small.pending_signal_limit = 1;
    start_engine(small);
    // The store is slow (another process holds its write lock): the first webhook waits
    // for its commit, and fills the backlog.
    testing::StoreWriteLock slow(directory / "m.db");
    std::promise<SignalIntake> first;
    engine->accept_signals(alert("firing", "dev", "off", "fp1"),
                           [&first](SignalIntake answer) { first.set_value(answer); });
    ASSERT_TRUE(engine->queued_signals() == 1u);
    const SignalIntake refused = engine->accept_signals(alert("firing", "dev", "off", "fp2"));
    EXPECT_TRUE(refused.refused);
    EXPECT_THAT(refused.message, HasSubstr("backlog is full"));
    EXPECT_EQ(metrics->value("mitigate_signals_refused_total"), 1);
    slow.release();
    EXPECT_EQ(first.get_future().get().accepted, 1u);  // the one that waited is stored
    settle();
    EXPECT_EQ(store->list_incidents({}).size(), 1u);
    EXPECT_TRUE(store->find_signals({alert("firing", "dev", "off", "fp2")[0].id}).empty());
    // A webhook larger than the whole backlog is taken when nothing waits (it would be
    // refused forever otherwise).
    auto two = alert("firing", "dev", "off", "fp3");
    const auto other = alert("firing", "dev", "off", "fp4");
    two.insert(two.end(), other.begin(), other.end());
    EXPECT_EQ(engine->accept_signals(two).accepted, 2u);
}

TEST_F(EngineTest, QuorumOfTwoDistinctSreApproversRefusingSelfOutsidersAndRepeats) {
    engine->accept_signals(alert("firing", "stage"));
    settle();
    const Mitigation pending = only();
    ASSERT_EQ(pending.state, State::pending_approval);
    EXPECT_EQ(variant(), "on");

    EXPECT_EQ(engine->approve(approval(pending.id, "mallory", {"web"})).status,
              RequestStatus::forbidden);
    EXPECT_EQ(engine->approve(approval(pending.id, "alice")).status, RequestStatus::done);
    const RequestResult twice = engine->approve(approval(pending.id, "alice"));
    EXPECT_EQ(twice.status, RequestStatus::conflict);
    EXPECT_THAT(twice.message, HasSubstr("distinct people"));
    EXPECT_EQ(only().state, State::pending_approval);
    settle();
    EXPECT_EQ(variant(), "on");  // one approval of two applies nothing

    const RequestResult second = engine->approve(approval(pending.id, "bob"));
    EXPECT_EQ(second.status, RequestStatus::done);
    EXPECT_EQ(second.mitigation->state, State::approved);
    settle();
    EXPECT_EQ(only().state, State::verifying);
    EXPECT_EQ(variant(), "off");
    const RequestResult late = engine->approve(approval(pending.id, "carol"));
    EXPECT_EQ(late.status, RequestStatus::conflict);
    EXPECT_THAT(late.message, HasSubstr("is verifying"));

    // Every refusal is in the audit log with who and why.
    int refusals = 0;
    for (const AuditRecord& record : store->audit_tail(100)) {
        refusals += record.event == "approval.refused" ? 1 : 0;
    }
    EXPECT_EQ(refusals, 3);
}

TEST_F(EngineTest, AProposerCannotApproveTheirOwnMitigation) {
    engine->accept_signals(alert("firing", "stage"));
    settle();
    // A person proposes a second change on another flag value of the same incident.
    const auto incident = store->list_incidents({}).front();
    ProposalRequest request;
    request.action = {
        "flags", "flag.set", "checkout", {{"variant", "half"}}, std::chrono::minutes(10), "half"};
    request.incident_id = incident.id;
    request.proposed_by = "alice";
    const RequestResult proposed = engine->propose(request);
    ASSERT_EQ(proposed.status, RequestStatus::done);
    // The first mitigation (playbook) holds the target: rejecting it frees the queue.
    const auto playbook_one = store->list_mitigations(in_states({State::pending_approval}, 10));
    ASSERT_EQ(playbook_one.size(), 1u);
    EXPECT_EQ(engine
                  ->approve({playbook_one[0].id,
                             "carol",
                             {"sre"},
                             ApprovalVerdict::reject,
                             ApprovalChannel::cli,
                             "not now",
                             ""})
                  .status,
              RequestStatus::done);
    settle();
    const Mitigation mine = *store->find_mitigation(proposed.mitigation->id);
    ASSERT_EQ(mine.state, State::pending_approval);
    const RequestResult self = engine->approve(approval(mine.id, "alice"));
    EXPECT_EQ(self.status, RequestStatus::forbidden);
    EXPECT_THAT(self.message, HasSubstr("proposed this mitigation"));
}

TEST_F(EngineTest, PendingApprovalsExpire) {
    engine->accept_signals(alert("firing", "stage"));
    settle();
    const Mitigation pending = only();
    clock.advance(std::chrono::minutes(31));
    const RequestResult late = engine->approve(approval(pending.id, "alice"));
    EXPECT_EQ(late.status, RequestStatus::conflict);
    EXPECT_THAT(late.message, HasSubstr("approval window closed"));
    settle();
    EXPECT_EQ(only().state, State::expired);
}

TEST_F(EngineTest, DenyAndDryRunApplyNothing) {
    engine->accept_signals(alert("firing", "prod"));  // no rule: default deny
    engine->accept_signals(alert("firing", "qa", "half", "fp2"));
    settle();
    std::vector<State> states;
    for (const Mitigation& mitigation : all()) {
        states.push_back(mitigation.state);
    }
    EXPECT_THAT(states, ::testing::UnorderedElementsAre(State::denied, State::dry_run));
    EXPECT_EQ(variant(), "on");
    EXPECT_EQ(metrics->value("mitigate_decisions_total", {{"effect", "deny"}}), 1);
    EXPECT_EQ(metrics->value("mitigate_decisions_total", {{"effect", "dry_run"}}), 1);
}

TEST_F(EngineTest, ADryRunSignalIsDecidedByPolicyButNeverApplied) {
    auto signals = alert("firing", "dev");
    signals[0].dry_run = true;
    engine->accept_signals(signals);
    settle();
    const Mitigation mitigation = only();
    EXPECT_EQ(mitigation.state, State::dry_run);
    EXPECT_THAT(mitigation.decision->summary, HasSubstr("policy would have said allow"));
    EXPECT_EQ(variant(), "on");
}

TEST_F(EngineTest, ProposalsOnOneTargetAreSerializedAndEqualOnesMerge) {
    engine->accept_signals(alert("firing", "dev", "off", "fp1"));
    settle();
    const Mitigation first = only();
    ASSERT_EQ(first.state, State::verifying);
    // The same change again (another alert, same variant): merged, not a second one.
    const auto incident = store->list_incidents({}).front();
    ProposalRequest same;
    same.action = first.proposal.action;
    same.incident_id = incident.id;
    same.proposed_by = "alice";
    const RequestResult merged = engine->propose(same);
    EXPECT_EQ(merged.mitigation->id, first.id);
    // A different change on the same flag: queued behind the first.
    ProposalRequest different = same;
    different.action = {
        "flags", "flag.set", "checkout", {{"variant", "half"}}, std::chrono::minutes(10), "half"};
    const RequestResult queued = engine->propose(different);
    settle();
    EXPECT_EQ(store->find_mitigation(queued.mitigation->id)->state, State::proposed);
    EXPECT_EQ(variant(), "off");
    // The first ends (a person reverts it); the queued one is planned from the state the
    // revert left, and runs.
    const RequestResult reverting = engine->revert(first.id, "alice", "done with it");
    EXPECT_EQ(reverting.status, RequestStatus::accepted);
    EXPECT_EQ(reverting.mitigation->state, State::reverting);
    settle();
    EXPECT_EQ(store->find_mitigation(first.id)->state, State::reverted);
    const Mitigation second = *store->find_mitigation(queued.mitigation->id);
    EXPECT_EQ(second.state, State::verifying);
    EXPECT_EQ(variant(), "half");
    // Its inverse is what was there when it was planned: the revert restores "on".
    EXPECT_EQ(engine->revert(second.id, "alice", "done").status, RequestStatus::accepted);
    settle();
    EXPECT_EQ(variant(), "on");
    EXPECT_EQ(metrics->value("mitigate_proposals_merged_total"), 1);
    EXPECT_EQ(metrics->value("mitigate_reverts_total", {{"cause", "human"}}), 2);
}

TEST_F(EngineTest, ARevertThatWouldClobberAPersonsChangeBecomesAConflictThenIsKept) {
    engine->accept_signals(alert("firing", "dev"));
    settle();
    const Mitigation mitigation = only();
    set_variant("half");  // someone changed the flag by hand since
    clock.advance(std::chrono::minutes(31));
    settle();
    EXPECT_EQ(only().state, State::conflict);
    EXPECT_EQ(variant(), "half");  // not clobbered
    EXPECT_EQ(metrics->value("mitigate_failures_total", {{"state", "conflict"}}), 1);
    EXPECT_THAT(store->journal(mitigation.id).back().reason, HasSubstr("a person must decide"));
    EXPECT_EQ(engine->keep(mitigation.id, "alice", "").status, RequestStatus::invalid);
    const RequestResult kept = engine->keep(mitigation.id, "alice", "half is the new normal");
    EXPECT_EQ(kept.status, RequestStatus::done);
    EXPECT_EQ(only().state, State::kept);
    EXPECT_THAT(store->journal(mitigation.id).back().reason, HasSubstr("half is the new normal"));
}

TEST_F(EngineTest, RevertOnIncidentResolutionWhenConfigured) {
    EngineConfig settings;
    settings.revert_when_incident_resolves = true;
    start_engine(settings);
    engine->accept_signals(alert("firing", "dev"));
    settle();
    engine->accept_signals(alert("resolved", "dev"));
    settle();  // verified by the resolution, then reverted because of it
    EXPECT_EQ(only().state, State::reverted);
    EXPECT_EQ(metrics->value("mitigate_reverts_total", {{"cause", "incident_resolved"}}), 1);
}

TEST_F(EngineTest, AnApplyOnAStateThatChangedSinceThePlanFailsWithoutEffect) {
    engine->stop();
    approved_by_an_earlier_process("m1");
    set_variant("half", "checkout-m1");
    start_engine(EngineConfig{});
    settle();
    EXPECT_EQ(store->find_mitigation("m1")->state, State::failed);
    EXPECT_THAT(store->journal("m1").back().reason, HasSubstr("apply refused (conflict)"));
    EXPECT_EQ(variant("checkout-m1"), "half");
}

TEST_F(EngineTest, ACrashAfterJournalingApplyingIsFinishedAtTheNextStart) {
    engine->stop();
    approved_by_an_earlier_process("m1");
    journal_only("m1", State::applying);  // died before the provider was called
    EXPECT_EQ(variant("checkout-m1"), "on");
    start_engine(EngineConfig{});
    settle();
    EXPECT_EQ(store->find_mitigation("m1")->state, State::active);
    EXPECT_EQ(variant("checkout-m1"), "off");
}

TEST_F(EngineTest, ACrashAfterTheProviderAppliedIsNotAppliedTwice) {
    engine->stop();
    approved_by_an_earlier_process("m1");
    journal_only("m1", State::applying);
    const Mitigation applying = *store->find_mitigation("m1");
    // The provider call went through; the runtime died before journaling "verifying".
    ASSERT_TRUE(registry->apply(applying.proposal.action, *applying.plan).ok());
    const auto written = std::filesystem::last_write_time(flags);
    start_engine(EngineConfig{});
    settle();
    EXPECT_EQ(store->find_mitigation("m1")->state, State::active);
    EXPECT_EQ(std::filesystem::last_write_time(flags), written);  // no second write
    EXPECT_THAT(store->journal("m1")[4].reason, HasSubstr("already applied"));
    // And it still reverts at the TTL fixed when applying was journaled.
    clock.advance(std::chrono::minutes(30));
    settle();
    EXPECT_EQ(store->find_mitigation("m1")->state, State::reverted);
    EXPECT_EQ(variant("checkout-m1"), "on");
}

TEST_F(EngineTest, ACrashDuringRevertIsFinishedAtTheNextStart) {
    engine->stop();
    approved_by_an_earlier_process("m1");
    start_engine(EngineConfig{});
    settle();
    ASSERT_EQ(store->find_mitigation("m1")->state, State::active);
    engine->stop();
    journal_only("m1", State::reverting);  // died before the provider was called
    EXPECT_EQ(variant("checkout-m1"), "off");
    start_engine(EngineConfig{});
    settle();
    EXPECT_EQ(store->find_mitigation("m1")->state, State::reverted);
    EXPECT_EQ(variant("checkout-m1"), "on");
}

TEST_F(EngineTest, APlanForAnUnknownTargetFailsTheMitigationWithTheReason) {
    ProposalRequest request;
    request.action = {
        "flags", "flag.set", "no-such-flag", {{"variant", "off"}}, std::chrono::minutes(10),
        "test"};
    request.proposed_by = "alice";
    request.environment = "dev";
    const RequestResult proposed = engine->propose(request);
    settle();
    const Mitigation failed = *store->find_mitigation(proposed.mitigation->id);
    EXPECT_EQ(failed.state, State::failed);
    EXPECT_THAT(store->journal(failed.id).back().reason, HasSubstr("no flag \"no-such-flag\""));
}

TEST_F(EngineTest, IncidentsWhosePlaybooksACrashInterruptedRunThemAtTheNextStart) {
    engine->stop();
    // An earlier process stored and grouped the signal, and died before the playbooks ran.
    store->record_signals(
        encode_signals(alert("firing", "dev")), [this](const std::vector<const Signal*>& fresh) {
            GroupedSignals grouped;
            Incident incident;
            incident.id = "inc_interrupted";
            incident.group_key = "alertname=HighErrorRate,service=checkout,environment=dev";
            incident.title = "HighErrorRate on checkout (dev)";
            incident.service = "checkout";
            incident.environment = "dev";
            incident.labels = fresh[0]->labels;
            incident.opened_at = clock.now();
            grouped.incidents.push_back({incident, true});
            grouped.alerts.push_back({incident.id, {"fp1", true, fresh[0]->id, clock.now()}});
            grouped.counters[incident.id] = {1, 1, 1};
            grouped.signal_incidents = {incident.id};
            return grouped;
        });
    ASSERT_EQ(store->incidents_awaiting_playbooks(10).size(), 1u);
    start_engine(EngineConfig{});
    settle();
    EXPECT_EQ(only().state, State::verifying);
    EXPECT_EQ(only().proposal.incident_id, "inc_interrupted");
    EXPECT_TRUE(store->incidents_awaiting_playbooks(10).empty());
    // The incident's alert resolves into the incident loaded at start.
    engine->accept_signals(alert("resolved", "dev"));
    settle();
    EXPECT_EQ(store->find_incident("inc_interrupted")->status, IncidentStatus::resolved);
    EXPECT_EQ(only().state, State::active);
}

TEST_F(EngineTest, SignalsAnOlderMitigateStoredButNeverGroupedOpenOneIncidentAndOneMitigation) {
    engine->stop();
    // As an older mitigate left it: the signal stored, acknowledged, not yet grouped.
    const Signal left = alert("firing", "dev")[0];
    testing::execute_sql(directory / "m.db",
                         "INSERT INTO signals (id, received_at_ms, processed, incident_id, body) "
                         "VALUES ('" +
                             left.id + "', 0, 0, '', '" + json(left).dump() + "')");
    start_engine(EngineConfig{});
    settle();
    EXPECT_EQ(store->list_incidents({}).size(), 1u);
    EXPECT_EQ(only().state, State::verifying);
    EXPECT_TRUE(store->ungrouped_signals(10).empty());
    for (const AuditRecord& record : store->audit_tail(100)) {
        EXPECT_NE(record.event, "proposal.merged");  // its playbooks ran once
    }
}

}  // namespace
}  // namespace mitigate

namespace mitigate {
namespace {

// A playbook named `name` proposing `variant` on the checkout flag, with `metadata` (Lua
// fields such as priority and cooldown) and `match` (more conditions in its `matches`).
std::string flag_playbook(const std::string& name, const std::string& variant,
                          const std::string& metadata, const std::string& match = "") {
    return "return { name = \"" + name + "\", " + metadata +
           " matches = { alerts = { \"HighErrorRate\" }" + (match.empty() ? "" : ", " + match) +
           " },\n"
           "  propose = function(incident)\n"
           "    return { { provider = \"flags\", action = \"flag.set\", target = "
           "\"checkout\",\n"
           "               parameters = { variant = \"" +
           variant +
           "\" }, ttl = \"1m\", reason = \"r\" } }\n"
           "  end }\n";
}

TEST_F(EngineTest, APlaybookInItsCooldownIsNotRunEvenAfterARestartAndRunsAgainAfter) {
    const std::vector<std::pair<std::string, std::string>> cooling = {
        {"cooling.lua", flag_playbook("cooling", "off", "cooldown = \"10m\",")}};
    start_engine(EngineConfig{}, cooling);
    engine->accept_signals(alert("firing", "dev", "off", "fp1"));
    settle();
    ASSERT_EQ(store->list_mitigations({}).size(), 1u);
    engine->accept_signals(alert("resolved", "dev", "off", "fp1"));
    clock.advance(std::chrono::minutes(2));  // verified, then reverted at its 1m TTL
    settle();
    ASSERT_EQ(variant(), "on");

    // A new incident 2 minutes after the proposal: within the cooldown, and after a restart.
    start_engine(EngineConfig{}, cooling);
    engine->accept_signals(alert("firing", "dev", "off", "fp2"));
    settle();
    EXPECT_EQ(store->list_mitigations({}).size(), 1u);
    int skipped = 0;
    for (const AuditRecord& record : store->audit_tail(200)) {
        if (record.event == "playbook.skipped") {
            ++skipped;
            EXPECT_EQ(record.details.value("playbook", ""), "cooling");
            EXPECT_EQ(record.details.value("until", ""), "2026-11-23T12:10:00Z");
        }
    }
    EXPECT_EQ(skipped, 1);
    engine->accept_signals(alert("resolved", "dev", "off", "fp2"));
    settle();

    clock.advance(std::chrono::minutes(9));  // 11 minutes after the first proposal
    engine->accept_signals(alert("firing", "dev", "off", "fp3"));
    settle();
    EXPECT_EQ(store->list_mitigations({}).size(), 2u);
}

TEST_F(EngineTest, AProposalThatWasNeverTriedStartsNoCooldown) {
    // Stage needs approvals; the alert flaps: the first proposal is withdrawn when its
    // incident resolves, untried. The next incident must not be left with nothing.
    const std::vector<std::pair<std::string, std::string>> cooling = {
        {"cooling.lua", flag_playbook("cooling", "off", "cooldown = \"30m\",")}};
    start_engine(EngineConfig{}, cooling);
    engine->accept_signals(alert("firing", "stage", "off", "fp1"));
    settle();
    engine->accept_signals(alert("resolved", "stage", "off", "fp1"));
    settle();
    ASSERT_EQ(store->list_mitigations({}).front().state, State::expired);
    clock.advance(std::chrono::minutes(1));
    engine->accept_signals(alert("firing", "stage", "off", "fp2"));
    settle();
    const auto made = store->list_mitigations({});
    ASSERT_EQ(made.size(), 2u);
    EXPECT_EQ(made.front().state, State::pending_approval);
}

TEST_F(EngineTest, APlaybookInCooldownIsNotAuditedForIncidentsItDoesNotMatch) {
    const std::vector<std::pair<std::string, std::string>> cooling = {
        {"cooling.lua",
         flag_playbook("cooling", "off", "cooldown = \"30m\",", "environments = { \"dev\" }")}};
    start_engine(EngineConfig{}, cooling);
    engine->accept_signals(alert("firing", "dev", "off", "fp1"));
    settle();
    engine->accept_signals(alert("firing", "qa", "off", "fp2"));  // not a match
    settle();
    for (const AuditRecord& record : store->audit_tail(200)) {
        EXPECT_NE(record.event, "playbook.skipped");
    }
}

TEST_F(EngineTest, PlaybooksRunByPriorityAndTheHigherOnesMitigationGoesFirst) {
    start_engine(EngineConfig{}, {{"a-low.lua", flag_playbook("low", "half", "priority = 1,")},
                                  {"b-high.lua", flag_playbook("high", "off", "priority = 10,")}});
    engine->accept_signals(alert("firing", "dev", "off", "fp1"));
    settle();
    std::vector<Mitigation> made = store->list_mitigations({});  // newest first
    ASSERT_EQ(made.size(), 2u);
    EXPECT_EQ(made[1].proposal.playbook, "high");
    EXPECT_EQ(made[1].state, State::verifying);
    EXPECT_EQ(made[0].proposal.playbook, "low");
    EXPECT_EQ(made[0].state, State::proposed);  // waits for the higher one on the target
    EXPECT_EQ(variant(), "off");
}

}  // namespace
}  // namespace mitigate
