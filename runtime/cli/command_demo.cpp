// mitigate demo: the end-to-end path that exists in this build, run for real on the
// embedded default configuration, printing only what it computed.
//
// A recorded Alertmanager webhook is parsed into Signals and grouped into an Incident;
// every playbook (the configured directory, else the examples compiled into the binary)
// runs in a confined worker process and the matching ones propose; each proposal becomes
// a Mitigation in a fresh store, is planned by its provider's plugin in a confined plugin
// host (the flags provider on a flagd file the demo writes), and is decided by the policy
// engine on the default policy set; everything is journaled and audited, read back from
// disk, and the audit chain is verified. Stages that do not exist yet (approvals,
// apply/revert, the cloud providers) are named as missing, never simulated.
#include <cstdlib>
#include <fstream>
#include <iostream>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "runtime/cli/command_context.h"
#include "runtime/config/config.h"
#include "runtime/core/ids.h"
#include "runtime/core/time_format.h"
#include "runtime/engine/mitigation_engine.h"
#include "runtime/ingest/alertmanager.h"
#include "runtime/playbook/playbook.h"
#include "runtime/policy/policy_engine.h"
#include "runtime/providers/provider_registry.h"
#include "runtime/store/sqlite_store.h"
#include "sandbox/worker/lua_worker.h"

namespace mitigate {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// What Alertmanager posts when p99 latency on the storefront regresses in prod.
constexpr std::string_view recorded_webhook = R"json({
  "version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0,
  "status": "firing", "receiver": "mitigate",
  "groupLabels": {"alertname": "HighLatency"},
  "commonLabels": {"alertname": "HighLatency", "service": "storefront", "environment": "prod"},
  "commonAnnotations": {}, "externalURL": "http://alertmanager.example.invalid",
  "alerts": [{
    "status": "firing",
    "labels": {"alertname": "HighLatency", "service": "storefront", "environment": "prod",
               "severity": "page", "web_acl": "edge"},
    "annotations": {"summary": "p99 latency on storefront above 2s for 5 minutes",
                    "runbook_url": "https://runbooks.example.invalid/storefront-latency"},
    "startsAt": "2026-11-23T03:12:00.000000001Z", "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus.example.invalid/graph", "fingerprint": "c8a4f1e2b7d90356"
  }]
})json";

struct DemoOptions {
    std::string database;
    OutputFormat output = OutputFormat::text;
};

using NamedSources = std::vector<std::pair<std::string, std::string>>;

fs::path fresh_store_path() {
    std::string directory = (fs::temp_directory_path() / "mitigate-demo-XXXXXX").string();
    if (mkdtemp(directory.data()) == nullptr) {
        throw std::runtime_error("cannot create a temporary directory for the demo store");
    }
    return fs::path(directory) / "mitigate.db";
}

// The demo's flags provider: a flagd file in the demo's own directory, holding the flag
// the shipped latency playbook turns off. Added only when the configuration has no
// provider called "flags" (a real configuration's wins).
constexpr std::string_view demo_flag_file = R"json({
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "flags": {
    "expensive-recommendations": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "on",
      "metadata": {"owner": "team-recommendations"}
    }
  }
}
)json";

fs::path add_demo_flags_provider(Config& config, const fs::path& directory) {
    for (const auto& provider : config.providers) {
        if (provider.name == "flags") {
            return provider.settings.value("path", "");
        }
    }
    const fs::path path = directory / "flags.json";
    std::ofstream(path) << demo_flag_file;
    ProviderConfig flags;
    flags.name = "flags";
    flags.plugin = "flags";
    flags.egress.allow_files = {path};
    flags.settings = {{"backend", "flagd"}, {"path", path.string()}};
    config.providers.push_back(flags);
    return path;
}

struct DemoMitigation {
    std::string playbook;
    Mitigation stored;
    std::vector<JournalEntry> journal;
};

int run_demo(const GlobalOptions& global, const DemoOptions& options) {
    const auto config = load_config_for_command(global);
    if (!config) {
        return exit_failure;
    }
    SystemClock clock;
    const TimePoint now = clock.now();
    spdlog::info("demo: configuration from {}", config->source);

    // 1. Signals: the recorded webhook, parsed exactly as the API will parse it.
    auto signals = parse_alertmanager_webhook(json::parse(recorded_webhook), now);
    if (!signals) {
        throw std::logic_error("the embedded demo webhook is invalid:\n" +
                               describe(signals.errors));
    }
    // 2. Incident.
    const Incident incident = incident_from_signals(*signals, now);

    // 3. Playbooks, each in a confined worker process.
    std::error_code ignored;
    const bool playbook_directory = fs::is_directory(config->directories.playbooks, ignored);
    const NamedSources playbooks = playbook_directory
                                       ? read_lua_files(config->directories.playbooks)
                                       : embedded_example_playbooks();
    const std::string playbook_source = playbook_directory
                                            ? config->directories.playbooks.string()
                                            : "the examples compiled into this binary";
    PlaybookEnvironment environment;
    LuaWorker worker("/proc/self/exe");
    environment.evaluate = [&worker](const LuaCall& call, const LuaLimits& limits) {
        return worker.evaluate(call, limits);
    };
    const fs::path library_directory = config->directories.playbooks.parent_path() / "lib";
    if (playbook_directory && fs::is_directory(library_directory, ignored)) {
        environment.libraries = load_playbook_libraries(library_directory);
    } else {
        for (auto [name, source] : embedded_playbook_libraries()) {
            environment.libraries.emplace_back(fs::path(name).stem().string(), std::move(source));
        }
    }
    LuaHostApi host;  // no provider plugins yet: every state() answer is nil
    host.state = [](const std::string&, const std::string&) { return std::optional<json>(); };
    json playbook_report = json::array();
    std::vector<std::pair<std::string, Action>> proposals;
    for (const auto& [file, source] : playbooks) {
        const PlaybookOutcome outcome =
            run_playbook(file, source, incident, *signals, now, host, environment);
        playbook_report.push_back(
            {{"file", fs::path(file).filename().string()},
             {"playbook", outcome.info ? json(outcome.info->name) : json(nullptr)},
             {"matched", outcome.matched},
             {"proposals", outcome.proposals.size()},
             {"error",
              outcome.failure ? json(*outcome.failure + ": " + outcome.message) : json(nullptr)}});
        for (const Action& action : outcome.proposals) {
            proposals.emplace_back(outcome.info->name, action);
        }
    }

    // 4. The policy set: the configured directory, else the default compiled in.
    const bool policy_directory = fs::is_directory(config->directories.policies, ignored);
    PolicyLoad policies = policy_directory ? load_policy_directory(config->directories.policies)
                                           : load_policy_files(embedded_default_policies());
    if (!policies.policy_set) {
        for (const auto& error : policies.errors) {
            std::cerr << error.to_string() << "\n";
        }
        return exit_failure;
    }
    const std::string policy_source = policy_directory
                                          ? config->directories.policies.string()
                                          : "the default policy compiled into this binary";

    // 5. Each proposal: a mitigation in the store, planned by its provider's plugin (in a
    //    confined plugin host, through the egress broker), decided by policy, and stopped
    //    where the build ends: approvals and apply arrive with the lifecycle engine.
    const fs::path store_path =
        options.database.empty() ? fresh_store_path() : fs::path(options.database);
    Config demo_config = *config;
    // Its own new directory: never beside a --db the user chose.
    const fs::path flag_file =
        add_demo_flags_provider(demo_config, fresh_store_path().parent_path());
    RegistryOptions registry_options;
    registry_options.executable = this_executable();
    ProviderRegistry providers(demo_config, registry_options);
    std::vector<std::string> mitigation_ids;
    {
        auto store = open_sqlite_store(store_path);
        MitigationEngine engine(*store, providers, clock);
        for (const auto& [playbook, action] : proposals) {
            Mitigation mitigation;
            mitigation.id = new_id("mit", now);
            mitigation.proposal.id = new_id("prop", now);
            mitigation.proposal.incident_id = incident.id;
            mitigation.proposal.playbook = playbook;
            mitigation.proposal.proposed_by = "playbook:" + playbook;
            mitigation.proposal.action = action;
            mitigation.proposal.created_at = now;
            mitigation.created_at = mitigation.updated_at = now;
            store->create_mitigation(mitigation, "playbook:" + playbook,
                                     "proposed for incident " + incident.id);
            // The provider plans it (or the mitigation fails, with the reason journaled),
            // then policy decides on the plan.
            const EngineOutcome planned = engine.plan(mitigation.id);
            if (planned.ok && planned.mitigation.state == MitigationState::planned) {
                PolicyInput input;
                input.action = action;
                input.playbook = playbook;
                input.proposed_by = mitigation.proposal.proposed_by;
                input.environment = incident.environment;
                input.service = incident.service;
                input.labels = incident.labels;
                input.plan = planned.mitigation.plan;
                const EngineOutcome decided = engine.decide(
                    mitigation.id,
                    evaluate_policy(*policies.policy_set, input, PolicyHistory{}, clock.now()));
                if (!decided.ok) {
                    throw std::runtime_error("demo transition refused: " + decided.message);
                }
            } else if (!planned.ok) {
                throw std::runtime_error("demo transition refused: " + planned.message);
            }
            mitigation_ids.push_back(mitigation.id);
        }
    }

    // 6. Read everything back from disk, read-only, as `mitigate audit verify` would.
    SqliteStoreOptions read_only;
    read_only.read_only = true;
    auto reader = open_sqlite_store(store_path, read_only);
    std::vector<DemoMitigation> results;
    for (std::size_t i = 0; i < mitigation_ids.size(); ++i) {
        auto stored = reader->find_mitigation(mitigation_ids[i]);
        if (!stored) {
            throw std::runtime_error("mitigation " + mitigation_ids[i] +
                                     " was not found after writing it");
        }
        results.push_back(
            {proposals[i].first, std::move(*stored), reader->journal(mitigation_ids[i])});
    }
    const AuditChainVerifier chain = reader->verify_audit_chain();
    const std::vector<std::string> missing = {"approvals", "apply/verify/revert",
                                              "the aws, vercel and supabase providers"};

    if (options.output == OutputFormat::json) {
        json mitigations = json::array();
        for (const auto& result : results) {
            json journal = json::array();
            for (const auto& entry : result.journal) {
                journal.push_back(
                    {{"version", entry.version},
                     {"from", entry.from ? json(to_string(*entry.from)) : json(nullptr)},
                     {"to", to_string(entry.to)},
                     {"actor", entry.actor},
                     {"reason", entry.reason}});
            }
            mitigations.push_back({{"mitigation", result.stored}, {"journal", journal}});
        }
        std::cout << json{{"store", store_path.string()},
                          {"signals", *signals},
                          {"incident", incident},
                          {"playbooks", playbook_report},
                          {"playbook_source", playbook_source},
                          {"worker",
                           {{"landlock_abi", worker.confinement().landlock_abi},
                            {"namespaces", worker.confinement().namespaces}}},
                          {"providers",
                           {{"flags",
                             {{"flag_file", flag_file.string()},
                              {"sandbox", providers.process("flags") != nullptr
                                              ? providers.process("flags")->confinement()
                                              : json(nullptr)}}}}},
                          {"policy", policy_source},
                          {"mitigations", mitigations},
                          {"audit",
                           {{"intact", chain.intact()},
                            {"records", chain.records()},
                            {"head",
                             std::to_string(chain.head().sequence) + ":" + chain.head().hash}}},
                          {"not_in_this_build", missing}}
                         .dump(2)
                  << "\n";
        return chain.intact() ? exit_ok : exit_failure;
    }
    const Signal& signal = signals->front();
    std::cout << "mitigate demo, on " << config->source << " configuration\n"
              << "  signal      Alertmanager webhook: " << signal.name << " "
              << to_string(signal.status) << " for " << incident.service << " ("
              << incident.environment << "), fingerprint " << signal.fingerprint << "\n"
              << "  incident    " << incident.id << ": " << incident.title << "\n"
              << "  playbooks   " << playbooks.size() << " from " << playbook_source
              << ", each in a confined worker (Landlock ABI " << worker.confinement().landlock_abi
              << ", seccomp, no network)\n";
    for (const auto& entry : playbook_report) {
        std::cout << "                " << entry["file"].get<std::string>() << ": "
                  << (!entry["error"].is_null() ? entry["error"].get<std::string>()
                      : entry["matched"].get<bool>()
                          ? std::to_string(entry["proposals"].get<std::size_t>()) + " proposal(s)"
                          : std::string("does not match"))
                  << "\n";
    }
    if (PluginProcess* flags = providers.process("flags"); flags != nullptr && flags->pid() > 0) {
        std::cout << "  providers   flags on the flagd file " << flag_file.string()
                  << ", plugin in a confined host (Landlock ABI "
                  << flags->confinement().value("landlock_abi", 0)
                  << ", seccomp, no network; file access brokered by the runtime)\n";
    }
    std::cout << "  policy      " << policy_source << ", hash "
              << policies.policy_set->hash.substr(0, 16) << "...\n";
    for (const auto& result : results) {
        const Action& action = result.stored.proposal.action;
        std::cout << "  proposal    " << action.provider << " " << action.action << " "
                  << action.target << " " << action.parameters.dump() << ", ttl "
                  << (action.ttl ? format_duration(*action.ttl) : "none") << " (playbook "
                  << result.playbook << ")\n"
                  << "    decision  " << to_string(result.stored.decision->effect) << ": "
                  << result.stored.decision->summary << "\n"
                  << "    mitigation " << result.stored.id << " is "
                  << to_string(result.stored.state) << " at version " << result.stored.version
                  << "\n";
        for (const auto& entry : result.journal) {
            std::cout << "    journal   v" << entry.version << " "
                      << (entry.from ? std::string(to_string(*entry.from)) : "(new)") << " -> "
                      << to_string(entry.to) << " by " << entry.actor << ": " << entry.reason
                      << "\n";
        }
    }
    if (results.empty()) {
        std::cout << "  proposals   none: no playbook proposed anything for this incident\n";
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
    return chain.intact() ? exit_ok : exit_failure;
}

}  // namespace

void register_demo_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
    auto options = std::make_shared<DemoOptions>();
    CLI::App* demo = app.add_subcommand(
        "demo",
        "Run the end-to-end path that exists in this build on a recorded Alertmanager alert:\n"
        "playbooks in confined workers, the policy engine, a fresh store and its audit chain.\n"
        "Prints what it computed. Changes nothing outside that store.");
    demo->add_option("--db", options->database,
                     "Store file to use (default: a new file in a new temporary directory)");
    add_output_option(*demo, options->output);
    demo->callback([&global, options, &exit_code] { exit_code = run_demo(global, *options); });
}

}  // namespace mitigate
