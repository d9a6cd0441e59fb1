// Readable GoogleTest output for project types (gtest finds PrintTo by argument lookup).
#pragma once

#include <ostream>

#include "runtime/config/config.h"
#include "runtime/core/validation.h"

namespace mitigate {

inline void PrintTo(const ConfigError& error, std::ostream* out) {
    *out << error.to_string();
}

inline void PrintTo(const FieldError& error, std::ostream* out) {
    *out << error.field << ": " << error.message;
}

}  // namespace mitigate
