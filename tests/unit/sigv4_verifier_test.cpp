// The emulator's SigV4 verifier against AWS's published Signature Version 4 test suite
// (get-vanilla and get-vanilla-query-order-key-case: credentials AKIDEXAMPLE /
// wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, us-east-1, service "service",
// 20150830T123600Z). libcurl signs what mitigate sends; these values come from neither.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "plugins/emulators/sigv4_verifier.h"

namespace mitigate {
namespace {

using ::testing::HasSubstr;

const char* const secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const char* const vanilla_signature =
    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
const char* const query_order_signature =
    "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500";

SigV4Request vanilla(const std::string& target = "/",
                     const std::string& signature = vanilla_signature) {
    return {"GET",
            target,
            {{"host", "example.amazonaws.com"},
             {"x-amz-date", "20150830T123600Z"},
             {"authorization",
              "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
              "SignedHeaders=host;x-amz-date, Signature=" +
                  signature}},
            ""};
}

SigV4Expectation expectation() {
    SigV4Expectation expected;
    expected.secret_keys = {{"AKIDEXAMPLE", secret}};
    expected.region = "us-east-1";
    expected.service = "service";
    std::tm signed_at{};
    signed_at.tm_year = 115;
    signed_at.tm_mon = 7;
    signed_at.tm_mday = 30;
    signed_at.tm_hour = 12;
    signed_at.tm_min = 40;  // four minutes after signing: inside the window
    expected.now = std::chrono::system_clock::from_time_t(timegm(&signed_at));
    return expected;
}

TEST(SigV4Verifier, ComputesAwsPublishedSignatures) {
    const SigV4Request request = vanilla();
    EXPECT_EQ(sigv4_signature(secret, "20150830T123600Z", "us-east-1", "service",
                              sigv4_canonical_request(request, "host;x-amz-date")),
              vanilla_signature);
    // Query parameters are sorted before signing, whatever order they came in.
    EXPECT_EQ(sigv4_signature(secret, "20150830T123600Z", "us-east-1", "service",
                              sigv4_canonical_request(vanilla("/?Param2=value2&Param1=value1"),
                                                      "host;x-amz-date")),
              query_order_signature);
}

TEST(SigV4Verifier, AcceptsTheSuiteRequestsAndRefusesEveryAlteration) {
    EXPECT_FALSE(verify_sigv4(vanilla(), expectation()));
    EXPECT_FALSE(verify_sigv4(vanilla("/?Param2=value2&Param1=value1", query_order_signature),
                              expectation()));

    SigV4Request altered = vanilla("/?Param1=value1");  // a query the signature did not cover
    EXPECT_EQ(verify_sigv4(altered, expectation())->code, "InvalidSignatureException");
    SigV4Request body = vanilla();
    body.body = "{}";
    EXPECT_EQ(verify_sigv4(body, expectation())->code, "InvalidSignatureException");
    SigV4Request host = vanilla();
    host.headers["host"] = "example.amazonaws.com:8443";
    EXPECT_EQ(verify_sigv4(host, expectation())->code, "InvalidSignatureException");

    SigV4Expectation late = expectation();
    late.now += std::chrono::minutes(20);
    EXPECT_THAT(verify_sigv4(vanilla(), late)->message, HasSubstr("Signature expired"));
    SigV4Expectation other_region = expectation();
    other_region.region = "eu-west-1";
    EXPECT_THAT(verify_sigv4(vanilla(), other_region)->message, HasSubstr("valid region"));
    SigV4Expectation other_service = expectation();
    other_service.service = "ecs";
    EXPECT_THAT(verify_sigv4(vanilla(), other_service)->message, HasSubstr("correct service"));
    SigV4Expectation unknown_key = expectation();
    unknown_key.secret_keys = {{"AKIDOTHER", secret}};
    EXPECT_EQ(verify_sigv4(vanilla(), unknown_key)->code, "UnrecognizedClientException");
    SigV4Expectation token = expectation();
    token.session_token = "session-token-EXAMPLE";
    EXPECT_EQ(verify_sigv4(vanilla(), token)->code, "UnrecognizedClientException");

    SigV4Request unsigned_request = vanilla();
    unsigned_request.headers.erase("authorization");
    EXPECT_EQ(verify_sigv4(unsigned_request, expectation())->code, "MissingAuthenticationToken");
    SigV4Request no_date = vanilla();
    no_date.headers.erase("x-amz-date");
    EXPECT_EQ(verify_sigv4(no_date, expectation())->code, "IncompleteSignature");
}

}  // namespace
}  // namespace mitigate
