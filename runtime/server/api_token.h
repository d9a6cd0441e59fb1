// API tokens: who may call the daemon, and what they may do. A token is shown once when
// created (`mitigate token create`) and stored only as its SHA-256 (runtime/store).
//
// Roles, each including the ones before it except sender:
//   sender    may only post signals (what Alertmanager's webhook is given)
//   viewer    reads incidents, mitigations and /metrics
//   approver  viewer, and approves or rejects
//   operator  approver, posts signals, proposes, reverts and keeps
//   admin     everything
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "runtime/store/token_store.h"

namespace mitigate {

enum class ApiRole { sender, viewer, approver, operator_role, admin };

std::string_view to_string(ApiRole role);
std::optional<ApiRole> parse_api_role(std::string_view text);
inline constexpr std::string_view api_role_names = "sender, viewer, approver, operator, admin";

// What a request needs. Signals: sender or operator and above; the rest is ordered.
enum class ApiPermission { send_signals, read, approve, operate, administer };
bool role_allows(ApiRole role, ApiPermission permission);

// "mtg_" and 64 hex characters of OpenSSL randomness.
std::string generate_api_token();
// Hex SHA-256 of the whole token, as stored.
std::string api_token_digest(std::string_view token);

// The tokens, in memory, for the check every request makes. Exact, not eventually: each
// lookup first reads the store's token generation (one row), which every token change
// moves, from this process or another (`mitigate token revoke` writes the file itself); a
// moved generation reloads the tokens before answering. So a revocation holds for the very
// next request.
class ApiTokenCache {
  public:
    explicit ApiTokenCache(TokenStore& store) : store_(store) {}
    std::optional<ApiToken> find(std::string_view token_sha256);

  private:
    TokenStore& store_;
    std::mutex mutex_;
    std::int64_t generation_ = -1;
    std::unordered_map<std::string, ApiToken> by_digest_;
};

}  // namespace mitigate
