#include "runtime/core/sha256.h"

#include <openssl/evp.h>

#include <array>
#include <stdexcept>

namespace mitigate {

struct Sha256::Context {
    EVP_MD_CTX* context = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(context); }
};

Sha256::Sha256() : context_(std::make_unique<Context>()) {
    if (context_->context == nullptr ||
        EVP_DigestInit_ex(context_->context, EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("OpenSSL SHA-256 is unavailable");
    }
}

Sha256::~Sha256() = default;

Sha256& Sha256::update(std::string_view bytes) {
    if (EVP_DigestUpdate(context_->context, bytes.data(), bytes.size()) != 1) {
        throw std::runtime_error("OpenSSL SHA-256 update failed");
    }
    return *this;
}

std::string Sha256::hex_digest() {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(context_->context, digest.data(), &length) != 1) {
        throw std::runtime_error("OpenSSL SHA-256 final failed");
    }
    static constexpr std::string_view hex = "0123456789abcdef";
    std::string text;
    text.reserve(static_cast<std::size_t>(length) * 2);
    for (unsigned int i = 0; i < length; ++i) {
        text += hex[digest[i] >> 4];
        text += hex[digest[i] & 0xf];
    }
    return text;
}

}  // namespace mitigate
