// mitigate emulate PROVIDER... [--port PROVIDER=PORT]... [--postgres CONNINFO]
//                  [--write-config FILE]
//
// Starts the provider emulators (aws, vercel, supabase) on 127.0.0.1 with sample
// resources, prints where they listen and the providers section of a mitigate.yaml that
// points at them, and runs until SIGINT or SIGTERM: for rehearsing playbooks and drills
// offline. The credentials are fixed, fake and printed; never use them anywhere else.
// Faults are injected over HTTP: POST /_emulator/faults on any emulator
// (plugins/emulators/fault_injector.h).
#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "plugins/emulators/aws_emulator.h"
#include "plugins/emulators/supabase_emulator.h"
#include "plugins/emulators/vercel_emulator.h"
#include "runtime/cli/command_context.h"

namespace mitigate {
namespace {

using nlohmann::json;

// Fake, and printed: the emulators accept nothing else.
const char* const aws_key_id = "AKIDMITIGATEEMULATOR";
const char* const aws_secret = "mitigate-emulator-aws-secret-EXAMPLE";
const char* const vercel_token = "mitigate-emulator-vercel-token-EXAMPLE";
const char* const supabase_key = "mitigate-emulator-supabase-key-EXAMPLE";

struct EmulateOptions {
    std::vector<std::string> providers;
    std::vector<std::string> ports;  // PROVIDER=PORT
    std::string postgres;
    std::string write_config;  // also write the providers section here
};

std::string host_port(const std::string& url) {
    return url.substr(std::string("http://").size());
}

std::unique_ptr<AwsEmulator> start_aws(std::uint16_t port) {
    AwsEmulatorOptions options;
    options.access_key_id = aws_key_id;
    options.secret_access_key = aws_secret;
    options.port = port;
    auto emulator = std::make_unique<AwsEmulator>(options);
    emulator->add_ecs_service("default", "checkout", 4);
    emulator->add_ecs_service("default", "search", 4);
    emulator->add_scalable_target("default", "search", 2, 10);
    const json rule = json::parse(R"({
      "Name": "per-ip", "Priority": 1,
      "Statement": {"RateBasedStatement": {"Limit": 2000, "AggregateKeyType": "IP"}},
      "Action": {"Block": {}},
      "VisibilityConfig": {"SampledRequestsEnabled": true, "CloudWatchMetricsEnabled": true,
                           "MetricName": "per-ip"}})");
    const std::string acl = emulator->add_web_acl("REGIONAL", "edge", json::array({rule}));
    const std::string blue = emulator->add_target_group("storefront-blue");
    const std::string green = emulator->add_target_group("storefront-green");
    const std::string listener = emulator->add_listener("storefront", {{blue, 1}});
    const std::string canary = emulator->add_rule(listener, 10, {{blue, 90}, {green, 10}});
    std::cout << "aws       " << emulator->url() << "\n"
              << "          targets: ecs/checkout (4 tasks), ecs/search (4, Auto Scaling 2-10),\n"
              << "                   waf/REGIONAL/edge/" << acl << "/per-ip (limit 2000),\n"
              << "                   alb/" << canary << " (blue 90, green 10)\n";
    return emulator;
}

std::unique_ptr<VercelEmulator> start_vercel(std::uint16_t port) {
    VercelEmulatorOptions options;
    options.token = vercel_token;
    options.port = port;
    auto emulator = std::make_unique<VercelEmulator>(options);
    emulator->add_project("prj_web", "web");
    emulator->add_deployment("prj_web", "dpl_web_previous", true, std::int64_t{2} * 3600);
    emulator->add_deployment("prj_web", "dpl_web_current", true, std::int64_t{10} * 60);
    std::cout << "vercel    " << emulator->url() << "\n"
              << "          project web (prj_web): production dpl_web_current (10 min old), "
                 "previous dpl_web_previous\n";
    return emulator;
}

std::unique_ptr<SupabaseEmulator> start_supabase(std::uint16_t port, const std::string& postgres) {
    SupabaseEmulatorOptions options;
    options.connection = postgres;
    options.service_key = supabase_key;
    options.port = port;
    auto emulator = std::make_unique<SupabaseEmulator>(options);
    emulator->seed_flags("config_flags", {{"maintenance_mode", false},
                                          {"kill_switch_database", false},
                                          {"rate_limit_multiplier", 1.0}});
    std::cout << "supabase  " << emulator->url() << "\n"
              << "          table config_flags: maintenance_mode, kill_switch_database, "
                 "rate_limit_multiplier\n";
    return emulator;
}

std::string exports(const std::map<std::string, std::string>& urls) {
    std::string text;
    if (urls.count("aws")) {
        text += "#   export MITIGATE_EMULATOR_AWS_KEY=" + std::string(aws_key_id) +
                " MITIGATE_EMULATOR_AWS_SECRET=" + aws_secret + "\n";
    }
    if (urls.count("vercel")) {
        text += "#   export MITIGATE_EMULATOR_VERCEL_TOKEN=" + std::string(vercel_token) + "\n";
    }
    if (urls.count("supabase")) {
        text += "#   export MITIGATE_EMULATOR_SUPABASE_KEY=" + std::string(supabase_key) + "\n";
    }
    return text;
}

std::string providers_section(const std::map<std::string, std::string>& urls) {
    std::string text = "providers:\n";
    auto egress = [&](const std::string& url) {
        return "    egress: {allow_hosts: [\"" + host_port(url) + "\"], allow_loopback: true}\n";
    };
    if (urls.count("aws")) {
        const std::string& url = urls.at("aws");
        text += "  aws:\n" + egress(url) +
                "    credentials:\n"
                "      emulator: {type: aws_sigv4, access_key_id: env:MITIGATE_EMULATOR_AWS_KEY,\n"
                "                 secret_access_key: env:MITIGATE_EMULATOR_AWS_SECRET, "
                "region: us-east-1,\n"
                "                 origins: [\"" +
                url +
                "\"]}\n"
                "    settings: {region: us-east-1, endpoint: \"" +
                url + "\", credential: emulator}\n";
    }
    if (urls.count("vercel")) {
        const std::string& url = urls.at("vercel");
        text += "  vercel:\n" + egress(url) +
                "    credentials:\n"
                "      emulator: {type: bearer, token: env:MITIGATE_EMULATOR_VERCEL_TOKEN, "
                "origins: [\"" +
                url +
                "\"]}\n"
                "    settings: {url: \"" +
                url + "\", credential: emulator, team_id: team_mitigate}\n";
    }
    if (urls.count("supabase")) {
        const std::string& url = urls.at("supabase");
        text += "  supabase:\n" + egress(url) +
                "    credentials:\n"
                "      emulator: {type: supabase, key: env:MITIGATE_EMULATOR_SUPABASE_KEY, "
                "origins: [\"" +
                url +
                "\"]}\n"
                "    settings: {via: postgrest, url: \"" +
                url + "\", credential: emulator}\n";
    }
    return text;
}

int run_emulate(const EmulateOptions& options) {
    static const std::set<std::string> known{"aws", "vercel", "supabase"};
    std::map<std::string, std::uint16_t> ports;
    for (const std::string& provider : options.providers) {
        if (!known.contains(provider)) {
            std::cerr << "mitigate emulate: no emulator for \"" << provider
                      << "\" (there are: aws, vercel, supabase)\n";
            return exit_usage;
        }
        ports[provider] = 0;
    }
    for (const std::string& entry : options.ports) {
        const auto equals = entry.find('=');
        const std::string provider = entry.substr(0, equals);
        int port = -1;
        try {
            port = equals == std::string::npos ? -1 : std::stoi(entry.substr(equals + 1));
        } catch (const std::exception&) {
        }
        if (!ports.count(provider) || port < 0 || port > 65535) {
            std::cerr << "mitigate emulate: --port " << entry
                      << ": expected PROVIDER=PORT for a provider being emulated\n";
            return exit_usage;
        }
        ports[provider] = static_cast<std::uint16_t>(port);
    }
    if (ports.count("supabase") && options.postgres.empty()) {
        std::cerr << "mitigate emulate: supabase needs --postgres CONNINFO, a PostgreSQL the "
                     "emulator stores the flags in (e.g. \"host=/var/run/postgresql "
                     "dbname=mitigate\")\n";
        return exit_usage;
    }
    sigset_t stop_signals = block_stop_signals();
    std::unique_ptr<AwsEmulator> aws;
    std::unique_ptr<VercelEmulator> vercel;
    std::unique_ptr<SupabaseEmulator> supabase;
    std::map<std::string, std::string> urls;
    try {
        if (ports.count("aws")) {
            aws = start_aws(ports["aws"]);
            urls["aws"] = aws->url();
        }
        if (ports.count("vercel")) {
            vercel = start_vercel(ports["vercel"]);
            urls["vercel"] = vercel->url();
        }
        if (ports.count("supabase")) {
            supabase = start_supabase(ports["supabase"], options.postgres);
            urls["supabase"] = supabase->url();
        }
    } catch (const std::exception& error) {
        std::cerr << "mitigate emulate: " << error.what() << "\n";
        return exit_failure;
    }
    const std::string section = providers_section(urls);
    if (!options.write_config.empty()) {
        std::ofstream output(options.write_config);
        output << "# Written by mitigate emulate; the emulators' credentials are fake:\n"
               << exports(urls) << section;
        if (!output.flush()) {
            std::cerr << "mitigate emulate: cannot write " << options.write_config << "\n";
            return exit_failure;
        }
    }
    std::cout << "\n# The providers section of a mitigate.yaml for these emulators. First:\n"
              << exports(urls) << section
              << "\nFaults: curl -X POST URL/_emulator/faults -d "
                 "'{\"operation\":\"UpdateService\",\"kind\":\"error\",\"status\":503}'\n"
              << "Stop with Ctrl-C." << std::endl;
    int received = 0;
    sigwait(&stop_signals, &received);
    std::cerr << "mitigate emulate: stopping on signal " << received << "\n";
    return exit_ok;
}

}  // namespace

void register_emulate_command(CLI::App& app, const GlobalOptions&, int& exit_code) {
    auto options = std::make_shared<EmulateOptions>();
    CLI::App* command = app.add_subcommand(
        "emulate",
        "Run provider emulators (aws, vercel, supabase) on 127.0.0.1 with sample resources, "
        "to rehearse playbooks and drills offline; prints the configuration that uses them");
    command->add_option("providers", options->providers, "aws, vercel and/or supabase")->required();
    command->add_option("--port", options->ports,
                        "PROVIDER=PORT to listen on (default: a free port)");
    command->add_option("--postgres", options->postgres,
                        "libpq connection string of the PostgreSQL behind the supabase emulator");
    command->add_option("--write-config", options->write_config,
                        "also write the providers section (YAML) to this file");
    command->callback([options, &exit_code] { exit_code = run_emulate(*options); });
}

}  // namespace mitigate
