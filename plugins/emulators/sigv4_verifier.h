// The service side of AWS Signature Version 4: recomputes the signature of a request
// exactly as it was received and compares it, as AWS does before anything else. The
// AWS emulator uses it; mitigate itself signs with libcurl (CURLOPT_AWS_SIGV4), so this
// is a second, independent implementation, and tests check it against AWS's published
// test-suite values and against the npm aws4 package.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

namespace mitigate {

struct SigV4Request {
    std::string method;
    std::string target;                          // path and query, as received
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
};

struct SigV4Expectation {
    std::map<std::string, std::string> secret_keys;  // access key id -> secret access key
    std::string region;
    std::string service;
    // When set, requests must carry it as a signed X-Amz-Security-Token.
    std::optional<std::string> session_token;
    std::chrono::system_clock::time_point now;
    std::chrono::minutes skew{15};  // AWS refuses a request dated further from now
};

struct SigV4Failure {
    // AWS's error code: IncompleteSignature, InvalidClientTokenId (unknown key),
    // SignatureDoesNotMatch, InvalidSignatureException (expired), ...
    std::string code;
    std::string message;
};

// nullopt when the request is signed correctly.
std::optional<SigV4Failure> verify_sigv4(const SigV4Request& request,
                                         const SigV4Expectation& expected);

// The pieces, for tests and error messages.
std::string sigv4_canonical_request(const SigV4Request& request, const std::string& signed_headers);
std::string sigv4_signature(const std::string& secret_key, const std::string& amz_date,
                            const std::string& region, const std::string& service,
                            const std::string& canonical_request);

}  // namespace mitigate
