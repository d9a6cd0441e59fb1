// The flags provider against the real Unleash server (npm unleash-server on its own
// PostgreSQL), started by the unleash_server CTest fixture (tests/unleash/unleash-fixture).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <curl/curl.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include "runtime/providers/provider_registry.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

struct UnleashServer {
    std::string url;
    std::string token;
};

// The fixture's state file: shell assignments, UNLEASH_URL=... and UNLEASH_TOKEN='...'.
UnleashServer server_from_fixture() {
    const char* state = std::getenv("MITIGATE_UNLEASH_STATE");
    UnleashServer server;
    std::ifstream file(state != nullptr ? state : "");
    for (std::string line; std::getline(file, line);) {
        const auto equals = line.find('=');
        if (equals == std::string::npos) {
            continue;
        }
        std::string value = line.substr(equals + 1);
        if (value.size() >= 2 && value.front() == '\'') {
            value = value.substr(1, value.size() - 2);
        }
        if (line.rfind("UNLEASH_URL=", 0) == 0) {
            server.url = value;
        }
        if (line.rfind("UNLEASH_TOKEN=", 0) == 0) {
            server.token = value;
        }
    }
    return server;
}

std::size_t append(char* data, std::size_t size, std::size_t count, void* body) {
    static_cast<std::string*>(body)->append(data, size * count);
    return size * count;
}

// The test's own admin client, independent of the broker under test.
json admin(const UnleashServer& server, const std::string& method, const std::string& path,
           const json& body = nullptr) {
    CURL* curl = curl_easy_init();
    std::string response;
    curl_slist* headers = curl_slist_append(nullptr, ("Authorization: " + server.token).c_str());
    headers = curl_slist_append(headers, "Content-Type: application/json");
    const std::string url = server.url + path;
    const std::string text = body.is_null() ? "" : body.dump();
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    if (method != "GET") {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text.c_str());
    }
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
    const CURLcode result = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    EXPECT_EQ(result, CURLE_OK) << url;
    EXPECT_LT(status, 300) << method << " " << url << ": " << response;
    return json::parse(response, nullptr, false);
}

bool enabled_in_production(const UnleashServer& server, const std::string& feature) {
    const json document = admin(server, "GET", "/api/admin/projects/default/features/" + feature);
    for (const auto& environment : document["environments"]) {
        if (environment["name"] == "production") {
            return environment["enabled"].get<bool>();
        }
    }
    ADD_FAILURE() << "no production environment";
    return false;
}

class UnleashTest : public ::testing::Test {
  protected:
    void SetUp() override {
        server = server_from_fixture();
        ASSERT_FALSE(server.url.empty()) << "the unleash_server fixture did not run "
                                            "(MITIGATE_UNLEASH_STATE)";
        feature = "checkout-v2-" + std::to_string(std::random_device{}());
        admin(server, "POST", "/api/admin/projects/default/features",
              {{"name", feature}, {"type", "kill-switch"}});
        setenv("MITIGATE_TEST_UNLEASH_TOKEN", server.token.c_str(), 1);
        config.source = "test";
        ProviderConfig flags;
        flags.name = "flags";
        flags.plugin = "flags";
        flags.egress.allow_hosts = {server.url.substr(std::string("http://").size())};
        flags.egress.allow_loopback = true;
        CredentialProfile token;
        token.name = "unleash";
        token.kind = CredentialKind::api_key;
        token.secrets.emplace("key", *SecretReference::parse("env:MITIGATE_TEST_UNLEASH_TOKEN"));
        token.settings = {{"header", "Authorization"}};
        token.origins = {testing::origin_of(server.url)};
        flags.credentials.push_back(token);
        flags.settings = {{"backend", "unleash"},
                          {"url", server.url},
                          {"project", "default"},
                          {"environment", "production"},
                          {"credential", "unleash"}};
        config.providers.push_back(flags);
    }

    json call(ProviderRegistry& registry, const std::string& action, const std::string& operation,
              const json& extra, PluginCallStatus expected = PluginCallStatus::ok) {
        json request{{"operation", operation}, {"action", action}, {"target", feature}};
        request.update(extra);
        const PluginCallResult result = registry.call("flags", request);
        EXPECT_EQ(result.status, expected) << operation << ": " << result.error;
        return result.ok() ? result.response : json{{"error", result.error}};
    }

    RegistryOptions options() const {
        RegistryOptions registry_options;
        registry_options.executable = testing::mitigate_binary();
        return registry_options;
    }

    UnleashServer server;
    std::string feature;
    Config config;
};

TEST_F(UnleashTest, SetTurnsTheEnvironmentOnAndRevertTurnsItOff) {
    ProviderRegistry registry(config, options());
    EXPECT_EQ(call(registry, "flag.set", "read", json::object())["state"],
              (json{{"enabled", false}}));
    const json plan = call(registry, "flag.set", "plan", {{"parameters", {{"value", true}}}});
    EXPECT_EQ(plan["forward"], (json{{"enabled", true}}));
    EXPECT_EQ(plan["inverse"], (json{{"enabled", false}}));
    EXPECT_FALSE(enabled_in_production(server, feature));

    EXPECT_EQ(call(registry, "flag.set", "apply", {{"plan", plan}})["changed"], true);
    EXPECT_TRUE(enabled_in_production(server, feature));
    EXPECT_EQ(call(registry, "flag.set", "check", {{"plan", plan}})["applied"], true);
    EXPECT_EQ(call(registry, "flag.set", "apply", {{"plan", plan}})["changed"], false);

    EXPECT_EQ(call(registry, "flag.set", "revert", {{"plan", plan}})["changed"], true);
    EXPECT_FALSE(enabled_in_production(server, feature));
    EXPECT_EQ(call(registry, "flag.set", "check", {{"plan", plan}})["applied"], false);
}

TEST_F(UnleashTest, KillSwitchTurnsTheEnvironmentOffAndRevertRestoresIt) {
    admin(server, "POST",
          "/api/admin/projects/default/features/" + feature + "/environments/production/on");
    ProviderRegistry registry(config, options());
    const json plan = call(registry, "flag.kill_switch", "plan", {{"parameters", json::object()}});
    EXPECT_EQ(plan["forward"], (json{{"enabled", false}}));
    call(registry, "flag.kill_switch", "apply", {{"plan", plan}});
    EXPECT_FALSE(enabled_in_production(server, feature));
    call(registry, "flag.kill_switch", "revert", {{"plan", plan}});
    EXPECT_TRUE(enabled_in_production(server, feature));
}

TEST_F(UnleashTest, ARevertAfterSomeoneAlreadyRestoredTheFlagChangesNothing) {
    ProviderRegistry registry(config, options());
    const json plan = call(registry, "flag.set", "plan", {{"parameters", {{"value", true}}}});
    call(registry, "flag.set", "apply", {{"plan", plan}});
    admin(server, "POST",
          "/api/admin/projects/default/features/" + feature + "/environments/production/off");
    EXPECT_EQ(call(registry, "flag.set", "revert", {{"plan", plan}}),
              (json{{"changed", false}, {"reverted", true}}));
    EXPECT_FALSE(enabled_in_production(server, feature));
}

TEST_F(UnleashTest, VariantsAreRefusedAndUnknownFeaturesNamed) {
    ProviderRegistry registry(config, options());
    EXPECT_THAT(call(registry, "flag.set", "plan", {{"parameters", {{"variant", "off"}}}},
                     PluginCallStatus::invalid)["error"]
                    .get<std::string>(),
                HasSubstr("toggles"));
    json request{{"operation", "read"}, {"action", "flag.set"}, {"target", "no-such-feature-here"}};
    const PluginCallResult missing = registry.call("flags", request);
    EXPECT_EQ(missing.status, PluginCallStatus::invalid);
    EXPECT_THAT(missing.error, HasSubstr("HTTP 404"));
}

TEST_F(UnleashTest, AWrongTokenIsRefusedByUnleashAndNeverEchoed) {
    setenv("MITIGATE_TEST_UNLEASH_TOKEN", "*:*.wrong-fake-token", 1);
    ProviderRegistry registry(config, options());
    const json failed =
        call(registry, "flag.set", "read", json::object(), PluginCallStatus::provider);
    EXPECT_THAT(failed["error"].get<std::string>(), HasSubstr("HTTP 401"));
    EXPECT_THAT(failed["error"].get<std::string>(), ::testing::Not(HasSubstr("wrong-fake-token")));
}

}  // namespace
}  // namespace mitigate
