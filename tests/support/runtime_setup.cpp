#include "tests/support/runtime_setup.h"

#include "tests/support/child_process.h"

namespace mitigate::testing {

void write_policy_and_playbook(const TemporaryDirectory& directory, std::string_view policy) {
    std::filesystem::create_directories(directory / "policies");
    std::filesystem::create_directories(directory / "playbooks");
    directory.write("policies/test.yaml", policy);
    directory.write("playbooks/flag-off.lua", flag_off_playbook);
}

Config runtime_config(const std::filesystem::path& directory) {
    Config config;
    config.source = "test";
    config.server.host = "127.0.0.1";
    config.server.port = 0;
    config.store.path = directory / "m.db";
    config.directories.policies = directory / "policies";
    config.directories.playbooks = directory / "playbooks";
    config.directories.plugins = directory / "no-plugins-here";
    return config;
}

DaemonOptions daemon_options(Config config, const Clock* clock) {
    DaemonOptions options;
    options.config = std::move(config);
    options.executable = mitigate_binary();
    options.clock = clock;
    return options;
}

ProviderConfig flagd_provider(const std::filesystem::path& flag_file) {
    ProviderConfig provider;
    provider.name = "flags";
    provider.plugin = "flags";
    provider.egress.allow_files = {flag_file};
    provider.settings = {{"backend", "flagd"}, {"path", flag_file.string()}};
    return provider;
}

SlackConfig emulated_slack(const TemporaryDirectory& directory, const std::string& api_url,
                           std::string_view bot_token, std::string_view signing_secret,
                           std::vector<SlackUser> users) {
    SlackConfig slack;
    slack.api_url = api_url;
    slack.channel = "C0MITIGATE";
    slack.bot_token =
        SecretReference::parse("file:" + directory.write("slack-bot-token", bot_token).string());
    slack.signing_secret = SecretReference::parse(
        "file:" + directory.write("slack-signing-secret", signing_secret).string());
    slack.users = std::move(users);
    return slack;
}

}  // namespace mitigate::testing
