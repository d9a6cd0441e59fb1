#include "plugins/emulators/sigv4_verifier.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <vector>

#include "runtime/core/sha256.h"
#include "runtime/core/url_encoding.h"

namespace mitigate {
namespace {

std::string hex(const unsigned char* bytes, std::size_t size) {
    std::string text;
    for (std::size_t index = 0; index < size; ++index) {
        char pair[3];
        std::snprintf(pair, sizeof pair, "%02x", bytes[index]);
        text += pair;
    }
    return text;
}

std::string hmac(const std::string& key, const std::string& data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data(), &length);
    return {reinterpret_cast<const char*>(digest.data()), length};
}

std::string sha256_hex(const std::string& text) {
    return Sha256().update(text).hex_digest();
}

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream stream(text);
    while (std::getline(stream, part, separator)) {
        parts.push_back(part);
    }
    return parts;
}

std::string trim(const std::string& text) {
    const auto begin = text.find_first_not_of(" \t");
    if (begin == std::string::npos) {
        return "";
    }
    return text.substr(begin, text.find_last_not_of(" \t") - begin + 1);
}

// Header values: trimmed, runs of spaces collapsed to one.
std::string canonical_value(const std::string& value) {
    std::string collapsed;
    for (char character : trim(value)) {
        if (character == ' ' && !collapsed.empty() && collapsed.back() == ' ') {
            continue;
        }
        collapsed += character;
    }
    return collapsed;
}

// Every service but S3 encodes each path segment once more.
std::string canonical_uri(const std::string& path) {
    if (path.empty()) {
        return "/";
    }
    std::string uri;
    std::size_t start = 0;
    while (start <= path.size()) {
        const std::size_t slash = path.find('/', start);
        const std::string segment =
            path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        uri += percent_encode(segment);
        if (slash == std::string::npos) {
            break;
        }
        uri += '/';
        start = slash + 1;
    }
    return uri;
}

std::string canonical_query(const std::string& query) {
    std::vector<std::pair<std::string, std::string>> pairs;
    for (const std::string& item : split(query, '&')) {
        if (item.empty()) {
            continue;
        }
        const auto equals = item.find('=');
        // Decoded then encoded again: AWS signs one normal form whatever the client sent.
        pairs.emplace_back(percent_encode(percent_decode(item.substr(0, equals))),
                           equals == std::string::npos
                               ? ""
                               : percent_encode(percent_decode(item.substr(equals + 1))));
    }
    std::sort(pairs.begin(), pairs.end());
    std::string text;
    for (const auto& [name, value] : pairs) {
        text += (text.empty() ? "" : "&") + name + "=" + value;
    }
    return text;
}

// Basic ISO 8601, "20150830T123600Z".
std::optional<std::chrono::system_clock::time_point> parse_amz_date(const std::string& text) {
    if (text.size() != 16 || text[8] != 'T' || text[15] != 'Z') {
        return std::nullopt;
    }
    auto number = [&](std::size_t start, std::size_t length, int& value) {
        const char* first = text.data() + start;
        const auto [end, error] = std::from_chars(first, first + length, value);
        return error == std::errc() && end == first + length;
    };
    std::tm parts{};
    if (!number(0, 4, parts.tm_year) || !number(4, 2, parts.tm_mon) ||
        !number(6, 2, parts.tm_mday) || !number(9, 2, parts.tm_hour) ||
        !number(11, 2, parts.tm_min) || !number(13, 2, parts.tm_sec)) {
        return std::nullopt;
    }
    parts.tm_year -= 1900;
    parts.tm_mon -= 1;
    return std::chrono::system_clock::from_time_t(timegm(&parts));
}

SigV4Failure failure(const std::string& code, const std::string& message) {
    return {code, message};
}

}  // namespace

std::string sigv4_canonical_request(const SigV4Request& request,
                                    const std::string& signed_headers) {
    const auto question = request.target.find('?');
    const std::string path = request.target.substr(0, question);
    const std::string query =
        question == std::string::npos ? "" : request.target.substr(question + 1);
    std::string headers;
    for (const std::string& name : split(signed_headers, ';')) {
        auto found = request.headers.find(name);
        headers += name + ":" +
                   (found == request.headers.end() ? "" : canonical_value(found->second)) + "\n";
    }
    return request.method + "\n" + canonical_uri(path) + "\n" + canonical_query(query) + "\n" +
           headers + "\n" + signed_headers + "\n" + sha256_hex(request.body);
}

std::string sigv4_signature(const std::string& secret_key, const std::string& amz_date,
                            const std::string& region, const std::string& service,
                            const std::string& canonical_request) {
    const std::string date = amz_date.substr(0, 8);
    const std::string scope = date + "/" + region + "/" + service + "/aws4_request";
    const std::string string_to_sign =
        "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + sha256_hex(canonical_request);
    const std::string key =
        hmac(hmac(hmac(hmac("AWS4" + secret_key, date), region), service), "aws4_request");
    const std::string signature = hmac(key, string_to_sign);
    return hex(reinterpret_cast<const unsigned char*>(signature.data()), signature.size());
}

std::optional<SigV4Failure> verify_sigv4(const SigV4Request& request,
                                         const SigV4Expectation& expected) {
    auto authorization = request.headers.find("authorization");
    if (authorization == request.headers.end()) {
        return failure("MissingAuthenticationToken", "Request is missing Authentication Token");
    }
    const std::string prefix = "AWS4-HMAC-SHA256 ";
    if (authorization->second.rfind(prefix, 0) != 0) {
        return failure("IncompleteSignature",
                       "Authorization header requires the AWS4-HMAC-SHA256 algorithm");
    }
    std::map<std::string, std::string> fields;
    for (const std::string& part : split(authorization->second.substr(prefix.size()), ',')) {
        const std::string item = trim(part);
        const auto equals = item.find('=');
        if (equals != std::string::npos) {
            fields[item.substr(0, equals)] = item.substr(equals + 1);
        }
    }
    for (const char* name : {"Credential", "SignedHeaders", "Signature"}) {
        if (!fields.contains(name)) {
            return failure("IncompleteSignature",
                           std::string("Authorization header requires '") + name + "' parameter");
        }
    }
    const std::vector<std::string> credential = split(fields["Credential"], '/');
    if (credential.size() != 5 || credential[4] != "aws4_request") {
        return failure("IncompleteSignature",
                       "Credential should be scoped to a valid region, service and "
                       "aws4_request terminator");
    }
    auto secret = expected.secret_keys.find(credential[0]);
    if (secret == expected.secret_keys.end()) {
        return failure("UnrecognizedClientException",
                       "The security token included in the request is invalid.");
    }
    if (credential[2] != expected.region) {
        return failure("InvalidSignatureException",
                       "Credential should be scoped to a valid region, not '" + credential[2] +
                           "'. Expected '" + expected.region + "'");
    }
    if (credential[3] != expected.service) {
        return failure(
            "InvalidSignatureException",
            "Credential should be scoped to correct service: '" + expected.service + "'");
    }
    auto amz_date = request.headers.find("x-amz-date");
    if (amz_date == request.headers.end()) {
        return failure("IncompleteSignature",
                       "Authorization header requires existence of "
                       "either a 'X-Amz-Date' or a 'Date' header");
    }
    const auto signed_at = parse_amz_date(amz_date->second);
    if (!signed_at || amz_date->second.substr(0, 8) != credential[1]) {
        return failure("IncompleteSignature",
                       "Date in Credential scope does not match YYYYMMDD from ISO-8601 "
                       "version of date from HTTP");
    }
    if (*signed_at < expected.now - expected.skew || *signed_at > expected.now + expected.skew) {
        return failure("InvalidSignatureException",
                       "Signature expired: " + amz_date->second +
                           " is outside the 15-minute window of the current time");
    }
    const std::vector<std::string> signed_names = split(fields["SignedHeaders"], ';');
    for (const char* required : {"host", "x-amz-date"}) {
        if (std::find(signed_names.begin(), signed_names.end(), required) == signed_names.end()) {
            return failure("InvalidSignatureException",
                           std::string("'") + required + "' must be a signed header");
        }
    }
    if (expected.session_token) {
        auto token = request.headers.find("x-amz-security-token");
        if (token == request.headers.end() || token->second != *expected.session_token ||
            std::find(signed_names.begin(), signed_names.end(), "x-amz-security-token") ==
                signed_names.end()) {
            return failure("UnrecognizedClientException",
                           "The security token included in the request is invalid.");
        }
    }
    const std::string canonical = sigv4_canonical_request(request, fields["SignedHeaders"]);
    const std::string computed = sigv4_signature(secret->second, amz_date->second, expected.region,
                                                 expected.service, canonical);
    const std::string& given = fields["Signature"];
    if (given.size() != computed.size() ||
        CRYPTO_memcmp(given.data(), computed.data(), computed.size()) != 0) {
        return failure("InvalidSignatureException",
                       "The request signature we calculated does not match the signature you "
                       "provided. Check your AWS Secret Access Key and signing method.");
    }
    return std::nullopt;
}

}  // namespace mitigate
