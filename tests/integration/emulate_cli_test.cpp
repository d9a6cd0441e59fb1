// The whole loop offline, as a user rehearses it: `mitigate emulate aws vercel supabase`
// (the Supabase one on the test PostgreSQL), its printed configuration in a mitigate.yaml,
// `mitigate serve` with the shipped playbooks, and the three shipped drills that need these
// providers, each run with `mitigate drill run` until it passes and its change is
// reverted. The playbooks read provider state through mitigate.state().
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <cstdlib>

#include "tests/support/child_process.h"
#include "tests/support/postgres_fixture.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using ::testing::HasSubstr;

TEST(EmulateCli, UsageMistakesAreNamedWithExitCodeTwo) {
    const auto unknown = testing::run_process({testing::mitigate_binary(), "emulate", "gcp"});
    EXPECT_EQ(unknown.exit_code, 2);
    EXPECT_THAT(unknown.err,
                HasSubstr("no emulator for \"gcp\" (there are: aws, vercel, supabase)"));
    const auto no_database =
        testing::run_process({testing::mitigate_binary(), "emulate", "supabase"});
    EXPECT_EQ(no_database.exit_code, 2);
    EXPECT_THAT(no_database.err, HasSubstr("supabase needs --postgres"));
    const auto bad_port = testing::run_process(
        {testing::mitigate_binary(), "emulate", "aws", "--port", "vercel=9000"});
    EXPECT_EQ(bad_port.exit_code, 2);
    EXPECT_THAT(bad_port.err, HasSubstr("expected PROVIDER=PORT for a provider being emulated"));
}

TEST(EmulateCli, TheShippedCloudDrillsPassAgainstTheEmulators) {
    const testing::PostgresFixture postgres = testing::postgres_fixture();
    ASSERT_FALSE(postgres.socket_directory.empty())
        << "no PostgreSQL: run through ctest (the postgres_server fixture)";
    testing::TemporaryDirectory directory;
    const std::string source = testing::source_directory();
    const std::string emulated = (directory / "emulated.yaml").string();
    testing::BackgroundProcess emulators(
        {testing::mitigate_binary(), "emulate", "aws", "vercel", "supabase", "--postgres",
         postgres.connection(), "--write-config", emulated},
        {}, (directory / "emulate.log").string());
    ASSERT_FALSE(emulators.wait_for_line("Stop with").empty())
        << testing::read_file(directory / "emulate.log");

    // The environment the printed export lines ask for.
    std::map<std::string, std::string> environment;
    std::istringstream written(testing::read_file(emulated));
    for (std::string line; std::getline(written, line);) {
        if (line.rfind("#   export ", 0) != 0) {
            continue;
        }
        std::istringstream assignments(line.substr(11));
        for (std::string assignment; assignments >> assignment;) {
            const auto equals = assignment.find('=');
            environment[assignment.substr(0, equals)] = assignment.substr(equals + 1);
        }
    }
    ASSERT_EQ(environment.size(), 4u) << testing::read_file(emulated);

    std::filesystem::create_directories(directory / "policies");
    directory.write("policies/stage.yaml", R"yaml(
rules:
  - name: stage-runs-alone
    match: {environment: stage}
    effect: allow
constraints:
  ttl: {max: 4h}
)yaml");
    const std::string config =
        directory
            .write("mitigate.yaml",
                   "server: {listen: \"127.0.0.1:0\"}\n"
                   "store: {path: " +
                       (directory / "m.db").string() +
                       "}\n"
                       "directories: {policies: " +
                       (directory / "policies").string() + ", playbooks: " + source +
                       "/scripts/playbooks, drills: no-scheduled-drills}\n" +
                       testing::read_file(emulated))
            .string();
    const auto created =
        testing::run_process({testing::mitigate_binary(), "--config", config, "token", "create",
                              "olga", "--role", "operator", "--group", "sre"});
    ASSERT_EQ(created.exit_code, 0) << created.err;
    const std::string token = created.out.substr(0, created.out.find('\n'));
    testing::BackgroundProcess daemon({testing::mitigate_binary(), "--config", config, "serve"},
                                      environment, (directory / "serve.log").string());
    const std::string url = daemon.wait_for_line("mitigate: listening on ");
    ASSERT_FALSE(url.empty()) << testing::read_file(directory / "serve.log");

    for (const std::string drill :
         {"saturation-scale-out", "error-rate-after-deploy", "database-errors"}) {
        const auto run =
            testing::run_process({testing::mitigate_binary(), "--config", config, "drill", "run",
                                  source + "/scripts/drills/" + drill + ".yaml"},
                                 {{"MITIGATE_SERVER", url}, {"MITIGATE_TOKEN", token}});
        EXPECT_EQ(run.exit_code, 0) << drill << ":\n"
                                    << run.out << run.err << "\n"
                                    << testing::read_file(directory / "serve.log");
        EXPECT_THAT(run.out, HasSubstr("## Drill " + drill + ": passed")) << run.out;
    }
    daemon.send(SIGTERM);
    EXPECT_EQ(daemon.wait(), 0);
    emulators.send(SIGTERM);
    EXPECT_EQ(emulators.wait(), 0);
}

}  // namespace
}  // namespace mitigate
