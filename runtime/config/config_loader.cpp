// The schema of mitigate.yaml, as code: one function per section, each reading exactly
// the keys docs/configuration.md documents.
#include <fstream>
#include <sstream>

#include "runtime/config/config.h"
#include "runtime/config/yaml_reader.h"
#include "runtime/core/time_format.h"

namespace mitigate {
namespace {

namespace fs = std::filesystem;

struct LoadContext {
    YamlErrors& errors;
    fs::path base_directory;
    std::vector<SecretUse>& secret_uses;
};

fs::path resolve_path(const LoadContext& context, const std::string& text) {
    const fs::path path(text);
    return (path.is_absolute() ? path : context.base_directory / path).lexically_normal();
}

bool is_name(std::string_view text) {
    if (text.empty() || text.size() > 64 || !(text[0] >= 'a' && text[0] <= 'z')) {
        return false;
    }
    return std::all_of(text.begin(), text.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

// "5m", "90s": a duration within [minimum, maximum], in milliseconds.
std::optional<std::int64_t> read_duration_ms(YamlMapReader& reader, std::string_view key,
                                             Duration minimum, Duration maximum) {
    const auto text = reader.string(key);
    if (!text) {
        return std::nullopt;
    }
    const auto duration = parse_duration(*text);
    if (!duration || *duration < minimum || *duration > maximum) {
        reader.error_at_value(key, "must be a duration from " + format_duration(minimum) + " to " +
                                       format_duration(maximum) + " (\"5m\", \"90s\")");
        return std::nullopt;
    }
    return duration->count();
}

void read_server(const YAML::Node& node, LoadContext& context, ServerConfig& server) {
    YamlMapReader reader(node, "server", context.errors);
    if (auto listen = reader.string("listen")) {
        // host:port, or [v6-address]:port
        const auto colon = listen->rfind(':');
        std::string host = colon == std::string::npos ? "" : listen->substr(0, colon);
        const std::string port_text = colon == std::string::npos ? "" : listen->substr(colon + 1);
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
            host = host.substr(1, host.size() - 2);
        }
        int port = -1;
        if (!port_text.empty() && port_text.size() <= 5 &&
            std::all_of(port_text.begin(), port_text.end(),
                        [](char c) { return c >= '0' && c <= '9'; })) {
            port = std::stoi(port_text);
        }
        if (host.empty() || port < 0 || port > 65535) {
            reader.error_at_value("listen",
                                  "must be host:port, such as 127.0.0.1:8470 or [::1]:8470");
        } else {
            server.host = host;
            server.port = static_cast<std::uint16_t>(port);
        }
    }
    server.max_connections =
        reader.integer("max_connections", 1, 1'000'000).value_or(server.max_connections);
    server.max_body_bytes =
        reader.integer("max_body_bytes", 1024, 64 << 20).value_or(server.max_body_bytes);
    server.body_memory_budget_bytes =
        reader.integer("body_memory_budget_bytes", 1 << 20, std::int64_t{16} << 30)
            .value_or(server.body_memory_budget_bytes);
    if (server.body_memory_budget_bytes < server.max_body_bytes) {
        reader.error_at_value("body_memory_budget_bytes",
                              "must be at least max_body_bytes, or no body of that size could "
                              "ever be read");
    }
    const auto timeout = [&reader](std::string_view key, std::int64_t fallback) {
        return read_duration_ms(reader, key, std::chrono::milliseconds(100), std::chrono::hours(1))
            .value_or(fallback);
    };
    server.header_timeout_ms = timeout("header_timeout", server.header_timeout_ms);
    server.body_timeout_ms = timeout("body_timeout", server.body_timeout_ms);
    server.idle_timeout_ms = timeout("idle_timeout", server.idle_timeout_ms);
    reader.reject_unknown_keys();
}

void read_store(const YAML::Node& node, LoadContext& context, StoreConfig& store) {
    YamlMapReader reader(node, "store", context.errors);
    if (auto driver = reader.string("driver")) {
        if (*driver != "sqlite") {
            reader.error_at_value("driver", "must be \"sqlite\" (the only store in this build)");
        } else {
            store.driver = *driver;
        }
    }
    if (auto path = reader.string("path")) {
        if (path->empty()) {
            reader.error_at_value("path", "must not be empty");
        } else {
            store.path = resolve_path(context, *path);
        }
    }
    reader.reject_unknown_keys();
}

void read_log(const YAML::Node& node, LoadContext& context, LogConfig& log) {
    YamlMapReader reader(node, "log", context.errors);
    if (auto level = reader.string("level")) {
        if (auto parsed = parse_log_level(*level)) {
            log.level = *parsed;
        } else {
            reader.error_at_value("level", "must be one of trace, debug, info, warn, error, off");
        }
    }
    if (auto format = reader.string("format")) {
        if (auto parsed = parse_log_format(*format)) {
            log.format = *parsed;
        } else {
            reader.error_at_value("format", "must be text or json");
        }
    }
    reader.reject_unknown_keys();
}

void read_sandbox(const YAML::Node& node, LoadContext& context, SandboxConfig& sandbox) {
    YamlMapReader reader(node, "sandbox", context.errors);
    sandbox.allow_weaker_landlock = reader.boolean("allow_weaker_landlock").value_or(false);
    sandbox.minimum_landlock_abi =
        static_cast<int>(reader.integer("minimum_landlock_abi", 1, 64).value_or(4));
    sandbox.plugin_call_timeout_ms =
        reader.integer("plugin_call_timeout_ms", 100, 600000).value_or(30000);
    reader.reject_unknown_keys();
}

void read_engine(const YAML::Node& node, LoadContext& context, EngineConfig& engine) {
    YamlMapReader reader(node, "engine", context.errors);
    if (reader.has("group_by")) {
        engine.group_by = reader.string_list("group_by");
    }
    engine.verification_window_ms =
        read_duration_ms(reader, "verification_window", std::chrono::seconds(1),
                         std::chrono::hours(24))
            .value_or(engine.verification_window_ms);
    engine.approval_expiry_ms =
        read_duration_ms(reader, "approval_expiry", std::chrono::seconds(10),
                         std::chrono::hours(24 * 7))
            .value_or(engine.approval_expiry_ms);
    engine.revert_when_incident_resolves =
        reader.boolean("revert_when_incident_resolves").value_or(false);
    engine.pending_signal_limit =
        reader.integer("pending_signal_limit", 1, 10'000'000).value_or(10000);
    engine.workers = static_cast<int>(reader.integer("workers", 2, 64).value_or(4));
    reader.reject_unknown_keys();
}

void read_directories(const YAML::Node& node, LoadContext& context,
                      DirectoriesConfig& directories) {
    YamlMapReader reader(node, "directories", context.errors);
    const std::pair<const char*, fs::path*> keys[] = {
        {"plugins", &directories.plugins},
        {"playbooks", &directories.playbooks},
        {"policies", &directories.policies},
        {"drills", &directories.drills},
    };
    for (const auto& [key, target] : keys) {
        if (auto path = reader.string(key)) {
            *target = resolve_path(context, *path);
        }
    }
    reader.reject_unknown_keys();
}

std::optional<CredentialKind> parse_credential_kind(std::string_view text) {
    for (auto kind :
         {CredentialKind::bearer, CredentialKind::api_key, CredentialKind::basic,
          CredentialKind::aws_sigv4, CredentialKind::supabase, CredentialKind::postgres}) {
        if (to_string(kind) == text) {
            return kind;
        }
    }
    return std::nullopt;
}

// An http credential's origins: each must be https (or http to a loopback host the
// provider may reach) and on the provider's allow_hosts, or it could never be used.
void read_origins(YamlMapReader& reader, const EgressConfig& egress, CredentialProfile& profile) {
    const YAML::Node list = reader.get("origins");
    if (!list.IsDefined()) {
        reader.error_at_key("origins",
                            "is required: the exact origins (https://host[:port]) this "
                            "credential may be sent to, such as [https://api.example.com]");
        return;
    }
    if (!list.IsSequence() || list.size() == 0) {
        reader.error_at_value("origins",
                              "must be a non-empty list of origins such as "
                              "[https://api.example.com]: the credential is sent nowhere else");
        return;
    }
    for (std::size_t i = 0; i < list.size(); ++i) {
        const YAML::Node item = list[i];
        const std::string item_path = reader.path_of("origins") + "[" + std::to_string(i) + "]";
        std::string error;
        const auto origin =
            item.IsScalar() ? parse_origin(item.Scalar(), error) : std::optional<Origin>{};
        if (!origin) {
            reader.error_at(item, item_path,
                            item.IsScalar() ? error : "must be a string such as https://host");
            continue;
        }
        if (origin->scheme == "http" &&
            !(is_loopback_host(origin->host) && egress.allow_loopback)) {
            reader.error_at(item, item_path,
                            "a credential is sent over https only; http is allowed to a "
                            "loopback host (an emulator) with egress.allow_loopback: true");
            continue;
        }
        const std::string default_port = origin->scheme == "https" ? "443" : "80";
        const bool reachable =
            std::any_of(egress.allow_hosts.begin(), egress.allow_hosts.end(), [&](auto entry) {
                std::transform(entry.begin(), entry.end(), entry.begin(),
                               [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
                return (entry == origin->host && origin->port == default_port) ||
                       entry == origin->host + ":" + origin->port;
            });
        if (!reachable) {
            reader.error_at(item, item_path,
                            origin->host + ":" + origin->port +
                                " is not on egress.allow_hosts, so this origin could never be "
                                "reached");
            continue;
        }
        profile.origins.push_back(*origin);
    }
}

CredentialProfile read_credential(const std::string& name, const YAML::Node& node,
                                  const std::string& path, const EgressConfig& egress,
                                  LoadContext& context) {
    YamlMapReader reader(node, path, context.errors);
    CredentialProfile profile;
    profile.name = name;
    const auto type = reader.string("type", true);
    if (!type) {
        reader.reject_unknown_keys();
        return profile;
    }
    const auto kind = parse_credential_kind(*type);
    if (!kind) {
        reader.error_at_value(
            "type", "must be one of bearer, api_key, basic, aws_sigv4, supabase, postgres");
        reader.reject_unknown_keys();
        return profile;
    }
    profile.kind = *kind;
    auto secret = [&](const char* key, bool required) {
        if (auto reference = reader.secret(key, required, context.secret_uses)) {
            profile.secrets.emplace(key, *reference);
        }
    };
    auto setting = [&](const char* key, bool required) {
        if (auto value = reader.string(key, required)) {
            profile.settings.emplace(key, *value);
        }
    };
    switch (*kind) {
        case CredentialKind::bearer: secret("token", true); break;
        case CredentialKind::api_key:
            secret("key", true);
            setting("header", true);
            break;
        case CredentialKind::basic:
            setting("username", true);
            secret("password", true);
            break;
        case CredentialKind::aws_sigv4:
            secret("access_key_id", true);
            secret("secret_access_key", true);
            secret("session_token", false);
            setting("region", true);
            setting("service", false);
            break;
        case CredentialKind::supabase: secret("key", true); break;
        case CredentialKind::postgres:
            setting("host", true);  // a name, an address, or a Unix socket directory
            setting("port", false);
            setting("dbname", true);
            setting("user", true);
            secret("password", false);
            break;
    }
    if (*kind != CredentialKind::postgres) {
        read_origins(reader, egress, profile);
    }
    reader.reject_unknown_keys();
    return profile;
}

ProviderConfig read_provider(const std::string& name, const YAML::Node& node,
                             LoadContext& context) {
    const std::string path = "providers." + name;
    YamlMapReader reader(node, path, context.errors);
    ProviderConfig provider;
    provider.name = name;
    provider.plugin = reader.string("plugin").value_or(name);
    if (!is_name(provider.plugin)) {
        reader.error_at_value("plugin",
                              "must be a plugin name: lowercase letters, digits, - and _");
    }
    provider.sha256 = reader.string("sha256").value_or("");
    if (!provider.sha256.empty() &&
        (provider.sha256.size() != 64 ||
         provider.sha256.find_first_not_of("0123456789abcdef") != std::string::npos)) {
        reader.error_at_value("sha256",
                              "must be 64 lowercase hex digits (the SHA-256 that "
                              "`mitigate plugins list` shows for the file)");
    }
    provider.enabled = reader.boolean("enabled").value_or(true);
    {
        YamlMapReader egress(reader.get("egress"), path + ".egress", context.errors);
        provider.egress.allow_hosts = egress.string_list("allow_hosts");
        provider.egress.allow_loopback = egress.boolean("allow_loopback").value_or(false);
        provider.egress.allow_private = egress.boolean("allow_private").value_or(false);
        for (const auto& file : egress.string_list("allow_files")) {
            provider.egress.allow_files.push_back(resolve_path(context, file));
        }
        egress.reject_unknown_keys();
    }
    {
        YamlMapReader credentials(reader.get("credentials"), path + ".credentials", context.errors);
        for (const auto& entry : credentials.entries()) {
            if (!is_name(entry.key)) {
                credentials.error_at_key(entry.key,
                                         "profile names are lowercase letters, digits, - and _");
                continue;
            }
            provider.credentials.push_back(read_credential(
                entry.key, entry.value, credentials.path_of(entry.key), provider.egress, context));
        }
    }
    const YAML::Node settings = reader.get("settings");
    if (settings.IsDefined()) {
        if (!settings.IsMap()) {
            reader.error_at_value("settings", "must be a mapping");
        } else {
            provider.settings = yaml_to_json(settings);
        }
    }
    reader.reject_unknown_keys();
    return provider;
}

void read_providers(const YAML::Node& node, LoadContext& context,
                    std::vector<ProviderConfig>& providers) {
    YamlMapReader reader(node, "providers", context.errors);
    for (const auto& entry : reader.entries()) {
        if (!is_name(entry.key)) {
            reader.error_at_key(entry.key, "provider names are lowercase letters, digits, - and _");
            continue;
        }
        providers.push_back(read_provider(entry.key, entry.value, context));
    }
}

void read_slack(const YAML::Node& node, LoadContext& context, SlackConfig& slack) {
    YamlMapReader reader(node, "chat.slack", context.errors);
    if (auto url = reader.string("api_url")) {
        if (!url->starts_with("https://") && !url->starts_with("http://")) {
            reader.error_at_value("api_url", "must be an http:// or https:// URL");
        } else {
            slack.api_url = *url;
        }
    }
    slack.channel = reader.string("channel", true).value_or("");
    slack.bot_token = reader.secret("bot_token", true, context.secret_uses);
    slack.signing_secret = reader.secret("signing_secret", true, context.secret_uses);
    slack.team_id = reader.string("team_id").value_or("");
    slack.app_id = reader.string("app_id").value_or("");
    YamlMapReader users(reader.get("users"), "chat.slack.users", context.errors);
    for (const auto& entry : users.entries()) {
        YamlMapReader user(entry.value, users.path_of(entry.key), context.errors);
        SlackUser mapped;
        mapped.slack_user_id = entry.key;
        mapped.identity = user.string("identity", true).value_or("");
        mapped.groups = user.string_list("groups");
        if (auto role = user.string("role")) {
            if (*role != "viewer" && *role != "approver" && *role != "operator") {
                user.error_at_value("role", "must be viewer, approver or operator");
            } else {
                mapped.role = *role;
            }
        }
        user.reject_unknown_keys();
        slack.users.push_back(std::move(mapped));
    }
    reader.reject_unknown_keys();
}

void read_chat(const YAML::Node& node, LoadContext& context, ChatConfig& chat) {
    YamlMapReader reader(node, "chat", context.errors);
    const YAML::Node slack = reader.get("slack");
    if (slack.IsDefined()) {
        chat.slack.emplace();
        read_slack(slack, context, *chat.slack);
    }
    reader.reject_unknown_keys();
}

}  // namespace

std::string ConfigError::to_string() const {
    std::string text = file;
    if (line > 0) {
        text += ":" + std::to_string(line) + ":" + std::to_string(column);
    }
    text += ": ";
    if (!key.empty()) {
        text += key + ": ";
    }
    return text + message;
}

std::string_view to_string(CredentialKind kind) {
    switch (kind) {
        case CredentialKind::bearer: return "bearer";
        case CredentialKind::api_key: return "api_key";
        case CredentialKind::basic: return "basic";
        case CredentialKind::aws_sigv4: return "aws_sigv4";
        case CredentialKind::supabase: return "supabase";
        case CredentialKind::postgres: return "postgres";
    }
    return "unknown";
}

ConfigLoad load_config_text(std::string_view text, const std::string& source_name,
                            const std::filesystem::path& base_directory) {
    ConfigLoad result;
    YamlErrors errors(source_name, result.errors);
    const std::optional<YAML::Node> loaded = load_yaml(std::string(text), errors);
    if (!loaded) {
        return result;
    }
    const YAML::Node& root = *loaded;
    Config config;
    config.source = source_name;
    // Defaults for paths, resolved like values written in the file.
    LoadContext context{errors, base_directory, config.secret_uses};
    config.store.path = resolve_path(context, "mitigate.db");
    // No default plugins directory: a plugin is loaded from a directory only when the
    // configuration names it, never from whatever ./plugins the working directory has.
    config.directories = {fs::path(), resolve_path(context, "scripts/playbooks"),
                          resolve_path(context, "policies"),
                          resolve_path(context, "scripts/drills")};

    if (!root.IsDefined() || root.IsNull()) {
        errors.add(root.Mark(), "", "the file is empty; see docs/configuration.md");
        return result;
    }
    YamlMapReader reader(root, "", errors);
    read_server(reader.get("server"), context, config.server);
    read_store(reader.get("store"), context, config.store);
    read_log(reader.get("log"), context, config.log);
    read_directories(reader.get("directories"), context, config.directories);
    read_sandbox(reader.get("sandbox"), context, config.sandbox);
    read_engine(reader.get("engine"), context, config.engine);
    read_providers(reader.get("providers"), context, config.providers);
    read_chat(reader.get("chat"), context, config.chat);
    reader.reject_unknown_keys();
    if (result.errors.empty()) {
        result.config = std::move(config);
    }
    return result;
}

ConfigLoad load_config_file(const std::filesystem::path& path) {
    ConfigLoad unreadable;
    const std::optional<std::string> text = read_operator_file(path, unreadable.errors);
    if (!text) {
        return unreadable;
    }
    const fs::path absolute = fs::absolute(path);
    return load_config_text(*text, path.string(), absolute.parent_path());
}

std::vector<ConfigError> check_secrets_resolve(const Config& config) {
    std::vector<ConfigError> errors;
    for (const auto& use : config.secret_uses) {
        const SecretResolution resolution = resolve_secret(use.reference);
        if (!resolution.value) {
            errors.push_back({config.source, use.line, use.column, use.key, resolution.error});
        }
    }
    return errors;
}

nlohmann::json config_to_json(const Config& config) {
    using nlohmann::json;
    json providers = json::object();
    for (const auto& provider : config.providers) {
        json credentials = json::object();
        for (const auto& profile : provider.credentials) {
            json entry{{"type", to_string(profile.kind)}};
            for (const auto& [key, value] : profile.settings) {
                entry[key] = value;
            }
            for (const auto& [key, reference] : profile.secrets) {
                entry[key] = reference.text();
            }
            if (profile.kind != CredentialKind::postgres) {
                entry["origins"] = json::array();
                for (const auto& origin : profile.origins) {
                    entry["origins"].push_back(origin.text());
                }
            }
            credentials[profile.name] = entry;
        }
        providers[provider.name] = {
            {"plugin", provider.plugin},
            {"sha256", provider.sha256},
            {"enabled", provider.enabled},
            {"egress",
             {{"allow_hosts", provider.egress.allow_hosts},
              {"allow_loopback", provider.egress.allow_loopback},
              {"allow_private", provider.egress.allow_private},
              {"allow_files",
               [&] {
                   std::vector<std::string> files;
                   for (const auto& file : provider.egress.allow_files) {
                       files.push_back(file.string());
                   }
                   return files;
               }()}}},
            {"credentials", credentials},
            {"settings", provider.settings},
        };
    }
    json chat = json::object();
    if (config.chat.slack) {
        const SlackConfig& slack = *config.chat.slack;
        json users = json::object();
        for (const auto& user : slack.users) {
            users[user.slack_user_id] = {
                {"identity", user.identity}, {"groups", user.groups}, {"role", user.role}};
        }
        chat["slack"] = {
            {"api_url", slack.api_url},
            {"channel", slack.channel},
            {"team_id", slack.team_id},
            {"app_id", slack.app_id},
            {"bot_token", slack.bot_token ? json(slack.bot_token->text()) : json(nullptr)},
            {"signing_secret",
             slack.signing_secret ? json(slack.signing_secret->text()) : json(nullptr)},
            {"users", users},
        };
    }
    const bool is_v6 = config.server.host.find(':') != std::string::npos;
    return json{
        {"server",
         {{"listen", (is_v6 ? "[" + config.server.host + "]" : config.server.host) + ":" +
                         std::to_string(config.server.port)},
          {"max_connections", config.server.max_connections},
          {"max_body_bytes", config.server.max_body_bytes},
          {"body_memory_budget_bytes", config.server.body_memory_budget_bytes},
          {"header_timeout", format_duration(Duration{config.server.header_timeout_ms})},
          {"body_timeout", format_duration(Duration{config.server.body_timeout_ms})},
          {"idle_timeout", format_duration(Duration{config.server.idle_timeout_ms})}}},
        {"store", {{"driver", config.store.driver}, {"path", config.store.path.string()}}},
        {"log", {{"level", to_string(config.log.level)}, {"format", to_string(config.log.format)}}},
        {"sandbox",
         {{"allow_weaker_landlock", config.sandbox.allow_weaker_landlock},
          {"minimum_landlock_abi", config.sandbox.minimum_landlock_abi},
          {"plugin_call_timeout_ms", config.sandbox.plugin_call_timeout_ms}}},
        {"engine",
         {{"group_by", config.engine.group_by},
          {"verification_window", format_duration(Duration{config.engine.verification_window_ms})},
          {"approval_expiry", format_duration(Duration{config.engine.approval_expiry_ms})},
          {"revert_when_incident_resolves", config.engine.revert_when_incident_resolves},
          {"pending_signal_limit", config.engine.pending_signal_limit},
          {"workers", config.engine.workers}}},
        {"directories",
         {{"plugins", config.directories.plugins.string()},
          {"playbooks", config.directories.playbooks.string()},
          {"policies", config.directories.policies.string()},
          {"drills", config.directories.drills.string()}}},
        {"providers", providers},
        {"chat", chat},
    };
}

}  // namespace mitigate
