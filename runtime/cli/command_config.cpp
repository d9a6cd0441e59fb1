// mitigate config check FILE   -- validate a configuration file, every error with position
// mitigate config show         -- print the effective configuration (secrets as references)
#include <iostream>

#include <yaml-cpp/yaml.h>
#include <CLI/CLI.hpp>

#include "runtime/cli/command_context.h"
#include "runtime/config/config.h"

namespace mitigate {
namespace {

struct CheckOptions {
    std::string file;
    bool skip_secrets = false;
    OutputFormat output = OutputFormat::text;
};

nlohmann::json error_to_json(const ConfigError& error) {
    return {{"file", error.file},
            {"line", error.line},
            {"column", error.column},
            {"key", error.key},
            {"message", error.message}};
}

int run_check(const CheckOptions& options) {
    ConfigLoad load = load_config_file(options.file);
    std::vector<ConfigError> errors = std::move(load.errors);
    if (load.config && !options.skip_secrets) {
        errors = check_secrets_resolve(*load.config);
    }
    if (options.output == OutputFormat::json) {
        nlohmann::json report{
            {"file", options.file}, {"valid", errors.empty()}, {"errors", nlohmann::json::array()}};
        for (const auto& error : errors) {
            report["errors"].push_back(error_to_json(error));
        }
        std::cout << report.dump(2) << "\n";
    } else if (errors.empty()) {
        const Config& config = *load.config;
        std::cout << options.file << ": ok (" << config.providers.size() << " provider"
                  << (config.providers.size() == 1 ? "" : "s") << ", chat "
                  << (config.chat.slack ? "slack" : "off") << ", " << config.secret_uses.size()
                  << " secret reference" << (config.secret_uses.size() == 1 ? "" : "s")
                  << (options.skip_secrets ? " not resolved" : " resolved") << ")\n";
    } else {
        for (const auto& error : errors) {
            std::cerr << error.to_string() << "\n";
        }
        std::cerr << options.file << ": " << errors.size() << " error"
                  << (errors.size() == 1 ? "" : "s") << "\n";
    }
    return errors.empty() ? exit_ok : exit_failure;
}

void emit_yaml(YAML::Emitter& out, const nlohmann::json& value) {
    if (value.is_object()) {
        out << YAML::BeginMap;
        for (const auto& [key, item] : value.items()) {
            out << YAML::Key << key << YAML::Value;
            emit_yaml(out, item);
        }
        out << YAML::EndMap;
    } else if (value.is_array()) {
        out << YAML::BeginSeq;
        for (const auto& item : value) {
            emit_yaml(out, item);
        }
        out << YAML::EndSeq;
    } else if (value.is_string()) {
        out << YAML::DoubleQuoted << value.get<std::string>();
    } else if (value.is_null()) {
        out << YAML::Null;
    } else {
        out << value.dump();
    }
}

int run_show(const GlobalOptions& global, OutputFormat output) {
    const auto config = load_config_for_command(global);
    if (!config) {
        return exit_failure;
    }
    const nlohmann::json effective = config_to_json(*config);
    if (output == OutputFormat::json) {
        std::cout << effective.dump(2) << "\n";
    } else {
        YAML::Emitter out;
        emit_yaml(out, effective);
        std::cout << "# effective configuration from " << config->source << "\n"
                  << out.c_str() << "\n";
    }
    return exit_ok;
}

}  // namespace

void register_config_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
    CLI::App* config = app.add_subcommand("config", "Check or show configuration files");
    config->require_subcommand(1);

    auto check_options = std::make_shared<CheckOptions>();
    CLI::App* check = config->add_subcommand(
        "check",
        "Validate a mitigate.yaml: every error as file:line:column with its key; unknown keys\n"
        "are errors. Secret references are resolved to check they are available; their\n"
        "values are never printed. Exit 0 when valid, 1 when not.");
    check->add_option("FILE", check_options->file, "The configuration file")->required();
    check->add_flag("--skip-secrets", check_options->skip_secrets,
                    "Do not check that env:/file: secret references resolve");
    add_output_option(*check, check_options->output);
    check->callback([check_options, &exit_code] { exit_code = run_check(*check_options); });

    auto show_output = std::make_shared<OutputFormat>(OutputFormat::text);
    CLI::App* show = config->add_subcommand(
        "show",
        "Print the effective configuration (--config, or the embedded default) with defaults\n"
        "filled in and paths made absolute. Secrets appear as their references.");
    add_output_option(*show, *show_output);
    show->callback(
        [&global, show_output, &exit_code] { exit_code = run_show(global, *show_output); });
}

}  // namespace mitigate
