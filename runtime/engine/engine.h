// The engine: the whole life of a mitigation, from the signal that starts it to its
// revert, durable at every step (the data flow of ../shared/DESIGN.md).
//
//   signals     accept_signals(): stored and grouped into incidents in one durable
//               transaction shared with every other webhook arriving meanwhile (group
//               commit); "accepted" is said only after that commit   signal_intake.h
//   playbooks   each incident opened runs every playbook once, in a confined worker;
//               proposals become mitigations, or merge into an equal open one
//                                                                     playbook_runner.h
//   mitigations each open mitigation is advanced on its own by the reconciler: plan,
//               decide, apply, verify, revert at its TTL or when verification fails.
//               A failure is that mitigation's alone, retried with backoff; reverts never
//               wait behind plans and applies                         reconciler.h
//   people      approve, reject, revert, keep, propose, withdraw: store transitions
//               answered at once; the reconciler does what follows   engine_requests.cpp
//
// Every transition is written by one owner (transitions.h), compare-and-set on the version,
// before the effect it announces. No lock that a request takes is held across a provider
// call or a Lua evaluation. The threads, and what each lock protects, are listed in
// engine.cpp where they are made.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/core/model.h"
#include "runtime/engine/next_step.h"  // approval_expiry()
#include "runtime/playbook/playbook.h"
#include "runtime/policy/policy_set.h"

namespace mitigate {

class Store;
class Providers;
class Metrics;

struct EngineSetup {
    EngineConfig engine;
    std::shared_ptr<const PolicySet> policies;
    std::vector<std::pair<std::string, std::string>> playbooks;  // {file, source}
    PlaybookEnvironment playbook_environment;
    // Threads that advance mitigations. One of them only ever takes reverts and steps that
    // call no provider, so that a slow provider cannot delay a TTL revert elsewhere.
    int workers = 4;
    // Retries of a failed step: after first_retry, doubling, at most longest_retry.
    Duration first_retry = std::chrono::seconds(1);
    Duration longest_retry = std::chrono::seconds(30);
};

// How a request from a person ended; the server maps it to an HTTP status.
enum class RequestStatus {
    done,
    accepted,   // 202: recorded; the engine carries it out (a revert)
    invalid,    // 400: the request itself is malformed
    not_found,  // 404
    forbidden,  // 403: a rule forbids this person (self-approval, not in the group)
    conflict,   // 409: not in a state that allows it (already applied, approved twice)
};

struct RequestResult {
    RequestStatus status = RequestStatus::done;
    std::optional<Mitigation> mitigation;
    std::string message;
};

struct SignalIntake {
    std::size_t accepted = 0;    // new signals, stored
    std::size_t duplicates = 0;  // already stored (a retry)
    bool refused = false;        // the backlog is full: nothing stored, retry later
    bool failed = false;         // the store could not write them: nothing stored
    std::string message;
};

struct ApprovalRequest {
    std::string mitigation_id;
    std::string identity;  // who, as authenticated
    std::vector<std::string> groups;
    ApprovalVerdict verdict = ApprovalVerdict::approve;
    ApprovalChannel channel = ApprovalChannel::api;
    std::string comment;
    // The account on the channel it came through ("slack:U024BE7LH"), audited beside the
    // identity it maps to; empty for the API and the CLI, where the identity is the token.
    std::string via;
};

// A person asking to revert or keep a mitigation by hand: their groups are checked
// against the ones the deciding policy rule names (Decision::keep_groups, revert_groups).
struct PersonRequest {
    std::string mitigation_id;
    std::string identity;  // who, as authenticated
    std::vector<std::string> groups;
    std::string reason;
    std::string via;  // as in ApprovalRequest
};

// A proposal made outside the playbooks: by a person, or by one of the runtime's own
// clients (a drill's fault).
struct ProposalRequest {
    Action action;
    std::string incident_id;  // empty: no incident (then environment and service say where)
    std::string proposed_by;  // a person's identity, or "drill:<name>"
    // Where it runs when there is no incident to say so: what policy matches environment
    // and service rules on.
    std::string environment;
    std::string service;
    bool drill = false;  // marked drill everywhere; never merged with a real one
};

class Engine {
  public:
    Engine(Store& store, Providers& providers, const Clock& clock, Metrics& metrics,
           EngineSetup setup);
    ~Engine();  // stop()s
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Loads what the store holds (open mitigations and incidents, recent history), groups
    // signals an older mitigate left ungrouped, then starts the threads. What a crash
    // interrupted (applying, verifying, reverting) is finished by the reconciler's first
    // steps, as any other due work.
    void start();
    // Lets the steps in progress finish (a provider call ends by its deadline), then joins.
    void stop();
    // Look again now (after a test moved its clock).
    void wake();
    // Waits until nothing is due now and nothing is in progress: for tests, tools and the
    // demo. False when `timeout` passed first.
    bool settle(std::chrono::milliseconds timeout = std::chrono::seconds(30));

    // Stores and groups the signals, then calls `done` (on the intake thread) once they are
    // durable, or refused (backlog full) or failed (the store). Never blocks.
    void accept_signals(std::vector<Signal> signals, std::function<void(SignalIntake)> done);
    // The same, waiting for the answer.
    SignalIntake accept_signals(std::vector<Signal> signals);

    RequestResult propose(const ProposalRequest& request);
    RequestResult approve(const ApprovalRequest& request);
    // Journals `reverting` and returns `accepted`; the reconciler performs the revert.
    // These two are the runtime's own (a drill's cleanup) and the tests': no group check.
    RequestResult revert(const std::string& id, const std::string& identity,
                         const std::string& reason);
    RequestResult keep(const std::string& id, const std::string& identity,
                       const std::string& reason);
    // A person's revert or keep: `forbidden` (audited as revert.refused / keep.refused)
    // unless they are in one of the groups the mitigation's decision names for it.
    RequestResult revert(const PersonRequest& request);
    RequestResult keep(const PersonRequest& request);
    // Ends a mitigation that has not touched its target (proposed, planned, approved ->
    // failed; pending approval -> rejected), for the runtime's own cleanup (a drill's);
    // no approval rule applies, the actor and reason are journaled.
    RequestResult withdraw(const std::string& id, const std::string& actor,
                           const std::string& reason);

    // The step this mitigation's engine keeps retrying, if one is failing.
    std::optional<StepRetry> retry_of(const std::string& id) const;

    // A person resets the policy's circuit breaker: the failures counted so far no longer
    // stop automation. Stored and audited (policy.circuit_breaker_reset) with the reason.
    RequestResult reset_circuit_breaker(const std::string& identity, const std::string& reason);

    // Called after every transition and every batch of signals (on the thread that made
    // it): the daemon wakes its followers (chat, drills). Must be cheap and not block.
    void on_change(std::function<void()> listener);

    // Signals waiting for the next commit.
    std::size_t queued_signals() const;

  private:
    struct State;
    std::unique_ptr<State> state_;
};

// Names every metric the engine records (declared on `metrics`), for docs and tests.
void declare_engine_metrics(Metrics& metrics);

}  // namespace mitigate
