// The commands that talk to a running daemon over its API (docs/reference/api.md):
//   mitigate incidents [--status open|resolved]
//   mitigate mitigations [--state S[,S]] [--incident ID] [--limit N]
//   mitigate show ID
//   mitigate approve ID [--comment C]      mitigate reject ID [--comment C]
//   mitigate revert ID [--reason R] [--no-wait | --wait S]    mitigate keep ID --reason R
//   mitigate breaker reset --reason R
//   mitigate signal send FILE              (Alertmanager webhook JSON or mitigate's own)
//   mitigate drill run FILE [--dry-run]    mitigate drill history [--drill NAME]
// The daemon is --server URL, else $MITIGATE_SERVER, else server.listen from the
// configuration; the token is read from --token-file, else $MITIGATE_TOKEN.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "runtime/cli/command_context.h"
#include "runtime/config/config.h"
#include "runtime/core/json_reader.h"
#include "runtime/core/text_file.h"
#include "runtime/drills/drill_definition.h"
#include "runtime/drills/drill_report.h"
#include "runtime/server/http_client.h"

namespace mitigate {
namespace {

using nlohmann::json;

struct ClientOptions {
    std::string server;
    std::string token_file;
    OutputFormat output = OutputFormat::text;
    std::string id;
    std::string text;  // comment or reason
    std::string status;
    std::string state;
    std::string incident;
    int limit = 50;
    std::string file;
    bool dry_run = false;
    bool no_wait = false;
    bool markdown = false;
    int timeout_minutes = 30;
    int wait_seconds = 120;
};

struct Connection {
    std::string server;
    std::string token;
};

std::optional<Connection> connect(const GlobalOptions& global, const ClientOptions& options,
                                  const char* command) {
    Connection connection;
    connection.server = options.server;
    if (connection.server.empty()) {
        if (const char* from_env = std::getenv("MITIGATE_SERVER")) {
            connection.server = from_env;
        }
    }
    if (connection.server.empty()) {
        const auto config = load_config_for_command(global);
        if (!config) {
            return std::nullopt;
        }
        connection.server =
            "http://" + config->server.host + ":" + std::to_string(config->server.port);
    }
    while (!connection.server.empty() && connection.server.back() == '/') {
        connection.server.pop_back();
    }
    if (!options.token_file.empty()) {
        std::ifstream file(options.token_file);
        if (!file || !std::getline(file, connection.token)) {
            std::cerr << "mitigate " << command << ": cannot read a token from "
                      << options.token_file << "\n";
            return std::nullopt;
        }
    } else if (const char* from_env = std::getenv("MITIGATE_TOKEN")) {
        connection.token = from_env;
    }
    while (!connection.token.empty() &&
           (connection.token.back() == '\n' || connection.token.back() == ' ')) {
        connection.token.pop_back();
    }
    if (connection.token.empty()) {
        std::cerr << "mitigate " << command
                  << ": no API token; set MITIGATE_TOKEN or pass --token-file FILE "
                     "(create one with `mitigate token create`)\n";
        return std::nullopt;
    }
    return connection;
}

// The response body as JSON, or nullopt after printing what went wrong.
std::optional<json> call(const Connection& connection, const char* command,
                         const std::string& method, const std::string& path,
                         const std::optional<json>& body = std::nullopt) {
    HttpClientRequest request;
    request.method = method;
    request.url = connection.server + path;
    request.headers["Authorization"] = "Bearer " + connection.token;
    if (body) {
        request.headers["Content-Type"] = "application/json";
        request.body = body->dump();
    }
    const HttpClientResponse response = http_request(request);
    if (response.status == 0) {
        std::cerr << "mitigate " << command << ": cannot reach the daemon at " << connection.server
                  << ": " << response.error << "\n";
        return std::nullopt;
    }
    std::string unreadable;
    json parsed = parse_json_within(response.body, JsonTextLimits{}, unreadable)
                      .value_or(json(json::value_t::discarded));
    if (response.status >= 300) {
        std::string message = response.body;
        if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) {
            message = parsed["error"].value("message", response.body);
        }
        std::cerr << "mitigate " << command << ": " << message << " (HTTP " << response.status
                  << ")\n";
        return std::nullopt;
    }
    if (parsed.is_discarded()) {
        std::cerr << "mitigate " << command << ": the daemon's answer is not JSON\n";
        return std::nullopt;
    }
    return parsed;
}

std::string query_escape(const std::string& text) {
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ',') {
            out += static_cast<char>(c);
        } else {
            char buffer[4];
            std::snprintf(buffer, sizeof buffer, "%%%02X", c);
            out += buffer;
        }
    }
    return out;
}

std::string text_or(const json& value, const char* key, const char* fallback = "-") {
    return value.contains(key) && value[key].is_string() ? value[key].get<std::string>() : fallback;
}

// The daemon's answer is read, never trusted to have the right types: a field of another
// type prints the fallback instead of throwing.
std::int64_t integer_or(const json& value, const char* key, std::int64_t fallback = 0) {
    return value.is_object() && value.contains(key) && value[key].is_number_integer()
               ? value[key].get<std::int64_t>()
               : fallback;
}

int run_incidents(const GlobalOptions& global, const ClientOptions& options) {
    const auto connection = connect(global, options, "incidents");
    if (!connection) {
        return exit_failure;
    }
    std::string path = "/v1/incidents?limit=" + std::to_string(options.limit);
    if (!options.status.empty()) {
        path += "&status=" + query_escape(options.status);
    }
    const auto answer = call(*connection, "incidents", "GET", path);
    if (!answer) {
        return exit_failure;
    }
    if (options.output == OutputFormat::json) {
        std::cout << (*answer)["incidents"].dump(2) << "\n";
        return exit_ok;
    }
    std::printf("%-38s %-9s %-24s %s\n", "ID", "STATUS", "OPENED", "TITLE");
    for (const json& incident : (*answer)["incidents"]) {
        std::printf("%-38s %-9s %-24s %s%s\n", text_or(incident, "id").c_str(),
                    text_or(incident, "status").c_str(), text_or(incident, "opened_at").c_str(),
                    text_or(incident, "title").c_str(),
                    incident.value("drill", false) ? " [drill]" : "");
    }
    return exit_ok;
}

int run_mitigations(const GlobalOptions& global, const ClientOptions& options) {
    const auto connection = connect(global, options, "mitigations");
    if (!connection) {
        return exit_failure;
    }
    std::string path = "/v1/mitigations?limit=" + std::to_string(options.limit);
    if (!options.state.empty()) {
        path += "&state=" + query_escape(options.state);
    }
    if (!options.incident.empty()) {
        path += "&incident=" + query_escape(options.incident);
    }
    const auto answer = call(*connection, "mitigations", "GET", path);
    if (!answer) {
        return exit_failure;
    }
    if (options.output == OutputFormat::json) {
        std::cout << (*answer)["mitigations"].dump(2) << "\n";
        return exit_ok;
    }
    std::printf("%-38s %-17s %-22s %-28s %s\n", "ID", "STATE", "ACTION", "TARGET", "EXPIRES");
    for (const json& mitigation : (*answer)["mitigations"]) {
        const json& action = mitigation["proposal"]["action"];
        std::printf("%-38s %-17s %-22s %-28s %s\n", text_or(mitigation, "id").c_str(),
                    text_or(mitigation, "state").c_str(),
                    (text_or(action, "provider") + " " + text_or(action, "action")).c_str(),
                    text_or(action, "target").c_str(), text_or(mitigation, "expires_at").c_str());
    }
    return exit_ok;
}

void print_mitigation(const json& mitigation) {
    const json& proposal = mitigation["proposal"];
    const json& action = proposal["action"];
    std::cout << "mitigation  " << text_or(mitigation, "id") << "\n"
              << "state       " << text_or(mitigation, "state") << " (version "
              << integer_or(mitigation, "version") << ")"
              << (mitigation.value("drill", false) ? " [drill]" : "") << "\n"
              << "action      " << text_or(action, "provider") << " " << text_or(action, "action")
              << " on " << text_or(action, "target") << " " << action["parameters"].dump() << "\n"
              << "reason      " << text_or(action, "reason") << "\n"
              << "proposed by " << text_or(proposal, "proposed_by") << " for incident "
              << text_or(proposal, "incident_id") << "\n";
    if (mitigation.contains("plan") && mitigation["plan"].is_object()) {
        const json& plan = mitigation["plan"];
        std::cout << "plan        " << plan["forward"].dump() << "\n"
                  << "inverse     " << plan["inverse"].dump() << "\n"
                  << "blast       " << text_or(plan["blast_radius"], "description") << "\n";
    }
    if (mitigation.contains("decision") && mitigation["decision"].is_object()) {
        const json& decision = mitigation["decision"];
        std::cout << "decision    " << text_or(decision, "effect") << ": "
                  << text_or(decision, "summary") << "\n";
    }
    for (const json& approval : mitigation.value("approvals", json::array())) {
        std::cout << "approval    " << text_or(approval, "verdict") << " by "
                  << text_or(approval, "approver") << " at " << text_or(approval, "at") << " via "
                  << text_or(approval, "channel")
                  << (text_or(approval, "reason", "").empty()
                          ? ""
                          : ": " + text_or(approval, "reason", ""))
                  << "\n";
    }
    std::cout << "expires     " << text_or(mitigation, "expires_at", "never") << "\n";
    if (mitigation.contains("retry") && mitigation["retry"].is_object()) {
        const json& retry = mitigation["retry"];
        std::cout << "failing     " << text_or(retry, "step") << " failed "
                  << integer_or(retry, "attempts") << " time(s) in a row, next attempt at "
                  << text_or(retry, "next_attempt_at") << ": " << text_or(retry, "last_error")
                  << "\n";
    }
    if (mitigation.contains("failed_at") && mitigation["failed_at"].is_string()) {
        std::cout << "failed at   " << text_or(mitigation, "failed_at")
                  << " (counted by the circuit breaker)\n";
    }
    if (mitigation.contains("journal")) {
        std::cout << "journal\n";
        for (const json& entry : mitigation["journal"]) {
            std::cout << "  " << text_or(entry, "at") << "  " << std::left << std::setw(17)
                      << text_or(entry, "to") << " " << text_or(entry, "actor") << ": "
                      << text_or(entry, "reason") << "\n";
        }
    }
}

int run_show(const GlobalOptions& global, const ClientOptions& options) {
    const auto connection = connect(global, options, "show");
    if (!connection) {
        return exit_failure;
    }
    const auto answer =
        call(*connection, "show", "GET", "/v1/mitigations/" + query_escape(options.id));
    if (!answer) {
        return exit_failure;
    }
    if (options.output == OutputFormat::json) {
        std::cout << answer->dump(2) << "\n";
    } else {
        print_mitigation(*answer);
    }
    return exit_ok;
}

int run_action(const GlobalOptions& global, const ClientOptions& options, const char* verb) {
    const auto connection = connect(global, options, verb);
    if (!connection) {
        return exit_failure;
    }
    const bool approval = std::string_view(verb) == "approve" || std::string_view(verb) == "reject";
    json body = json::object();
    if (!options.text.empty()) {
        body[approval ? "comment" : "reason"] = options.text;
    }
    const auto answer = call(*connection, verb, "POST",
                             "/v1/mitigations/" + query_escape(options.id) + "/" + verb, body);
    if (!answer) {
        return exit_failure;
    }
    json result = *answer;
    // A revert is accepted and carried out by the engine: follow it to where it ends (the
    // state the mitigation restored, or a conflict a person must decide), unless asked not to.
    if (std::string_view(verb) == "revert" && !options.no_wait) {
        const auto give_up =
            std::chrono::steady_clock::now() + std::chrono::seconds(options.wait_seconds);
        for (;;) {
            const auto shown =
                call(*connection, verb, "GET", "/v1/mitigations/" + query_escape(options.id));
            if (!shown) {
                return exit_failure;
            }
            const std::string state = text_or(*shown, "state");
            if (state != "reverting") {
                const json journal = shown->value("journal", json::array());
                const std::string reason =
                    journal.empty() ? state : text_or(journal.back(), "reason");
                result = {{"message", reason}, {"mitigation", *shown}};
                break;
            }
            if (std::chrono::steady_clock::now() >= give_up) {
                std::cerr << "mitigate revert: " << options.id << " is still reverting after "
                          << options.wait_seconds << " s; the engine keeps trying (mitigate show "
                          << options.id << ")\n";
                return exit_failure;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
    }
    const std::string state = text_or(result["mitigation"], "state");
    if (options.output == OutputFormat::json) {
        std::cout << result.dump(2) << "\n";
    } else {
        std::cout << options.id << ": " << text_or(result, "message") << "; now " << state << "\n";
    }
    if (std::string_view(verb) == "revert" && !options.no_wait && state != "reverted") {
        if (state == "conflict") {
            std::cerr << "mitigate revert: not reverted; restore the target and revert again, or "
                         "keep it\n";
        }
        return exit_failure;
    }
    return exit_ok;
}

int run_breaker_reset(const GlobalOptions& global, const ClientOptions& options) {
    const auto connection = connect(global, options, "breaker reset");
    if (!connection) {
        return exit_failure;
    }
    const auto answer = call(*connection, "breaker reset", "POST", "/v1/circuit-breaker/reset",
                             json{{"reason", options.text}});
    if (!answer) {
        return exit_failure;
    }
    if (options.output == OutputFormat::json) {
        std::cout << answer->dump(2) << "\n";
    } else {
        std::cout << text_or(*answer, "message") << "\n";
    }
    return exit_ok;
}

// A file named on the command line, read with the limits of every operator file
// (runtime/core/text_file.h); throws with the command, the path and why.
std::string read_command_file(const std::string& path, const char* command) {
    TextFileError problem;
    std::optional<std::string> text = read_text_file(path, text_file_max_bytes, problem);
    if (!text) {
        throw std::runtime_error(std::string("mitigate ") + command + ": " +
                                 describe_text_file_error(path, problem));
    }
    return std::move(*text);
}

int run_signal_send(const GlobalOptions& global, const ClientOptions& options) {
    std::stringstream text;
    if (options.file == "-") {
        text << std::cin.rdbuf();
    } else {
        try {
            text << read_command_file(options.file, "signal send");
        } catch (const std::exception& failure) {
            std::cerr << failure.what() << "\n";
            return exit_failure;
        }
    }
    std::string unreadable;
    const auto parsed = parse_json_within(text.str(), JsonTextLimits{}, unreadable);
    if (!parsed) {
        std::cerr << "mitigate signal send: " << options.file << ": " << unreadable << "\n";
        return exit_failure;
    }
    const json& body = *parsed;
    const auto connection = connect(global, options, "signal send");
    if (!connection) {
        return exit_failure;
    }
    // An Alertmanager payload goes where Alertmanager would send it: same parser, same ids.
    const bool alertmanager =
        body.is_object() && body.contains("alerts") && body.contains("version");
    const auto answer = call(*connection, "signal send", "POST",
                             alertmanager ? "/v1/alerts/alertmanager" : "/v1/signals", body);
    if (!answer) {
        return exit_failure;
    }
    if (options.output == OutputFormat::json) {
        std::cout << answer->dump(2) << "\n";
    } else {
        std::cout << "accepted " << answer->value("accepted", 0) << ", duplicates "
                  << answer->value("duplicates", 0) << "\n";
    }
    return exit_ok;
}

void print_drill_run(const json& run, const ClientOptions& options) {
    if (options.output == OutputFormat::json) {
        std::cout << run.dump(2) << "\n";
    } else {
        std::cout << drill_report_markdown(run);
    }
}

// Starts the drill on the daemon and, unless --no-wait, follows it to its report. Exits 0
// only for a passed run.
int run_drill_run(const GlobalOptions& global, const ClientOptions& options) {
    std::string definition;
    try {
        definition = read_command_file(options.file, "drill run");
    } catch (const std::exception& failure) {
        std::cerr << failure.what() << "\n";
        return exit_failure;
    }
    const auto connection = connect(global, options, "drill run");
    if (!connection) {
        return exit_failure;
    }
    const auto started = call(
        *connection, "drill run", "POST", "/v1/drills/runs",
        json{{"definition", definition}, {"dry_run", options.dry_run}, {"file", options.file}});
    if (!started) {
        return exit_failure;
    }
    json run = (*started)["run"];
    const std::string id = run.value("id", "");
    if (options.no_wait) {
        print_drill_run(run, options);
        return exit_ok;
    }
    if (options.output == OutputFormat::text) {
        std::cerr << "drill " << run.value("drill", "?") << ": run " << id << " started\n";
    }
    const auto give_up =
        std::chrono::steady_clock::now() + std::chrono::minutes(options.timeout_minutes);
    while (run.value("status", "") == "running" || run.value("status", "") == "cleaning") {
        if (std::chrono::steady_clock::now() > give_up) {
            std::cerr << "mitigate drill run: run " << id << " is still " << run.value("status", "")
                      << " after " << options.timeout_minutes
                      << " min; follow it with `mitigate drill history`\n";
            return exit_failure;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        const auto polled = call(*connection, "drill run", "GET", "/v1/drills/runs/" + id);
        if (!polled) {
            return exit_failure;
        }
        run = *polled;
    }
    print_drill_run(run, options);
    return run.value("status", "") == "passed" ? exit_ok : exit_failure;
}

int run_drill_history(const GlobalOptions& global, const ClientOptions& options) {
    const auto connection = connect(global, options, "drill history");
    if (!connection) {
        return exit_failure;
    }
    std::string path = "/v1/drills/runs?limit=" + std::to_string(options.limit);
    if (!options.id.empty()) {
        path += "&drill=" + query_escape(options.id);
    }
    const auto answer = call(*connection, "drill history", "GET", path);
    if (!answer) {
        return exit_failure;
    }
    const json& runs = (*answer)["runs"];
    if (options.output == OutputFormat::json) {
        std::cout << answer->dump(2) << "\n";
    } else if (options.markdown) {
        for (const json& run : runs) {
            std::cout << drill_report_markdown(run) << "\n";
        }
    } else {
        for (const json& run : runs) {
            std::cout << text_or(run, "started_at") << "  " << std::left << std::setw(8)
                      << text_or(run, "status") << "  " << text_or(run, "drill") << "  "
                      << text_or(run, "id") << (run.value("dry_run", false) ? "  (dry run)" : "")
                      << (run.contains("reason") ? "  " + text_or(run, "reason") : "") << "\n";
        }
        if (runs.empty()) {
            std::cout << "no drill runs\n";
        }
    }
    return exit_ok;
}

// Offline: loads drill files and directories the way the daemon would.
int run_drill_check(const std::vector<std::string>& paths) {
    std::size_t drills = 0;
    std::vector<ConfigError> errors;
    for (const std::string& path : paths) {
        DrillLoad load;
        if (std::filesystem::is_directory(path)) {
            load = load_drill_directory(path);
        } else {
            try {
                load = load_drill_text(read_command_file(path, "drill check"), path);
            } catch (const std::exception& failure) {
                std::cerr << failure.what() << "\n";
                return exit_failure;
            }
        }
        drills += load.drills.size();
        errors.insert(errors.end(), load.errors.begin(), load.errors.end());
    }
    for (const auto& error : errors) {
        std::cerr << error.to_string() << "\n";
    }
    if (!errors.empty()) {
        return exit_failure;
    }
    std::cout << drills << " drill(s) OK\n";
    return exit_ok;
}

void add_connection_options(CLI::App& command, ClientOptions& options) {
    command.add_option("--server", options.server,
                       "Daemon URL (default: $MITIGATE_SERVER, else server.listen)");
    command.add_option("--token-file", options.token_file,
                       "File holding the API token (default: $MITIGATE_TOKEN)");
    add_output_option(command, options.output);
}

}  // namespace

void register_client_commands(CLI::App& app, const GlobalOptions& global, int& exit_code) {
    auto options = std::make_shared<ClientOptions>();

    CLI::App* incidents = app.add_subcommand("incidents", "List incidents (from the daemon)");
    incidents->add_option("--status", options->status, "open or resolved")
        ->check(CLI::IsMember({"open", "resolved"}));
    incidents->add_option("--limit", options->limit, "At most this many, newest first")
        ->check(CLI::Range(1, 1000));
    add_connection_options(*incidents, *options);
    incidents->callback(
        [&global, &exit_code, options] { exit_code = run_incidents(global, *options); });

    CLI::App* mitigations =
        app.add_subcommand("mitigations", "List mitigations (from the daemon), newest first");
    mitigations->add_option("--state", options->state,
                            "Only these states, comma-separated: pending_approval,active");
    mitigations->add_option("--incident", options->incident, "Only this incident's");
    mitigations->add_option("--limit", options->limit, "At most this many")
        ->check(CLI::Range(1, 1000));
    add_connection_options(*mitigations, *options);
    mitigations->callback(
        [&global, &exit_code, options] { exit_code = run_mitigations(global, *options); });

    CLI::App* show = app.add_subcommand(
        "show", "Show one mitigation: action, plan and inverse, decision, approvals, journal");
    show->add_option("id", options->id, "Mitigation id")->required();
    add_connection_options(*show, *options);
    show->callback([&global, &exit_code, options] { exit_code = run_show(global, *options); });

    struct Verb {
        const char* name;
        const char* help;
        const char* text_option;
        const char* text_help;
        bool text_required;
    };
    static constexpr Verb verbs[] = {
        {"approve", "Approve a mitigation pending approval (counts toward its quorum)", "--comment",
         "Why, recorded with the approval", false},
        {"reject", "Reject a mitigation pending approval (it will not run)", "--comment",
         "Why, recorded with the rejection", false},
        {"revert", "Revert an active, verifying or conflicting mitigation now", "--reason",
         "Why, recorded in the journal", false},
        {"keep", "Make an active or conflicting mitigation permanent (it never reverts)",
         "--reason", "Why it stays (required)", true},
    };
    for (const Verb& verb : verbs) {
        CLI::App* command = app.add_subcommand(verb.name, verb.help);
        command->add_option("id", options->id, "Mitigation id")->required();
        auto* text = command->add_option(verb.text_option, options->text, verb.text_help);
        if (verb.text_required) {
            text->required();
        }
        if (std::string_view(verb.name) == "revert") {
            command->add_flag("--no-wait", options->no_wait,
                              "Return once the revert is recorded; the engine carries it out");
            command
                ->add_option("--wait", options->wait_seconds,
                             "Seconds to follow the revert to its end (default 120)")
                ->check(CLI::Range(1, 24 * 60 * 60));
        }
        add_connection_options(*command, *options);
        const char* name = verb.name;
        command->callback([&global, &exit_code, options, name] {
            exit_code = run_action(global, *options, name);
        });
    }

    CLI::App* breaker = app.add_subcommand(
        "breaker", "The policy's circuit breaker (constraints.circuit_breaker, docs/policies.md)");
    breaker->require_subcommand(1);
    CLI::App* reset = breaker->add_subcommand(
        "reset",
        "Reset the circuit breaker: failures counted so far no longer stop automation\n"
        "(operator role; audited as policy.circuit_breaker_reset)");
    reset->add_option("--reason", options->text, "Why it is safe to resume (required)")->required();
    add_connection_options(*reset, *options);
    reset->callback(
        [&global, &exit_code, options] { exit_code = run_breaker_reset(global, *options); });

    CLI::App* signal = app.add_subcommand("signal", "Send signals to the daemon");
    signal->require_subcommand(1);
    CLI::App* send = signal->add_subcommand(
        "send",
        "Send a signal file: an Alertmanager webhook payload, or mitigate's own signal\n"
        "JSON (docs/reference/api.md); \"-\" reads stdin");
    send->add_option("file", options->file, "JSON file, or - for stdin")->required();
    add_connection_options(*send, *options);
    send->callback(
        [&global, &exit_code, options] { exit_code = run_signal_send(global, *options); });

    CLI::App* drill = app.add_subcommand("drill", "Chaos drills (docs/drills.md)");
    drill->require_subcommand(1);
    CLI::App* run = drill->add_subcommand(
        "run",
        "Run a drill now on the daemon, through the same policy as everything else, and\n"
        "print its report; exits 0 only if it passed. Everything it caused is cleaned up.");
    run->add_option("file", options->file, "Drill definition (YAML)")->required();
    run->add_flag("--dry-run", options->dry_run,
                  "Policy decides as usual, nothing is applied (mitigations end dry_run)");
    run->add_flag("--no-wait", options->no_wait, "Print the started run and return");
    run->add_option("--timeout", options->timeout_minutes, "Minutes to follow the run")
        ->check(CLI::Range(1, 24 * 60));
    add_connection_options(*run, *options);
    run->callback([&global, &exit_code, options] { exit_code = run_drill_run(global, *options); });

    CLI::App* history = drill->add_subcommand("history", "Drill runs, newest first, with results");
    history->add_option("--drill", options->id, "Only this drill's runs");
    history->add_option("--limit", options->limit, "At most this many")->check(CLI::Range(1, 1000));
    history->add_flag("--markdown", options->markdown, "Each run's full report, as Markdown");
    add_connection_options(*history, *options);
    history->callback(
        [&global, &exit_code, options] { exit_code = run_drill_history(global, *options); });

    auto paths = std::make_shared<std::vector<std::string>>();
    CLI::App* check = drill->add_subcommand(
        "check", "Validate drill files or directories offline: every error as file:line:column");
    check->add_option("paths", *paths, "Drill YAML files or directories")->required();
    check->callback([&exit_code, paths] { exit_code = run_drill_check(*paths); });
}

}  // namespace mitigate
