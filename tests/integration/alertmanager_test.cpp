// The real Alertmanager (Debian's prometheus-alertmanager) with a webhook receiver
// pointing at the daemon: an alert fired through Alertmanager's own API arrives as its
// webhook, with its bearer token, and the mitigation is proposed; resolving the alert
// resolves the incident. Nothing here imitates Alertmanager's payload.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include <nlohmann/json.hpp>

#include "runtime/core/time_format.h"
#include "runtime/server/api_token.h"
#include "runtime/server/daemon.h"
#include "runtime/server/http_client.h"
#include "runtime/store/store.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;

constexpr const char* alertmanager_binary = "/usr/bin/prometheus-alertmanager";
constexpr const char* webhook_token = "test-token-not-a-secret-alertmanager";

class AlertmanagerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(std::filesystem::exists(alertmanager_binary))
            << "prometheus-alertmanager is not installed; run tools/setup-debian";
        testing::write_checkout_flag_file(directory);
        testing::write_policy_and_playbook(directory, R"yaml(
rules:
  - name: stage-one
    match: {environment: stage}
    effect: require_approval
    approvals: {count: 1}
)yaml");
        Config config = testing::runtime_config(directory);
        config.providers.push_back(testing::flagd_provider(directory / "flags.json"));
        DaemonOptions options = testing::daemon_options(config);
        daemon = std::make_unique<Daemon>(options);
        daemon->store().create_api_token({"alertmanager",
                                          "sender",
                                          {},
                                          api_token_digest(webhook_token),
                                          SystemClock().now(),
                                          {}},
                                         "test");
        daemon->start();

        // Alertmanager sends at once (group_wait 0s) and re-sends resolved alerts.
        directory.write("alertmanager.yml",
                        "route:\n"
                        "  receiver: mitigate\n"
                        "  group_by: [alertname, service]\n"
                        "  group_wait: 0s\n"
                        "  group_interval: 1s\n"
                        "  repeat_interval: 1h\n"
                        "receivers:\n"
                        "  - name: mitigate\n"
                        "    webhook_configs:\n"
                        "      - url: " +
                            daemon->url() +
                            "/v1/alerts/alertmanager\n"
                            "        send_resolved: true\n"
                            "        http_config:\n"
                            "          authorization:\n"
                            "            type: Bearer\n"
                            "            credentials: " +
                            webhook_token + "\n");
        const std::string log = (directory / "alertmanager.log").string();
        alertmanager = std::make_unique<testing::BackgroundProcess>(
            std::vector<std::string>{alertmanager_binary,
                                     "--config.file=" + (directory / "alertmanager.yml").string(),
                                     "--storage.path=" + (directory / "data").string(),
                                     "--web.listen-address=127.0.0.1:0",
                                     "--cluster.listen-address=",  // no gossip port at all
                                     "--log.level=info"},
            std::map<std::string, std::string>{}, log);
        // Alertmanager logs the address its listener got: the port the kernel chose.
        alertmanager_url = testing::wait_for_listening_url(log);
        ASSERT_FALSE(alertmanager_url.empty()) << testing::read_file(log);
    }

    HttpClientResponse post_alert(const std::string& ends_at) {
        json alert = {
            {"labels",
             {{"alertname", "HighErrorRate"}, {"service", "checkout"}, {"environment", "stage"}}},
            {"annotations", {{"summary", "5xx above 5% on checkout"}}},
            {"startsAt", starts_at}};
        if (!ends_at.empty()) {
            alert["endsAt"] = ends_at;
        }
        HttpClientRequest request;
        request.method = "POST";
        request.url = alertmanager_url + "/api/v2/alerts";
        request.headers["Content-Type"] = "application/json";
        request.body = json::array({alert}).dump();
        return http_request(request);
    }

    testing::TemporaryDirectory directory;
    std::unique_ptr<Daemon> daemon;
    std::unique_ptr<testing::BackgroundProcess> alertmanager;
    std::string alertmanager_url;
    std::string starts_at = format_rfc3339(SystemClock().now() - std::chrono::seconds(5));
};

TEST_F(AlertmanagerTest, AnAlertFiredThroughAlertmanagerIsProposedThenResolved) {
    const auto fired = post_alert("");
    ASSERT_EQ(fired.status, 200) << fired.body << fired.error;

    std::optional<Mitigation> proposed;
    for (int attempt = 0; attempt < 1500 && !proposed; ++attempt) {
        const auto pending =
            daemon->store().list_mitigations(in_states({MitigationState::pending_approval}, 10));
        if (!pending.empty()) {
            proposed = pending.front();
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    ASSERT_TRUE(proposed) << testing::read_file(directory / "alertmanager.log");
    EXPECT_EQ(proposed->proposal.action.target, "checkout");
    const auto incident = daemon->store().find_incident(proposed->proposal.incident_id);
    ASSERT_TRUE(incident);
    EXPECT_EQ(incident->title, "HighErrorRate on checkout (stage)");
    const auto signals = daemon->store().incident_signals(incident->id, 100);
    ASSERT_FALSE(signals.empty());
    EXPECT_EQ(signals[0].source, SignalSource::alertmanager);
    EXPECT_EQ(signals[0].annotations.at("summary"), "5xx above 5% on checkout");

    // Ending the alert in Alertmanager sends the resolved notification.
    const auto ended = post_alert(format_rfc3339(SystemClock().now() - std::chrono::seconds(1)));
    ASSERT_EQ(ended.status, 200) << ended.body;
    bool resolved = false;
    for (int attempt = 0; attempt < 1500 && !resolved; ++attempt) {
        resolved = daemon->store().find_incident(incident->id)->status == IncidentStatus::resolved;
        if (!resolved) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    EXPECT_TRUE(resolved) << testing::read_file(directory / "alertmanager.log");
}

}  // namespace
}  // namespace mitigate
