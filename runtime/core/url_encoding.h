// application/x-www-form-urlencoded, as query strings and Slack's request bodies use it:
// pairs split on & and =, percent-decoded, '+' a space. A malformed escape is kept as
// written rather than guessed at.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace mitigate {

std::string percent_decode(std::string_view text);
// Unreserved characters (RFC 3986) as they are, every other byte as %XX.
std::string percent_encode(std::string_view text);

// A repeated name keeps its last value.
std::map<std::string, std::string> parse_url_encoded(std::string_view text);

}  // namespace mitigate
