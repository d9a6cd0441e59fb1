#include "runtime/server/api_token.h"

#include <openssl/rand.h>

#include <array>
#include <stdexcept>

#include "runtime/core/sha256.h"

namespace mitigate {

std::string_view to_string(ApiRole role) {
    switch (role) {
        case ApiRole::sender: return "sender";
        case ApiRole::viewer: return "viewer";
        case ApiRole::approver: return "approver";
        case ApiRole::operator_role: return "operator";
        case ApiRole::admin: return "admin";
    }
    return "viewer";
}

std::optional<ApiRole> parse_api_role(std::string_view text) {
    for (ApiRole role : {ApiRole::sender, ApiRole::viewer, ApiRole::approver,
                         ApiRole::operator_role, ApiRole::admin}) {
        if (to_string(role) == text) {
            return role;
        }
    }
    return std::nullopt;
}

bool role_allows(ApiRole role, ApiPermission permission) {
    if (role == ApiRole::sender) {
        return permission == ApiPermission::send_signals;
    }
    switch (permission) {
        case ApiPermission::read: return true;
        case ApiPermission::approve: return role >= ApiRole::approver;
        case ApiPermission::send_signals:
        case ApiPermission::operate: return role >= ApiRole::operator_role;
        case ApiPermission::administer: return role == ApiRole::admin;
    }
    return false;
}

std::string generate_api_token() {
    std::array<unsigned char, 32> random{};
    if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
        throw std::runtime_error("OpenSSL RAND_bytes failed: no entropy for a token");
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string token = "mtg_";
    for (unsigned char byte : random) {
        token += hex[byte >> 4];
        token += hex[byte & 0xf];
    }
    return token;
}

std::string api_token_digest(std::string_view token) {
    return Sha256().update(token).hex_digest();
}

std::optional<ApiToken> ApiTokenCache::find(std::string_view token_sha256) {
    const std::int64_t generation = store_.api_token_generation();
    std::lock_guard lock(mutex_);
    if (generation != generation_) {
        by_digest_.clear();
        for (ApiToken& token : store_.list_api_tokens()) {
            std::string digest = token.token_sha256;
            by_digest_.emplace(std::move(digest), std::move(token));
        }
        generation_ = generation;
    }
    const auto found = by_digest_.find(std::string(token_sha256));
    if (found == by_digest_.end()) {
        return std::nullopt;
    }
    return found->second;
}

}  // namespace mitigate
