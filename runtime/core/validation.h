// How bad input is reported everywhere: every problem found, each naming the field it is
// about ("proposal.action.ttl"), never just the first one and never a bare "invalid".
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mitigate {

struct FieldError {
    std::string field;    // dotted path, with [i] for list elements: "approvals[1].at"
    std::string message;  // what is wrong and, where useful, what is expected
};

// One line per error: "field: message".
std::string describe(const std::vector<FieldError>& errors);

// The result of parsing untrusted input: a value, or the errors that prevented it.
template <typename T>
struct Parsed {
    std::optional<T> value;
    std::vector<FieldError> errors;

    explicit operator bool() const { return value.has_value(); }
    const T& operator*() const { return *value; }
    const T* operator->() const { return &*value; }
};

// Thrown where invalid data is a bug (data we wrote ourselves no longer parses).
class ValidationError : public std::runtime_error {
  public:
    ValidationError(const std::string& context, std::vector<FieldError> errors);
    const std::vector<FieldError>& errors() const { return errors_; }

  private:
    std::vector<FieldError> errors_;
};

// Unwraps a Parsed<T>, throwing ValidationError (with context) when it holds errors.
template <typename T>
T value_or_throw(Parsed<T> parsed, std::string context) {
    if (!parsed.value) {
        throw ValidationError(std::move(context), std::move(parsed.errors));
    }
    return std::move(*parsed.value);
}

}  // namespace mitigate
