#include "runtime/core/url_encoding.h"

#include <cctype>
#include <charconv>

namespace mitigate {

std::string percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '+') {
            out += ' ';
        } else if (text[i] == '%' && i + 2 < text.size()) {
            int value = 0;
            const auto [end, error] = std::from_chars(&text[i + 1], &text[i + 3], value, 16);
            if (error == std::errc() && end == &text[i + 3]) {
                out += static_cast<char>(value);
                i += 2;
            } else {
                out += text[i];
            }
        } else {
            out += text[i];
        }
    }
    return out;
}

std::string percent_encode(std::string_view text) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(text.size() * 3);
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (std::isalnum(byte) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
            out += c;
        } else {
            out += '%';
            out += hex[byte >> 4];
            out += hex[byte & 0xf];
        }
    }
    return out;
}

std::map<std::string, std::string> parse_url_encoded(std::string_view text) {
    std::map<std::string, std::string> result;
    while (!text.empty()) {
        const auto amp = text.find('&');
        const std::string_view pair = text.substr(0, amp);
        const auto equals = pair.find('=');
        if (!pair.empty()) {
            result[percent_decode(pair.substr(0, equals))] =
                equals == std::string_view::npos ? "" : percent_decode(pair.substr(equals + 1));
        }
        text = amp == std::string_view::npos ? "" : text.substr(amp + 1);
    }
    return result;
}

}  // namespace mitigate
