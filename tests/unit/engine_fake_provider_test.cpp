// The engine driven with providers in memory (tests/support/fake_providers.h), a manual
// clock and a real SQLite store, no process: what a real provider does only on a bad day,
// on demand. A failure is one mitigation's alone; reverts never wait behind a provider
// that does not answer; a person's request is answered while a provider call hangs; a
// step that loses a race with a person's request does nothing; a crash at any point
// between a journal entry and its effect is finished at the next start.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>

#include "runtime/core/time_format.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/recent_history.h"
#include "runtime/metrics/metrics.h"
#include "runtime/policy/policy_set.h"
#include "runtime/store/sqlite_store.h"
#include "tests/support/engine_with_fake_providers.h"
#include "tests/support/fake_providers.h"
#include "tests/support/store_fixtures.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using testing::FakeFault;
using ::testing::HasSubstr;

TEST_F(EngineWithFakeProviders, AThrowingPlanIsThatMitigationsAloneAndATtlRevertHappensOnTime) {
    const std::string applied = propose("fast", "a");
    settle();
    ASSERT_EQ(state_of(applied), State::active);
    // Every plan of another target on the same provider throws (a bug), from now on.
    providers.fail("plan", "b", FakeFault::throw_error);
    const std::string broken = propose("fast", "b");
    settle();
    EXPECT_EQ(state_of(broken), State::proposed);  // kept, to be retried
    EXPECT_EQ(audited("mitigation.step_failed", broken), 1);
    EXPECT_EQ(metrics->value("mitigate_step_failures_total", {{"step", "plan"}}), 1);

    // The first one's TTL passes: it is reverted on time, whatever the other does.
    clock.advance(std::chrono::minutes(30));
    settle();
    EXPECT_EQ(state_of(applied), State::reverted);
    EXPECT_EQ(providers.value("fast", "a"), "on");
    // The broken one was retried (its backoff is long past), and failed again, alone.
    EXPECT_EQ(state_of(broken), State::proposed);
    EXPECT_EQ(providers.calls("plan", "b"), 2);
    EXPECT_EQ(audited("mitigation.step_failed", broken), 2);

    // Once the provider answers again, it goes on.
    providers.clear_faults();
    clock.advance(std::chrono::minutes(1));
    settle();
    EXPECT_EQ(state_of(broken), State::active);
}

TEST_F(EngineWithFakeProviders, AMalformedAnswerFailsThatMitigationWithTheFieldNamed) {
    const std::string healthy = propose("fast", "a", "dev", std::chrono::minutes(1));
    providers.fail("plan", "b", FakeFault::malformed);
    const std::string malformed = propose("fast", "b");
    settle();
    EXPECT_EQ(state_of(healthy), State::active);
    EXPECT_EQ(state_of(malformed), State::failed);
    EXPECT_THAT(store->journal(malformed).back().reason, HasSubstr("answer.blast_radius.ratio"));
    EXPECT_EQ(providers.value("fast", "b"), "on");
    clock.advance(std::chrono::minutes(1));
    settle();
    EXPECT_EQ(state_of(healthy), State::reverted);
}

TEST_F(EngineWithFakeProviders, MalformedApplyCheckAndRevertAnswersAreRetriedNeverGuessed) {
    // An apply whose answer breaks the contract: the outcome is unknown, so the engine
    // reads the target; the change is not there, so nothing is applied twice by guessing.
    providers.fail("apply", "a", FakeFault::malformed, 1);
    const std::string id = propose("fast", "a", "dev", std::chrono::minutes(1));
    settle();
    EXPECT_EQ(state_of(id), State::failed);
    EXPECT_EQ(providers.writes("a"), 0);
    // A malformed revert answer leaves it reverting, retried until a real answer.
    const std::string other = propose("fast", "b", "dev", std::chrono::minutes(1));
    settle();
    ASSERT_EQ(state_of(other), State::active);
    providers.fail("revert", "b", FakeFault::malformed, 1);
    clock.advance(std::chrono::minutes(1));
    settle();
    EXPECT_EQ(state_of(other), State::reverting);
    clock.advance(std::chrono::seconds(1));
    settle();
    EXPECT_EQ(state_of(other), State::reverted);
    EXPECT_EQ(providers.value("fast", "b"), "on");
}

TEST_F(EngineWithFakeProviders, AnApproveIsAnsweredWhileAProviderCallHangs) {
    start(4);
    providers.fail("apply", "a", FakeFault::hang);
    const std::string stuck = propose("slow", "a");
    ASSERT_TRUE(eventually([&] { return providers.hanging() == 1; }));
    const std::string pending = propose("fast", "b", "stage");
    ASSERT_TRUE(eventually([&] { return state_of(pending) == State::pending_approval; }));

    ApprovalRequest approval;
    approval.mitigation_id = pending;
    approval.identity = "bob";
    approval.groups = {"sre"};
    const RequestResult approved = engine->approve(approval);  // returns: nothing waits
    EXPECT_EQ(approved.status, RequestStatus::done) << approved.message;
    EXPECT_EQ(providers.hanging(), 1);  // the other call is still hanging
    // And the approved one is applied meanwhile, on its own provider.
    EXPECT_TRUE(eventually([&] { return state_of(pending) == State::active; }));
    EXPECT_EQ(providers.hanging(), 1);
    EXPECT_EQ(state_of(stuck), State::applying);

    providers.release();  // the slow provider gives up: unknown outcome, read back
    providers.clear_faults();
    settle();
    EXPECT_EQ(state_of(stuck), State::failed);  // the read shows nothing changed
    EXPECT_EQ(providers.value("slow", "a"), "on");
}

TEST_F(EngineWithFakeProviders, ATtlRevertIsNotStarvedByHangingPlansAndApplies) {
    start(2);  // one general worker, one reserved for reverts and store-only steps
    const std::string applied = propose("fast", "a", "dev", std::chrono::minutes(5));
    settle();
    ASSERT_EQ(state_of(applied), State::active);
    // Every general worker is stuck in a provider call that does not answer.
    providers.fail("plan", "b", FakeFault::hang);
    propose("slow", "b");
    ASSERT_TRUE(eventually([&] { return providers.hanging() == 1; }));
    propose("fast", "c");  // waits: no general worker is free
    clock.advance(std::chrono::minutes(5));
    engine->wake();
    EXPECT_TRUE(eventually([&] { return state_of(applied) == State::reverted; }));
    EXPECT_EQ(providers.value("fast", "a"), "on");
    EXPECT_EQ(providers.hanging(), 1);
}

TEST_F(EngineWithFakeProviders, PeopleAreAnsweredAtOnceWhileARevertHangs) {
    const std::string id = propose("fast", "a");
    settle();
    ASSERT_EQ(state_of(id), State::active);
    providers.fail("revert", "a", FakeFault::hang, 1);
    const RequestResult reverting = engine->revert(id, "carol", "done");
    ASSERT_EQ(reverting.status, RequestStatus::accepted);
    ASSERT_TRUE(eventually([&] { return providers.hanging() == 1; }));
    EXPECT_EQ(engine->keep(id, "carol", "changed my mind").status, RequestStatus::conflict);
    EXPECT_EQ(engine->revert(id, "carol", "again").status, RequestStatus::conflict);
    providers.release();  // gives up unavailable: retried
    settle();
    clock.advance(std::chrono::seconds(1));
    settle();
    EXPECT_EQ(state_of(id), State::reverted);
    EXPECT_EQ(providers.writes("a"), 2);  // one apply, one revert
}

TEST_F(EngineWithFakeProviders, ARequestThatLosesARaceIsDecidedAgainOnTheRowThatWon) {
    const std::string id = propose("fast", "a", "stage");
    settle();
    ASSERT_EQ(state_of(id), State::pending_approval);
    // Something moved it after the engine's index last saw it (as the engine itself does
    // between its commit and its index update): the index is one version behind.
    const Mitigation stored = *store->find_mitigation(id);
    ASSERT_EQ(store->transition({stored, stored.version, clock.now(), "elsewhere", "bump"}).outcome,
              TransitionOutcome::done);
    ApprovalRequest approval;
    approval.mitigation_id = id;
    approval.identity = "bob";
    approval.groups = {"sre"};
    const RequestResult approved = engine->approve(approval);
    EXPECT_EQ(approved.status, RequestStatus::done) << approved.message;
    settle();
    EXPECT_EQ(state_of(id), State::active);
}

TEST_F(EngineWithFakeProviders, AProposalThatCouldNotBeReadBackIsRefusedNotStored) {
    ProposalRequest request;
    request.action = {"fast", "set", "a", {{"value", "off"}}, std::chrono::minutes(30), ""};
    request.proposed_by = "alice";
    const RequestResult refused = engine->propose(request);
    EXPECT_EQ(refused.status, RequestStatus::invalid);
    EXPECT_THAT(refused.message, HasSubstr("action.reason"));
    EXPECT_TRUE(store->list_mitigations({}).empty());
}

TEST_F(EngineWithFakeProviders, APersonsRevertDuringAHangingCheckWinsAndTheStepStops) {
    const std::string incident = open_incident("one", "dev");
    providers.fail("check", "a", FakeFault::hang, 1);
    const std::string id = propose_for(incident);
    ASSERT_TRUE(eventually([&] { return providers.hanging() == 1; }));
    ASSERT_EQ(state_of(id), State::verifying);  // applied; its check is in the provider
    const RequestResult reverting = engine->revert(id, "carol", "not this one");
    ASSERT_EQ(reverting.status, RequestStatus::accepted);
    providers.release();
    settle();
    EXPECT_EQ(state_of(id), State::reverted);
    EXPECT_EQ(providers.value("fast", "a"), "on");
    std::vector<State> journal;
    for (const JournalEntry& entry : store->journal(id)) {
        journal.push_back(entry.to);
    }
    EXPECT_THAT(journal, ::testing::ElementsAre(State::proposed, State::planned, State::approved,
                                                State::applying, State::verifying, State::reverting,
                                                State::reverted));
}

TEST_F(EngineWithFakeProviders, AFailingRevertIsRetriedWithGrowingBackoffAndAudited) {
    const std::string id = propose("fast", "a", "dev", std::chrono::minutes(1));
    settle();
    providers.fail("revert", "a", FakeFault::unavailable, 3);
    clock.advance(std::chrono::minutes(1));
    settle();
    EXPECT_EQ(state_of(id), State::reverting);
    EXPECT_EQ(providers.calls("revert", "a"), 1);
    clock.advance(std::chrono::milliseconds(999));  // first retry after 1 s
    settle();
    EXPECT_EQ(providers.calls("revert", "a"), 1);
    clock.advance(std::chrono::milliseconds(1));
    settle();
    EXPECT_EQ(providers.calls("revert", "a"), 2);
    clock.advance(std::chrono::seconds(1));  // then 2 s
    settle();
    EXPECT_EQ(providers.calls("revert", "a"), 2);
    clock.advance(std::chrono::seconds(1));
    settle();
    EXPECT_EQ(providers.calls("revert", "a"), 3);
    clock.advance(std::chrono::seconds(4));
    settle();
    EXPECT_EQ(state_of(id), State::reverted);
    EXPECT_EQ(audited("mitigation.step_failed", id), 3);
    EXPECT_EQ(metrics->value("mitigate_step_failures_total", {{"step", "revert"}}), 3);
}

TEST_F(EngineWithFakeProviders,
       ARevertFailingForLongIsLoudOnTheMitigationCountedAndAuditedSparingly) {
    const std::string id = propose("fast", "a", "dev", std::chrono::minutes(1));
    settle();
    EXPECT_FALSE(engine->retry_of(id));
    providers.fail("revert", "a", FakeFault::unavailable, 12);
    clock.advance(std::chrono::minutes(1));
    settle();
    for (int attempt = 2; attempt <= 12; ++attempt) {
        clock.advance(std::chrono::seconds(30));  // the longest backoff
        settle();
    }
    EXPECT_EQ(providers.calls("revert", "a"), 12);
    EXPECT_EQ(state_of(id), State::reverting);
    const auto retry = engine->retry_of(id);
    ASSERT_TRUE(retry);
    EXPECT_EQ(retry->attempts, 12);
    EXPECT_EQ(retry->step, "revert");
    EXPECT_THAT(retry->last_error, HasSubstr("revert failed (unavailable)"));
    EXPECT_EQ(retry->next_attempt_at, clock.now() + std::chrono::seconds(30));
    EXPECT_EQ(
        metrics->value("mitigate_revert_failures_total", {{"provider", "fast"}, {"action", "set"}}),
        12);
    EXPECT_EQ(audited("mitigation.step_failed", id), 4);  // attempts 1, 2, 3 and 10
    clock.advance(std::chrono::seconds(30));
    settle();
    EXPECT_EQ(state_of(id), State::reverted);
    EXPECT_FALSE(engine->retry_of(id));
}

TEST_F(EngineWithFakeProviders, ACrashAtEachPointIsFinishedAtTheNextStartWithoutASecondWrite) {
    // applying journaled, provider call made, answer lost: the next engine reads the
    // target, finds the change, and finishes without writing again.
    providers.fail("apply", "a", FakeFault::lost_answer, 1);
    providers.fail("check", "a", FakeFault::unavailable);  // and cannot read it yet
    const std::string id = propose("fast", "a");
    settle();
    EXPECT_EQ(state_of(id), State::applying);
    EXPECT_EQ(providers.writes("a"), 1);
    engine->stop();  // the process dies
    providers.clear_faults();
    start(2);
    settle();
    EXPECT_EQ(state_of(id), State::active);
    EXPECT_EQ(providers.writes("a"), 1);

    // reverting journaled, the provider never called: the next engine reverts.
    providers.fail("revert", "a", FakeFault::hang, 1);
    engine->revert(id, "carol", "done");
    ASSERT_TRUE(eventually([&] { return providers.hanging() == 1; }));
    providers.release();  // the call ends as the process dies
    engine->stop();
    EXPECT_EQ(state_of(id), State::reverting);
    start(2);
    settle();
    EXPECT_EQ(state_of(id), State::reverted);
    EXPECT_EQ(providers.value("fast", "a"), "on");
    EXPECT_EQ(providers.writes("a"), 2);
}

TEST_F(EngineWithFakeProviders, APersonsChangeOnTheTargetMakesTheRevertAConflictNotAClobber) {
    const std::string id = propose("fast", "a", "dev", std::chrono::minutes(1));
    settle();
    providers.set("fast", "a", "half");
    clock.advance(std::chrono::minutes(1));
    settle();
    EXPECT_EQ(state_of(id), State::conflict);
    EXPECT_EQ(providers.value("fast", "a"), "half");
    EXPECT_EQ(metrics->value("mitigate_failures_total", {{"state", "conflict"}}), 1);
}

TEST_F(EngineWithFakeProviders, ProposalsOnOneTargetRunOneAtATimeOldestFirst) {
    const std::string first = propose("fast", "a", "stage");
    ProposalRequest second_request;
    second_request.action = {"fast", "set", "a", {{"value", "half"}}, std::chrono::minutes(30),
                             "half"};
    second_request.proposed_by = "bob";
    second_request.environment = "dev";
    const std::string second = engine->propose(second_request).mitigation->id;
    settle();
    EXPECT_EQ(state_of(first), State::pending_approval);
    EXPECT_EQ(state_of(second), State::proposed);  // waits for the first to end
    EXPECT_EQ(providers.calls("plan", "a"), 1);
    ApprovalRequest reject;
    reject.mitigation_id = first;
    reject.identity = "carol";
    reject.groups = {"sre"};
    reject.verdict = ApprovalVerdict::reject;
    ASSERT_EQ(engine->approve(reject).status, RequestStatus::done);
    settle();
    EXPECT_EQ(state_of(second), State::active);
    EXPECT_EQ(providers.value("fast", "a"), "half");
}

// ---- Decisions hold at the moment of effect ------------------------------------------

// The policy below with the stage rule replaced: what an operator changed while a
// mitigation waited for its approvals, then restarted the daemon with.
std::string policy_where_stage(const std::string& stage_rule) {
    return "rules:\n"
           "  - name: dev-allow\n"
           "    match: {environment: dev}\n"
           "    effect: allow\n" +
           stage_rule;
}

class StaleApprovals : public EngineWithFakeProviders {
  protected:
    // A stage mitigation waiting for one sre approval under the original policy.
    std::string pending() {
        const std::string id = propose("fast", "a", "stage");
        settle();
        EXPECT_EQ(state_of(id), State::pending_approval);
        return id;
    }

    RequestResult approve(const std::string& id, const std::string& who = "carol") {
        ApprovalRequest approval;
        approval.mitigation_id = id;
        approval.identity = who;
        approval.groups = {"sre"};
        return engine->approve(approval);
    }

    // The details of the last transition of `id` into `state`, from the audit log.
    json transition_details(const std::string& id, State state) {
        json found;
        for (const AuditRecord& record : store->audit_tail(1000)) {
            if (record.event == "mitigation.transition" && record.subject == id &&
                record.details.value("to", "") == to_string(state)) {
                found = record.details;
            }
        }
        return found;
    }
};

TEST_F(StaleApprovals, AnApprovalArrivingAfterThePolicyTurnedToDenyAppliesNothing) {
    const std::string id = pending();
    const std::string approved_under = store->find_mitigation(id)->decision->policy_hash;
    start(2, policy_where_stage("  - name: stage-deny\n"
                                "    match: {environment: stage}\n"
                                "    effect: deny\n"));
    ASSERT_EQ(approve(id).status, RequestStatus::done);  // the approval itself is recorded
    settle();
    const Mitigation ended = *store->find_mitigation(id);
    EXPECT_EQ(ended.state, State::denied);
    EXPECT_EQ(providers.writes("a"), 0);
    EXPECT_EQ(providers.value("fast", "a"), "on");
    ASSERT_TRUE(ended.decision);
    EXPECT_NE(ended.decision->policy_hash, approved_under);  // the new decision, kept
    EXPECT_EQ(ended.decision->effect, DecisionEffect::deny);
    const JournalEntry last = store->journal(id).back();
    EXPECT_EQ(last.actor, "policy");
    EXPECT_THAT(last.reason, HasSubstr("not applied: policy decided again at the moment of "
                                       "effect (deny)"));
    EXPECT_THAT(last.reason, HasSubstr("stage-deny"));
    const json details = transition_details(id, State::denied);
    EXPECT_EQ(details.value("approved_under_policy_hash", ""), approved_under);
}

TEST_F(StaleApprovals, AFreezeAddedSinceTheDecisionStopsTheApply) {
    const std::string id = pending();
    start(2, std::string(policy) +
                 "freezes:\n"
                 "  - name: incident-freeze\n"
                 "    from: \"2026-11-23T00:00:00+00:00\"\n"
                 "    to: \"2026-11-24T00:00:00+00:00\"\n");
    ASSERT_EQ(approve(id).status, RequestStatus::done);
    settle();
    EXPECT_EQ(state_of(id), State::denied);
    EXPECT_THAT(store->journal(id).back().reason, HasSubstr("incident-freeze"));
    EXPECT_EQ(providers.writes("a"), 0);
}

TEST_F(StaleApprovals, ApprovalsThatNoLongerSufficeAreNotEnough) {
    const std::string id = pending();
    start(2, policy_where_stage("  - name: stage-two-sre\n"
                                "    match: {environment: stage}\n"
                                "    effect: require_approval\n"
                                "    approvals: {count: 2, groups: [sre]}\n"));
    // One approval was what the stored decision asked for: the request moves it on...
    ASSERT_EQ(approve(id).status, RequestStatus::done);
    settle();
    // ...but the policy now asks for two, and one person approved.
    EXPECT_EQ(state_of(id), State::denied);
    EXPECT_THAT(store->journal(id).back().reason,
                HasSubstr("it now needs 2 approvals from sre and has 1 that count"));
    EXPECT_EQ(providers.writes("a"), 0);
}

TEST_F(StaleApprovals, AnApproverOutsideTheGroupsThePolicyNowNamesDoesNotCount) {
    const std::string id = pending();
    start(2, policy_where_stage("  - name: stage-dba\n"
                                "    match: {environment: stage}\n"
                                "    effect: require_approval\n"
                                "    approvals: {count: 1, groups: [dba]}\n"));
    ASSERT_EQ(approve(id).status, RequestStatus::done);  // carol is in sre, not dba
    settle();
    EXPECT_EQ(state_of(id), State::denied);
    EXPECT_THAT(store->journal(id).back().reason, HasSubstr("from dba and has 0"));
}

TEST_F(StaleApprovals, UnderAnUnchangedPolicyItAppliesAndRecordsTheHashThatAllowedIt) {
    const std::string id = pending();
    const std::string hash = store->find_mitigation(id)->decision->policy_hash;
    start(2);  // a restart, same policy
    ASSERT_EQ(approve(id).status, RequestStatus::done);
    settle();
    EXPECT_EQ(state_of(id), State::active);
    EXPECT_EQ(providers.value("fast", "a"), "off");
    EXPECT_EQ(transition_details(id, State::applying).value("policy_hash", ""), hash);
    // The automatic path records it too.
    const std::string automatic = propose("fast", "b");
    settle();
    EXPECT_EQ(transition_details(automatic, State::applying).value("policy_hash", ""),
              store->find_mitigation(automatic)->decision->policy_hash);
}

TEST_F(StaleApprovals, AMitigationWhoseIncidentResolvedIsWithdrawnAndAnApprovalAfterIsRefused) {
    const std::string id = propose_for(open_incident("one", "stage"));
    settle();
    ASSERT_EQ(state_of(id), State::pending_approval);
    clock.advance(std::chrono::minutes(2));
    resolve_incident("one", "stage");
    settle();
    EXPECT_EQ(state_of(id), State::expired);
    EXPECT_THAT(store->journal(id).back().reason,
                HasSubstr("withdrawn before any effect: its incident resolved at"));
    const RequestResult late = approve(id);
    EXPECT_EQ(late.status, RequestStatus::conflict);
    EXPECT_EQ(providers.writes("a"), 0);
}

TEST_F(StaleApprovals, AnApprovedMitigationWhoseIncidentResolvedFirstIsNotApplied) {
    // Approved, then the incident resolved before the engine got to the apply (here: the
    // provider is held busy by another call, so the apply waits its turn).
    const std::string id = propose_for(open_incident("one", "stage"));
    settle();
    ASSERT_EQ(state_of(id), State::pending_approval);
    providers.fail("apply", "b", FakeFault::hang);
    const std::string busy = propose("fast", "b");
    ASSERT_TRUE(eventually([&] { return providers.hanging() == 1; }));
    ASSERT_EQ(approve(id).status, RequestStatus::done);
    resolve_incident("one", "stage");
    providers.release();
    providers.clear_faults();
    settle();
    EXPECT_EQ(state_of(id), State::expired);
    EXPECT_EQ(providers.writes("a"), 0);
    EXPECT_NE(state_of(busy), State::proposed);
}

// ---- The circuit breaker is fed ----------------------------------------------------

constexpr std::string_view breaker_policy = R"yaml(
rules:
  - name: dev-allow
    match: {environment: dev}
    effect: allow
constraints:
  circuit_breaker: {failures: 2, window: 1h}
)yaml";

class CircuitBreaker : public EngineWithFakeProviders {
  protected:
    CircuitBreaker() { start(2, breaker_policy); }

    // An incident of its own (service `service`) and a mitigation of it on `target`.
    std::string propose_for_incident(const std::string& service, const std::string& target) {
        return propose_for(open_incident(service, "dev"), target, std::chrono::hours(2));
    }

    // Applied, then its incident's alerts keep firing past the verification window.
    std::string fails_verification(const std::string& service, const std::string& target) {
        const std::string id = propose_for_incident(service, target);
        settle();
        EXPECT_EQ(state_of(id), State::verifying);
        clock.advance(std::chrono::minutes(6));
        settle();
        EXPECT_EQ(state_of(id), State::reverted);
        EXPECT_TRUE(store->find_mitigation(id)->failed_at);
        return id;
    }

    std::string breaker_explanation(const std::string& id) {
        const Mitigation mitigation = *store->find_mitigation(id);
        for (const ConstraintOutcome& constraint : mitigation.decision->constraints) {
            if (constraint.constraint == "circuit_breaker") {
                return (constraint.passed ? "held: " : "failed: ") + constraint.detail;
            }
        }
        return "not checked";
    }
};

TEST_F(CircuitBreaker, TwoFailedVerificationsStopTheThirdAndAResetLetsTheNextGo) {
    fails_verification("one", "a");
    fails_verification("two", "b");
    const std::string third = propose_for_incident("three", "c");
    settle();
    EXPECT_EQ(state_of(third), State::denied);
    EXPECT_THAT(breaker_explanation(third),
                HasSubstr("failed: 2 failures (failed apply, verification or revert) since"));
    EXPECT_EQ(providers.writes("c"), 0);

    const RequestResult reset = engine->reset_circuit_breaker("olga", "checked the flag backend");
    EXPECT_EQ(reset.status, RequestStatus::done) << reset.message;
    EXPECT_EQ(audited("policy.circuit_breaker_reset", ""), 1);
    clock.advance(std::chrono::seconds(1));
    const std::string fourth = propose_for_incident("four", "d");
    settle();
    EXPECT_EQ(state_of(fourth), State::verifying);
    EXPECT_EQ(providers.value("fast", "d"), "off");
}

TEST_F(CircuitBreaker, FailuresAndTheResetSurviveARestart) {
    fails_verification("one", "a");
    fails_verification("two", "b");
    start(2, breaker_policy);  // the failures are read back from the store
    const std::string third = propose_for_incident("three", "c");
    settle();
    EXPECT_EQ(state_of(third), State::denied);

    ASSERT_EQ(engine->reset_circuit_breaker("olga", "fixed").status, RequestStatus::done);
    clock.advance(std::chrono::seconds(1));
    start(2, breaker_policy);  // and so is the reset
    const std::string fourth = propose_for_incident("four", "d");
    settle();
    EXPECT_EQ(state_of(fourth), State::verifying);
}

TEST_F(CircuitBreaker, FailedAppliesAndRevertsThatConflictCountToo) {
    // An apply the provider refuses, and a revert that meets someone else's change.
    providers.fail("apply", "a", FakeFault::provider);
    const std::string refused = propose_for_incident("one", "a");
    settle();
    EXPECT_EQ(state_of(refused), State::failed);
    const std::string conflicted = propose_for_incident("two", "b");
    settle();
    providers.set("fast", "b", "changed by a person");
    ASSERT_EQ(engine->revert(conflicted, "carol", "done").status, RequestStatus::accepted);
    settle();
    EXPECT_EQ(state_of(conflicted), State::conflict);
    const std::string third = propose_for_incident("three", "c");
    settle();
    EXPECT_EQ(state_of(third), State::denied);
    EXPECT_THAT(breaker_explanation(third), HasSubstr("failed: 2 failures"));
}

TEST_F(CircuitBreaker, ARevertRetriedManyTimesCountsOnceAndSuccessesNeverCount) {
    const std::string fine = propose_for_incident("one", "a");
    settle();
    clock.advance(std::chrono::hours(2));  // TTL: reverted on time, not a failure
    settle();
    EXPECT_EQ(state_of(fine), State::reverted);
    EXPECT_FALSE(store->find_mitigation(fine)->failed_at);
    // A revert that fails again and again (the provider is down): one failure.
    const std::string stuck = propose_for_incident("two", "b");
    settle();
    providers.fail("revert", "b", FakeFault::unavailable, 3);
    ASSERT_EQ(engine->revert(stuck, "carol", "done").status, RequestStatus::accepted);
    for (int retry = 0; retry < 4; ++retry) {
        settle();
        clock.advance(std::chrono::seconds(31));
    }
    settle();
    EXPECT_EQ(state_of(stuck), State::reverted);
    const std::string third = propose_for_incident("three", "c");
    settle();
    EXPECT_EQ(state_of(third), State::verifying);
    EXPECT_THAT(breaker_explanation(third),
                HasSubstr("held: 1 failure (failed apply, verification or revert) since"));
}

TEST_F(CircuitBreaker, ARevertThatConflictsLongAfterTheStartCountsAlsoAfterARestart) {
    // Applied with a 2 h TTL: by the time its revert meets a person's change, its start is
    // long out of the breaker's 1 h window. The failure is what counts.
    const std::string old_one = propose_for_incident("one", "a");
    settle();
    resolve_incident("one", "dev");
    settle();
    ASSERT_EQ(state_of(old_one), State::active);
    clock.advance(std::chrono::minutes(90));
    propose("fast", "d");  // a decision meanwhile: the history is pruned
    settle();
    providers.set("fast", "a", "changed by a person");
    clock.advance(std::chrono::minutes(31));  // its TTL
    settle();
    ASSERT_EQ(state_of(old_one), State::conflict);
    fails_verification("two", "b");
    const std::string third = propose_for_incident("three", "c");
    settle();
    EXPECT_EQ(state_of(third), State::denied);
    start(2, breaker_policy);
    const std::string fourth = propose_for_incident("four", "c");
    settle();
    EXPECT_EQ(state_of(fourth), State::denied);  // read back: failures within the window
}

TEST_F(CircuitBreaker, ADrillThatFailsOnPurposeNeverStopsRealAutomation) {
    for (const char* target : {"a", "b"}) {
        ProposalRequest request;
        request.action = {"fast", "set", target, {{"value", "off"}}, std::chrono::hours(1),
                          "drill"};
        request.proposed_by = "drill:revert-drill";
        request.environment = "dev";
        request.drill = true;
        const std::string id = engine->propose(request).mitigation->id;
        settle();
        providers.set("fast", target, "someone else");  // its revert will conflict
        ASSERT_EQ(engine->revert(id, "drill:revert-drill", "cleanup").status,
                  RequestStatus::accepted);
        settle();
        ASSERT_EQ(state_of(id), State::conflict);
        EXPECT_FALSE(store->find_mitigation(id)->failed_at);
    }
    const std::string real = propose_for_incident("real", "c");
    settle();
    EXPECT_EQ(state_of(real), State::verifying);
}

TEST(RecentHistory, ARevertFailingForHoursCountsOnceAtItsFirstFailureEvenAfterAReset) {
    const TimePoint start = *parse_rfc3339("2026-11-23T12:00:00Z");
    RecentHistory history(std::chrono::hours(1));
    Mitigation mitigation;
    mitigation.id = "mit_1";
    mitigation.created_at = start - std::chrono::hours(4);
    history.failed(mitigation, "svc", "dev", start);
    history.reset_breaker(start + std::chrono::minutes(30));
    // Its revert fails again and again for hours; the first failure left the window.
    for (int hour = 1; hour <= 3; ++hour) {
        const TimePoint later = start + std::chrono::hours(hour) + std::chrono::minutes(5);
        history.failed(mitigation, "svc", "dev", later);
        const PolicyHistory seen = history.history(later);
        for (const PastMitigation& past : seen.mitigations) {
            EXPECT_FALSE(past.verification_failed_at &&
                         *past.verification_failed_at > *seen.circuit_breaker_reset_at)
                << "counted again at hour " << hour;
        }
    }
    // Once it ended, a new failure of another mitigation counts as usual.
    history.ended("mit_1");
    Mitigation other = mitigation;
    other.id = "mit_2";
    const TimePoint now = start + std::chrono::hours(4);
    history.failed(other, "svc", "dev", now);
    EXPECT_EQ(history.history(now).mitigations.size(), 1u);
}

TEST_F(StaleApprovals, AnApprovalOlderThanTheApprovalWindowIsNotAppliedAfterALongOutage) {
    const std::string id = pending();
    engine->stop();  // the approval is recorded, and the daemon goes down before the apply
    ASSERT_EQ(approve(id).status, RequestStatus::done);
    ASSERT_EQ(state_of(id), State::approved);
    clock.advance(std::chrono::hours(48));
    start(2);
    settle();
    EXPECT_EQ(state_of(id), State::expired);
    EXPECT_THAT(store->journal(id).back().reason, HasSubstr("not applied within"));
    EXPECT_EQ(providers.writes("a"), 0);
}

TEST_F(EngineWithFakeProviders, ARestartDoesNotTurnARecentRevertIntoARecentStart) {
    // A target cooldown of 15m: a mitigation started 2 h ago reverted just now at its TTL.
    start(2, std::string(policy) + "constraints:\n  cooldown: {after: 15m}\n");
    const std::string old_one = propose("fast", "a", "dev", std::chrono::hours(2));
    settle();
    clock.advance(std::chrono::hours(2));
    settle();
    ASSERT_EQ(state_of(old_one), State::reverted);
    start(2, std::string(policy) + "constraints:\n  cooldown: {after: 15m}\n");
    const std::string next = propose("fast", "a");
    settle();
    EXPECT_EQ(state_of(next), State::active);  // as it would be without the restart
}

TEST_F(CircuitBreaker, ARevertStillFailingAcrossARestartIsCountedOnceFromTheStore) {
    fails_verification("one", "a");
    const std::string stuck = propose_for_incident("two", "b");
    settle();
    providers.fail("revert", "b", FakeFault::unavailable);  // the backend is down
    ASSERT_EQ(engine->revert(stuck, "carol", "done").status, RequestStatus::accepted);
    settle();
    const Mitigation marked = *store->find_mitigation(stuck);
    EXPECT_EQ(marked.state, State::reverting);
    ASSERT_TRUE(marked.failed_at);  // journaled with its first failure
    EXPECT_THAT(store->journal(stuck).back().reason, HasSubstr("retried until it succeeds"));
    clock.advance(std::chrono::seconds(1));
    settle();  // a second failed attempt: not journaled again
    EXPECT_EQ(store->find_mitigation(stuck)->version, marked.version);
    start(2, breaker_policy);  // the restart reads both failures back
    const std::string third = propose_for_incident("three", "c");
    settle();
    EXPECT_EQ(state_of(third), State::denied);
    providers.clear_faults();
}

TEST_F(CircuitBreaker, AResetNeedsAReason) {
    EXPECT_EQ(engine->reset_circuit_breaker("olga", "").status, RequestStatus::invalid);
    EXPECT_EQ(audited("policy.circuit_breaker_reset", ""), 0);
}

TEST_F(EngineWithFakeProviders, ARequestIsDecidedOnTheStoreWhenTheIndexHasNotCaughtUpYet) {
    // A person sees `active` (the store) a moment before the engine's index does: the
    // request must not be refused on the index's older state.
    const std::string id = propose_for(open_incident("one", "dev"));
    settle();
    ASSERT_EQ(state_of(id), State::verifying);  // the index says verifying too
    Mitigation active = *store->find_mitigation(id);
    active.state = State::active;
    ASSERT_EQ(
        store->transition({active, active.version, clock.now(), "runtime", "verified"}).outcome,
        TransitionOutcome::done);  // committed; the index has not heard of it
    const RequestResult kept = engine->keep(id, "carol", "it stays");
    EXPECT_EQ(kept.status, RequestStatus::done) << kept.message;
    EXPECT_EQ(state_of(id), State::kept);
}

TEST_F(StaleApprovals, AnEqualProposalOfAnotherIncidentIsNotLostWhenTheFirstIncidentResolves) {
    const std::string first = propose_for(open_incident("one", "stage"));
    settle();
    ASSERT_EQ(state_of(first), State::pending_approval);
    const std::string second = propose_for(open_incident("two", "stage"));
    EXPECT_NE(second, first);  // not merged into one that has not had its effect
    settle();
    EXPECT_EQ(state_of(second), State::proposed);  // waits its turn on the target
    resolve_incident("one", "stage");
    settle();
    EXPECT_EQ(state_of(first), State::expired);
    EXPECT_EQ(state_of(second), State::pending_approval);  // the open incident still has it
}

TEST_F(StaleApprovals, APolicyThatChangedButStillAllowsAppliesUnderItsNewTtlAndHash) {
    const std::string id = pending();  // the action asks for 30 minutes
    const std::string approved_under = store->find_mitigation(id)->decision->policy_hash;
    start(2, std::string(policy) +
                 "constraints:\n"
                 "  ttl: {max: 10m, when_missing: deny, when_longer: clamp}\n");
    ASSERT_EQ(approve(id).status, RequestStatus::done);
    settle();
    const Mitigation applied = *store->find_mitigation(id);
    EXPECT_EQ(applied.state, State::active);
    ASSERT_TRUE(applied.expires_at);
    EXPECT_EQ(*applied.expires_at, clock.now() + std::chrono::minutes(10));  // clamped now
    const std::string hash = transition_details(id, State::applying).value("policy_hash", "");
    EXPECT_NE(hash, approved_under);
    EXPECT_EQ(applied.decision->policy_hash, hash);
}

TEST_F(StaleApprovals, AnApplyThatWaitedForABusyProviderDoesNotAgeItsApprovals) {
    start(2, policy_where_stage("  - name: stage-one-sre-quick\n"
                                "    match: {environment: stage}\n"
                                "    effect: require_approval\n"
                                "    approvals: {count: 1, groups: [sre], expire_after: 15m}\n"));
    const std::string id = propose("fast", "a", "stage");
    settle();
    ASSERT_EQ(state_of(id), State::pending_approval);
    providers.fail("apply", "b", FakeFault::hang);  // the provider is busy with another call
    propose("fast", "b");
    ASSERT_TRUE(eventually([&] { return providers.hanging() == 1; }));
    ASSERT_EQ(approve(id).status, RequestStatus::done);
    clock.advance(std::chrono::minutes(20));  // the apply waits longer than expire_after
    providers.release();
    providers.clear_faults();
    settle();
    EXPECT_EQ(state_of(id), State::active);
}

TEST_F(StaleApprovals, AnIncidentThatResolvesWhileTheProviderPlansGetsNothingApplied) {
    const std::string incident = open_incident("one", "dev");
    providers.fail("plan", "a", FakeFault::hold, 1);
    const std::string id = propose_for(incident);
    ASSERT_TRUE(eventually([&] { return providers.hanging() == 1; }));
    resolve_incident("one", "dev");
    providers.release();
    settle();
    EXPECT_EQ(state_of(id), State::expired);
    EXPECT_EQ(providers.writes("a"), 0);
}

TEST_F(StaleApprovals, NothingIsProposedForAResolvedIncident) {
    const std::string incident = open_incident("one", "dev");
    resolve_incident("one", "dev");
    settle();
    ProposalRequest request;
    request.action = {"fast", "set", "a", {{"value", "off"}}, std::chrono::minutes(30), "t"};
    request.incident_id = incident;
    request.proposed_by = "alice";
    const RequestResult refused = engine->propose(request);
    EXPECT_EQ(refused.status, RequestStatus::conflict);
    EXPECT_THAT(refused.message, HasSubstr("nothing is proposed for an incident that is over"));
    EXPECT_TRUE(store->list_mitigations({}).empty());
}

TEST_F(EngineWithFakeProviders, ProposalsStoredInOneMillisecondKeepTheirOrderAcrossARestart) {
    // Two proposals on one target share a millisecond; ids are random after the second, so
    // here the first one stored sorts last by id. A restart must not reorder them.
    engine->stop();
    auto stored = [&](const std::string& id, const std::string& environment,
                      const std::string& value) {
        Mitigation mitigation = testing::make_mitigation(id, clock.now());
        mitigation.proposal.action = {
            "fast", "set", "a", {{"value", value}}, std::chrono::minutes(30), "test"};
        mitigation.proposal.environment = environment;
        mitigation.proposal.incident_id.clear();
        store->create_mitigation(mitigation, "alice", "test");
    };
    stored("mit_z_first", "stage", "off");
    stored("mit_a_second", "dev", "half");
    start(2);
    settle();
    EXPECT_EQ(state_of("mit_z_first"), State::pending_approval);
    EXPECT_EQ(state_of("mit_a_second"), State::proposed);
    EXPECT_EQ(providers.value("fast", "a"), "on");
}

TEST_F(EngineWithFakeProviders, AnApplyRetriedWhileThePluginCannotBeCalledWaitsInsteadOfFailing) {
    // The apply lands but its answer is lost; then the plugin host is in restart backoff:
    // neither the read back nor the retry reach it. Nothing can say the change is absent.
    providers.fail("apply", "a", FakeFault::lost_answer, 1);
    providers.fail("check", "a", FakeFault::not_called);
    const std::string id = propose("fast", "a");
    settle();
    ASSERT_EQ(state_of(id), State::applying);
    providers.fail("apply", "a", FakeFault::not_called);
    clock.advance(std::chrono::seconds(1));
    settle();
    EXPECT_EQ(state_of(id), State::applying);  // not "failed" with the change live
    EXPECT_EQ(providers.value("fast", "a"), "off");
    providers.clear_faults();
    clock.advance(std::chrono::seconds(2));
    settle();
    EXPECT_EQ(state_of(id), State::active);
    EXPECT_EQ(providers.writes("a"), 1);
    // A first attempt that never reached the plugin changed nothing: that one fails.
    providers.fail("apply", "b", FakeFault::not_called);
    const std::string never_sent = propose("fast", "b");
    settle();
    EXPECT_EQ(state_of(never_sent), State::failed);
    EXPECT_THAT(store->journal(never_sent).back().reason, HasSubstr("apply not sent"));
    EXPECT_EQ(providers.writes("b"), 0);
}

TEST_F(EngineWithFakeProviders, DecisionsMadeAtOnceStillCountEachOtherAgainstARateLimit) {
    start(4, R"yaml(
constraints:
  rate_limits: [{scope: global, max: 1, per: 1h}]
rules:
  - {name: dev-allow, match: {environment: dev}, effect: allow}
)yaml");
    // Two plans on two providers, held until both are in flight, then answered together:
    // the two decisions are made at the same moment. Only one may start.
    providers.fail("plan", "a", FakeFault::hold, 1);
    providers.fail("plan", "b", FakeFault::hold, 1);
    const std::string first = propose("fast", "a");
    const std::string second = propose("slow", "b");
    ASSERT_TRUE(eventually([&] { return providers.hanging() == 2; }));
    providers.release();
    settle();
    std::vector<State> decided = {state_of(first), state_of(second)};
    EXPECT_THAT(decided, ::testing::UnorderedElementsAre(State::active, State::denied));
}

TEST_F(EngineWithFakeProviders, AProposalEqualToAMitigationOnItsWayOutWaitsInsteadOfMerging) {
    const std::string first = propose("fast", "a");
    settle();
    providers.fail("revert", "a", FakeFault::hang, 1);
    ASSERT_EQ(engine->revert(first, "carol", "done").status, RequestStatus::accepted);
    ASSERT_TRUE(eventually([&] { return providers.hanging() == 1; }));
    const std::string again = propose("fast", "a");  // the incident came back
    EXPECT_NE(again, first);
    EXPECT_EQ(state_of(again), State::proposed);
    providers.release();  // the revert gives up (unavailable) and is retried
    settle();
    clock.advance(std::chrono::seconds(1));
    settle();
    EXPECT_EQ(state_of(first), State::reverted);
    EXPECT_EQ(state_of(again), State::active);  // planned from the reverted state, applied
    EXPECT_EQ(providers.value("fast", "a"), "off");
}

TEST_F(EngineWithFakeProviders, AnExceptionAfterACommitWaitsForItsBackoff) {
    providers.fail("apply", "a", FakeFault::throw_error, 1);
    const std::string id = propose("fast", "a");
    settle();
    // planned, decided and applying were committed, then the apply threw.
    EXPECT_EQ(state_of(id), State::applying);
    EXPECT_EQ(providers.calls("apply", "a"), 1);
    clock.advance(std::chrono::milliseconds(999));
    settle();
    EXPECT_EQ(providers.calls("apply", "a"), 1);  // no retry before its backoff
    clock.advance(std::chrono::milliseconds(1));
    settle();
    EXPECT_EQ(state_of(id), State::active);
    EXPECT_EQ(audited("mitigation.step_failed", id), 1);
}

TEST_F(EngineWithFakeProviders, AWebhookLargerThanTheBacklogIsTakenWhenNothingWaits) {
    PolicyLoad loaded = load_policy_files({{"test.yaml", std::string(policy)}});
    EngineSetup setup;
    setup.policies = std::make_shared<const PolicySet>(std::move(*loaded.policy_set));
    setup.engine.pending_signal_limit = 2;
    engine->stop();
    engine = std::make_unique<Engine>(*store, providers, clock, *metrics, std::move(setup));
    engine->start();
    std::vector<Signal> three;
    for (const char* fingerprint : {"f1", "f2", "f3"}) {
        Signal signal;
        signal.id = std::string("sig_") + fingerprint;
        signal.name = "HighErrorRate";
        signal.fingerprint = fingerprint;
        signal.labels = {{"alertname", "HighErrorRate"}, {"environment", "dev"}};
        signal.starts_at = signal.received_at = clock.now();
        three.push_back(signal);
    }
    const SignalIntake taken = engine->accept_signals(three);
    EXPECT_FALSE(taken.refused) << taken.message;
    EXPECT_EQ(taken.accepted, 3u);
}

}  // namespace
}  // namespace mitigate
