// UTF-8 facts that text crossing a boundary needs: whether it is valid, and how to cut it
// to a byte limit without splitting a character (which would turn valid text invalid).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mitigate {

// The offset of the first byte that is not part of valid UTF-8 (overlong forms,
// surrogates and code points above U+10FFFF are invalid), or nullopt when all is valid.
std::optional<std::size_t> first_invalid_utf8(std::string_view text);

// `text` with every byte that is not part of valid UTF-8 replaced by U+FFFD, for output
// whose format demands UTF-8 (the metrics exposition: one bad label value and Prometheus
// drops the whole scrape).
std::string replace_invalid_utf8(std::string_view text);

// `text` cut to at most `max_bytes`, on a character boundary when `text` is valid UTF-8.
std::string cut_on_character_boundary(std::string text, std::size_t max_bytes);

// `text` with every control character written as an escape: C0 and DEL (\n, \t, \x1b),
// C1 controls, line separators and bidirectional overrides (\u{9b}, \u{202e}), and bytes
// that are not UTF-8 (\xff). Untrusted text printed on one line stays on that line,
// cannot drive a terminal and cannot reorder what is displayed.
std::string escape_control_characters(std::string_view text);

}  // namespace mitigate
