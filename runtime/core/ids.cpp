#include "runtime/core/ids.h"

#include <openssl/rand.h>

#include <array>
#include <stdexcept>

#include "runtime/core/time_format.h"

namespace mitigate {

std::string new_id(std::string_view prefix, TimePoint now) {
    std::array<unsigned char, 8> random{};
    if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
        throw std::runtime_error("OpenSSL RAND_bytes failed: no entropy for an identifier");
    }
    // 2026-11-23T07:28:22Z -> 20261123T072822Z
    std::string stamp;
    for (char c : format_rfc3339(std::chrono::floor<std::chrono::seconds>(now))) {
        if (c != '-' && c != ':') {
            stamp += c;
        }
    }
    static constexpr std::string_view hex = "0123456789abcdef";
    std::string id(prefix);
    id += '_';
    id += stamp;
    id += '_';
    for (unsigned char byte : random) {
        id += hex[byte >> 4];
        id += hex[byte & 0xf];
    }
    return id;
}

}  // namespace mitigate
