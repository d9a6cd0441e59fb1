// The supabase provider as the runtime runs it, both ways: through PostgREST (the
// Supabase emulator in front of a real PostgreSQL) and directly through the runtime's
// sql egress to the same database. The PostgreSQL comes from tests/postgres/
// postgres-fixture (a CTest fixture); its state file is in MITIGATE_POSTGRES_STATE.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <cstdlib>

#include "plugins/emulators/supabase_emulator.h"
#include "runtime/providers/provider_registry.h"
#include "tests/support/child_process.h"
#include "tests/support/postgres_fixture.h"
#include "tests/support/runtime_setup.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

const char* const service_key = "supabase-service-key-for-tests-not-a-secret";

class Database {
  public:
    explicit Database(const std::string& connection)
        : connection_(PQconnectdb(connection.c_str())) {}
    ~Database() { PQfinish(connection_); }
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    bool ok() const { return PQstatus(connection_) == CONNECTION_OK; }
    std::string error() const { return PQerrorMessage(connection_); }
    // The first column of the first row, or "" (statements without rows).
    std::string run(const std::string& sql) {
        PGresult* result = PQexec(connection_, sql.c_str());
        const auto status = PQresultStatus(result);
        std::string value;
        if (status == PGRES_TUPLES_OK && PQntuples(result) > 0) {
            value = PQgetvalue(result, 0, 0);
        }
        EXPECT_TRUE(status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
            << sql << ": " << PQresultErrorMessage(result);
        PQclear(result);
        return value;
    }

  private:
    PGconn* connection_;
};

enum class Via { postgrest, postgres };

class SupabaseProviderTest : public ::testing::TestWithParam<Via> {
  protected:
    void SetUp() override {
        postgres = testing::postgres_fixture();
        ASSERT_FALSE(postgres.socket_directory.empty())
            << "no PostgreSQL: run through ctest (the postgres_server fixture)";
        connection = postgres.connection();
        database =
            std::make_unique<Database>(connection + " options='-c client_min_messages=warning'");
        ASSERT_TRUE(database->ok()) << database->error();
        // A table of its own: tests run in parallel against one database.
        table = "config_flags_" + std::to_string(getpid());
        database->run("DROP TABLE IF EXISTS " + table);
        database->run("CREATE TABLE " + table +
                      " (key text PRIMARY KEY, value jsonb NOT NULL, updated_at timestamptz "
                      "NOT NULL DEFAULT now())");
        database->run("INSERT INTO " + table +
                      " (key, value) VALUES ('maintenance_mode', 'false'), "
                      "('kill_switch_database', 'false'), ('rate_limit_multiplier', '1.0')");
        SupabaseEmulatorOptions options;
        options.connection = connection;
        options.service_key = service_key;
        emulator = std::make_unique<SupabaseEmulator>(options);
        setenv("MITIGATE_TEST_SUPABASE_KEY", service_key, 1);
    }

    void TearDown() override {
        emulator.reset();
        if (database && database->ok()) {
            database->run("DROP TABLE IF EXISTS " + table);
        }
    }

    Config config(const std::string& key_variable = "MITIGATE_TEST_SUPABASE_KEY",
                  bool allow_loopback = true) const {
        Config result;
        result.source = "test";
        ProviderConfig supabase;
        supabase.name = "supabase";
        supabase.plugin = "supabase";
        supabase.egress.allow_loopback = allow_loopback;
        CredentialProfile profile;
        profile.name = "main";
        if (GetParam() == Via::postgrest) {
            supabase.egress.allow_hosts = {emulator->url().substr(std::string("http://").size())};
            profile.kind = CredentialKind::supabase;
            profile.secrets.emplace("key", *SecretReference::parse("env:" + key_variable));
            supabase.settings = {{"via", "postgrest"}, {"url", emulator->url()}};
        } else {
            profile.kind = CredentialKind::postgres;
            profile.settings = {{"host", postgres.socket_directory},
                                {"dbname", postgres.database},
                                {"user", postgres.user}};
            supabase.settings = {{"via", "postgres"}};
        }
        profile.origins = {testing::origin_of(emulator->url())};
        supabase.credentials.push_back(profile);
        supabase.settings["credential"] = "main";
        supabase.settings["table"] = table;
        supabase.settings["retry"] = {{"base_delay_ms", 5}, {"max_delay_ms", 20}};
        result.providers.push_back(supabase);
        return result;
    }

    static RegistryOptions registry_options() {
        RegistryOptions options;
        options.executable = testing::mitigate_binary();
        return options;
    }

    json call(ProviderRegistry& registry, const std::string& target, const std::string& operation,
              const json& extra, PluginCallStatus expected = PluginCallStatus::ok) {
        json request{{"operation", operation}, {"action", "flag.set"}, {"target", target}};
        if (extra.is_object()) {
            request.update(extra);
        }
        const PluginCallResult result = registry.call("supabase", request);
        EXPECT_EQ(result.status, expected) << operation << " " << target << ": " << result.error;
        return result.ok() ? result.response : json{{"error", result.error}};
    }

    std::string value_of(const std::string& key) {
        return database->run("SELECT value::text FROM " + table + " WHERE key = '" + key + "'");
    }

    testing::PostgresFixture postgres;
    std::string connection;
    std::unique_ptr<Database> database;
    std::string table;
    std::unique_ptr<SupabaseEmulator> emulator;
};

TEST_P(SupabaseProviderTest, FlagSetFullCycleOnTheRealTable) {
    ProviderRegistry registry(config(), registry_options());
    EXPECT_EQ(call(registry, "maintenance_mode", "state", {})["state"], (json{{"value", false}}));
    const json plan =
        call(registry, "maintenance_mode", "plan", {{"parameters", {{"value", true}}}});
    EXPECT_EQ(plan["forward"], (json{{"value", true}}));
    EXPECT_EQ(plan["inverse"], (json{{"value", false}}));
    EXPECT_EQ(value_of("maintenance_mode"), "false");
    EXPECT_EQ(call(registry, "maintenance_mode", "check", {{"plan", plan}})["applied"], false);
    EXPECT_EQ(call(registry, "maintenance_mode", "apply", {{"plan", plan}})["changed"], true);
    EXPECT_EQ(value_of("maintenance_mode"), "true");
    EXPECT_EQ(call(registry, "maintenance_mode", "check", {{"plan", plan}})["applied"], true);
    EXPECT_EQ(call(registry, "maintenance_mode", "apply", {{"plan", plan}})["changed"], false);
    EXPECT_EQ(call(registry, "maintenance_mode", "revert", {{"plan", plan}})["changed"], true);
    EXPECT_EQ(value_of("maintenance_mode"), "false");
    EXPECT_EQ(value_of("kill_switch_database"), "false");  // one row changed, no other

    const json halve =
        call(registry, "rate_limit_multiplier", "plan", {{"parameters", {{"value", 0.5}}}});
    EXPECT_DOUBLE_EQ(halve["blast_radius"]["resulting_fraction"].get<double>(), 0.5);
    call(registry, "rate_limit_multiplier", "apply", {{"plan", halve}});
    EXPECT_EQ(value_of("rate_limit_multiplier"), "0.5");

    EXPECT_THAT(call(registry, "no_such_flag", "read", {}, PluginCallStatus::invalid)["error"]
                    .get<std::string>(),
                HasSubstr("no flag \"no_such_flag\""));
}

TEST_P(SupabaseProviderTest, CompareAndSetRefusesARowSomeoneChanged) {
    ProviderRegistry registry(config(), registry_options());
    const json plan =
        call(registry, "kill_switch_database", "plan", {{"parameters", {{"value", true}}}});
    call(registry, "kill_switch_database", "apply", {{"plan", plan}});
    database->run("UPDATE " + table +
                  " SET value = '\"manual\"' WHERE key = 'kill_switch_database'");
    const json refused = call(registry, "kill_switch_database", "revert", {{"plan", plan}},
                              PluginCallStatus::conflict);
    EXPECT_THAT(refused["error"].get<std::string>(), HasSubstr("\"manual\""));
    EXPECT_EQ(value_of("kill_switch_database"), "\"manual\"");

    // The row changes between the plugin's read and its conditional update: the update
    // matches nothing, and the plugin reports the conflict instead of writing.
    const json stale =
        call(registry, "maintenance_mode", "plan", {{"parameters", {{"value", true}}}});
    json stale_plan = stale;
    stale_plan["inverse"] = {{"value", "staging"}};
    database->run("UPDATE " + table + " SET value = '\"staging\"' WHERE key = 'maintenance_mode'");
    database->run("UPDATE " + table + " SET value = 'false' WHERE key = 'maintenance_mode'");
    EXPECT_THAT(call(registry, "maintenance_mode", "apply", {{"plan", stale_plan}},
                     PluginCallStatus::conflict)["error"]
                    .get<std::string>(),
                HasSubstr("no longer the one planned from"));
    EXPECT_EQ(value_of("maintenance_mode"), "false");
}

INSTANTIATE_TEST_SUITE_P(BothWays, SupabaseProviderTest,
                         ::testing::Values(Via::postgrest, Via::postgres),
                         [](const ::testing::TestParamInfo<Via>& parameter) {
                             return parameter.param == Via::postgrest ? "postgrest" : "postgres";
                         });

using SupabasePostgrestTest = SupabaseProviderTest;

TEST_P(SupabasePostgrestTest, FaultsAreRetriedAndALostAnswerDoesNotWriteTwice) {
    ProviderRegistry registry(config(), registry_options());
    const json plan =
        call(registry, "maintenance_mode", "plan", {{"parameters", {{"value", true}}}});
    emulator->faults().add({"select", Fault::Kind::error, 503, {}, 1, 2});
    emulator->faults().add({"update", Fault::Kind::drop_after_apply, 500, {}, 1, 1});
    EXPECT_EQ(call(registry, "maintenance_mode", "apply", {{"plan", plan}})["changed"], true);
    EXPECT_EQ(value_of("maintenance_mode"), "true");
    EXPECT_EQ(emulator->updates(), 1);
    EXPECT_EQ(emulator->faults().injected(), 3);

    emulator->faults().add({"update", Fault::Kind::error, 500, {}, 1, 20});
    const json failed = call(registry, "maintenance_mode", "revert", {{"plan", plan}},
                             PluginCallStatus::unavailable);
    EXPECT_THAT(failed["error"].get<std::string>(), HasSubstr("PATCH answered 500"));
    EXPECT_EQ(value_of("maintenance_mode"), "true");
}

TEST_P(SupabasePostgrestTest, AWrongKeyIsRefusedAndNeverEchoed) {
    setenv("MITIGATE_TEST_SUPABASE_WRONG", "wrong-supabase-key-EXAMPLE", 1);
    ProviderRegistry registry(config("MITIGATE_TEST_SUPABASE_WRONG"), registry_options());
    const json refused = call(registry, "maintenance_mode", "read", {}, PluginCallStatus::provider);
    EXPECT_THAT(refused["error"].get<std::string>(), HasSubstr("Invalid API key"));
    EXPECT_THAT(refused["error"].get<std::string>(), Not(HasSubstr("wrong-supabase-key")));
}

INSTANTIATE_TEST_SUITE_P(Postgrest, SupabasePostgrestTest, ::testing::Values(Via::postgrest));

using SupabasePostgresTest = SupabaseProviderTest;

TEST_P(SupabasePostgresTest, TheDatabaseSocketIsLocalAndNeedsAllowLoopback) {
    ProviderRegistry registry(config("MITIGATE_TEST_SUPABASE_KEY", false), registry_options());
    EXPECT_THAT(call(registry, "maintenance_mode", "read", {}, PluginCallStatus::invalid)["error"]
                    .get<std::string>(),
                HasSubstr("egress.allow_loopback allows it explicitly"));
}

INSTANTIATE_TEST_SUITE_P(Postgres, SupabasePostgresTest, ::testing::Values(Via::postgres));

}  // namespace
}  // namespace mitigate
