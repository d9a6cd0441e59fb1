// An origin: the exact scheme, host and port a credential may be sent to.
//
// A credential profile names its origins (`origins: [https://api.vercel.com]`) and the
// egress broker attaches the credential only to a request whose scheme, host and port
// are one of them. Being on egress.allow_hosts is not enough: a provider that may reach
// two services must not be able to send one service's token to the other.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mitigate {

struct Origin {
    std::string scheme;  // "http" or "https"
    std::string host;    // lowercase; an address in curl's form: "[::1]", "127.0.0.1"
    std::string port;    // always present: the scheme's default when the text has none

    bool operator==(const Origin&) const = default;
    std::string text() const { return scheme + "://" + host + ":" + port; }
};

// Reads "scheme://host[:port]" with an optional trailing "/", nothing else: no path,
// query, fragment or user part, so what the profile names is exactly what is compared.
// On failure returns nullopt and says why in `error`.
std::optional<Origin> parse_origin(std::string_view text, std::string& error);

// `host` (lowercase, as a URL writes it) in the one form origins are compared in: IPv6
// in inet_ntop's form within brackets, IPv4 shorthand as dotted decimal, a name as it
// is; nullopt when it is none of these. The broker puts a request's host through it too.
std::optional<std::string> canonical_host(const std::string& host);

// True when `host` (as in an Origin) is a loopback name or address: localhost,
// 127.0.0.0/8 or [::1].
bool is_loopback_host(std::string_view host);

}  // namespace mitigate
