#include "tests/support/runtime_setup.h"

namespace mitigate::testing {

void write_policy_and_playbook(const TemporaryDirectory& directory, std::string_view policy) {
    std::filesystem::create_directories(directory / "policies");
    std::filesystem::create_directories(directory / "playbooks");
    directory.write("policies/test.yaml", policy);
    directory.write("playbooks/flag-off.lua", flag_off_playbook);
}

Config runtime_config(const TemporaryDirectory& directory) {
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

ProviderConfig flagd_provider(const std::filesystem::path& flag_file) {
    ProviderConfig provider;
    provider.name = "flags";
    provider.plugin = "flags";
    provider.egress.allow_files = {flag_file};
    provider.settings = {{"backend", "flagd"}, {"path", flag_file.string()}};
    return provider;
}

}  // namespace mitigate::testing
