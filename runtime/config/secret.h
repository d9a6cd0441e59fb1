// Secrets in configuration are references, never values: "env:SLACK_BOT_TOKEN" or
// "file:/run/secrets/slack". A reference is harmless to print, log, store or audit; the
// value is read only at the moment of use, into a SecretValue, which cannot be printed,
// serialized or copied by accident and is wiped from memory when it goes away.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mitigate {

class SecretReference {
  public:
    enum class Kind { environment, file };

    // Accepts "env:NAME" (NAME: letters, digits, underscore; not starting with a digit)
    // and "file:PATH" (non-empty). Anything else, including a literal secret, is refused
    // and the refusal never repeats the text it was given.
    static std::optional<SecretReference> parse(std::string_view text);

    Kind kind() const { return kind_; }
    const std::string& name() const { return name_; }  // variable name or file path
    std::string text() const;                          // "env:NAME" / "file:PATH"
    bool operator==(const SecretReference&) const = default;

  private:
    SecretReference(Kind kind, std::string name) : kind_(kind), name_(std::move(name)) {}
    Kind kind_;
    std::string name_;
};

class SecretValue {
  public:
    explicit SecretValue(std::string value) : value_(std::move(value)) {}
    ~SecretValue();
    SecretValue(SecretValue&& other) noexcept;
    SecretValue& operator=(SecretValue&& other) noexcept;
    SecretValue(const SecretValue&) = delete;
    SecretValue& operator=(const SecretValue&) = delete;

    // The only way to the bytes. Call it where the secret is used (an HTTP header being
    // built, an HMAC key) and nowhere else.
    std::string_view reveal() const { return value_; }

  private:
    void wipe();
    std::string value_;
};

struct SecretResolution {
    std::optional<SecretValue> value;
    std::string error;  // names the reference, never the value
};

// Reads the value behind a reference. A file's trailing newline is dropped (editors add
// one); an empty value is an error, because an empty token is never what was meant.
SecretResolution resolve_secret(const SecretReference& reference);

}  // namespace mitigate
