// API tokens, kept as SHA-256 digests only: the token itself is shown once, at creation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/clock.h"
#include "runtime/store/audit_log.h"

namespace mitigate {

// An API token as stored: never the token, only its SHA-256.
struct ApiToken {
    std::string name;                 // the identity requests made with it are recorded under
    std::string role;                 // viewer, approver, operator, admin (runtime/server decides)
    std::vector<std::string> groups;  // for approval rules
    std::string token_sha256;         // hex
    TimePoint created_at;
    std::optional<TimePoint> revoked_at;
    bool operator==(const ApiToken&) const = default;
};

class TokenStore {
  public:
    virtual ~TokenStore() = default;

    // Throws StoreError if the name is taken. Audited, without the digest.
    virtual void create_api_token(const ApiToken& token, std::string_view actor) = 0;
    virtual std::optional<ApiToken> find_api_token(std::string_view token_sha256) = 0;
    virtual std::vector<ApiToken> list_api_tokens() = 0;
    // False when no unrevoked token has that name.
    virtual bool revoke_api_token(std::string_view name, TimePoint at, std::string_view actor) = 0;
    // A number that changes whenever any token is created, revoked or edited, by this
    // process or another (`mitigate token revoke` writes the file directly): a cache of
    // tokens is exact as long as this has not moved.
    virtual std::int64_t api_token_generation() = 0;
};

}  // namespace mitigate
