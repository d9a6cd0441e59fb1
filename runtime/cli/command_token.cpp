// mitigate token create NAME --role ROLE [--group G]...  -- a new API token, shown once
// mitigate token list                                    -- names, roles, groups, state
// mitigate token revoke NAME
//
// These work on the store named by the configuration, directly: whoever runs them
// already holds the database file, which is the root of trust for the API.
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "runtime/cli/command_context.h"
#include "runtime/config/config.h"
#include "runtime/core/time_format.h"
#include "runtime/server/api_token.h"
#include "runtime/store/sqlite_store.h"

namespace mitigate {
namespace {

struct TokenOptions {
    std::string name;
    std::string role;
    std::vector<std::string> groups;
    OutputFormat output = OutputFormat::text;
};

std::unique_ptr<Store> open_store(const GlobalOptions& global) {
    const auto config = load_config_for_command(global);
    if (!config) {
        return nullptr;
    }
    return open_sqlite_store(config->store.path);
}

int run_create(const GlobalOptions& global, const TokenOptions& options) {
    if (!parse_api_role(options.role)) {
        std::cerr << "mitigate token create: --role must be one of " << api_role_names << "\n";
        return exit_usage;
    }
    auto store = open_store(global);
    if (!store) {
        return exit_failure;
    }
    const std::string token = generate_api_token();
    ApiToken record;
    record.name = options.name;
    record.role = options.role;
    record.groups = options.groups;
    record.token_sha256 = api_token_digest(token);
    record.created_at = SystemClock().now();
    try {
        store->create_api_token(record, "cli");
    } catch (const StoreError& error) {
        std::cerr << "mitigate token create: " << error.what() << "\n";
        return exit_failure;
    }
    // The only time the token exists outside the caller's hands: stdout, nothing else.
    std::cout << token << "\n";
    std::cerr << "token " << options.name << " (" << options.role
              << ") created; it is shown once and stored only as a SHA-256 digest\n";
    return exit_ok;
}

int run_list(const GlobalOptions& global, const TokenOptions& options) {
    auto store = open_store(global);
    if (!store) {
        return exit_failure;
    }
    const auto tokens = store->list_api_tokens();
    if (options.output == OutputFormat::json) {
        nlohmann::json list = nlohmann::json::array();
        for (const ApiToken& token : tokens) {
            list.push_back(
                {{"name", token.name},
                 {"role", token.role},
                 {"groups", token.groups},
                 {"created_at", format_rfc3339(token.created_at)},
                 {"revoked_at", token.revoked_at ? nlohmann::json(format_rfc3339(*token.revoked_at))
                                                 : nlohmann::json(nullptr)}});
        }
        std::cout << list.dump(2) << "\n";
        return exit_ok;
    }
    std::printf("%-20s %-9s %-24s %s\n", "NAME", "ROLE", "GROUPS", "STATE");
    for (const ApiToken& token : tokens) {
        std::string groups;
        for (const auto& group : token.groups) {
            groups += (groups.empty() ? "" : ",") + group;
        }
        std::printf(
            "%-20s %-9s %-24s %s\n", token.name.c_str(), token.role.c_str(),
            groups.empty() ? "-" : groups.c_str(),
            token.revoked_at ? ("revoked " + format_rfc3339(*token.revoked_at)).c_str() : "active");
    }
    return exit_ok;
}

int run_revoke(const GlobalOptions& global, const TokenOptions& options) {
    auto store = open_store(global);
    if (!store) {
        return exit_failure;
    }
    if (!store->revoke_api_token(options.name, SystemClock().now(), "cli")) {
        std::cerr << "mitigate token revoke: no active token named " << options.name << "\n";
        return exit_failure;
    }
    std::cout << "revoked " << options.name << "\n";
    return exit_ok;
}

}  // namespace

void register_token_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
    auto options = std::make_shared<TokenOptions>();
    CLI::App* token = app.add_subcommand(
        "token", "Manage API tokens (stored as SHA-256 digests in the configured store)");
    token->require_subcommand(1);

    CLI::App* create = token->add_subcommand(
        "create",
        "Create a token and print it once on stdout. Roles: sender (signals only),\n"
        "viewer, approver, operator, admin; each includes the previous but sender.");
    create->add_option("name", options->name, "Identity the token acts as (a person or system)")
        ->required();
    create->add_option("--role", options->role, "sender, viewer, approver, operator or admin")
        ->required();
    create->add_option("--group", options->groups,
                       "A group for approval rules (repeatable): --group sre-oncall");
    create->callback([&global, &exit_code, options] { exit_code = run_create(global, *options); });

    CLI::App* list = token->add_subcommand("list", "List tokens (never the tokens themselves)");
    add_output_option(*list, options->output);
    list->callback([&global, &exit_code, options] { exit_code = run_list(global, *options); });

    CLI::App* revoke = token->add_subcommand("revoke", "Revoke a token by name");
    revoke->add_option("name", options->name, "Token name")->required();
    revoke->callback([&global, &exit_code, options] { exit_code = run_revoke(global, *options); });
}

}  // namespace mitigate
