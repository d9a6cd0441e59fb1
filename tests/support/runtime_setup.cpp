#include "tests/support/runtime_setup.h"

#include "tests/support/child_process.h"

namespace mitigate::testing {

Origin origin_of(const std::string& url) {
    std::string error;
    auto origin = parse_origin(url, error);
    if (!origin) {
        throw std::invalid_argument(url + ": " + error);
    }
    return *origin;
}

std::filesystem::path write_checkout_flag_file(const TemporaryDirectory& directory) {
    return directory.write("flags.json", R"({"flags": {"checkout": {"state": "ENABLED",
        "variants": {"on": true, "off": false}, "defaultVariant": "on"}}})");
}

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

ProviderConfig emulated_aws_provider(const std::string& emulator_url,
                                     const std::string& key_variable,
                                     const std::string& secret_variable) {
    ProviderConfig aws;
    aws.name = "aws";
    aws.plugin = "aws";
    aws.egress.allow_hosts = {emulator_url.substr(std::string("http://").size())};
    aws.egress.allow_loopback = true;
    CredentialProfile keys;
    keys.name = "emulated";
    keys.kind = CredentialKind::aws_sigv4;
    keys.secrets.emplace("access_key_id", *SecretReference::parse("env:" + key_variable));
    keys.secrets.emplace("secret_access_key", *SecretReference::parse("env:" + secret_variable));
    keys.settings = {{"region", "us-east-1"}};
    keys.origins = {origin_of(emulator_url)};
    aws.credentials.push_back(keys);
    aws.settings = {
        {"region", "us-east-1"}, {"endpoint", emulator_url}, {"credential", "emulated"}};
    return aws;
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
