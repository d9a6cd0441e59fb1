// The egress broker against real HTTP servers on loopback: the allowlist, addresses
// checked after resolution, redirects not followed, the response cap, credentials added
// by the runtime and never seen by the plugin, and files replaced only if unchanged.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <cstdlib>

#include "plugins/sdk/mitigate_plugin.h"
#include "runtime/egress/egress_broker.h"
#include "runtime/server/http_server.h"
#include "sandbox/plugin_host/plugin_process.h"
#include "tests/support/child_process.h"
#include "tests/support/runtime_setup.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr const char* fake_token = "test-token-obviously-fake-0123456789";

class EgressBrokerTest : public ::testing::Test {
  protected:
    void SetUp() override { setenv("MITIGATE_TEST_EGRESS_TOKEN", fake_token, 1); }

    ProviderConfig provider(std::vector<std::string> hosts, bool loopback = true) {
        ProviderConfig config;
        config.name = "demo";
        config.egress.allow_hosts = std::move(hosts);
        config.egress.allow_loopback = loopback;
        CredentialProfile bearer;
        bearer.name = "api";
        bearer.kind = CredentialKind::bearer;
        bearer.secrets.emplace("token", *SecretReference::parse("env:MITIGATE_TEST_EGRESS_TOKEN"));
        bearer.origins = {testing::origin_of(server.url())};
        config.credentials.push_back(bearer);
        CredentialProfile raw;
        raw.name = "raw";
        raw.kind = CredentialKind::api_key;
        raw.secrets.emplace("key", *SecretReference::parse("env:MITIGATE_TEST_EGRESS_TOKEN"));
        raw.settings.emplace("header", "Authorization");
        raw.origins = {testing::origin_of(server.url())};
        config.credentials.push_back(raw);
        return config;
    }

    static json get(const std::string& url, const std::string& credential = "") {
        return {{"kind", "http"}, {"method", "GET"}, {"url", url}, {"credential", credential}};
    }

    std::atomic<int> hits{0};
    HttpExchange last;
    HttpServer server{[this](const HttpExchange& request) {
        ++hits;
        last = request;
        if (request.target == "/redirect") {
            return HttpReply{302, {{"Location", "http://169.254.169.254/latest/meta-data/"}}, ""};
        }
        if (request.target == "/huge") {
            return HttpReply{200, {}, std::string(2u << 20, 'x')};
        }
        return HttpReply{200, {{"Content-Type", "application/json"}}, R"({"ok":true})"};
    }};
    std::string host_port() const { return "127.0.0.1:" + std::to_string(server.port()); }
};

TEST_F(EgressBrokerTest, AHostOffTheAllowlistIsRefusedBeforeAnyConnection) {
    const EgressBroker broker(provider({"api.example.com"}));
    int status = -1;
    const json answer = broker.handle(get(server.url() + "/x"), status);
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_THAT(answer["error"].get<std::string>(),
                HasSubstr("is not on providers.demo.egress.allow_hosts"));
    EXPECT_EQ(hits, 0);
}

TEST_F(EgressBrokerTest, AnAllowedNameThatResolvesToLoopbackIsRefusedUnlessConfigured) {
    const EgressBroker broker(
        provider({"localhost:" + std::to_string(server.port())}, /*loopback=*/false));
    int status = -1;
    const json answer =
        broker.handle(get("http://localhost:" + std::to_string(server.port()) + "/x"), status);
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("a loopback address; refused"));
    EXPECT_EQ(hits, 0);
}

TEST_F(EgressBrokerTest, NamesResolvingToLinkLocalOrPrivateAddressesAreRefused) {
    const Resolver resolver = [](const std::string& host) -> std::vector<std::string> {
        if (host == "metadata.example") {
            return {"169.254.169.254"};
        }
        if (host == "internal.example") {
            return {"203.0.113.7", "10.1.2.3"};  // one bad address is enough
        }
        if (host == "v6.example") {
            return {"fe80::1"};
        }
        return {};
    };
    const EgressBroker broker(
        provider({"metadata.example", "internal.example", "v6.example"}, false), {}, resolver);
    for (const auto& [host, kind] :
         std::vector<std::pair<std::string, std::string>>{{"metadata.example", "link-local"},
                                                          {"internal.example", "private"},
                                                          {"v6.example", "link-local"}}) {
        int status = -1;
        const json answer = broker.handle(get("https://" + host + "/"), status);
        EXPECT_EQ(status, MITIGATE_INVALID) << host;
        EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("a " + kind + " address"))
            << host;
    }
    int status = -1;
    broker.handle(get("http://169.254.169.254/latest/meta-data/"), status);
    EXPECT_EQ(status, MITIGATE_INVALID);  // not on the allowlist, and link-local anyway
}

TEST_F(EgressBrokerTest, UserinfoInTheUrlIsRefused) {
    const EgressBroker broker(provider({"allowed.example", host_port()}));
    int status = -1;
    const json answer = broker.handle(get("http://allowed.example@" + host_port() + "/x"), status);
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("user or password part"));
    EXPECT_EQ(hits, 0);
}

TEST_F(EgressBrokerTest, ARedirectIsReturnedNotFollowed) {
    const EgressBroker broker(provider({host_port()}));
    int status = -1;
    const json answer = broker.handle(get(server.url() + "/redirect"), status);
    ASSERT_EQ(status, MITIGATE_OK) << answer.dump();
    EXPECT_EQ(answer["status"], 302);
    EXPECT_EQ(answer["headers"]["location"], "http://169.254.169.254/latest/meta-data/");
    EXPECT_EQ(hits, 1);
}

TEST_F(EgressBrokerTest, AResponseOverTheCapIsRefused) {
    EgressLimits limits;
    limits.max_response_bytes = 1u << 20;
    const EgressBroker broker(provider({host_port()}), limits);
    int status = -1;
    const json answer = broker.handle(get(server.url() + "/huge"), status);
    EXPECT_EQ(status, MITIGATE_PROVIDER);
    EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("larger than the 1048576-byte cap"));
}

TEST_F(EgressBrokerTest, CredentialsAreAddedByTheBrokerAndThePluginCannotSetThem) {
    const EgressBroker broker(provider({host_port()}));
    int status = -1;
    broker.handle(get(server.url() + "/x", "api"), status);
    ASSERT_EQ(status, MITIGATE_OK);
    EXPECT_EQ(last.headers["authorization"], std::string("Bearer ") + fake_token);
    broker.handle(get(server.url() + "/x", "raw"), status);
    ASSERT_EQ(status, MITIGATE_OK);
    EXPECT_EQ(last.headers["authorization"], fake_token);

    json forged = get(server.url() + "/x");
    forged["headers"] = {{"Authorization", "Bearer mine"}};
    const json refused = broker.handle(forged, status);
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_THAT(refused["error"].get<std::string>(),
                HasSubstr("may not set the Authorization header"));

    const json unknown = broker.handle(get(server.url() + "/x", "nope"), status);
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_THAT(unknown["error"].get<std::string>(), HasSubstr("\"nope\" is not configured"));
}

TEST_F(EgressBrokerTest, AwsRequestsAreSignedWithSigV4) {
    ProviderConfig config = provider({host_port()});
    setenv("MITIGATE_TEST_AWS_KEY", "AKIDEXAMPLE", 1);
    setenv("MITIGATE_TEST_AWS_SECRET", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    CredentialProfile aws;
    aws.name = "aws";
    aws.kind = CredentialKind::aws_sigv4;
    aws.secrets.emplace("access_key_id", *SecretReference::parse("env:MITIGATE_TEST_AWS_KEY"));
    aws.secrets.emplace("secret_access_key",
                        *SecretReference::parse("env:MITIGATE_TEST_AWS_SECRET"));
    aws.settings = {{"region", "us-east-1"}, {"service", "ecs"}};
    aws.origins = {testing::origin_of(server.url())};
    config.credentials.push_back(aws);
    const EgressBroker broker(config);
    json request = get(server.url() + "/", "aws");
    request["method"] = "POST";
    request["body"] = "{}";
    int status = -1;
    broker.handle(request, status);
    ASSERT_EQ(status, MITIGATE_OK);
    EXPECT_THAT(last.headers["authorization"],
                StartsWith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
    EXPECT_THAT(last.headers["authorization"], HasSubstr("/us-east-1/ecs/aws4_request"));
    EXPECT_THAT(last.headers["authorization"], Not(HasSubstr("wJalrXUtnFEMI")));
    EXPECT_EQ(last.headers.count("x-amz-date"), 1u);
}

TEST_F(EgressBrokerTest, SupabaseKeysGoInBothHeadersAndPostgresProfilesServeOnlySql) {
    ProviderConfig config = provider({host_port()});
    CredentialProfile supabase;
    supabase.name = "supabase";
    supabase.kind = CredentialKind::supabase;
    supabase.secrets.emplace("key", *SecretReference::parse("env:MITIGATE_TEST_EGRESS_TOKEN"));
    supabase.origins = {testing::origin_of(server.url())};
    config.credentials.push_back(supabase);
    CredentialProfile database;
    database.name = "db";
    database.kind = CredentialKind::postgres;
    database.settings = {{"host", "/nonexistent-socket-dir"}, {"dbname", "d"}, {"user", "u"}};
    config.credentials.push_back(database);
    const EgressBroker broker(config);
    int status = -1;
    broker.handle(get(server.url() + "/rest/v1/config_flags", "supabase"), status);
    ASSERT_EQ(status, MITIGATE_OK);
    EXPECT_EQ(last.headers["apikey"], fake_token);
    EXPECT_EQ(last.headers["authorization"], std::string("Bearer ") + fake_token);

    json forged = get(server.url() + "/x", "supabase");
    forged["headers"] = {{"apikey", "something-else"}};
    EXPECT_THAT(broker.handle(forged, status)["error"].get<std::string>(),
                HasSubstr("may not set the apikey header"));
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_THAT(broker.handle(get(server.url() + "/x", "db"), status)["error"].get<std::string>(),
                HasSubstr("serves sql requests, not http"));

    const json wrong_profile =
        broker.handle({{"kind", "sql"}, {"credential", "api"}, {"query", "SELECT 1"}}, status);
    EXPECT_THAT(wrong_profile["error"].get<std::string>(),
                HasSubstr("needs a postgres credential"));
    const json unreachable =
        broker.handle({{"kind", "sql"}, {"credential", "db"}, {"query", "SELECT 1"}}, status);
    EXPECT_EQ(status, MITIGATE_UNAVAILABLE);
    EXPECT_TRUE(unreachable.value("not_sent", false));  // safe to send again
    EXPECT_THAT(unreachable["error"].get<std::string>(), HasSubstr("cannot connect to PostgreSQL"));
    ProviderConfig closed = config;
    closed.egress.allow_loopback = false;
    const json local = EgressBroker(closed).handle(
        {{"kind", "sql"}, {"credential", "db"}, {"query", "SELECT 1"}}, status);
    EXPECT_THAT(local["error"].get<std::string>(), HasSubstr("allow_loopback allows it"));
}

TEST_F(EgressBrokerTest, ThePluginNeverSeesTheCredential) {
    const EgressBroker broker(provider({host_port()}));
    PluginProcessOptions options;
    options.executable = testing::mitigate_binary();
    options.plugin = std::string(MITIGATE_TEST_PLUGIN_DIRECTORY) + "/hostile.so";
    PluginProcess plugin(options, [&broker](const json& request, int& status) {
        return broker.handle(request, status);
    });
    const PluginCallResult result =
        plugin.call({{"operation", "read"},
                     {"action", "egress"},
                     {"target", "t"},
                     {"parameters", {{"request", get(server.url() + "/x", "api")}}}});
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(last.headers["authorization"], std::string("Bearer ") + fake_token);  // it was sent
    EXPECT_EQ(result.response["response"]["status"], 200);
    // ...but nothing the plugin can reach holds it: not its environment, not
    // /proc/self/environ or the runtime's, not what the broker returned.
    EXPECT_EQ(result.response["environment"], json::array());
    EXPECT_FALSE(result.response["proc_environ"]["opened"]);
    EXPECT_FALSE(result.response["parent_environ"]["opened"]);
    EXPECT_THAT(result.response.dump(), Not(HasSubstr(fake_token)));
    const std::string worker_environment =
        testing::read_file("/proc/" + std::to_string(plugin.pid()) + "/environ");
    EXPECT_THAT(worker_environment, Not(HasSubstr(fake_token)));
}

TEST_F(EgressBrokerTest, FilesAreLimitedToTheListAndReplacedOnlyIfUnchanged) {
    testing::TemporaryDirectory directory;
    const auto path = directory.write("flags.json", "{\"a\":1}\n");
    chmod(path.c_str(), 0640);
    ProviderConfig config = provider({});
    config.egress.allow_files = {path};
    const EgressBroker broker(config);
    int status = -1;
    const json other = broker.handle({{"kind", "file_read"}, {"path", "/etc/passwd"}}, status);
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_THAT(other["error"].get<std::string>(),
                HasSubstr("not on providers.demo.egress.allow_files"));

    const json read = broker.handle({{"kind", "file_read"}, {"path", path.string()}}, status);
    ASSERT_EQ(status, MITIGATE_OK);
    EXPECT_EQ(read["content"], "{\"a\":1}\n");

    const json stale = broker.handle({{"kind", "file_write"},
                                      {"path", path.string()},
                                      {"content", "{\"a\":2}\n"},
                                      {"if_match", "0000"}},
                                     status);
    EXPECT_EQ(status, MITIGATE_CONFLICT);
    EXPECT_THAT(stale["error"].get<std::string>(), HasSubstr("changed since it was read"));
    EXPECT_EQ(testing::read_file(path), "{\"a\":1}\n");

    const json written = broker.handle({{"kind", "file_write"},
                                        {"path", path.string()},
                                        {"content", "{\"a\":2}\n"},
                                        {"if_match", read["etag"]}},
                                       status);
    ASSERT_EQ(status, MITIGATE_OK) << written.dump();
    EXPECT_EQ(testing::read_file(path), "{\"a\":2}\n");
    struct stat after {};
    stat(path.c_str(), &after);
    EXPECT_EQ(after.st_mode & 0777, 0640u);  // the mode survives the atomic replace
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(directory.path()),
                            std::filesystem::directory_iterator()),
              1);  // no temporary file left behind
}

TEST_F(EgressBrokerTest, AHostWithoutAPortAllowsOnlyTheSchemesOwnPort) {
    // The attack: allow_hosts names a host; the plugin picks plain http and a port of its
    // choosing, and asks for the credential to be attached.
    const EgressBroker broker(provider({"127.0.0.1"}));
    int status = -1;
    const json answer = broker.handle(get(server.url() + "/echo", "api"), status);
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("allows port 80 only"));
    EXPECT_EQ(hits, 0);
}

TEST_F(EgressBrokerTest, ACredentialIsNeverSentInClearTextOffThisMachine) {
    const Resolver resolver = [this](const std::string& host) -> std::vector<std::string> {
        return {host == "api.example" ? "203.0.113.9" : "127.0.0.1"};
    };
    // Even when the profile names the http origin (the configuration refuses that; the
    // broker does not rely on it), the credential does not travel in clear text.
    ProviderConfig config = provider({"api.example:8080", host_port()});
    config.credentials[0].origins.push_back(testing::origin_of("http://api.example:8080"));
    const EgressBroker broker(config, {}, resolver);
    int status = -1;
    const json answer = broker.handle(get("http://api.example:8080/x", "api"), status);
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("is sent over https only"));
    EXPECT_EQ(hits, 0);
    // Loopback with allow_loopback (an emulator) may use http.
    broker.handle(get(server.url() + "/x", "api"), status);
    EXPECT_EQ(status, MITIGATE_OK);
    EXPECT_EQ(hits, 1);
}

TEST_F(EgressBrokerTest, ACredentialGoesOnlyToAnOriginItsProfileNames) {
    // The attack: the provider may reach two services; the plugin sends one service's
    // credential to the other (or to the same host on another allowed port or scheme).
    HttpServer other{[](const HttpExchange&) { return HttpReply{200, {}, "other"}; }};
    const std::string other_host = "127.0.0.1:" + std::to_string(other.port());
    const EgressBroker broker(
        provider({host_port(), other_host, "localhost:" + std::to_string(server.port())}));
    int status = -1;
    json answer = broker.handle(get(other.url() + "/steal", "api"), status);
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_THAT(answer["error"].get<std::string>(),
                HasSubstr("is not sent to http://" + other_host +
                          "; providers.demo.credentials.api.origins names http://" + host_port()));
    EXPECT_THAT(answer["error"].get<std::string>(), Not(HasSubstr(fake_token)));
    // Another name for the same address is another origin.
    answer = broker.handle(get("http://localhost:" + std::to_string(server.port()) + "/x", "api"),
                           status);
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_EQ(hits, 0);
    // Without a credential the other service is reachable; with it, only its origin.
    broker.handle(get(other.url() + "/open"), status);
    EXPECT_EQ(status, MITIGATE_OK);
    broker.handle(get(server.url() + "/x", "api"), status);
    EXPECT_EQ(status, MITIGATE_OK);
    EXPECT_EQ(hits, 1);
    // Another spelling of the origin's own address is the same origin (curl's form).
    broker.handle(get("http://127.1:" + std::to_string(server.port()) + "/x", "api"), status);
    EXPECT_EQ(status, MITIGATE_OK);
    EXPECT_EQ(hits, 2);
    // A zone id chooses the link, which the origin does not name.
    const Resolver link_local = [](const std::string&) -> std::vector<std::string> {
        return {"fe80::1"};
    };
    ProviderConfig linked = provider({"[fe80::1]:8080"});
    linked.egress.allow_private = true;
    linked.credentials[0].origins = {testing::origin_of("https://[fe80::1]:8080")};
    answer = EgressBroker(linked, {}, link_local)
                 .handle(get("https://[fe80::1%25eth0]:8080/x", "api"), status);
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("zone id"));
    // A profile that names no origin (built in code, not loaded) sends nothing.
    ProviderConfig bare = provider({host_port()});
    bare.credentials[0].origins.clear();
    EgressBroker(bare).handle(get(server.url() + "/x", "api"), status);
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_EQ(hits, 2);
}

TEST_F(EgressBrokerTest, FilePathsAreNotResolvedThroughSymlinksOrDotDot) {
    testing::TemporaryDirectory directory;
    const auto allowed_directory = directory / "allowed";
    std::filesystem::create_directories(allowed_directory);
    const auto path = allowed_directory / "flags.json";
    directory.write("allowed/flags.json", "{}");
    const auto outside = directory / "outside";
    std::filesystem::create_directories(outside / "deeper");
    directory.write("outside/flags.json", "secret outside the allow list");
    // allowed/link -> outside/deeper: "allowed/link/../flags.json" normalises on the
    // text to the allowed file but resolves, through the link, to outside/flags.json.
    std::filesystem::create_directory_symlink(outside / "deeper", allowed_directory / "link");
    ProviderConfig config = provider({});
    config.egress.allow_files = {path};
    const EgressBroker broker(config);
    int status = -1;
    const json dotted =
        broker.handle({{"kind", "file_read"},
                       {"path", (allowed_directory / "link" / ".." / "flags.json").string()}},
                      status);
    EXPECT_EQ(status, MITIGATE_INVALID);
    EXPECT_THAT(dotted["error"].get<std::string>(), HasSubstr("not on providers.demo"));

    // The allowed path itself becomes a symlink to a file outside: not followed.
    std::filesystem::remove(path);
    std::filesystem::create_symlink(outside / "flags.json", path);
    const json linked = broker.handle({{"kind", "file_read"}, {"path", path.string()}}, status);
    EXPECT_EQ(status, MITIGATE_PROVIDER);
    EXPECT_THAT(linked["error"].get<std::string>(), HasSubstr("symlink"));
    const json overwrite = broker.handle({{"kind", "file_write"},
                                          {"path", path.string()},
                                          {"content", "overwritten"},
                                          {"if_match", "x"}},
                                         status);
    EXPECT_EQ(status, MITIGATE_PROVIDER);
    EXPECT_EQ(testing::read_file(outside / "flags.json"), "secret outside the allow list");

    // A directory on the way that is a symlink is refused too.
    std::filesystem::remove(path);
    const auto real = directory / "real";
    std::filesystem::create_directories(real);
    directory.write("real/flags.json", "{}");
    const auto via_link = directory / "via";
    std::filesystem::create_directory_symlink(real, via_link);
    config.egress.allow_files = {via_link / "flags.json"};
    const EgressBroker linked_directory(config);
    linked_directory.handle({{"kind", "file_read"}, {"path", (via_link / "flags.json").string()}},
                            status);
    EXPECT_EQ(status, MITIGATE_PROVIDER);
}

TEST_F(EgressBrokerTest, AFileOverTheCapIsRefusedWithoutReadingItAll) {
    testing::TemporaryDirectory directory;
    const auto path = directory.write("big.json", std::string(64u << 10, 'x'));
    ProviderConfig config = provider({});
    config.egress.allow_files = {path};
    EgressLimits limits;
    limits.max_file_bytes = 1024;
    const EgressBroker broker(config, limits);
    int status = -1;
    const json answer = broker.handle({{"kind", "file_read"}, {"path", path.string()}}, status);
    EXPECT_EQ(status, MITIGATE_PROVIDER);
    EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("larger than the 1024-byte cap"));
}

}  // namespace
}  // namespace mitigate
