// `mitigate plugins list` and `mitigate plugins call` as a plugin author uses them, and
// the sandbox override for kernels below the Landlock ABI workers rely on.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/child_process.h"
#include "tests/support/temporary_directory.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::run_process;

const char* const flag_file = R"({"flags": {"checkout": {"state": "ENABLED",
  "variants": {"on": true, "off": false}, "defaultVariant": "on", "owner": "payments"}}})";

class PluginsCliTest : public ::testing::Test {
  protected:
    PluginsCliTest() {
        flags = directory.write("flags.json", flag_file);
        write_config("");
    }
    // `sections` go before providers:; `flags_pin` is the flags provider's sha256, if any.
    void write_config(const std::string& sections, const std::string& flags_pin = "") {
        config = directory.write(
            "mitigate.yaml", "store:\n  path: " + (directory / "m.db").string() + "\n" + sections +
                                 "providers:\n"
                                 "  flags:\n" +
                                 (flags_pin.empty() ? "" : "    sha256: " + flags_pin + "\n") +
                                 "    egress:\n"
                                 "      allow_files: [flags.json]\n"
                                 "    settings:\n"
                                 "      backend: flagd\n"
                                 "      path: " +
                                 flags.string() + "\n");
    }
    testing::ProcessResult mitigate(std::vector<std::string> arguments) {
        arguments.insert(arguments.begin(),
                         {testing::mitigate_binary(), "--config", config.string()});
        return run_process(arguments);
    }

    testing::TemporaryDirectory directory;
    std::filesystem::path flags;
    std::filesystem::path config;
};

TEST_F(PluginsCliTest, ListShowsTheShippedPluginItsActionsAndItsSandbox) {
    const auto text = mitigate({"plugins", "list"});
    ASSERT_EQ(text.exit_code, 0) << text.err;
    EXPECT_THAT(text.out, HasSubstr("flags 1.0.0"));
    EXPECT_THAT(text.out, HasSubstr("actions:     flag.kill_switch, flag.set"));
    EXPECT_THAT(text.out, HasSubstr("providers:   flags"));
    EXPECT_THAT(text.out, HasSubstr("seccomp, no_new_privs"));

    const auto listed = mitigate({"plugins", "list", "--output", "json"});
    ASSERT_EQ(listed.exit_code, 0) << listed.err;
    const json document = json::parse(listed.out);
    // Every shipped provider, each confined the same way.
    std::map<std::string, json> plugins;
    for (const json& listed_plugin : document["plugins"]) {
        plugins[listed_plugin["name"]] = listed_plugin;
    }
    ASSERT_EQ(plugins.size(), 4u) << listed.out;
    for (const char* shipped : {"aws", "flags", "supabase", "vercel"}) {
        ASSERT_TRUE(plugins.contains(shipped)) << shipped;
        EXPECT_EQ(plugins[shipped]["protections"]["seccomp"], true) << shipped;
    }
    EXPECT_THAT(text.out, HasSubstr("actions:     alb.shift, ecs.scale, waf.rate_limit"));
    EXPECT_THAT(text.out, HasSubstr("actions:     promote, rollback"));
    const json& plugin = plugins["flags"];
    EXPECT_EQ(plugin["protections"]["seccomp"], true);
    EXPECT_EQ(plugin["protections"]["landlock"], true);
    EXPECT_GE(plugin["protections"]["landlock_abi"].get<int>(), 4);
}

std::filesystem::path shipped_plugin(const std::string& name) {
    return (std::filesystem::path(testing::mitigate_binary()).parent_path() / ".." / "lib" /
            "mitigate" / "plugins" / (name + ".so"))
        .lexically_normal();
}

TEST_F(PluginsCliTest, AFileShadowingAShippedPluginIsUsedOnlyWhenItsDigestIsPinned) {
    const auto plugins = directory / "plugins";
    std::filesystem::create_directory(plugins);
    std::filesystem::permissions(plugins, std::filesystem::perms::owner_all);
    std::filesystem::copy_file(shipped_plugin("flags"), plugins / "flags.so");
    const std::string directories = "directories:\n  plugins: " + plugins.string() + "\n";
    write_config(directories);
    const auto refused =
        mitigate({"plugins", "call", "flags", "flag.set", "read", "--target", "checkout"});
    EXPECT_NE(refused.exit_code, 0);
    EXPECT_THAT(refused.err, HasSubstr("has the name of a plugin shipped with mitigate"));
    EXPECT_THAT(refused.err, HasSubstr("providers.flags.sha256"));

    const auto listed = mitigate({"plugins", "list", "--output", "json"});
    const json document = json::parse(listed.out);
    std::string digest;
    for (const json& plugin : document["plugins"]) {
        if (plugin["name"] == "flags") {
            EXPECT_EQ(plugin["path"], (plugins / "flags.so").string());
            EXPECT_EQ(plugin["shadows_shipped"], true);
            digest = plugin["sha256"];
        }
    }
    ASSERT_EQ(digest.size(), 64u) << listed.out;

    write_config(directories, std::string(64, '0'));
    const auto wrong_pin =
        mitigate({"plugins", "call", "flags", "flag.set", "read", "--target", "checkout"});
    EXPECT_NE(wrong_pin.exit_code, 0);
    EXPECT_THAT(wrong_pin.err, HasSubstr("not the pinned " + std::string(64, '0')));

    write_config(directories, digest);
    const auto pinned =
        mitigate({"plugins", "call", "flags", "flag.set", "read", "--target", "checkout"});
    EXPECT_EQ(pinned.exit_code, 0) << pinned.err;

    write_config(directories, "ABC");
    const auto malformed = mitigate({"plugins", "list"});
    EXPECT_NE(malformed.exit_code, 0);
    EXPECT_THAT(malformed.err, HasSubstr("providers.flags.sha256"));
}

TEST_F(PluginsCliTest, WithoutAConfigurationNoPluginIsLoadedFromTheWorkingDirectory) {
    const auto plugins = directory / "plugins";
    std::filesystem::create_directory(plugins);
    std::filesystem::copy_file(shipped_plugin("flags"), plugins / "flags.so");
    const auto listed =
        run_process({testing::mitigate_binary(), "plugins", "list", "--output", "json"}, {},
                    directory.path().string());
    ASSERT_EQ(listed.exit_code, 0) << listed.err;
    const json document = json::parse(listed.out);
    EXPECT_EQ(document["directories"],
              json::array({shipped_plugin("flags").parent_path().string()}));
    for (const json& plugin : document["plugins"]) {
        EXPECT_EQ(plugin["shipped"], true) << plugin;
    }
}

TEST_F(PluginsCliTest, ASymlinkedPluginIsCheckedWhereItResolvesTo) {
    // A safe-looking directory holding a link to a file in a directory anyone can write:
    // the file could be swapped, so it is refused, naming the real place.
    const auto open_directory = directory / "open";
    std::filesystem::create_directory(open_directory);
    std::filesystem::permissions(open_directory, std::filesystem::perms::all);
    std::filesystem::copy_file(shipped_plugin("flags"), open_directory / "mine.so");
    const auto plugins = directory / "plugins";
    std::filesystem::create_directory(plugins);
    std::filesystem::permissions(plugins, std::filesystem::perms::owner_all);
    std::filesystem::create_symlink(open_directory / "mine.so", plugins / "mine.so");
    write_config("directories:\n  plugins: " + plugins.string() + "\n");
    const auto listed = mitigate({"plugins", "list"});
    EXPECT_NE(listed.exit_code, 0);
    EXPECT_THAT(listed.out, HasSubstr("mine  REFUSED: " + open_directory.string() +
                                      " is writable by group or others (mode 777)"));
}

TEST_F(PluginsCliTest, AHostilePluginCannotForgeTheCliOrCrashIt) {
    const auto plugins = directory / "plugins";
    std::filesystem::create_directory(plugins);
    std::filesystem::permissions(plugins, std::filesystem::perms::owner_all);
    std::filesystem::copy_file(std::filesystem::path(MITIGATE_TEST_PLUGIN_DIRECTORY) / "hostile.so",
                               plugins / "hostile.so");
    directory.write("mitigate.yaml", "store:\n  path: " + (directory / "m.db").string() +
                                         "\ndirectories:\n  plugins: " + plugins.string() +
                                         "\nproviders:\n  hostile: {}\n");
    // It writes {"forged":true} to stdout and stderr and reads stdin: all /dev/null.
    const auto stdio = mitigate({"plugins", "call", "hostile", "stdio", "read", "--target", "x"});
    EXPECT_EQ(stdio.exit_code, 0) << stdio.err;
    EXPECT_THAT(stdio.out + stdio.err, ::testing::Not(HasSubstr("\"forged\":true")));
    const json answer = json::parse(stdio.out, nullptr, false);
    ASSERT_TRUE(answer.is_object()) << stdio.out;
    for (const char* attack : {"deep_answer", "deep_frame", "mistyped_log", "mistyped_result",
                               "extra_field", "mistyped_egress", "long_field_name"}) {
        const auto result =
            mitigate({"plugins", "call", "hostile", attack, "read", "--target", "x"});
        EXPECT_EQ(result.exit_code, 1) << attack;
        EXPECT_THAT(result.err, HasSubstr("it was killed")) << attack << ": " << result.err;
    }
}

TEST_F(PluginsCliTest, CallRunsPlanApplyAndRevertOnAFlagdFile) {
    const auto plan = mitigate({"plugins", "call", "flags", "flag.set", "plan", "--target",
                                "checkout", "--params", R"({"variant": "off"})"});
    ASSERT_EQ(plan.exit_code, 0) << plan.err;
    EXPECT_EQ(json::parse(plan.out)["forward"], (json{{"defaultVariant", "off"}}));
    const auto plan_file = directory.write("plan.json", plan.out);

    const auto apply = mitigate({"plugins", "call", "flags", "flag.set", "apply", "--target",
                                 "checkout", "--plan", "@" + plan_file.string()});
    ASSERT_EQ(apply.exit_code, 0) << apply.err;
    EXPECT_EQ(json::parse(testing::read_file(flags))["flags"]["checkout"]["defaultVariant"], "off");
    EXPECT_EQ(json::parse(testing::read_file(flags))["flags"]["checkout"]["owner"], "payments");

    const auto revert = mitigate({"plugins", "call", "flags", "flag.set", "revert", "--target",
                                  "checkout", "--plan", "@" + plan_file.string()});
    ASSERT_EQ(revert.exit_code, 0) << revert.err;
    EXPECT_EQ(json::parse(testing::read_file(flags))["flags"]["checkout"]["defaultVariant"], "on");
}

TEST_F(PluginsCliTest, MistakesAreNamedWithTheRightExitCode) {
    const auto unknown = mitigate({"plugins", "call", "nope", "flag.set", "read", "--target", "x"});
    EXPECT_EQ(unknown.exit_code, 1);
    EXPECT_THAT(unknown.err, HasSubstr("no provider \"nope\" is configured"));

    const auto bad_json = mitigate({"plugins", "call", "flags", "flag.set", "plan", "--target",
                                    "checkout", "--params", "{variant"});
    EXPECT_EQ(bad_json.exit_code, 2);
    EXPECT_THAT(bad_json.err, HasSubstr("--params: not valid JSON"));

    const auto bad_operation =
        mitigate({"plugins", "call", "flags", "flag.set", "destroy", "--target", "x"});
    EXPECT_EQ(bad_operation.exit_code, 2);

    const auto invalid = mitigate({"plugins", "call", "flags", "flag.set", "plan", "--target",
                                   "checkout", "--params", R"({"variant": "purple"})"});
    EXPECT_EQ(invalid.exit_code, 1);
    EXPECT_THAT(invalid.err, HasSubstr("failed (invalid)"));
    EXPECT_THAT(invalid.err, HasSubstr("no variant \"purple\""));
}

TEST_F(PluginsCliTest,
       BelowTheLandlockMinimumWorkersRefuseUnlessOverriddenAndTheOverrideIsAudited) {
    // This kernel offers ABI 7; asking for more stands in for an older kernel.
    write_config("sandbox:\n  minimum_landlock_abi: 60\n");
    const auto refused =
        mitigate({"plugins", "call", "flags", "flag.set", "read", "--target", "checkout"});
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_THAT(refused.err, HasSubstr("workers need at least 60"));
    EXPECT_THAT(refused.err, HasSubstr("sandbox.allow_weaker_landlock"));
    EXPECT_THAT(testing::read_file(flags), HasSubstr("\"on\""));

    write_config("sandbox:\n  minimum_landlock_abi: 60\n  allow_weaker_landlock: true\n");
    const auto allowed =
        mitigate({"plugins", "call", "flags", "flag.set", "read", "--target", "checkout"});
    ASSERT_EQ(allowed.exit_code, 0) << allowed.err;
    EXPECT_THAT(allowed.err, HasSubstr("below the minimum 60"));
    const auto audit = mitigate({"audit", "tail", "--output", "json"});
    ASSERT_EQ(audit.exit_code, 0) << audit.err;
    EXPECT_THAT(audit.out, HasSubstr("sandbox.weaker_landlock"));
    EXPECT_THAT(audit.out, HasSubstr("provider/flags"));
}

}  // namespace
}  // namespace mitigate
