// mitigate policy check [DIR]   -- validate a policy set
// mitigate policy eval          -- decide one proposal and print the decision
// mitigate policy test [DIR]    -- run the fixtures in DIR/tests, pass or fail per case
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>

#include "runtime/cli/command_context.h"
#include "runtime/config/config.h"
#include "runtime/config/yaml_reader.h"
#include "runtime/core/json_reader.h"
#include "runtime/core/text_file.h"
#include "runtime/core/time_format.h"
#include "runtime/policy/policy_engine.h"

namespace mitigate {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct PolicyOptions {
    std::string directory;  // empty: directories.policies of the configuration
    std::string input_file;
    std::string history_file;
    std::string now;
    OutputFormat output = OutputFormat::text;
};

std::optional<PolicySet> load_or_report(const GlobalOptions& global, const PolicyOptions& options,
                                        fs::path& directory) {
    directory = options.directory;
    if (directory.empty()) {
        const auto config = load_config_for_command(global);
        if (!config) {
            return std::nullopt;
        }
        directory = config->directories.policies;
    }
    PolicyLoad load = load_policy_directory(directory);
    if (!load.policy_set) {
        for (const auto& error : load.errors) {
            std::cerr << error.to_string() << "\n";
        }
        std::cerr << directory.string() << ": " << load.errors.size() << " error"
                  << (load.errors.size() == 1 ? "" : "s") << "\n";
        return std::nullopt;
    }
    return std::move(load.policy_set);
}

int run_check(const GlobalOptions& global, const PolicyOptions& options) {
    fs::path directory;
    const auto set = load_or_report(global, options, directory);
    if (!set) {
        return exit_failure;
    }
    if (options.output == OutputFormat::json) {
        std::cout << json{{"directory", directory.string()},
                          {"valid", true},
                          {"files", set->files},
                          {"rules", set->rules.size()},
                          {"windows", set->windows.size()},
                          {"freezes", set->freezes.size()},
                          {"hash", set->hash}}
                         .dump(2)
                  << "\n";
    } else {
        std::cout << directory.string() << ": ok (" << set->files.size() << " files, "
                  << set->rules.size() << " rules, " << set->windows.size() << " windows, "
                  << set->freezes.size() << " freezes; policy hash " << set->hash << ")\n";
    }
    return exit_ok;
}

int run_eval(const GlobalOptions& global, const PolicyOptions& options) {
    const auto now_option = parse_now_option(options.now);
    if (!now_option) {
        return exit_usage;
    }
    const TimePoint now = *now_option;
    fs::path directory;
    const auto set = load_or_report(global, options, directory);
    if (!set) {
        return exit_failure;
    }
    const auto input_json = read_command_json(options.input_file);
    if (!input_json) {
        return exit_failure;
    }
    const auto input = parse_policy_input(*input_json);
    if (!input) {
        std::cerr << options.input_file << ":\n" << describe(input.errors) << "\n";
        return exit_failure;
    }
    PolicyHistory history;
    if (!options.history_file.empty()) {
        const auto history_json = read_command_json(options.history_file);
        if (!history_json) {
            return exit_failure;
        }
        auto parsed = parse_policy_history(*history_json);
        if (!parsed) {
            std::cerr << options.history_file << ":\n" << describe(parsed.errors) << "\n";
            return exit_failure;
        }
        history = std::move(*parsed.value);
    }
    const Decision decision =
        evaluate_policy(*set, *input, history, now, PolicyExplanation::every_rule);
    if (options.output == OutputFormat::json) {
        std::cout << json(decision).dump(2) << "\n";
        return exit_ok;
    }
    std::cout << "decision: " << to_string(decision.effect) << ": " << decision.summary << "\n";
    if (decision.ttl) {
        std::cout << "ttl: " << format_duration(*decision.ttl) << "\n";
    }
    for (const auto& rule : decision.rules) {
        std::cout << (rule.matched ? "  match    " : "  no match ") << rule.rule << ": "
                  << rule.reason << "\n";
    }
    for (const auto& constraint : decision.constraints) {
        std::cout << (constraint.passed ? "  ok       " : "  FAILED   ") << constraint.constraint
                  << ": " << constraint.detail << "\n";
    }
    std::cout << "policy hash: " << decision.policy_hash << "\n";
    return exit_ok;
}

// One fixture case: everything under `expect` must hold; unstated fields are not checked.
struct FixtureResult {
    std::string file;
    std::string name;
    std::vector<std::string> problems;  // empty: passed
};

FixtureResult run_case(const PolicySet& set, const std::string& file, const YAML::Node& node,
                       std::size_t index, std::vector<ConfigError>& load_errors) {
    FixtureResult result{file, "case " + std::to_string(index + 1), {}};
    YamlErrors errors(file, load_errors);
    const std::string path = "cases[" + std::to_string(index) + "]";
    YamlMapReader reader(node, path, errors);
    result.name = reader.string("name", true).value_or(result.name);
    const auto now_text = reader.string("now", true);
    const auto now = now_text ? parse_rfc3339(*now_text) : std::nullopt;
    if (now_text && !now) {
        reader.error_at_value("now", "must be an RFC 3339 time");
    }
    const json input_json = yaml_to_json(reader.get("input", true));
    const YAML::Node history_node = reader.get("history");
    const YAML::Node expect_node = reader.get("expect", true);
    reader.reject_unknown_keys();
    const std::size_t errors_before = load_errors.size();
    const auto input = parse_policy_input(input_json, path + ".input");
    for (const auto& error : input.errors) {
        reader.error_at_value("input", error.field + ": " + error.message);
    }
    PolicyHistory history;
    if (history_node.IsDefined()) {
        auto parsed = parse_policy_history(yaml_to_json(history_node), path + ".history");
        for (const auto& error : parsed.errors) {
            reader.error_at_value("history", error.field + ": " + error.message);
        }
        if (parsed) {
            history = std::move(*parsed.value);
        }
    }
    YamlMapReader expect(expect_node, path + ".expect", errors);
    const auto effect_text = expect.string("effect", true);
    const auto effect = effect_text ? parse_decision_effect(*effect_text) : std::nullopt;
    if (effect_text && !effect) {
        expect.error_at_value("effect", "must be one of allow, require_approval, deny, dry_run");
    }
    const auto approvals = expect.integer("approvals_required", 0, 100);
    const YAML::Node groups_node = expect.get("approver_groups");
    const auto groups = expect.string_list("approver_groups");
    const auto self_approval = expect.boolean("self_approval_allowed");
    const auto ttl_text = expect.string("ttl");
    const YAML::Node failed_node = expect.get("failed_constraints");
    const auto failed = expect.string_list("failed_constraints");
    const YAML::Node matched_node = expect.get("matched_rules");
    const auto matched = expect.string_list("matched_rules");
    expect.reject_unknown_keys();
    if (load_errors.size() != errors_before || !input || !now || !effect) {
        result.problems.push_back("the fixture itself is invalid (see errors above)");
        return result;
    }

    const Decision decision =
        evaluate_policy(set, *input, history, *now, PolicyExplanation::every_rule);
    auto expect_equal = [&](const std::string& what, const std::string& expected,
                            const std::string& actual) {
        if (expected != actual) {
            result.problems.push_back(what + ": expected " + expected + ", got " + actual);
        }
    };
    auto join = [](const std::vector<std::string>& items) { return json(items).dump(); };
    expect_equal("effect", *effect_text, std::string(to_string(decision.effect)));
    if (approvals) {
        expect_equal("approvals_required", std::to_string(*approvals),
                     std::to_string(decision.approvals_required));
    }
    if (groups_node.IsDefined()) {
        auto sorted = groups;
        std::sort(sorted.begin(), sorted.end());
        expect_equal("approver_groups", join(sorted), join(decision.approver_groups));
    }
    if (self_approval) {
        expect_equal("self_approval_allowed", *self_approval ? "true" : "false",
                     decision.self_approval_allowed ? "true" : "false");
    }
    if (ttl_text) {
        expect_equal("ttl", *ttl_text, decision.ttl ? format_duration(*decision.ttl) : "none");
    }
    if (failed_node.IsDefined()) {
        std::vector<std::string> actual;
        for (const auto& constraint : decision.constraints) {
            if (!constraint.passed) {
                actual.push_back(constraint.constraint);
            }
        }
        expect_equal("failed_constraints", join(failed), join(actual));
    }
    if (matched_node.IsDefined()) {
        std::vector<std::string> actual;
        for (const auto& rule : decision.rules) {
            if (rule.matched) {
                actual.push_back(rule.rule.substr(rule.rule.find('#') + 1));
            }
        }
        std::sort(actual.begin(), actual.end());
        auto sorted = matched;
        std::sort(sorted.begin(), sorted.end());
        expect_equal("matched_rules", join(sorted), join(actual));
    }
    if (!result.problems.empty()) {
        result.problems.push_back("decision was: " + decision.summary);
    }
    return result;
}

int run_test(const GlobalOptions& global, const PolicyOptions& options) {
    fs::path directory;
    const auto set = load_or_report(global, options, directory);
    if (!set) {
        return exit_failure;
    }
    const fs::path fixtures = directory / "tests";
    std::vector<fs::path> files;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(fixtures, error)) {
        const auto extension = entry.path().extension();
        if (entry.is_regular_file() && (extension == ".yaml" || extension == ".yml")) {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
        std::cerr << fixtures.string() << ": no fixture files (*.yaml) to run\n";
        return exit_failure;
    }
    std::vector<FixtureResult> results;
    std::vector<ConfigError> fixture_errors;
    for (const auto& file : files) {
        YamlErrors errors(file.string(), fixture_errors);
        const std::optional<std::string> text = read_operator_file(file, fixture_errors);
        if (!text) {
            continue;
        }
        const std::optional<YAML::Node> root = load_yaml(*text, errors);
        if (!root) {
            continue;
        }
        YamlMapReader reader(*root, "", errors);
        const YAML::Node cases = reader.get("cases", true);
        reader.get("shared");  // free-form: a home for YAML anchors the cases reuse
        reader.reject_unknown_keys();
        if (!cases.IsSequence()) {
            if (cases.IsDefined()) {
                reader.error_at_value("cases", "must be a list of cases");
            }
            continue;
        }
        for (std::size_t i = 0; i < cases.size(); ++i) {
            results.push_back(run_case(*set, file.string(), cases[i], i, fixture_errors));
        }
    }
    for (const auto& problem : fixture_errors) {
        std::cerr << problem.to_string() << "\n";
    }
    const auto failed = std::count_if(results.begin(), results.end(),
                                      [](const auto& result) { return !result.problems.empty(); });
    const auto passed = static_cast<long>(results.size()) - failed;
    if (options.output == OutputFormat::json) {
        json report = json::array();
        for (const auto& result : results) {
            report.push_back({{"file", result.file},
                              {"case", result.name},
                              {"passed", result.problems.empty()},
                              {"problems", result.problems}});
        }
        std::cout << json{{"cases", report}, {"passed", passed}, {"failed", failed}}.dump(2)
                  << "\n";
    } else {
        for (const auto& result : results) {
            std::cout << (result.problems.empty() ? "PASS " : "FAIL ") << result.file << ": "
                      << result.name << "\n";
            for (const auto& problem : result.problems) {
                std::cout << "     " << problem << "\n";
            }
        }
        std::cout << passed << " passed, " << failed << " failed\n";
    }
    return failed == 0 && fixture_errors.empty() ? exit_ok : exit_failure;
}

}  // namespace

void register_policy_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
    CLI::App* policy = app.add_subcommand("policy", "Check, evaluate and test policy sets");
    policy->require_subcommand(1);
    auto options = std::make_shared<PolicyOptions>();
    const std::string directory_help =
        "Policy directory (default: directories.policies of the configuration)";

    CLI::App* check = policy->add_subcommand(
        "check",
        "Validate every *.yaml policy file in DIR as one set: every error as\n"
        "file:line:column with its key. Exit 0 when valid, 1 when not.");
    check->add_option("DIR", options->directory, directory_help);
    add_output_option(*check, options->output);
    check->callback([&global, options, &exit_code] { exit_code = run_check(global, *options); });

    CLI::App* eval = policy->add_subcommand(
        "eval",
        "Decide one proposed action and print the decision: the effect, approvals required,\n"
        "every rule with why it matched or not, every constraint checked, the policy hash.\n"
        "The input file is JSON: {action, environment, service, labels, playbook, proposed_by,\n"
        "plan} (docs/policies.md). Exit 0 whatever the decision; 1 if it cannot be made.");
    eval->add_option("--policies", options->directory, directory_help);
    eval->add_option("--proposal", options->input_file, "The proposal and its context, as JSON")
        ->required();
    eval->add_option("--now", options->now, "Decide as of this RFC 3339 time (default: now)");
    eval->add_option("--history", options->history_file,
                     "Recent mitigations as JSON, for rate limits, cooldowns and the circuit "
                     "breaker (default: none)");
    add_output_option(*eval, options->output);
    eval->callback([&global, options, &exit_code] { exit_code = run_eval(global, *options); });

    CLI::App* test = policy->add_subcommand(
        "test",
        "Run the fixtures in DIR/tests/*.yaml against the policy set in DIR, the way\n"
        "`opa test` does: each case gives an input, a time, optional history and the expected\n"
        "decision; PASS or FAIL per case. Exit 0 when every case passes.");
    test->add_option("DIR", options->directory, directory_help);
    add_output_option(*test, options->output);
    test->callback([&global, options, &exit_code] { exit_code = run_test(global, *options); });
}

}  // namespace mitigate
