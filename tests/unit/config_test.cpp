// mitigate.yaml loading: positions on every error, unknown keys refused with a
// suggestion, secrets only as references, and defaults that match the embedded file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "runtime/config/config.h"
#include "runtime/config/yaml_reader.h"
#include "tests/support/hostile_files.h"
#include "tests/support/printers.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

ConfigLoad load(std::string_view text) {
    return load_config_text(text, "mitigate.yaml", "/etc/mitigate");
}

auto error_at(int line, int column, const std::string& key) {
    return Contains(AllOf(Field(&ConfigError::line, line), Field(&ConfigError::column, column),
                          Field(&ConfigError::key, key)));
}

constexpr std::string_view full_config = R"yaml(
server:
  listen: 0.0.0.0:9000
store:
  driver: sqlite
  path: data/mitigate.db
log:
  level: debug
  format: json
directories:
  policies: /srv/policies
providers:
  aws:
    egress:
      allow_hosts: [ecs.eu-west-1.amazonaws.com]
    credentials:
      prod:
        type: aws_sigv4
        access_key_id: env:AWS_ACCESS_KEY_ID
        secret_access_key: file:/run/secrets/aws
        region: eu-west-1
        origins: [https://ecs.eu-west-1.amazonaws.com]
    settings:
      cluster: prod
      max_step: 4
      dry: false
      label: "007"
  flags:
    plugin: flags
    enabled: false
chat:
  slack:
    channel: C0123
    bot_token: env:SLACK_BOT_TOKEN
    signing_secret: env:SLACK_SIGNING_SECRET
    users:
      U024BE7LH: {identity: alice, groups: [sre-oncall]}
      U0G9QF9C6: {identity: carol, groups: [sre-oncall], role: operator}
)yaml";

TEST(Config, LoadsEveryDocumentedSection) {
    const ConfigLoad result = load(full_config);
    ASSERT_TRUE(result.config) << result.errors.front().to_string();
    const Config& config = *result.config;
    EXPECT_EQ(config.server.host, "0.0.0.0");
    EXPECT_EQ(config.server.port, 9000);
    EXPECT_EQ(config.store.path, "/etc/mitigate/data/mitigate.db");
    EXPECT_EQ(config.log.level, LogLevel::debug);
    EXPECT_EQ(config.log.format, LogFormat::json);
    EXPECT_EQ(config.directories.policies, "/srv/policies");
    EXPECT_EQ(config.directories.playbooks, "/etc/mitigate/scripts/playbooks");
    ASSERT_EQ(config.providers.size(), 2u);
    const ProviderConfig& aws = config.providers[0];
    EXPECT_EQ(aws.plugin, "aws");
    ASSERT_EQ(aws.credentials.size(), 1u);
    EXPECT_EQ(aws.credentials[0].kind, CredentialKind::aws_sigv4);
    EXPECT_EQ(aws.credentials[0].secrets.at("secret_access_key").text(), "file:/run/secrets/aws");
    EXPECT_EQ(aws.credentials[0].settings.at("region"), "eu-west-1");
    ASSERT_EQ(aws.credentials[0].origins.size(), 1u);
    EXPECT_EQ(aws.credentials[0].origins[0].text(), "https://ecs.eu-west-1.amazonaws.com:443");
    EXPECT_EQ(
        aws.settings,
        (nlohmann::json{{"cluster", "prod"}, {"max_step", 4}, {"dry", false}, {"label", "007"}}));
    EXPECT_FALSE(config.providers[1].enabled);
    ASSERT_TRUE(config.chat.slack);
    EXPECT_EQ(config.chat.slack->users.at(0).identity, "alice");
    EXPECT_EQ(config.chat.slack->users.at(0).role, "approver");  // the default
    EXPECT_EQ(config.chat.slack->users.at(1).role, "operator");
    EXPECT_EQ(config.secret_uses.size(), 4u);
}

TEST(Config, TheServerLimitsLoadAndNonsenseIsNamed) {
    const ConfigLoad result = load(R"yaml(server:
  listen: 127.0.0.1:0
  max_connections: 50
  max_body_bytes: 4096
  body_memory_budget_bytes: 2097152
  header_timeout: 2s
  body_timeout: 500ms
  idle_timeout: 5m
)yaml");
    ASSERT_TRUE(result.config) << result.errors.front().to_string();
    const ServerConfig& server = result.config->server;
    EXPECT_EQ(server.max_connections, 50);
    EXPECT_EQ(server.max_body_bytes, 4096);
    EXPECT_EQ(server.body_memory_budget_bytes, 2097152);
    EXPECT_EQ(server.header_timeout_ms, 2000);
    EXPECT_EQ(server.body_timeout_ms, 500);
    EXPECT_EQ(server.idle_timeout_ms, 300000);

    const ConfigLoad broken = load(R"yaml(server:
  max_connections: 0
  max_body_bytes: 8388608
  body_memory_budget_bytes: 2097152
  idle_timeout: 10ms
)yaml");
    ASSERT_EQ(broken.errors.size(), 3u);
    EXPECT_THAT(broken.errors[0].to_string(), HasSubstr("max_connections"));
    EXPECT_THAT(broken.errors[1].to_string(), HasSubstr("must be at least max_body_bytes"));
    EXPECT_EQ(broken.errors[1].line, 4);
    EXPECT_THAT(broken.errors[2].to_string(), HasSubstr("idle_timeout"));
}

TEST(Config, SupabaseAndPostgresCredentialsLoadAndTheirMistakesAreNamed) {
    const ConfigLoad result = load(R"yaml(providers:
  supabase:
    egress: {allow_hosts: [abc.supabase.co]}
    credentials:
      service: {type: supabase, key: env:SUPABASE_KEY, origins: [https://abc.supabase.co]}
      db: {type: postgres, host: /var/run/postgresql, dbname: app, user: mitigate,
           password: file:/run/secrets/db}
)yaml");
    ASSERT_TRUE(result.config) << result.errors.front().to_string();
    const auto& credentials = result.config->providers.at(0).credentials;
    ASSERT_EQ(credentials.size(), 2u);
    EXPECT_EQ(credentials[1].kind, CredentialKind::postgres);
    EXPECT_EQ(credentials[1].settings.at("host"), "/var/run/postgresql");
    EXPECT_EQ(credentials[1].secrets.at("password").text(), "file:/run/secrets/db");

    const ConfigLoad broken = load(R"yaml(providers:
  supabase:
    credentials:
      db: {type: postgres, dbname: app, user: mitigate}
      other: {type: mysql}
)yaml");
    ASSERT_EQ(broken.errors.size(), 2u);
    EXPECT_EQ(broken.errors[0].line, 4);
    EXPECT_THAT(broken.errors[0].to_string(), HasSubstr("host"));
    EXPECT_THAT(broken.errors[1].message,
                HasSubstr("bearer, api_key, basic, aws_sigv4, supabase, postgres"));
}

TEST(Config, ACredentialNamesTheExactOriginsItMayBeSentTo) {
    const ConfigLoad good = load(R"yaml(providers:
  vercel:
    egress: {allow_hosts: [api.vercel.com, "127.0.0.1:9001", "[::1]:9002"], allow_loopback: true}
    credentials:
      main: {type: bearer, token: env:T, origins: [HTTPS://API.Vercel.com/, "http://127.0.0.1:9001",
                                                  "http://[::1]:9002"]}
)yaml");
    ASSERT_TRUE(good.config) << good.errors.front().to_string();
    const auto& origins = good.config->providers.at(0).credentials.at(0).origins;
    ASSERT_EQ(origins.size(), 3u);
    EXPECT_EQ(origins[0].text(), "https://api.vercel.com:443");
    EXPECT_EQ(origins[1].text(), "http://127.0.0.1:9001");
    EXPECT_EQ(origins[2].text(), "http://[::1]:9002");
    EXPECT_THAT(config_to_json(*good.config).dump(), HasSubstr("https://api.vercel.com:443"));
    // Addresses are compared in the form curl gives a request's host in.
    std::string why;
    EXPECT_EQ(parse_origin("http://[0:0:0:0:0:0:0:1]:9002", why)->text(), "http://[::1]:9002");
    EXPECT_EQ(parse_origin("http://127.1:9001", why)->text(), "http://127.0.0.1:9001");
    EXPECT_EQ(parse_origin("http://0x7f.0.0.1:9001", why)->text(), "http://127.0.0.1:9001");
    // Whatever spelling curl keeps for a request's host, both sides meet in one form.
    EXPECT_EQ(canonical_host("[::ffff:7f00:1]"), canonical_host("[::ffff:127.0.0.1]"));
    EXPECT_EQ(canonical_host("0x7f000001"), "127.0.0.1");
    EXPECT_EQ(canonical_host("1e100.net"), "1e100.net");
    EXPECT_EQ(canonical_host("a..b"), std::nullopt);
    EXPECT_EQ(parse_origin("https://my_host.internal", why)->text(),
              "https://my_host.internal:443");
    for (const char* junk : {"https://[:::::]", "https://[....]", "https://a..b", "https://",
                             "https://:443", "https://-a.example"}) {
        EXPECT_FALSE(parse_origin(junk, why)) << junk;
    }

    const ConfigLoad broken = load(R"yaml(providers:
  vercel:
    egress: {allow_hosts: [api.vercel.com, "plain.example:80", "127.0.0.1:9001"]}
    credentials:
      none: {type: bearer, token: env:T}
      empty: {type: bearer, token: env:T, origins: []}
      scalar: {type: bearer, token: env:T, origins: https://api.vercel.com}
      clear: {type: bearer, token: env:T, origins: ["http://plain.example"]}
      loopback: {type: bearer, token: env:T, origins: ["http://127.0.0.1:9001"]}
      path: {type: bearer, token: env:T, origins: ["https://api.vercel.com/v1"]}
      user: {type: bearer, token: env:T, origins: ["https://me@api.vercel.com"]}
      port: {type: bearer, token: env:T, origins: ["https://api.vercel.com:99999"]}
      elsewhere: {type: bearer, token: env:T, origins: ["https://api.vercel.com:8443"]}
      scheme: {type: bearer, token: env:T, origins: ["ftp://api.vercel.com"]}
      db: {type: postgres, host: h, dbname: d, user: u, origins: ["https://api.vercel.com"]}
)yaml");
    ASSERT_FALSE(broken.config);
    auto message_for = [&](const std::string& key) {
        for (const auto& error : broken.errors) {
            if (error.key == key) {
                return error.message;
            }
        }
        return std::string("<no error for ") + key + ">";
    };
    const std::string prefix = "providers.vercel.credentials.";
    EXPECT_THAT(message_for(prefix + "none.origins"), HasSubstr("is required: the exact origins"));
    EXPECT_THAT(message_for(prefix + "empty.origins"), HasSubstr("non-empty list"));
    EXPECT_THAT(message_for(prefix + "scalar.origins"), HasSubstr("non-empty list"));
    EXPECT_THAT(message_for(prefix + "clear.origins[0]"), HasSubstr("https only"));
    // http to loopback needs the provider to allow loopback.
    EXPECT_THAT(message_for(prefix + "loopback.origins[0]"), HasSubstr("allow_loopback"));
    EXPECT_THAT(message_for(prefix + "path.origins[0]"), HasSubstr("no path"));
    EXPECT_THAT(message_for(prefix + "user.origins[0]"), HasSubstr("no path, query, user"));
    EXPECT_THAT(message_for(prefix + "port.origins[0]"), HasSubstr("1 to 65535"));
    EXPECT_THAT(message_for(prefix + "elsewhere.origins[0]"),
                HasSubstr("api.vercel.com:8443 is not on egress.allow_hosts"));
    EXPECT_THAT(message_for(prefix + "scheme.origins[0]"), HasSubstr("https://"));
    EXPECT_THAT(message_for(prefix + "db.origins"), HasSubstr("unknown key"));
    EXPECT_EQ(broken.errors.size(), 11u);
}

TEST(Config, EmbeddedDefaultLoadsAndMatchesTheBuiltInDefaults) {
    const ConfigLoad result = load_config_text(embedded_default_config(), "<embedded>", "/work");
    ASSERT_TRUE(result.config) << result.errors.front().to_string();
    EXPECT_EQ(result.config->server.host, "127.0.0.1");
    EXPECT_EQ(result.config->store.path, "/work/mitigate.db");
    EXPECT_TRUE(result.config->providers.empty());
    EXPECT_FALSE(result.config->chat.slack);
    // A minimal file gets the same values as the embedded default.
    const ConfigLoad minimal = load_config_text("log: {level: info}\n", "<min>", "/work");
    ASSERT_TRUE(minimal.config);
    EXPECT_EQ(config_to_json(*minimal.config), config_to_json(*result.config));
}

TEST(Config, UnknownKeyIsAnErrorAtItsLineAndColumnWithASuggestion) {
    const ConfigLoad result = load("store:\n  driver: sqlite\n  pth: x.db\n");
    ASSERT_FALSE(result.config);
    ASSERT_EQ(result.errors.size(), 1u);
    const ConfigError& error = result.errors[0];
    EXPECT_EQ(error.line, 3);
    EXPECT_EQ(error.column, 3);
    EXPECT_EQ(error.key, "store.pth");
    EXPECT_EQ(error.to_string(),
              "mitigate.yaml:3:3: store.pth: unknown key (did you mean \"path\"?)");
}

TEST(Config, FarOffUnknownKeyListsTheKnownOnes) {
    const ConfigLoad result = load("logging:\n  level: info\n");
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_THAT(result.errors[0].message,
                HasSubstr("expected one of: chat, directories, engine, log"));
}

TEST(Config, ReportsEveryErrorNotJustTheFirst) {
    const ConfigLoad result = load(R"yaml(server:
  listen: nowhere
log:
  level: loud
  format: xml
providers:
  Bad_Name: {}
  aws:
    credentials:
      prod: {type: carrier-pigeon}
      dev: {type: bearer}
    egress: {allow_loopback: maybe}
chat:
  slack:
    channel: C1
    bot_token: env:SLACK_BOT_TOKEN
    signing_secret: env:SLACK_SIGNING_SECRET
    users:
      U1: {groups: [sre]}
      U2: {identity: bob, role: admin}
)yaml");
    ASSERT_FALSE(result.config);
    EXPECT_THAT(result.errors, error_at(2, 11, "server.listen"));
    EXPECT_THAT(result.errors, error_at(4, 10, "log.level"));
    EXPECT_THAT(result.errors, error_at(5, 11, "log.format"));
    EXPECT_THAT(result.errors, error_at(7, 3, "providers.Bad_Name"));
    EXPECT_THAT(result.errors, error_at(10, 20, "providers.aws.credentials.prod.type"));
    EXPECT_THAT(result.errors, error_at(11, 12, "providers.aws.credentials.dev.token"));
    EXPECT_THAT(result.errors, error_at(11, 12, "providers.aws.credentials.dev.origins"));
    EXPECT_THAT(result.errors, error_at(12, 30, "providers.aws.egress.allow_loopback"));
    EXPECT_THAT(result.errors, error_at(19, 11, "chat.slack.users.U1.identity"));
    EXPECT_THAT(result.errors, error_at(20, 33, "chat.slack.users.U2.role"));
    EXPECT_EQ(result.errors.size(), 10u);
}

TEST(Config, DuplicateKeysAreErrors) {
    const ConfigLoad result = load("store:\n  path: a.db\n  path: b.db\n");
    ASSERT_FALSE(result.config);
    EXPECT_THAT(result.errors, error_at(3, 3, "store.path"));
    EXPECT_THAT(result.errors[0].message, HasSubstr("duplicate"));
}

TEST(Config, MalformedYamlGivesAPosition) {
    const ConfigLoad result = load("store:\n  path: [unclosed\n");
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_GT(result.errors[0].line, 0);
    EXPECT_THAT(result.errors[0].message, HasSubstr("not valid YAML"));
}

TEST(Config, WrongShapesAreErrorsNotCrashes) {
    for (const char* text :
         {"[1, 2]", "store: 5", "providers: [aws]", "providers:\n  aws: 7", "chat:\n  slack: [1]",
          "directories:\n  plugins: {a: b}", "\"just text\""}) {
        const ConfigLoad result = load(text);
        EXPECT_FALSE(result.config) << text;
        EXPECT_THAT(result.errors, Not(IsEmpty())) << text;
    }
    EXPECT_FALSE(load("").config);
}

TEST(Config, LiteralSecretsAreRefusedWithoutBeingRepeated) {
    const std::string pasted = "xoxb-pasted-real-looking-token";
    const ConfigLoad result = load("chat:\n  slack:\n    channel: C1\n    bot_token: " + pasted +
                                   "\n    signing_secret: env:SIGNING\n");
    ASSERT_FALSE(result.config);
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_EQ(result.errors[0].key, "chat.slack.bot_token");
    EXPECT_EQ(result.errors[0].line, 4);
    EXPECT_THAT(result.errors[0].to_string(), Not(HasSubstr(pasted)));
    EXPECT_THAT(result.errors[0].message, HasSubstr("env:"));
}

TEST(Config, SecretReferencesResolveOnlyWhenAsked) {
    testing::TemporaryDirectory directory;
    const auto secret_file = directory.write("token", "file-secret-value-3141\n");
    ::setenv("MITIGATE_TEST_BEARER", "env-secret-value-2718", 1);
    ::unsetenv("MITIGATE_TEST_UNSET");
    const std::string vercel = "https://api.vercel.com";
    const std::string text =
        "providers:\n  vercel:\n    egress: {allow_hosts: [api.vercel.com]}\n"
        "    credentials:\n"
        "      a: {type: bearer, token: env:MITIGATE_TEST_BEARER, origins: [" +
        vercel +
        "]}\n"
        "      b: {type: bearer, token: \"file:" +
        secret_file.string() + "\", origins: [" + vercel +
        "]}\n"
        "      c: {type: bearer, token: env:MITIGATE_TEST_UNSET, origins: [" +
        vercel +
        "]}\n"
        "      d: {type: bearer, token: file:/nonexistent/secret, origins: [" +
        vercel + "]}\n";
    const ConfigLoad result = load(text);
    ASSERT_TRUE(result.config) << result.errors.front().to_string();
    const std::string shown = config_to_json(*result.config).dump();
    EXPECT_THAT(shown, HasSubstr("env:MITIGATE_TEST_BEARER"));
    EXPECT_THAT(shown, Not(HasSubstr("env-secret-value-2718")));
    EXPECT_THAT(shown, Not(HasSubstr("file-secret-value-3141")));

    const auto errors = check_secrets_resolve(*result.config);
    ASSERT_EQ(errors.size(), 2u);
    EXPECT_EQ(errors[0].key, "providers.vercel.credentials.c.token");
    EXPECT_EQ(errors[0].line, 7);
    EXPECT_THAT(errors[0].message, HasSubstr("not set"));
    EXPECT_EQ(errors[1].key, "providers.vercel.credentials.d.token");

    const auto& profiles = result.config->providers[0].credentials;
    auto from_env = resolve_secret(profiles[0].secrets.at("token"));
    ASSERT_TRUE(from_env.value);
    EXPECT_EQ(from_env.value->reveal(), "env-secret-value-2718");
    auto from_file = resolve_secret(profiles[1].secrets.at("token"));
    ASSERT_TRUE(from_file.value);
    EXPECT_EQ(from_file.value->reveal(), "file-secret-value-3141");  // newline dropped
}

TEST(Config, EmptySecretIsAnError) {
    ::setenv("MITIGATE_TEST_EMPTY", "", 1);
    const auto resolution = resolve_secret(*SecretReference::parse("env:MITIGATE_TEST_EMPTY"));
    EXPECT_FALSE(resolution.value);
    EXPECT_THAT(resolution.error, HasSubstr("empty"));
}

TEST(Config, SecretReferenceSyntax) {
    EXPECT_TRUE(SecretReference::parse("env:SLACK_TOKEN"));
    EXPECT_TRUE(SecretReference::parse("file:/run/secrets/x"));
    for (const char* text : {"env:", "env:1ABC", "env:A-B", "file:", "xoxb-123", "ENV:X", ""}) {
        EXPECT_FALSE(SecretReference::parse(text)) << text;
    }
}

TEST(Config, LoadsFromAFileAndResolvesPathsAgainstIt) {
    testing::TemporaryDirectory directory;
    const auto file = directory.write("mitigate.yaml", "store:\n  path: state/m.db\n");
    const ConfigLoad result = load_config_file(file);
    ASSERT_TRUE(result.config);
    EXPECT_EQ(result.config->store.path, directory.path() / "state/m.db");
    const ConfigLoad missing = load_config_file(directory / "absent.yaml");
    ASSERT_EQ(missing.errors.size(), 1u);
    EXPECT_THAT(missing.errors[0].to_string(), HasSubstr("cannot be read: No such file"));
}

TEST(Config, HostileFilesAreRefusedByWhatTheyAreNotReadWithoutEnd) {
    testing::TemporaryDirectory directory;
    const auto message_for = [](const std::filesystem::path& path) {
        const ConfigLoad load = load_config_file(path);
        EXPECT_FALSE(load.config) << path;
        return load.errors.empty() ? std::string("<no error>") : load.errors[0].to_string();
    };
    // Aliases are counted as what they name, before anything is built from them.
    EXPECT_THAT(message_for(directory.write("bomb.yaml", testing::yaml_alias_bomb())),
                HasSubstr("expands to more than 200000 nodes"));
    std::string deep = "server: ";
    deep += std::string(100, '[') + std::string(100, ']') + "\n";
    EXPECT_THAT(message_for(directory.write("deep.yaml", deep)), HasSubstr("nests deeper than 64"));
    // Not regular files: answered at once, never read until they end or block.
    const auto fifo = directory / "fifo.yaml";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    EXPECT_THAT(message_for(fifo), HasSubstr("is a FIFO, not a regular file"));
    EXPECT_THAT(message_for("/dev/zero"), HasSubstr("is a device, not a regular file"));
    EXPECT_THAT(message_for(directory.path()), HasSubstr("is a directory, not a regular file"));
    // Over the size limit: refused from its size, unread (a sparse 200 MB file).
    const auto huge = directory.write("huge.yaml", "");
    std::filesystem::resize_file(huge, 200u << 20);
    EXPECT_THAT(message_for(huge), HasSubstr("209715200 bytes, over the 4194304-byte limit"));
    // Text that is not UTF-8, named by line and column.
    EXPECT_THAT(message_for(directory.write("latin1.yaml", "store:\n  path: m.db\n# caf\xe9\n")),
                HasSubstr("latin1.yaml:3:6: invalid UTF-8 at line 3, column 6"));
    // A few honest anchors and aliases are fine.
    const ConfigLoad honest = load_config_file(directory.write(
        "anchors.yaml", "server: &s {listen: \"127.0.0.1:0\"}\nstore: {path: m.db}\n"));
    EXPECT_TRUE(honest.config) << honest.errors.front().to_string();
}

TEST(Config, ASecretFileThatIsAFifoOrHugeIsAnErrorNotAHang) {
    testing::TemporaryDirectory directory;
    const auto fifo = directory / "token";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    const SecretResolution blocked =
        resolve_secret(*SecretReference::parse("file:" + fifo.string()));
    EXPECT_FALSE(blocked.value);
    EXPECT_THAT(blocked.error, HasSubstr("is a FIFO, not a regular file"));
    const SecretResolution endless = resolve_secret(*SecretReference::parse("file:/dev/zero"));
    EXPECT_THAT(endless.error, HasSubstr("is a device, not a regular file"));
    const auto huge = directory.write("huge-token", std::string(100000, 'k'));
    const SecretResolution too_big =
        resolve_secret(*SecretReference::parse("file:" + huge.string()));
    EXPECT_THAT(too_big.error, HasSubstr("over the 65536-byte limit"));
    EXPECT_THAT(too_big.error, Not(HasSubstr("kkkk")));  // never the file's bytes
    const auto binary = directory.write("binary-key", std::string("\xff\x00\x01key\n", 7));
    const SecretResolution bytes =
        resolve_secret(*SecretReference::parse("file:" + binary.string()));
    ASSERT_TRUE(bytes.value) << bytes.error;  // a secret need not be text
    EXPECT_EQ(bytes.value->reveal(), std::string("\xff\x00\x01key", 6));
}

TEST(EditDistance, CountsEdits) {
    EXPECT_EQ(edit_distance("path", "pth"), 1u);
    EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
    EXPECT_EQ(edit_distance("", "abc"), 3u);
}

}  // namespace
}  // namespace mitigate

namespace mitigate {
namespace {

TEST(Config, EngineSettingsReadWithTheirUnitsAndRanges) {
    const auto good = load_config_text(
        "engine:\n  group_by: [alertname]\n  verification_window: 90s\n"
        "  approval_expiry: 2h\n  revert_when_incident_resolves: true\n  workers: 8\n",
        "m.yaml", "/tmp");
    ASSERT_TRUE(good.config) << good.errors.at(0).to_string();
    EXPECT_EQ(good.config->engine.group_by, std::vector<std::string>{"alertname"});
    EXPECT_EQ(good.config->engine.verification_window_ms, 90'000);
    EXPECT_EQ(good.config->engine.approval_expiry_ms, 7'200'000);
    EXPECT_TRUE(good.config->engine.revert_when_incident_resolves);
    EXPECT_EQ(good.config->engine.workers, 8);
    EXPECT_EQ(load_config_text("engine: {}\n", "m.yaml", "/tmp").config->engine.workers, 4);
    const auto one = load_config_text("engine:\n  workers: 1\n", "m.yaml", "/tmp");
    ASSERT_EQ(one.errors.size(), 1u);
    EXPECT_THAT(one.errors[0].to_string(), ::testing::HasSubstr("m.yaml:2:12: engine.workers"));

    const auto bad =
        load_config_text("engine:\n  verification_window: forever\n", "m.yaml", "/tmp");
    ASSERT_EQ(bad.errors.size(), 1u);
    EXPECT_EQ(bad.errors[0].to_string(),
              "m.yaml:2:24: engine.verification_window: must be a duration from 1s to 1d "
              "(\"5m\", \"90s\")");
}

}  // namespace
}  // namespace mitigate
