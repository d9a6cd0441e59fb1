// mitigate.yaml: the one configuration file of a runtime. See docs/configuration.md for
// every key; default-mitigate.yaml beside this header is the embedded default.
//
// Loading never stops at the first problem: every error comes back with file, line,
// column and the dotted key, and unknown keys are errors (a typo in a safety setting
// must not silently fall back to a default).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/config/origin.h"
#include "runtime/config/secret.h"
#include "runtime/log/logging.h"

namespace mitigate {

// Limits on what clients may hold (runtime/server/http_server.h explains each).
struct ServerConfig {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8470;
    std::int64_t max_connections = 1024;
    std::int64_t max_body_bytes = 1 << 20;
    std::int64_t body_memory_budget_bytes = 64 << 20;
    std::int64_t header_timeout_ms = 10'000;
    std::int64_t body_timeout_ms = 30'000;
    std::int64_t idle_timeout_ms = 60'000;
};

struct StoreConfig {
    std::string driver = "sqlite";
    std::filesystem::path path;  // absolute once loaded (relative to the config file)
};

struct LogConfig {
    LogFormat format = LogFormat::text;
    LogLevel level = LogLevel::info;
};

struct DirectoriesConfig {  // absolute once loaded
    std::filesystem::path plugins;
    std::filesystem::path playbooks;
    std::filesystem::path policies;
    std::filesystem::path drills;
};

// How workers are confined (sandbox/worker/confinement.h). Workers refuse to start on a
// kernel below minimum_landlock_abi (4: TCP bind/connect control) unless
// allow_weaker_landlock is set; every start under that override is audited.
struct SandboxConfig {
    bool allow_weaker_landlock = false;
    int minimum_landlock_abi = 4;
    std::int64_t plugin_call_timeout_ms = 30000;
};

// How the engine (runtime/engine/engine.h) groups signals and runs mitigations. Durations
// in milliseconds.
struct EngineConfig {
    // Signal labels that make two alerts one incident; an alert with none of them groups
    // by its fingerprint alone.
    std::vector<std::string> group_by = {"alertname", "service", "environment"};
    // After apply and check, the incident's alerts must resolve within this window, or the
    // mitigation is reverted as not helping.
    std::int64_t verification_window_ms = 5LL * 60 * 1000;
    // A pending approval expires after the decision's approval_timeout, else after this.
    std::int64_t approval_expiry_ms = 60LL * 60 * 1000;
    // Revert a mitigation when the incident it answered resolves (after it verified).
    bool revert_when_incident_resolves = false;
    // Signals received and waiting for the commit that stores them; beyond this the API
    // answers 503 (Alertmanager retries), so nothing is dropped silently.
    std::int64_t pending_signal_limit = 10000;
    // Threads that advance mitigations, one of them kept for reverts and steps that call no
    // provider. More let more providers be called at once (each provider serves one call
    // at a time).
    int workers = 4;
};

// How the runtime authenticates a provider's requests on the plugin's behalf:
//   bearer     Authorization: Bearer <token>
//   api_key    <header>: <key>
//   basic      HTTP basic, <username> and <password>
//   aws_sigv4  AWS Signature Version 4 with the keys, for <region>
//   supabase   apikey: <key> and Authorization: Bearer <key>, as Supabase's API gateway wants
//   postgres   a PostgreSQL connection (host, port, dbname, user settings; password secret)
//              for the broker's "sql" egress
enum class CredentialKind { bearer, api_key, basic, aws_sigv4, supabase, postgres };

struct CredentialProfile {
    std::string name;
    CredentialKind kind = CredentialKind::bearer;
    std::map<std::string, SecretReference> secrets;  // token, key, password, secret_access_key...
    std::map<std::string, std::string> settings;     // header, username, region, service...
    // Where an http credential may be sent: exact scheme, host and port (origin.h).
    // Required for every kind but postgres, whose host and port are its settings.
    std::vector<Origin> origins;
};

struct EgressConfig {
    std::vector<std::string> allow_hosts;  // host names or host:port the plugin may reach
    bool allow_loopback = false;           // emulators and tests only
    bool allow_private = false;            // private and link-local ranges
    // Files the plugin may read and replace through the runtime (a flagd flag file);
    // absolute once loaded. The plugin itself can write nothing.
    std::vector<std::filesystem::path> allow_files;
};

struct ProviderConfig {
    std::string name;    // the key under providers:
    std::string plugin;  // plugin name; defaults to the provider name
    // The plugin file's SHA-256 (lowercase hex), when pinned: any other file is refused,
    // and only a pinned plugin may shadow a shipped one of the same name.
    std::string sha256;
    bool enabled = true;
    EgressConfig egress;
    std::vector<CredentialProfile> credentials;
    nlohmann::json settings = nlohmann::json::object();  // checked by the plugin's schema
};

struct SlackUser {
    std::string slack_user_id;  // "U024BE7LH"
    std::string identity;       // the mitigate identity approvals are recorded under
    std::vector<std::string> groups;
    // What they may do from chat, as an API token's role (runtime/server/api_token.h):
    // viewer (list, show), approver (and approve, reject), operator (and revert, keep).
    std::string role = "approver";
};

struct SlackConfig {
    std::string api_url = "https://slack.com/api";
    std::string channel;
    std::optional<SecretReference> bot_token;
    std::optional<SecretReference> signing_secret;
    // When set, requests from another workspace or app are refused (403, audited).
    std::string team_id;  // "T0123ABCD"
    std::string app_id;   // "A0123ABCD"
    std::vector<SlackUser> users;
};

struct ChatConfig {
    std::optional<SlackConfig> slack;
};

// Where a secret reference was written, so that a check can point at it.
struct SecretUse {
    std::string key;
    SecretReference reference;
    int line = 0;
    int column = 0;
};

struct Config {
    std::string source;  // file name, or "<embedded default>"
    ServerConfig server;
    StoreConfig store;
    LogConfig log;
    DirectoriesConfig directories;
    SandboxConfig sandbox;
    EngineConfig engine;
    std::vector<ProviderConfig> providers;
    ChatConfig chat;
    std::vector<SecretUse> secret_uses;  // every reference above, in file order
};

struct ConfigError {
    std::string file;
    int line = 0;     // 1-based; 0 when the error is about the file as a whole
    int column = 0;   // 1-based
    std::string key;  // dotted path: "providers.aws.credentials.prod.secret_access_key"
    std::string message;
    std::string to_string() const;  // "mitigate.yaml:12:5: store.pth: unknown key ..."
};

struct ConfigLoad {
    std::optional<Config> config;
    std::vector<ConfigError> errors;  // empty exactly when config is set
};

ConfigLoad load_config_file(const std::filesystem::path& path);

// `source_name` appears in errors; relative paths in the text resolve against
// `base_directory`.
ConfigLoad load_config_text(std::string_view text, const std::string& source_name,
                            const std::filesystem::path& base_directory);

// The configuration `mitigate demo` and a bare `mitigate serve` use.
std::string_view embedded_default_config();

// Resolves every secret reference once to report which are unavailable (unset variable,
// unreadable file, empty value). Values are discarded at once; errors name references.
std::vector<ConfigError> check_secrets_resolve(const Config& config);

// The effective configuration as JSON. Secrets appear as their references.
nlohmann::json config_to_json(const Config& config);

std::string_view to_string(CredentialKind kind);

}  // namespace mitigate
