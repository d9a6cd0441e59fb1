#include "runtime/config/origin.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace mitigate {

namespace {

std::string lower(std::string_view text) {
    std::string result(text);
    std::transform(result.begin(), result.end(), result.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return result;
}

bool is_host_name(std::string_view host) {
    if (host.empty() || host.size() > 253 || host.front() == '.' || host.front() == '-') {
        return false;
    }
    return std::all_of(host.begin(), host.end(),
                       [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '.'; });
}

bool is_bracketed_ipv6(std::string_view host) {
    if (host.size() < 4 || host.front() != '[' || host.back() != ']') {
        return false;
    }
    const std::string_view inside = host.substr(1, host.size() - 2);
    return std::all_of(inside.begin(), inside.end(),
                       [](unsigned char c) { return std::isxdigit(c) || c == ':' || c == '.'; });
}

}  // namespace

std::optional<Origin> parse_origin(std::string_view text, std::string& error) {
    const auto separator = text.find("://");
    if (separator == std::string_view::npos) {
        error = "must be an origin such as https://api.example.com or https://host:8443";
        return std::nullopt;
    }
    Origin origin;
    origin.scheme = lower(text.substr(0, separator));
    if (origin.scheme != "http" && origin.scheme != "https") {
        error = "must start with https:// (or http:// for a loopback emulator)";
        return std::nullopt;
    }
    std::string_view rest = text.substr(separator + 3);
    if (!rest.empty() && rest.back() == '/') {
        rest.remove_suffix(1);
    }
    if (rest.find_first_of("/?#@\\ ") != std::string_view::npos) {
        error = "must name only a scheme, a host and a port: no path, query, user or spaces";
        return std::nullopt;
    }
    std::string_view host = rest;
    std::string_view port;
    const auto colon = rest.rfind(':');
    if (colon != std::string_view::npos && rest.find(']', colon) == std::string_view::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
        unsigned value = 0;
        const auto [end, code] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (port.empty() || code != std::errc{} || end != port.data() + port.size() || value == 0 ||
            value > 65535 || port.front() == '0') {
            error = "has a port that is not a number from 1 to 65535";
            return std::nullopt;
        }
    }
    origin.host = lower(host);
    if (!is_host_name(origin.host) && !is_bracketed_ipv6(origin.host)) {
        error = "has no valid host name or address";
        return std::nullopt;
    }
    origin.port = port.empty() ? (origin.scheme == "https" ? "443" : "80") : std::string(port);
    return origin;
}

bool is_loopback_host(std::string_view host) {
    if (host == "localhost" || host == "[::1]") {
        return true;
    }
    // 127.0.0.0/8 written as a dotted quad.
    if (!host.starts_with("127.")) {
        return false;
    }
    int parts = 0;
    std::size_t start = 0;
    while (start <= host.size()) {
        const auto end = std::min(host.find('.', start), host.size());
        unsigned value = 0;
        const auto [stop, code] = std::from_chars(host.data() + start, host.data() + end, value);
        if (end == start || code != std::errc{} || stop != host.data() + end || value > 255) {
            return false;
        }
        ++parts;
        start = end + 1;
    }
    return parts == 4;
}

}  // namespace mitigate
