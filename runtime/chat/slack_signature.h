// Slack's request signing (https://api.slack.com/authentication/verifying-requests-from-slack):
// every request Slack sends carries X-Slack-Request-Timestamp and X-Slack-Signature =
// "v0=" + hex HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + raw body).
//
// Verification comes before anything else reads the body: a request that is unsigned,
// signed with another secret, altered after signing, or older than five minutes is refused
// without parsing a byte of it. The comparison is constant-time, so the time a refusal
// takes says nothing about how much of a forged signature was right.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace mitigate {

// "v0=<64 hex>" for `body` sent at `timestamp` (seconds since the epoch, as text).
std::string slack_signature(std::string_view signing_secret, std::string_view timestamp,
                            std::string_view body);

enum class SlackVerification {
    verified,
    missing_headers,    // no timestamp or no signature header
    bad_timestamp,      // not a number of seconds
    stale,              // more than the tolerance away from now (either way)
    signature_mismatch  // forged, another secret, or the body changed after signing
};

std::string_view to_string(SlackVerification verification);

inline constexpr std::chrono::seconds slack_timestamp_tolerance{300};

SlackVerification verify_slack_signature(std::string_view signing_secret,
                                         std::string_view timestamp_header,
                                         std::string_view signature_header, std::string_view body,
                                         std::chrono::system_clock::time_point now);

}  // namespace mitigate
