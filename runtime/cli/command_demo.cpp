// mitigate demo: the end-to-end path that exists in this build, run for real on the
// embedded default configuration, printing only what it computed.
//
// Today that path is: a recorded alert is parsed and validated as a Signal, grouped into
// an Incident, answered by a Proposal, recorded as a Mitigation in a fresh store, decided
// by the policy engine on the default policy set, journaled and audited, then read back
// from disk and the audit chain verified. Stages that do not exist yet (playbooks,
// provider plans, approvals, apply/revert) are named as missing, never simulated: with
// no provider to plan the change, the mitigation ends as failed, with the decision the
// policy took recorded on it.
#include <cstdlib>
#include <iostream>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "runtime/cli/command_context.h"
#include "runtime/config/config.h"
#include "runtime/core/ids.h"
#include "runtime/core/time_format.h"
#include "runtime/policy/policy_engine.h"
#include "runtime/store/sqlite_store.h"

namespace mitigate {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A firing alert as Alertmanager would describe it, in mitigate's signal form.
constexpr std::string_view recorded_signal = R"json({
  "id": "sig_demo_checkout_5xx",
  "source": "alertmanager",
  "name": "HighErrorRate",
  "status": "firing",
  "fingerprint": "c8a4f1e2b7d90356",
  "labels": {"alertname": "HighErrorRate", "service": "checkout", "environment": "prod",
             "severity": "page"},
  "annotations": {"summary": "5xx ratio on checkout above 5% for 5 minutes",
                  "runbook_url": "https://runbooks.example.invalid/checkout-5xx"},
  "starts_at": "2026-11-23T03:12:00Z",
  "ends_at": null,
  "received_at": "2026-11-23T03:12:04.250Z"
})json";

struct DemoOptions {
    std::string database;
    OutputFormat output = OutputFormat::text;
};

fs::path fresh_store_path() {
    std::string directory = (fs::temp_directory_path() / "mitigate-demo-XXXXXX").string();
    if (mkdtemp(directory.data()) == nullptr) {
        throw std::runtime_error("cannot create a temporary directory for the demo store");
    }
    return fs::path(directory) / "mitigate.db";
}

int run_demo(const GlobalOptions& global, const DemoOptions& options) {
    const auto config = load_config_for_command(global);
    if (!config) {
        return exit_failure;
    }
    SystemClock clock;
    std::string policy_source;
    spdlog::info("demo: configuration from {}", config->source);

    // 1. Signal: parse and validate the recorded alert.
    auto signal = parse_signal(json::parse(recorded_signal));
    if (!signal) {
        throw std::logic_error("the embedded demo signal is invalid:\n" + describe(signal.errors));
    }
    // 2. Incident: one signal, grouped by its fingerprint.
    Incident incident;
    incident.id = new_id("inc", clock.now());
    incident.group_key = signal->fingerprint;
    incident.title = signal->annotations.at("summary");
    incident.service = signal->labels.at("service");
    incident.environment = signal->labels.at("environment");
    incident.labels = signal->labels;
    incident.signal_ids = {signal->id};
    incident.opened_at = clock.now();

    // 3. Proposal: what a playbook for this alert would ask for. Made here by hand, and
    //    recorded as such, because the playbook engine is not in this build.
    Proposal proposal;
    proposal.id = new_id("prop", clock.now());
    proposal.incident_id = incident.id;
    proposal.proposed_by = "demo";
    proposal.action.provider = "flags";
    proposal.action.action = "flag.set";
    proposal.action.target = "checkout-new-payment-flow";
    proposal.action.parameters = {{"variant", "off"}};
    proposal.action.ttl = parse_duration("30m");
    proposal.action.reason = "turn off the new payment flow while " + incident.title;
    proposal.created_at = clock.now();
    // Validate it exactly as a proposal arriving over the API would be.
    value_or_throw(parse_proposal(json(proposal)), "demo proposal");

    // 4. Record it in a store on disk.
    const fs::path store_path =
        options.database.empty() ? fresh_store_path() : fs::path(options.database);
    auto store = open_sqlite_store(store_path);
    Mitigation mitigation;
    mitigation.id = new_id("mit", clock.now());
    mitigation.proposal = proposal;
    mitigation.created_at = mitigation.updated_at = clock.now();
    store->create_mitigation(mitigation, "demo", "proposed for incident " + incident.id);

    // 5. Decide with the real policy engine: the configured policy directory if it
    //    exists, else the default policy set compiled into this binary. No provider
    //    plugin exists yet to plan the change, so the policy sees no plan (rules that need
    //    one do not match) and, after the decision, the mitigation cannot go further.
    const fs::path policy_directory = config->directories.policies;
    std::error_code ignored;
    const bool use_directory = fs::is_directory(policy_directory, ignored);
    PolicyLoad policies = use_directory ? load_policy_directory(policy_directory)
                                        : load_policy_files(embedded_default_policies());
    if (!policies.policy_set) {
        for (const auto& error : policies.errors) {
            std::cerr << error.to_string() << "\n";
        }
        return exit_failure;
    }
    policy_source = use_directory ? policy_directory.string() : "the embedded default policy";
    PolicyInput policy_input;
    policy_input.action = proposal.action;
    policy_input.proposed_by = proposal.proposed_by;
    policy_input.environment = incident.environment;
    policy_input.service = incident.service;
    policy_input.labels = incident.labels;
    const Decision decision =
        evaluate_policy(*policies.policy_set, policy_input, PolicyHistory{}, clock.now());
    Mitigation decided = mitigation;
    decided.decision = decision;
    std::string reason = decision.summary;
    if (decision.effect == DecisionEffect::deny) {
        decided.state = MitigationState::denied;
    } else {
        decided.state = MitigationState::failed;
        reason = "cannot plan: no provider plugin \"" + proposal.action.provider +
                 "\" in this build (policy said: " + decision.summary + ")";
    }
    const TransitionResult result = store->transition(
        {decided,
         mitigation.version,
         clock.now(),
         "runtime",
         reason,
         {{"effect", to_string(decision.effect)}, {"policy_hash", decision.policy_hash}}});
    if (result.outcome != TransitionOutcome::done) {
        throw std::runtime_error("demo transition refused: " + result.message);
    }
    store.reset();

    // 6. Read everything back from disk, read-only, as `mitigate audit verify` would.
    SqliteStoreOptions read_only;
    read_only.read_only = true;
    auto reader = open_sqlite_store(store_path, read_only);
    const auto stored = reader->find_mitigation(mitigation.id);
    const auto journal = reader->journal(mitigation.id);
    const AuditChainVerifier chain = reader->verify_audit_chain();
    if (!stored) {
        throw std::runtime_error("the mitigation was not found after writing it");
    }

    json journal_json = json::array();
    for (const auto& entry : journal) {
        journal_json.push_back({{"version", entry.version},
                                {"from", entry.from ? json(to_string(*entry.from)) : json(nullptr)},
                                {"to", to_string(entry.to)},
                                {"actor", entry.actor},
                                {"reason", entry.reason}});
    }
    const std::vector<std::string> missing = {"playbooks", "provider plans", "approvals",
                                              "apply/verify/revert"};
    if (options.output == OutputFormat::json) {
        std::cout << json{{"store", store_path.string()},
                          {"signal", *signal},
                          {"incident", incident},
                          {"mitigation", *stored},
                          {"journal", journal_json},
                          {"policy", policy_source},
                          {"audit",
                           {{"intact", chain.intact()},
                            {"records", chain.records()},
                            {"head",
                             std::to_string(chain.head().sequence) + ":" + chain.head().hash}}},
                          {"not_in_this_build", missing}}
                         .dump(2)
                  << "\n";
    } else {
        const Action& action = stored->proposal.action;
        std::cout << "mitigate demo, on " << config->source << " configuration\n"
                  << "  signal      " << signal->name << " " << to_string(signal->status) << " for "
                  << incident.service << " (" << incident.environment << "), fingerprint "
                  << signal->fingerprint << "\n"
                  << "  incident    " << incident.id << ": " << incident.title << "\n"
                  << "  proposal    " << action.provider << " " << action.action << " "
                  << action.target << " " << action.parameters.dump() << ", ttl "
                  << format_duration(*action.ttl) << "\n"
                  << "  decision    " << to_string(stored->decision->effect) << ": "
                  << stored->decision->summary << "\n"
                  << "  policy      " << policy_source << ", hash " << stored->decision->policy_hash
                  << "\n"
                  << "  mitigation  " << stored->id << " is " << to_string(stored->state)
                  << " at version " << stored->version << "\n";
        for (const auto& entry : journal) {
            std::cout << "  journal     v" << entry.version << " "
                      << (entry.from ? std::string(to_string(*entry.from)) : "(new)") << " -> "
                      << to_string(entry.to) << " by " << entry.actor << ": " << entry.reason
                      << "\n";
        }
        std::cout << "  audit       " << chain.records() << " records, chain "
                  << (chain.intact() ? "intact" : "BROKEN: " + chain.problem()) << ", head "
                  << chain.head().sequence << ":" << chain.head().hash << "\n"
                  << "  store       " << store_path.string() << "\n"
                  << "  not in this build yet: ";
        for (std::size_t i = 0; i < missing.size(); ++i) {
            std::cout << (i == 0 ? "" : ", ") << missing[i];
        }
        std::cout << "\nNothing was applied anywhere. Try: mitigate audit verify --db "
                  << store_path.string() << "\n";
    }
    return chain.intact() ? exit_ok : exit_failure;
}

}  // namespace

void register_demo_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
    auto options = std::make_shared<DemoOptions>();
    CLI::App* demo = app.add_subcommand(
        "demo",
        "Run the end-to-end path that exists in this build on a recorded alert, against a\n"
        "fresh store, and print what it computed. Changes nothing outside that store.");
    demo->add_option("--db", options->database,
                     "Store file to use (default: a new file in a new temporary directory)");
    add_output_option(*demo, options->output);
    demo->callback([&global, options, &exit_code] { exit_code = run_demo(global, *options); });
}

}  // namespace mitigate
