// mitigate playbook check / test: every shipped example against its fixtures, and the
// errors an author meets, as an author meets them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace mitigate
