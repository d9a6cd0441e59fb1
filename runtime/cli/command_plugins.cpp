// mitigate plugins list                 -- installed plugins, their actions and sandbox
// mitigate plugins call PROVIDER ACTION OPERATION --target T [--params JSON]
//                       [--state JSON] [--plan JSON|@FILE]
//                                       -- one operation of the provider contract, for
//                                          plugin authors; the plugin runs confined,
//                                          egress goes through the broker as in serve
#include <fstream>
#include <iostream>
#include <sstream>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "runtime/cli/command_context.h"
#include "runtime/config/config.h"
#include "runtime/core/clock.h"
#include "runtime/core/json_reader.h"
#include "runtime/core/utf8.h"
#include "runtime/providers/provider_registry.h"
#include "runtime/store/sqlite_store.h"

namespace mitigate {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct PluginsOptions {
    OutputFormat output = OutputFormat::text;
    std::string provider;
    std::string action;
    std::string operation;
    std::string target;
    std::string parameters = "{}";
    std::string state;
    std::string plan;
};

std::string protections_text(const json& confinement) {
    std::string text;
    const auto add = [&text](const std::string& part) {
        text += (text.empty() ? "" : ", ") + part;
    };
    const auto namespaces = confinement.value("namespaces", std::vector<std::string>{});
    std::string joined;
    for (const auto& name : namespaces) {
        joined += (joined.empty() ? "" : "+") + name;
    }
    add(namespaces.empty() ? "namespaces: none" : "namespaces: " + joined);
    add(confinement.value("landlock", false)
            ? "landlock ABI " + std::to_string(confinement.value("landlock_abi", 0)) +
                  (confinement.value("weaker_landlock_allowed", false) ? " (below minimum, allowed)"
                                                                       : "")
            : "landlock: off");
    add(confinement.value("seccomp", false) ? "seccomp" : "seccomp: off");
    add(confinement.value("no_new_privs", false) ? "no_new_privs" : "no_new_privs: off");
    add(confinement.value("capabilities_dropped", false) ? "no capabilities"
                                                         : "capabilities: kept");
    const json user = confinement.value("user", json());
    if (user.is_number_integer()) {
        add("uid " + std::to_string(user.get<long>()));
    }
    add("rlimits " + std::to_string(confinement.value("rlimits", json::array()).size()));
    return text;
}

int list_plugins(const GlobalOptions& global, const PluginsOptions& options) {
    const auto config = load_config_for_command(global);
    if (!config) {
        return exit_failure;
    }
    RegistryOptions registry_options;
    registry_options.executable = this_executable();
    const auto directories = plugin_directories(*config, registry_options.executable);
    json listed = json::array();
    bool all_started = true;
    for (const auto& file : discover_plugins(directories)) {
        PluginProcess process(plugin_process_options(*config, registry_options, file.path),
                              nullptr);
        const PluginCallResult started = process.ensure_started();
        json entry{{"name", file.name}, {"path", file.path.string()}, {"shipped", file.shipped}};
        std::vector<std::string> providers;
        for (const auto& provider : config->providers) {
            if (provider.plugin == file.name) {
                providers.push_back(provider.name);
            }
        }
        entry["providers"] = providers;
        if (process.identity()) {
            entry["sha256"] = process.identity()->sha256;
            entry["resolved_path"] = process.identity()->resolved.string();
        }
        if (file.shadows_shipped) {
            entry["shadows_shipped"] = true;
        }
        if (!started.ok()) {
            all_started = false;
            entry["error"] = started.error;
        } else {
            const json& manifest = process.manifest();
            entry["version"] = manifest.value("version", "");
            entry["description"] = manifest.value("description", "");
            json actions = json::array();
            const json declared =
                manifest.contains("actions") ? manifest["actions"] : json::object();
            for (const auto& [name, unused] : declared.items()) {
                actions.push_back(name);
            }
            entry["actions"] = actions;
            entry["protections"] = process.confinement();
        }
        listed.push_back(entry);
    }
    if (options.output == OutputFormat::json) {
        std::cout << json{{"directories",
                           [&] {
                               std::vector<std::string> paths;
                               for (const auto& directory : directories) {
                                   paths.push_back(directory.string());
                               }
                               return paths;
                           }()},
                          {"plugins", listed}}
                         .dump(2)
                  << "\n";
        return all_started ? exit_ok : exit_failure;
    }
    if (listed.empty()) {
        std::cout << "no plugins found in";
        for (const auto& directory : directories) {
            std::cout << " " << directory.string();
        }
        std::cout << "\n";
        return exit_ok;
    }
    for (const auto& entry : listed) {
        // Everything but the file name comes from the plugin: printed with its control
        // characters escaped, so that it cannot rewrite the lines around it.
        std::cout << escape_control_characters(entry["name"].get<std::string>());
        if (entry.contains("error")) {
            std::cout << "  REFUSED: "
                      << escape_control_characters(entry["error"].get<std::string>()) << "\n";
            continue;
        }
        std::string actions;
        for (const auto& action : entry["actions"]) {
            actions += (actions.empty() ? "" : ", ") + action.get<std::string>();
        }
        actions = escape_control_characters(actions);
        std::string providers;
        for (const auto& provider : entry["providers"]) {
            providers += (providers.empty() ? "" : ", ") + provider.get<std::string>();
        }
        std::cout << " " << escape_control_characters(entry["version"].get<std::string>()) << "  ("
                  << entry["path"].get<std::string>() << ")\n"
                  << "  actions:     " << actions << "\n"
                  << "  providers:   " << (providers.empty() ? "(none configured)" : providers)
                  << "\n"
                  << "  sha256:      " << entry.value("sha256", "") << "\n"
                  << "  sandbox:     " << protections_text(entry["protections"]) << "\n";
        if (entry.contains("shadows_shipped")) {
            std::cout << "  WARNING:     has the name of a shipped plugin; a provider uses it "
                         "only when providers.NAME.sha256 pins it\n";
        }
    }
    return all_started ? exit_ok : exit_failure;
}

// JSON text, or @FILE for JSON in a file.
std::optional<json> parse_json_argument(const std::string& name, const std::string& text) {
    if (!text.empty() && text.front() == '@') {
        return read_command_json(text.substr(1));
    }
    std::string unreadable;
    auto parsed = parse_json_within(text, JsonTextLimits{}, unreadable);
    if (!parsed) {
        std::cerr << "mitigate: error: " << name << ": " << unreadable << "\n";
    }
    return parsed;
}

int call_plugin(const GlobalOptions& global, const PluginsOptions& options) {
    const auto config = load_config_for_command(global);
    if (!config) {
        return exit_failure;
    }
    json request{
        {"operation", options.operation}, {"action", options.action}, {"target", options.target}};
    const auto parameters = parse_json_argument("--params", options.parameters);
    if (!parameters) {
        return exit_usage;
    }
    request["parameters"] = *parameters;
    if (!options.state.empty()) {
        const auto state = parse_json_argument("--state", options.state);
        if (!state) {
            return exit_usage;
        }
        request["state"] = *state;
    }
    if (!options.plan.empty()) {
        const auto plan = parse_json_argument("--plan", options.plan);
        if (!plan) {
            return exit_usage;
        }
        request["plan"] = *plan;
    }
    RegistryOptions registry_options;
    registry_options.executable = this_executable();
    // A start below the configured Landlock ABI (the override) goes into the audit log.
    const fs::path store_path = config->store.path;
    registry_options.on_weaker_confinement = [&store_path](const std::string& provider,
                                                           const json& confinement) {
        auto store = open_sqlite_store(store_path);
        store->append_audit({SystemClock().now(),
                             "mitigate plugins call",
                             "sandbox.weaker_landlock",
                             "provider/" + provider,
                             {{"confinement", confinement}}});
    };
    ProviderRegistry registry(*config, registry_options);
    const PluginCallResult result = registry.call(options.provider, request);
    if (!result.ok()) {
        if (options.output == OutputFormat::json) {
            std::cout << json{{"status", to_string(result.status)}, {"error", result.error}}.dump(2)
                      << "\n";
        } else {
            std::cerr << "mitigate: " << options.provider << " " << options.action << " "
                      << options.operation << " failed (" << to_string(result.status)
                      << "): " << result.error << "\n";
        }
        return exit_failure;
    }
    std::cout << result.response.dump(2) << "\n";
    return exit_ok;
}

}  // namespace

void register_plugins_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
    auto options = std::make_shared<PluginsOptions>();
    CLI::App* plugins = app.add_subcommand("plugins", "Provider plugins: list them, call one");
    plugins->require_subcommand(1);

    CLI::App* list = plugins->add_subcommand(
        "list", "Plugins found, their version, actions, and the sandbox each runs in");
    add_output_option(*list, options->output);
    list->callback([&global, &exit_code, options] { exit_code = list_plugins(global, *options); });

    CLI::App* call = plugins->add_subcommand(
        "call",
        "Run one operation of a configured provider (read, plan, apply, check, revert).\n"
        "The plugin runs confined and reaches out only through the broker, as under serve.");
    call->add_option("provider", options->provider, "Provider name (providers: in the config)")
        ->required();
    call->add_option("action", options->action, "Action of the provider, e.g. set")->required();
    call->add_option("operation", options->operation, "read, plan, apply, check or revert")
        ->required()
        ->check(CLI::IsMember({"read", "plan", "apply", "check", "revert"}));
    call->add_option("--target", options->target, "What the action changes (a flag key, ...)")
        ->required();
    call->add_option("--params", options->parameters, "Action parameters as JSON (plan)");
    call->add_option("--state", options->state,
                     "Observed state as JSON for plan (default: the plugin reads it)");
    call->add_option("--plan", options->plan,
                     "The plan as JSON or @FILE (apply, check, revert): what plan printed");
    add_output_option(*call, options->output);
    call->callback([&global, &exit_code, options] { exit_code = call_plugin(global, *options); });
}

}  // namespace mitigate
