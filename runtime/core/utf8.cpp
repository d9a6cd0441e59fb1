#include "runtime/core/utf8.h"

#include <cstdio>

namespace mitigate {

std::optional<std::size_t> first_invalid_utf8(std::string_view text) {
    std::size_t index = 0;
    while (index < text.size()) {
        const auto lead = static_cast<unsigned char>(text[index]);
        std::size_t length = 0;
        char32_t minimum = 0;
        char32_t code_point = 0;
        if (lead < 0x80) {
            ++index;
            continue;
        }
        if ((lead & 0xE0) == 0xC0) {
            length = 2, minimum = 0x80, code_point = lead & 0x1F;
        } else if ((lead & 0xF0) == 0xE0) {
            length = 3, minimum = 0x800, code_point = lead & 0x0F;
        } else if ((lead & 0xF8) == 0xF0) {
            length = 4, minimum = 0x10000, code_point = lead & 0x07;
        } else {
            return index;
        }
        if (index + length > text.size()) {
            return index;
        }
        for (std::size_t next = 1; next < length; ++next) {
            const auto continuation = static_cast<unsigned char>(text[index + next]);
            if ((continuation & 0xC0) != 0x80) {
                return index;
            }
            code_point = (code_point << 6) | (continuation & 0x3F);
        }
        if (code_point < minimum || code_point > 0x10FFFF ||
            (code_point >= 0xD800 && code_point <= 0xDFFF)) {
            return index;
        }
        index += length;
    }
    return std::nullopt;
}

std::string replace_invalid_utf8(std::string_view text) {
    std::string out;
    while (const auto bad = first_invalid_utf8(text)) {
        out.append(text.substr(0, *bad));
        out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
        text.remove_prefix(*bad + 1);
    }
    out.append(text);
    return out;
}

std::string cut_on_character_boundary(std::string text, std::size_t max_bytes) {
    if (text.size() <= max_bytes) {
        return text;
    }
    std::size_t cut = max_bytes;
    // A continuation byte starts with the bits 10: back up to the start of its character.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
        --cut;
    }
    text.resize(cut);
    return text;
}

std::string escape_control_characters(std::string_view text) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string escaped;
    escaped.reserve(text.size());
    std::size_t index = 0;
    while (index < text.size()) {
        const auto byte = static_cast<unsigned char>(text[index]);
        if (byte < 0x80) {
            if (byte >= 0x20 && byte != 0x7f) {
                escaped.push_back(text[index]);
            } else if (byte == '\n') {
                escaped += "\\n";
            } else if (byte == '\r') {
                escaped += "\\r";
            } else if (byte == '\t') {
                escaped += "\\t";
            } else {
                escaped += "\\x";
                escaped.push_back(digits[byte >> 4]);
                escaped.push_back(digits[byte & 15]);
            }
            ++index;
            continue;
        }
        // One character of valid UTF-8, or one invalid byte written as \xHH.
        const std::size_t length = (byte & 0xE0) == 0xC0 ? 2 : (byte & 0xF0) == 0xE0 ? 3 : 4;
        const std::string_view character = text.substr(index, length);
        if ((byte & 0xC0) == 0x80 || byte >= 0xF8 || character.size() < length ||
            first_invalid_utf8(character)) {
            escaped += "\\x";
            escaped.push_back(digits[byte >> 4]);
            escaped.push_back(digits[byte & 15]);
            ++index;
            continue;
        }
        char32_t code_point = byte & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07);
        for (std::size_t next = 1; next < length; ++next) {
            code_point = (code_point << 6) | (static_cast<unsigned char>(character[next]) & 0x3F);
        }
        // C1 controls (an 8-bit CSI drives a terminal too), line and paragraph
        // separators, and the bidirectional overrides that reorder what is displayed.
        const bool invisible = (code_point >= 0x80 && code_point <= 0x9F) || code_point == 0x2028 ||
                               code_point == 0x2029 ||
                               (code_point >= 0x202A && code_point <= 0x202E) ||
                               (code_point >= 0x2066 && code_point <= 0x2069);
        if (invisible) {
            char buffer[12];
            std::snprintf(buffer, sizeof buffer, "\\u{%x}", static_cast<unsigned>(code_point));
            escaped += buffer;
        } else {
            escaped.append(character);
        }
        index += length;
    }
    return escaped;
}

}  // namespace mitigate
