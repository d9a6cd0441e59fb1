#include "runtime/config/origin.h"

#include <arpa/inet.h>

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
    if (host.empty() || host.size() > 253 || host.front() == '.' || host.front() == '-' ||
        host.find("..") != std::string_view::npos) {
        return false;
    }
    return std::all_of(host.begin(), host.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '.' || c == '_';
    });
}

}  // namespace

// An address in the one form curl gives a request's host in, so that the comparison is
// of equals: IPv6 in its shortest form ("[0:0:0:0:0:0:0:1]" is "[::1]") and IPv4 in
// dotted decimal (curl reads "127.1" and "0x7f.0.0.1" as 127.0.0.1). A name is kept.
std::optional<std::string> canonical_host(const std::string& host) {
    char text[INET6_ADDRSTRLEN] = {};
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        in6_addr address{};
        if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &address) != 1 ||
            inet_ntop(AF_INET6, &address, text, sizeof text) == nullptr) {
            return std::nullopt;
        }
        return "[" + std::string(text) + "]";
    }
    const bool numeric = !host.empty() && std::isdigit(static_cast<unsigned char>(host.front())) &&
                         std::all_of(host.begin(), host.end(), [](unsigned char c) {
                             return std::isxdigit(c) || c == '.' || c == 'x';
                         });
    in_addr address{};
    if (numeric && inet_aton(host.c_str(), &address) != 0 &&
        inet_ntop(AF_INET, &address, text, sizeof text) != nullptr) {
        return std::string(text);
    }
    return is_host_name(host) ? std::optional(host) : std::nullopt;
}

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
    std::optional<std::string> canonical = canonical_host(lower(host));
    if (!canonical) {
        error = "has no valid host name or address";
        return std::nullopt;
    }
    origin.host = std::move(*canonical);
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
