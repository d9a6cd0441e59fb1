// mitigate demo: the whole loop, for real, on the embedded defaults and nothing outside a
// temporary directory.
//
// The runtime starts in-process (the same Daemon as `mitigate serve`: store, API, engine,
// confined workers) with a fresh SQLite store and the flags provider on a flagd file. A
// small simulated service, "storefront", has a p99 latency that depends on its deploy and
// on the expensive-recommendations flag, read from that file. A detector samples it and
// posts Alertmanager webhooks to the API, as Alertmanager would. Then:
//
//   deploy v2 (bad) -> latency up -> alert fires -> incident -> shipped playbook
//   latency-throttle proposes turning the flag off -> flags plugin plans it -> policy
//   requires one approval -> the proposal is posted to Slack (the Slack emulator, in
//   process) -> the on-call person clicks Approve, a signed request like Slack's ->
//   applied (flag off)
//   -> latency recovers -> alert resolves -> verified -> a fix ships (v3) -> the TTL ends
//   -> reverted (flag on again, latency stays good)
//
// Every step is observed, not assumed: through the API, the flag file, the service and the
// messages in the emulated Slack channel.
// The demo exits 0 only if each happened, the journal is exactly that path and the audit
// chain verifies. The demo policy (shown) asks for one approval in stage and clamps the
// TTL to --ttl so that the revert happens while you watch.
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "plugins/emulators/slack_emulator.h"
#include "runtime/chat/chat_state_store.h"
#include "runtime/chat/slack_message.h"
#include "runtime/cli/command_context.h"
#include "runtime/config/config.h"
#include "runtime/core/time_format.h"
#include "runtime/server/api_token.h"
#include "runtime/server/daemon.h"
#include "runtime/server/http_client.h"
#include "runtime/store/store.h"

namespace mitigate {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct DemoOptions {
    std::string database;
    std::string ttl = "5s";
    bool keep_running = false;
    OutputFormat output = OutputFormat::text;
};

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

std::string demo_policy(const std::string& ttl) {
    return "# The demo's policy: one approval in stage, from anyone but the proposer, and\n"
           "# every TTL clamped to " +
           ttl +
           " so that the revert happens during the demo.\n"
           "rules:\n"
           "  - name: stage-one-approval\n"
           "    description: In stage, one person approves.\n"
           "    match: {environment: stage, reversible: true}\n"
           "    effect: require_approval\n"
           "    approvals: {count: 1, groups: [sre-oncall], expire_after: 10m}\n"
           "constraints:\n"
           "  ttl: {max: " +
           ttl + ", when_missing: deny, when_longer: clamp}\n";
}

fs::path make_directory() {
    std::string directory = (fs::temp_directory_path() / "mitigate-demo-XXXXXX").string();
    if (mkdtemp(directory.data()) == nullptr) {
        throw std::runtime_error("cannot create a temporary directory for the demo");
    }
    return directory;
}

// "storefront": p99 latency from its deploy and the flag, as a real service would show.
class SimulatedService {
  public:
    explicit SimulatedService(fs::path flag_file) : flag_file_(std::move(flag_file)) {}
    void deploy(int version) { version_ = version; }
    int version() const { return version_; }
    bool flag_on() const {
        std::ifstream file(flag_file_);
        const json document = json::parse(file, nullptr, false);
        if (document.is_discarded()) {
            return true;  // mid-replace never happens (atomic rename), but be conservative
        }
        return document["flags"]["expensive-recommendations"].value("defaultVariant", "on") == "on";
    }
    // v2 made the recommendations call slow; v3 fixed it.
    int p99_ms() const { return version_ == 2 && flag_on() ? 2400 : 310; }

  private:
    fs::path flag_file_;
    std::atomic<int> version_{1};
};

// Samples the service every 50 ms and posts Alertmanager webhooks on state changes:
// firing after 3 samples above 2 s, resolved after 3 samples below.
class Detector {
  public:
    Detector(const SimulatedService& service, std::string url, std::string token)
        : service_(service), url_(std::move(url)), token_(std::move(token)) {
        thread_ = std::thread([this] { run(); });
    }
    ~Detector() {
        stop_ = true;
        thread_.join();
    }
    int posts() const { return posts_; }
    bool firing() const { return firing_; }
    int last_status() const { return last_status_; }

  private:
    void run() {
        int above = 0;
        int below = 0;
        std::string starts_at;
        while (!stop_) {
            const bool slow = service_.p99_ms() > 2000;
            above = slow ? above + 1 : 0;
            below = slow ? 0 : below + 1;
            if (!firing_ && above >= 3) {
                starts_at = format_rfc3339(SystemClock().now());
                post("firing", starts_at);
                firing_ = true;
            } else if (firing_ && below >= 3) {
                post("resolved", starts_at);
                firing_ = false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    void post(const std::string& status, const std::string& starts_at) {
        const json alert = {{"status", status},
                            {"labels",
                             {{"alertname", "HighLatency"},
                              {"service", "storefront"},
                              {"environment", "stage"},
                              {"severity", "page"}}},
                            {"annotations",
                             {{"summary", "p99 latency on storefront is " +
                                              std::to_string(service_.p99_ms()) + " ms"}}},
                            {"startsAt", starts_at},
                            {"endsAt", status == "resolved" ? format_rfc3339(SystemClock().now())
                                                            : "0001-01-01T00:00:00Z"},
                            {"generatorURL", "http://demo.invalid/storefront"},
                            {"fingerprint", "demo-storefront-latency"}};
        HttpClientRequest request;
        request.method = "POST";
        request.url = url_ + "/v1/alerts/alertmanager";
        request.headers = {{"Authorization", "Bearer " + token_},
                           {"Content-Type", "application/json"}};
        request.body = json{{"version", "4"},
                            {"groupKey", "{}:{alertname=\"HighLatency\"}"},
                            {"status", status},
                            {"receiver", "mitigate"},
                            {"alerts", json::array({alert})}}
                           .dump();
        last_status_ = http_request(request).status;
        ++posts_;
    }

    const SimulatedService& service_;
    std::string url_;
    std::string token_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> firing_{false};
    std::atomic<int> posts_{0};
    std::atomic<int> last_status_{0};
    std::thread thread_;
};

class Timeline {
  public:
    explicit Timeline(bool print) : print_(print), started_(Clock::now()) {}
    void add(const std::string& step, const std::string& detail) {
        const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
        entries_.push_back({{"seconds", seconds}, {"step", step}, {"detail", detail}});
        if (print_) {
            std::printf("  +%6.2fs  %-10s %s\n", seconds, step.c_str(), detail.c_str());
            std::fflush(stdout);
        }
    }
    const json& entries() const { return entries_; }

  private:
    bool print_;
    Clock::time_point started_;
    json entries_ = json::array();
};

struct DemoFailure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Polls `check` every 20 ms for up to 30 s; throws naming the step that did not happen.
template <typename Check>
auto wait_for(const std::string& what, Check check) {
    const auto give_up = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < give_up) {
        if (auto result = check()) {
            return *result;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw DemoFailure(what + " did not happen within 30 s");
}

class Api {
  public:
    Api(std::string url, std::string token) : url_(std::move(url)), token_(std::move(token)) {}
    json get(const std::string& path) const { return call("GET", path, std::nullopt).second; }
    std::pair<int, json> post(const std::string& path, const json& body) const {
        return call("POST", path, body);
    }

  private:
    std::pair<int, json> call(const std::string& method, const std::string& path,
                              const std::optional<json>& body) const {
        HttpClientRequest request;
        request.method = method;
        request.url = url_ + path;
        request.headers["Authorization"] = "Bearer " + token_;
        if (body) {
            request.headers["Content-Type"] = "application/json";
            request.body = body->dump();
        }
        const auto response = http_request(request);
        return {response.status, json::parse(response.body, nullptr, false)};
    }
    std::string url_;
    std::string token_;
};

std::optional<json> mitigation_in(const Api& api, std::initializer_list<const char*> states) {
    std::string list;
    for (const char* state : states) {
        list += (list.empty() ? "" : ",") + std::string(state);
    }
    const json answer = api.get("/v1/mitigations?state=" + list);
    if (answer.is_object() && answer.contains("mitigations") && !answer["mitigations"].empty()) {
        return answer["mitigations"][0];
    }
    return std::nullopt;
}

std::string create_token(Store& store, const std::string& name, const std::string& role,
                         std::vector<std::string> groups) {
    const std::string token = generate_api_token();
    store.create_api_token(
        {name, role, std::move(groups), api_token_digest(token), SystemClock().now(), {}}, "demo");
    return token;
}

int run_demo(const GlobalOptions& global, const DemoOptions& options) {
    auto loaded = load_config_for_command(global);
    if (!loaded) {
        return exit_failure;
    }
    const auto ttl = parse_duration(options.ttl);
    if (!ttl || *ttl < std::chrono::seconds(1) || *ttl > std::chrono::minutes(10)) {
        std::cerr << "mitigate demo: --ttl must be a duration from 1s to 10m, not " << options.ttl
                  << "\n";
        return exit_usage;
    }
    // --keep-running waits for SIGINT/SIGTERM with sigwait: block them before any thread.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    if (options.keep_running) {
        stop_signals = block_stop_signals();
    }

    const bool text = options.output == OutputFormat::text;
    Timeline timeline(text);
    const fs::path directory = make_directory();
    Config config = *loaded;
    config.server.host = "127.0.0.1";
    config.server.port = 0;
    config.store.path =
        options.database.empty() ? directory / "mitigate.db" : fs::absolute(options.database);
    config.directories.policies = directory / "policies";
    config.directories.drills = directory / "drills";  // none: the demo schedules nothing
    fs::create_directories(config.directories.policies);
    std::ofstream(config.directories.policies / "demo.yaml") << demo_policy(options.ttl);
    config.engine.verification_window_ms = 30'000;
    const fs::path flag_file = directory / "flags.json";
    std::ofstream(flag_file) << demo_flag_file;
    std::erase_if(config.providers,
                  [](const ProviderConfig& provider) { return provider.name == "flags"; });
    ProviderConfig flags;
    flags.name = "flags";
    flags.plugin = "flags";
    flags.egress.allow_files = {flag_file};
    flags.settings = {{"backend", "flagd"}, {"path", flag_file.string()}};
    config.providers.push_back(flags);

    // Slack is the emulator, with a bot token and signing secret made for this run only and
    // handed to the daemon as secret references (files), as in production.
    const std::string slack_bot_token = generate_api_token();
    const std::string slack_signing_secret = generate_api_token();
    SlackEmulator slack(slack_bot_token, slack_signing_secret);
    const auto write_secret = [&](const char* name, const std::string& value) {
        const fs::path path = directory / name;
        std::ofstream(path) << value;
        fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
        return *SecretReference::parse("file:" + path.string());
    };
    SlackConfig chat;
    chat.api_url = slack.api_url();
    chat.channel = std::string(SlackEmulator::channel);
    chat.bot_token = write_secret("slack-bot-token", slack_bot_token);
    chat.signing_secret = write_secret("slack-signing-secret", slack_signing_secret);
    chat.users = {{"U0DEMOONCALL", "demo-oncall", {"sre-oncall"}, "operator"}};
    config.chat.slack = chat;

    if (text) {
        std::cout << "mitigate demo: the whole loop, for real, in " << directory.string() << "\n";
    }
    DaemonOptions daemon_options;
    daemon_options.config = config;
    daemon_options.executable = this_executable();
    Daemon daemon(daemon_options);
    const std::string alertmanager_token =
        create_token(daemon.store(), "demo-alertmanager", "sender", {});
    const std::string approver_token =
        create_token(daemon.store(), "demo-approver", "approver", {"sre-oncall"});
    const std::string viewer_token = create_token(daemon.store(), "demo-viewer", "viewer", {});
    daemon.start();
    slack.point_app_at(daemon.url() + "/v1/chat/slack/interactions",
                       daemon.url() + "/v1/chat/slack/commands");
    timeline.add("runtime", "API on " + daemon.url() + ", store " + config.store.path.string() +
                                ", flags provider on " + flag_file.string() +
                                ", Slack emulator on " + slack.url());

    const Api viewer(daemon.url(), viewer_token);
    SimulatedService service(flag_file);
    json final_mitigation;
    bool ok = false;
    try {
        timeline.add("service", "storefront v1 healthy: p99 " + std::to_string(service.p99_ms()) +
                                    " ms, flag expensive-recommendations on");
        Detector detector(service, daemon.url(), alertmanager_token);
        service.deploy(2);
        timeline.add("deploy", "storefront v2 rolled out (its recommendations call is slow)");
        wait_for("the latency regression",
                 [&] { return service.p99_ms() > 2000 ? std::optional<int>(1) : std::nullopt; });
        timeline.add("service", "p99 " + std::to_string(service.p99_ms()) + " ms");
        wait_for("the alert", [&] {
            return detector.posts() >= 1 ? std::optional<int>(detector.last_status())
                                         : std::nullopt;
        });
        timeline.add("alert", "HighLatency firing -> POST /v1/alerts/alertmanager: HTTP " +
                                  std::to_string(detector.last_status()));
        const json pending = wait_for("the proposal awaiting approval", [&] {
            return mitigation_in(viewer, {"pending_approval", "denied", "failed"});
        });
        const std::string id = pending["id"];
        const json incident =
            viewer.get("/v1/incidents/" + pending["proposal"]["incident_id"].get<std::string>());
        timeline.add("incident", incident.value("id", "?") + ": " + incident.value("title", "?"));
        const json& action = pending["proposal"]["action"];
        timeline.add("playbook", pending["proposal"]["playbook"].get<std::string>() +
                                     " (in a confined Lua worker) proposed " +
                                     action["provider"].get<std::string>() + " " +
                                     action["action"].get<std::string>() + " " +
                                     action["target"].get<std::string>() + " " +
                                     action["parameters"].dump());
        if (pending["state"] != "pending_approval") {
            throw DemoFailure("the proposal ended " + pending["state"].get<std::string>() +
                              " instead of awaiting approval");
        }
        timeline.add("plan", "flags plugin (confined host): " +
                                 pending["plan"]["blast_radius"]["description"].get<std::string>() +
                                 "; inverse " + pending["plan"]["inverse"].dump());
        timeline.add("policy",
                     "require_approval: " + pending["decision"]["summary"].get<std::string>() +
                         "; ttl " + pending["decision"].value("ttl", std::string("none")));
        // Posted, and stored as the message that shows this mitigation: a click counts only
        // on that message, and Slack shows it a moment before the notifier has stored it.
        const SlackEmulatorMessage posted = wait_for("the Slack message", [&] {
            const auto messages = slack.messages();
            if (messages.empty()) {
                return std::optional<SlackEmulatorMessage>();
            }
            const auto stored = daemon.chat_state().find_chat_message(id);
            return stored && stored->ts == messages.front().ts ? std::optional(messages.front())
                                                               : std::nullopt;
        });
        timeline.add("chat", "posted to Slack channel " + posted.channel + ": \"" + posted.text +
                                 "\" with Approve and Reject buttons");
        const HttpClientResponse clicked =
            slack.deliver(slack.click("U0DEMOONCALL", posted.ts, slack_approve_action));
        if (clicked.status != 200) {
            throw DemoFailure("Slack's click was refused: HTTP " + std::to_string(clicked.status) +
                              " " + clicked.body);
        }
        const std::string answer = wait_for("the answer to the click", [&] {
            const auto responses = slack.responses();
            return responses.empty() ? std::nullopt
                                     : std::optional(responses.front().value("text", ""));
        });
        if (!answer.starts_with("Done")) {
            throw DemoFailure("the approval from Slack was refused: " + answer);
        }
        timeline.add("approve",
                     "demo-oncall (Slack U0DEMOONCALL, group sre-oncall) clicked "
                     "Approve; the signed request was verified; answer: " +
                         answer);
        wait_for("the apply", [&] { return mitigation_in(viewer, {"verifying", "active"}); });
        timeline.add("apply", std::string("flag file now ") +
                                  (service.flag_on() ? "ON (unexpected)" : "off") +
                                  ", confirmed by the provider's check; waiting for the alert");
        wait_for("the recovery",
                 [&] { return service.p99_ms() < 2000 ? std::optional<int>(1) : std::nullopt; });
        timeline.add("service", "p99 " + std::to_string(service.p99_ms()) + " ms");
        wait_for("the resolved alert",
                 [&] { return detector.posts() >= 2 ? std::optional<int>(1) : std::nullopt; });
        timeline.add("alert", "HighLatency resolved -> POST /v1/alerts/alertmanager: HTTP " +
                                  std::to_string(detector.last_status()));
        const json active =
            wait_for("the verification", [&] { return mitigation_in(viewer, {"active"}); });
        timeline.add("verify",
                     "the alert resolved within the verification window: active; "
                     "reverts at " +
                         active.value("expires_at", std::string("?")));
        service.deploy(3);
        timeline.add("deploy", "storefront v3 rolled out (the fix)");
        final_mitigation = wait_for("the revert at the TTL", [&] {
            return mitigation_in(viewer, {"reverted", "conflict"});
        });
        if (final_mitigation["state"] != "reverted") {
            throw DemoFailure("the revert ended " + final_mitigation["state"].get<std::string>());
        }
        timeline.add("revert", "TTL reached: flag file back " +
                                   std::string(service.flag_on() ? "on" : "OFF (unexpected)") +
                                   "; p99 " + std::to_string(service.p99_ms()) + " ms");
        final_mitigation = viewer.get("/v1/mitigations/" + id);
        const SlackEmulatorMessage shown = wait_for("the Slack message to show the revert", [&] {
            const auto messages = slack.messages();
            return messages.front().text.starts_with("Reverted") ? std::optional(messages.front())
                                                                 : std::nullopt;
        });
        std::size_t replies = 0;
        for (const auto& message : slack.messages()) {
            replies += message.thread_ts == shown.ts ? 1 : 0;
        }
        timeline.add("chat", "the message was updated " + std::to_string(shown.updates) +
                                 " times, now \"" + shown.text + "\", with " +
                                 std::to_string(replies) + " steps in its thread");
        // The journal must be exactly the path the timeline told.
        std::vector<std::string> path;
        for (const json& entry : final_mitigation["journal"]) {
            path.push_back(entry["to"]);
        }
        const std::vector<std::string> expected = {"proposed", "planned",   "pending_approval",
                                                   "approved", "applying",  "verifying",
                                                   "active",   "reverting", "reverted"};
        if (path != expected || !service.flag_on() || service.p99_ms() > 2000) {
            throw DemoFailure("the journal or the final state is not what happened: " +
                              json(path).dump());
        }
        ok = true;
    } catch (const DemoFailure& failure) {
        std::cerr << "mitigate demo: FAILED: " << failure.what() << "\n";
    }
    if (!options.keep_running) {
        daemon.stop();  // its last audit record ("daemon.stopped") is in the chain below
    }
    const AuditChainVerifier chain = daemon.store().verify_audit_chain();
    ok = ok && chain.intact();
    timeline.add("audit", std::to_string(chain.records()) + " records, chain " +
                              (chain.intact() ? "intact" : "BROKEN: " + chain.problem()));
    if (!text) {
        std::cout << json{{"ok", ok},
                          {"directory", directory.string()},
                          {"store", config.store.path.string()},
                          {"flag_file", flag_file.string()},
                          {"url", daemon.url()},
                          {"timeline", timeline.entries()},
                          {"mitigation", final_mitigation},
                          {"audit",
                           {{"intact", chain.intact()},
                            {"records", chain.records()},
                            {"head",
                             std::to_string(chain.head().sequence) + ":" + chain.head().hash}}}}
                         .dump(2)
                  << "\n";
    } else if (ok) {
        std::cout << "Every step happened. Check the record yourself: mitigate audit verify --db "
                  << config.store.path.string() << "\n";
    }
    if (options.keep_running && ok) {
        std::cout
            << "\nThe daemon keeps running. In another shell:\n"
            << "  export MITIGATE_SERVER=" << daemon.url() << "\n"
            << "  export MITIGATE_TOKEN=" << viewer_token << "   # demo-viewer\n"
            << "  mitigate incidents; mitigate mitigations; mitigate show "
            << final_mitigation.value("id", std::string("ID")) << "\n"
            << "  curl -H \"Authorization: Bearer $MITIGATE_TOKEN\" $MITIGATE_SERVER/metrics\n"
            << "demo-approver's token (approve/reject): " << approver_token << "\n"
            << "demo-alertmanager's token (signals): " << alertmanager_token << "\n"
            << "The Slack emulator's messages are in memory; its Web API is at " << slack.api_url()
            << "\n"
            << "Ctrl-C stops it." << std::endl;
        int received = 0;
        sigwait(&stop_signals, &received);
    }
    daemon.stop();
    return ok ? exit_ok : exit_failure;
}

}  // namespace

void register_demo_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
    auto options = std::make_shared<DemoOptions>();
    CLI::App* demo = app.add_subcommand(
        "demo",
        "Run the whole loop for real in a temporary directory: a simulated service regresses\n"
        "after a deploy, an alert reaches the API, a shipped playbook proposes turning a flag\n"
        "off, policy asks for one approval, the proposal is posted to an emulated Slack\n"
        "channel, the on-call person clicks Approve there, the flag is applied,\n"
        "recovery is verified, and the mitigation reverts at its TTL. Prints a timeline; exits\n"
        "0 only if every step happened. Changes nothing outside the temporary directory.");
    demo->add_option("--db", options->database,
                     "Store file to use (default: mitigate.db in the demo's temporary directory)");
    demo->add_option("--ttl", options->ttl,
                     "The TTL the demo policy clamps mitigations to (1s to 10m)")
        ->default_val("5s");
    demo->add_flag("--keep-running", options->keep_running,
                   "Leave the daemon up afterwards for the CLI and curl (Ctrl-C stops it)");
    add_output_option(*demo, options->output);
    demo->callback([&global, options, &exit_code] { exit_code = run_demo(global, *options); });
}

}  // namespace mitigate
