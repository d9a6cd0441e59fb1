// The runtime the lifecycle, API, crash and Alertmanager tests (and daemon_bench) run:
// a policies directory with the test's policy, one playbook that turns a flag off, and
// the flags provider on a flagd file. One place, so that every test drives the same
// playbook and a change to the configuration shape is made once.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/server/daemon.h"
#include "tests/support/temporary_directory.h"

namespace mitigate::testing {

// The origin of an emulator's URL ("http://127.0.0.1:PORT"), for a credential profile's
// origins; throws std::invalid_argument on anything else.
Origin origin_of(const std::string& url);

// Matches HighErrorRate; proposes flags flag.set on the alert's `flag` label (default
// "checkout") to its `variant` label (default "off"), with a 30m TTL.
inline constexpr std::string_view flag_off_playbook = R"lua(
return {
  name = "flag-off",
  matches = { alerts = { "HighErrorRate" } },
  propose = function(incident)
    return { { provider = "flags", action = "flag.set",
               target = incident.labels.flag or "checkout",
               parameters = { variant = incident.labels.variant or "off" }, ttl = "30m",
               reason = "errors on " .. incident.service } }
  end,
}
)lua";

// One effect per environment: dev allows, stage needs two approvals from group sre (never
// the proposer, within 30m), qa is dry-run; anything else is denied by default.
inline constexpr std::string_view environment_policy = R"yaml(
rules:
  - name: dev-allow
    match: {environment: dev}
    effect: allow
  - name: stage-two-sre
    match: {environment: stage}
    effect: require_approval
    approvals: {count: 2, groups: [sre], self_approval: false, expire_after: 30m}
  - name: qa-dry-run
    match: {environment: qa}
    effect: dry_run
)yaml";

// Writes policies/test.yaml (`policy`) and playbooks/flag-off.lua under `directory`.
void write_policy_and_playbook(const TemporaryDirectory& directory, std::string_view policy);

// flags.json in `directory`: a flagd file with the flag "checkout" (on/off, on).
std::filesystem::path write_checkout_flag_file(const TemporaryDirectory& directory);

// A configuration on `directory`: API on 127.0.0.1 port 0, store m.db, the directories
// above, plugins found beside the binary, and no provider.
Config runtime_config(const std::filesystem::path& directory);
inline Config runtime_config(const TemporaryDirectory& directory) {
    return runtime_config(directory.path());
}

// Options for an in-process Daemon on `config`, its workers run from the mitigate binary
// under test; `clock` null for the system clock.
DaemonOptions daemon_options(Config config, const Clock* clock = nullptr);

// The flags provider on the flagd file `flag_file` (which it may read and replace).
ProviderConfig flagd_provider(const std::filesystem::path& flag_file);

// The aws provider against the AWS emulator at `emulator_url` (loopback allowed), signing
// with the keys in the environment variables named; region us-east-1.
ProviderConfig emulated_aws_provider(const std::string& emulator_url,
                                     const std::string& key_variable,
                                     const std::string& secret_variable);

// chat.slack for the Slack emulator at `api_url` (its channel C0MITIGATE), with the bot
// token and signing secret written to files under `directory` and given as file:
// references, as in production.
SlackConfig emulated_slack(const TemporaryDirectory& directory, const std::string& api_url,
                           std::string_view bot_token, std::string_view signing_secret,
                           std::vector<SlackUser> users);

}  // namespace mitigate::testing
