#include "runtime/core/validation.h"

namespace mitigate {

std::string describe(const std::vector<FieldError>& errors) {
    std::string text;
    for (const auto& error : errors) {
        if (!text.empty()) {
            text += '\n';
        }
        text += error.field.empty() ? error.message : error.field + ": " + error.message;
    }
    return text;
}

ValidationError::ValidationError(const std::string& context, std::vector<FieldError> errors)
    : std::runtime_error(context + ":\n" + describe(errors)), errors_(std::move(errors)) {}

}  // namespace mitigate
