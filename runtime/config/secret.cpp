#include "runtime/config/secret.h"

#include <openssl/crypto.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "runtime/core/text_file.h"

namespace mitigate {

namespace {
// Far above any token, key or password.
constexpr std::size_t secret_file_max_bytes = 64u << 10;
}  // namespace

std::optional<SecretReference> SecretReference::parse(std::string_view text) {
    if (text.starts_with("env:")) {
        const std::string_view name = text.substr(4);
        if (name.empty() || (name[0] >= '0' && name[0] <= '9')) {
            return std::nullopt;
        }
        for (char c : name) {
            const bool allowed = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                 (c >= '0' && c <= '9') || c == '_';
            if (!allowed) {
                return std::nullopt;
            }
        }
        return SecretReference(Kind::environment, std::string(name));
    }
    if (text.starts_with("file:") && text.size() > 5) {
        return SecretReference(Kind::file, std::string(text.substr(5)));
    }
    return std::nullopt;
}

std::string SecretReference::text() const {
    return (kind_ == Kind::environment ? "env:" : "file:") + name_;
}

SecretValue::~SecretValue() {
    wipe();
}

SecretValue::SecretValue(SecretValue&& other) noexcept : value_(std::move(other.value_)) {
    other.wipe();
}

SecretValue& SecretValue::operator=(SecretValue&& other) noexcept {
    if (this != &other) {
        wipe();
        value_ = std::move(other.value_);
        other.wipe();
    }
    return *this;
}

void SecretValue::wipe() {
    // OPENSSL_cleanse, unlike memset, is not optimized away before the free. The whole
    // capacity, because a moved-from short string keeps its bytes in its inline buffer.
    OPENSSL_cleanse(value_.data(), value_.capacity());
    value_.clear();
    value_.shrink_to_fit();
}

SecretResolution resolve_secret(const SecretReference& reference) {
    SecretResolution result;
    std::string value;
    if (reference.kind() == SecretReference::Kind::environment) {
        const char* found = std::getenv(reference.name().c_str());
        if (found == nullptr) {
            result.error = reference.text() + ": environment variable is not set";
            return result;
        }
        value = found;
    } else {
        // A secret file is small; a FIFO or a device in its place must not block or
        // fill memory (the error never holds any of the file's bytes).
        TextFileError problem;
        std::optional<std::string> contents =
            read_regular_file(reference.name(), secret_file_max_bytes, problem);
        if (!contents) {
            result.error = reference.text() + ": " + problem.message;
            return result;
        }
        value = std::move(*contents);
        while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) {
            value.pop_back();
        }
    }
    if (value.empty()) {
        result.error = reference.text() + ": the secret is empty";
        return result;
    }
    result.value.emplace(std::move(value));
    // A moved-from short string keeps its bytes in its inline buffer: wipe all of it.
    OPENSSL_cleanse(value.data(), value.capacity());  // NOLINT(bugprone-use-after-move)
    return result;
}

}  // namespace mitigate
