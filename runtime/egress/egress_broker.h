// Brokered egress: the only way a provider plugin reaches anything outside its sandbox.
//
// The plugin describes an HTTP request (or a file read/replace) and names a credential
// profile; the broker, in the trusted runtime, decides and does it:
//   - the URL's scheme is http or https, it has no user:password part, and its host:port
//     is on the provider's egress.allow_hosts (an entry without a port allows the
//     scheme's default port only);
//   - a credential is attached only to a request whose scheme, host and port are one of
//     the origins its profile names (runtime/config/origin.h), over https only (plain
//     http only to loopback addresses, when the provider allows loopback: emulators);
//   - the broker resolves the name itself and refuses loopback, private, link-local,
//     CGNAT, multicast and unspecified addresses unless the provider's config allows
//     loopback or private ones; curl is then pinned to the address that was checked, so
//     a second lookup cannot answer differently (DNS rebinding);
//   - credentials are added here (bearer, API-key header, basic, AWS SigV4); the plugin
//     may not set Authorization, Host, Cookie, X-Amz-* (but X-Amz-Target, the operation
//     of AWS's JSON protocol) or the profile's header itself;
//   - redirects are returned, never followed; proxies from the environment are ignored;
//   - the response body is capped, the whole exchange has a timeout.
// SQL (the supabase provider's direct path): one parameterised statement on the
// connection a `postgres` credential profile describes, in its own transaction, with the
// same host checks; the plugin never sees the connection's password.
// Files: only the exact paths on egress.allow_files, written in normal form (no "..",
// no "."), opened without following a symlink in any component (openat2 with
// RESOLVE_NO_SYMLINKS); a write replaces the file atomically (temporary file beside it,
// fsync, rename, all relative to the directory opened that way) and only if its content
// still hashes to the `if_match` the plugin read, under an flock on the directory.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/config/config.h"

namespace mitigate {

struct EgressLimits {
    std::size_t max_response_bytes = 4u << 20;
    std::size_t max_request_bytes = 1u << 20;
    std::size_t max_file_bytes = 4u << 20;
    std::chrono::milliseconds timeout{10000};
};

// Host name -> addresses (text). The default uses getaddrinfo; tests substitute one to
// make a name resolve to a metadata address.
using Resolver = std::function<std::vector<std::string>(const std::string& host)>;

class EgressBroker {
  public:
    explicit EgressBroker(ProviderConfig provider, EgressLimits limits = {},
                          Resolver resolver = nullptr);

    // One request from the plugin, in the shape of mitigate_host_api.egress. Sets
    // `status` (a mitigate_status) and returns the response, {"error": "..."} when
    // refused. The error never contains a secret.
    nlohmann::json handle(const nlohmann::json& request, int& status) const;

    const ProviderConfig& provider() const { return provider_; }

  private:
    nlohmann::json http(const nlohmann::json& request, int& status) const;
    nlohmann::json read_file(const nlohmann::json& request, int& status) const;
    nlohmann::json write_file(const nlohmann::json& request, int& status) const;
    // sql_egress.cpp
    nlohmann::json sql(const nlohmann::json& request, int& status) const;
    // A refusal when host:port is not allowed (an allow_hosts entry without a port allows
    // `default_port` only) or resolves somewhere it may not go; otherwise fills
    // `addresses` with what it resolved to.
    std::optional<nlohmann::json> check_destination(const std::string& host,
                                                    const std::string& port,
                                                    const std::string& default_port,
                                                    std::vector<std::string>& addresses,
                                                    int& status) const;

    ProviderConfig provider_;
    EgressLimits limits_;
    Resolver resolver_;
};

// "loopback", "private", "link-local", ... or "" for a public address; "invalid" when
// `address` is not an IP address.
std::string classify_address(const std::string& address);

}  // namespace mitigate
