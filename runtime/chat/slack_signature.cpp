#include "runtime/chat/slack_signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <stdexcept>

namespace mitigate {

std::string slack_signature(std::string_view signing_secret, std::string_view timestamp,
                            std::string_view body) {
    std::string base;
    base.reserve(timestamp.size() + body.size() + 4);
    base.append("v0:").append(timestamp).append(":").append(body);
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    if (HMAC(EVP_sha256(), signing_secret.data(), static_cast<int>(signing_secret.size()),
             reinterpret_cast<const unsigned char*>(base.data()), base.size(), digest.data(),
             &length) == nullptr) {
        throw std::runtime_error("OpenSSL HMAC-SHA256 failed");
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string signature = "v0=";
    for (unsigned int i = 0; i < length; ++i) {
        signature += hex[digest[i] >> 4];
        signature += hex[digest[i] & 0xf];
    }
    return signature;
}

std::string_view to_string(SlackVerification verification) {
    switch (verification) {
        case SlackVerification::verified: return "verified";
        case SlackVerification::missing_headers:
            return "missing X-Slack-Request-Timestamp or X-Slack-Signature";
        case SlackVerification::bad_timestamp: return "X-Slack-Request-Timestamp is not a number";
        case SlackVerification::stale: return "the request timestamp is more than 5 minutes off";
        case SlackVerification::signature_mismatch: return "the signature does not match";
    }
    return "unknown";
}

SlackVerification verify_slack_signature(std::string_view signing_secret,
                                         std::string_view timestamp_header,
                                         std::string_view signature_header, std::string_view body,
                                         std::chrono::system_clock::time_point now) {
    if (timestamp_header.empty() || signature_header.empty()) {
        return SlackVerification::missing_headers;
    }
    std::int64_t seconds = 0;
    const auto [end, error] = std::from_chars(
        timestamp_header.data(), timestamp_header.data() + timestamp_header.size(), seconds);
    if (error != std::errc() || end != timestamp_header.data() + timestamp_header.size()) {
        return SlackVerification::bad_timestamp;
    }
    const auto now_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    const std::int64_t skew = now_seconds > seconds ? now_seconds - seconds : seconds - now_seconds;
    if (skew > slack_timestamp_tolerance.count()) {
        return SlackVerification::stale;
    }
    const std::string expected = slack_signature(signing_secret, timestamp_header, body);
    if (signature_header.size() != expected.size() ||
        CRYPTO_memcmp(signature_header.data(), expected.data(), expected.size()) != 0) {
        return SlackVerification::signature_mismatch;
    }
    return SlackVerification::verified;
}

}  // namespace mitigate
