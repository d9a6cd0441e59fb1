// mitigate playbook check / test: every shipped example against its fixtures, and the
// errors an author meets, as an author meets them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/support/child_process.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ProcessResult;

ProcessResult mitigate(std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), testing::mitigate_binary());
    return testing::run_process(arguments);
}

fs::path playbooks() {
    return fs::path(testing::source_directory()) / "scripts/playbooks";
}

TEST(PlaybookCli, EveryShippedPlaybookChecks) {
    const ProcessResult result = mitigate({"playbook", "check", playbooks().string()});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    EXPECT_THAT(result.out, HasSubstr("error-rate-after-deploy.lua: ok"));
}

TEST(PlaybookCli, EveryShippedPlaybookProposesWhatItsFixtureExpects) {
    int tested = 0;
    for (const auto& entry : fs::directory_iterator(playbooks())) {
        if (entry.path().extension() != ".lua") {
            continue;
        }
        const std::string name = entry.path().stem().string();
        const fs::path fixtures = playbooks() / "fixtures" / name;
        ASSERT_TRUE(fs::exists(fixtures / "expected.json")) << name << " has no fixture";
        const ProcessResult result =
            mitigate({"playbook", "test", entry.path().string(), "--signal",
                      (fixtures / "signal.json").string(), "--state",
                      (fixtures / "state.json").string(), "--now", "2026-11-24T10:00:00Z"});
        ASSERT_EQ(result.exit_code, 0) << name << ": " << result.err;
        const auto output = nlohmann::json::parse(result.out);
        EXPECT_EQ(output["matched"], true) << name;
        EXPECT_EQ(output["playbook"], name);
        std::ifstream expected_file(fixtures / "expected.json");
        const auto expected = nlohmann::json::parse(expected_file);
        ASSERT_EQ(output["proposals"].size(), expected.size()) << name << ": " << output.dump(2);
        for (std::size_t i = 0; i < expected.size(); ++i) {
            for (const auto& [key, value] : expected[i].items()) {
                EXPECT_EQ(output["proposals"][i][key], value)
                    << name << " proposal " << i << " " << key;
            }
        }
        ++tested;
    }
    EXPECT_EQ(tested, 4);
}

class PlaybookAuthoring : public ::testing::Test {
  protected:
    fs::path write(const std::string& name, const std::string& text) {
        return directory_.write(name, text);
    }
    ProcessResult test(const fs::path& playbook) {
        return mitigate({"playbook", "test", playbook.string(), "--signal", signal_.string()});
    }
    testing::TemporaryDirectory directory_;
    fs::path signal_ = directory_.write(
        "signal.json",
        R"({"id": "s1", "source": "cli", "name": "HighErrorRate", "status": "firing", "fingerprint": "f",
            "labels": {"service": "checkout", "environment": "prod"}, "annotations": {},
            "starts_at": "2026-11-24T09:00:00Z", "received_at": "2026-11-24T09:00:01Z"})");
};

TEST_F(PlaybookAuthoring, SyntaxErrorNamesFileAndLine) {
    const auto file =
        write("broken.lua", "return {\n  name = 'x',\n  propose = function( end\n}\n");
    const ProcessResult result = mitigate({"playbook", "check", file.string()});
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.err, HasSubstr("broken.lua:3:"));
    EXPECT_THAT(result.err, HasSubstr("[syntax]"));
}

TEST_F(PlaybookAuthoring, BadMetadataNamesThePlaybookAndField) {
    const auto file = write("meta.lua",
                            "return { name = 'meta', priority = 'high', mathces = {}, "
                            "propose = function() return {} end }");
    const ProcessResult result = mitigate({"playbook", "check", file.string()});
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.err, HasSubstr("meta.priority: must be an integer"));
    EXPECT_THAT(result.err, HasSubstr("meta.mathces: unknown field"));
}

TEST_F(PlaybookAuthoring, BadProposalNamesThePlaybookAndField) {
    const auto file = write("bad.lua", R"(return { name = 'bad', propose = function(incident)
        return { { provider = 'flags', action = 'flag.set', target = 'x', ttl = 'soon' } } end })");
    const ProcessResult result = test(file);
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.err, HasSubstr("bad.proposals[0].ttl: must be a duration"));
    EXPECT_THAT(result.err, HasSubstr("bad.proposals[0].reason: is required"));
    EXPECT_THAT(result.err, HasSubstr("[invalid]"));
}

TEST_F(PlaybookAuthoring, TwoPlaybooksWithOneNameAreRefused) {
    write("a.lua", "return { name = 'same', propose = function() return {} end }");
    write("b.lua", "return { name = 'same', propose = function() return {} end }");
    const ProcessResult result = mitigate({"playbook", "check", directory_.path().string()});
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.out, HasSubstr("a.lua: ok (same)"));
    EXPECT_THAT(result.err, HasSubstr("b.lua: the playbook name \"same\" is already used by"));
}

// Each ends as the typed failure named, through the CLI and its confined worker, with the
// worker's crash never the answer.
TEST_F(PlaybookAuthoring, TrustBoundaryAttacksEndAsTypedErrors) {
    const std::vector<std::pair<std::string, std::string>> attacks{
        {"mitigate.state('flags', 'caf\\xff')", "[runtime]"},
        {"mitigate.state('flags', 'a\\0b')", "[runtime]"},
        {"for i = 1, 50000 do mitigate.state('flags', 'x') end", "[runtime]"},
        {"local co = coroutine.create(function() end) coroutine.close(co)", "[forbidden]"},
        {"local c = coroutine.wrap(function() end) for i = 1, 200000 do\n"
         "  local p = coroutine.create(function() end) end",
         ""},
        {"error(string.rep('e', 7000000))", "[cut: the message was 70000"},
        {"xpcall(function() while true do end end, function(e) while true do end end)",
         "[instructions]"},
        {"local s = string.rep('x', 65536) local t = {} for i = 1, 5000 do t[i] = s end "
         "return t",
         "[output]"},
        {"return { { provider = 'flags\\xff' } }", "[bad_return]"},
        {"return string.format('%p', {})", "[forbidden]"},
    };
    int index = 0;
    for (const auto& [body, expected] : attacks) {
        const auto file =
            write("attack" + std::to_string(index++) + ".lua",
                  "return { name = 'attack', propose = function(incident)\n" + body + "\nend }");
        const ProcessResult result = test(file);
        EXPECT_THAT(result.err, ::testing::Not(HasSubstr("[crashed]"))) << body;
        EXPECT_LT(result.err.size(), 10000u) << body;
        if (!expected.empty()) {
            EXPECT_EQ(result.exit_code, 1) << body;
            EXPECT_THAT(result.err, HasSubstr(expected)) << body << "\n" << result.err;
        }
    }
}

TEST_F(PlaybookAuthoring, HostilePlaybookGetsATypedErrorAndExit1) {
    const auto file =
        write("loop.lua", "return { name = 'loop', propose = function() while true do end end }");
    const ProcessResult result = test(file);
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.err, HasSubstr("[instructions]"));
    const auto escape =
        write("escape.lua",
              "return { name = 'escape', propose = function() return os.getenv('HOME') end }");
    EXPECT_THAT(test(escape).err, HasSubstr("[forbidden]"));
}

TEST_F(PlaybookAuthoring, NonMatchingIncidentProposesNothing) {
    const auto file =
        write("other.lua", R"(return { name = 'other', matches = { alerts = {'DiskFull'} },
        propose = function() error('must not run') end })");
    const ProcessResult result = test(file);
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const auto output = nlohmann::json::parse(result.out);
    EXPECT_EQ(output["matched"], false);
    EXPECT_TRUE(output["proposals"].empty());
}

TEST_F(PlaybookAuthoring, BadSignalFileIsAClearError) {
    const auto file = write("ok.lua", "return { name = 'ok', propose = function() return {} end }");
    const auto signal =
        write("am.json", R"({"version": "4", "alerts": [{"status": "firing", "labels": {}}]})");
    const ProcessResult result =
        mitigate({"playbook", "test", file.string(), "--signal", signal.string()});
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.err, HasSubstr("webhook.alerts[0].labels.alertname: is required"));
    EXPECT_THAT(result.err, HasSubstr("webhook.alerts[0].startsAt: is required"));
}

// A *.lua entry that cannot be read as a playbook was skipped without a word: a FIFO
// would have blocked the reader, and a playbook someone relies on would never run.
TEST_F(PlaybookAuthoring, UnreadableLuaEntriesAreErrorsNamingThem) {
    const fs::path playbooks = directory_ / "playbooks";
    fs::create_directories(playbooks);
    directory_.write("playbooks/good.lua",
                     "return { name = 'good', propose = function() return {} end }");
    ASSERT_EQ(::mkfifo((playbooks / "fifo.lua").c_str(), 0600), 0);
    directory_.write("playbooks/latin1.lua", "-- caf\xe9\nreturn {}");
    const ProcessResult check = mitigate({"playbook", "check", playbooks.string()});
    EXPECT_EQ(check.exit_code, 1);
    EXPECT_THAT(check.out + check.err, HasSubstr("fifo.lua: is a FIFO, not a regular file"));
    EXPECT_THAT(check.out + check.err, HasSubstr("latin1.lua"));
    EXPECT_THAT(check.out + check.err, HasSubstr("UTF-8"));

    fs::create_directories(directory_ / "policies");
    const auto config =
        directory_.write("mitigate.yaml",
                         "server: {listen: \"127.0.0.1:0\"}\nstore: {path: m.db}\n"
                         "directories: {policies: policies, playbooks: playbooks, drills: none}\n");
    const ProcessResult serve = mitigate({"--config", config.string(), "serve"});
    EXPECT_EQ(serve.exit_code, 1);
    EXPECT_THAT(serve.err, HasSubstr(".lua"));
    EXPECT_THAT(serve.err, ::testing::AnyOf(HasSubstr("is a FIFO"), HasSubstr("UTF-8")));
}

}  // namespace
}  // namespace mitigate
