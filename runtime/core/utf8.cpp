#include "runtime/core/utf8.h"

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
    std::string escaped;
    escaped.reserve(text.size());
    for (const char character : text) {
        const auto byte = static_cast<unsigned char>(character);
        if (byte >= 0x20 && byte != 0x7f) {
            escaped.push_back(character);
        } else if (character == '\n') {
            escaped += "\\n";
        } else if (character == '\r') {
            escaped += "\\r";
        } else if (character == '\t') {
            escaped += "\\t";
        } else {
            static constexpr char digits[] = "0123456789abcdef";
            escaped += "\\x";
            escaped.push_back(digits[byte >> 4]);
            escaped.push_back(digits[byte & 15]);
        }
    }
    return escaped;
}

}  // namespace mitigate
