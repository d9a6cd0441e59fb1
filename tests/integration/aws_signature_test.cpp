// SigV4 cross-checked with an implementation not written here: the npm aws4 package
// (installed by tools/setup-debian) signs requests that the AWS emulator must accept, and
// the emulator must refuse the same requests altered, signed with another secret or for
// another service. With aws_provider_test.cpp (libcurl signs, the emulator verifies) and
// sigv4_verifier_test.cpp (AWS's published values), three implementations agree.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "plugins/emulators/aws_emulator.h"
#include "tests/support/child_process.h"

namespace mitigate {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::filesystem::path aws4_directory() {
    if (const char* configured = std::getenv("MITIGATE_AWS4_DIR")) {
        return configured;
    }
    const char* cache = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    return std::filesystem::path(
               cache != nullptr ? cache : std::string(home != nullptr ? home : "") + "/.cache") /
           "mitigate" / "aws4";
}

TEST(AwsSignature, RequestsSignedByTheNpmAws4PackageAreAcceptedAndAlterationsRefused) {
    const std::filesystem::path modules = aws4_directory() / "node_modules";
    ASSERT_TRUE(std::filesystem::exists(modules / "aws4" / "aws4.js"))
        << "npm aws4 is not installed in " << modules << "; run tools/setup-debian";
    AwsEmulatorOptions options;
    options.access_key_id = "AKIDEXAMPLE";
    options.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    AwsEmulator emulator(options);
    emulator.add_ecs_service("prod", "search", 4);
    const std::string target_group = emulator.add_target_group("blue");
    const std::string listener = emulator.add_listener("storefront", {{target_group, 1}});

    const testing::ProcessResult result = testing::run_process(
        {"/usr/bin/env", "node", testing::source_directory() + "/tests/aws4/sign-and-send.js",
         emulator.url(), listener},
        {{"NODE_PATH", modules.string()},
         {"AWS_ACCESS_KEY_ID", options.access_key_id},
         {"AWS_SECRET_ACCESS_KEY", options.secret_access_key}});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    std::map<std::string, json> cases;
    std::istringstream lines(result.out);
    for (std::string line; std::getline(lines, line);) {
        const json parsed = json::parse(line);
        cases[parsed["case"]] = parsed;
    }
    ASSERT_EQ(cases.size(), 6u) << result.out;

    EXPECT_EQ(cases["ecs_json"]["status"], 200) << cases["ecs_json"]["body"];
    EXPECT_EQ(
        json::parse(cases["ecs_json"]["body"].get<std::string>())["services"][0]["desiredCount"],
        4);
    EXPECT_EQ(cases["ecs_json_unsorted_query"]["status"], 200) << cases["ecs_json_unsorted_query"];
    EXPECT_EQ(cases["elbv2_query"]["status"], 200) << cases["elbv2_query"]["body"];
    EXPECT_THAT(cases["elbv2_query"]["body"].get<std::string>(), HasSubstr(target_group));

    for (const char* refused : {"ecs_body_altered", "ecs_wrong_secret"}) {
        EXPECT_EQ(cases[refused]["status"], 403) << refused;
        EXPECT_THAT(cases[refused]["body"].get<std::string>(),
                    HasSubstr("The request signature we calculated does not match"))
            << refused;
    }
    EXPECT_EQ(cases["ecs_signed_for_wafv2"]["status"], 403);
    EXPECT_THAT(cases["ecs_signed_for_wafv2"]["body"].get<std::string>(),
                HasSubstr("correct service: 'ecs'"));
}

}  // namespace
}  // namespace mitigate
