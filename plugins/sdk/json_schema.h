// Checks a JSON value against the subset of JSON Schema that plugin manifests use for
// action parameters and provider settings. No C++ JSON Schema validator is packaged in
// Debian, and manifests need only this much:
//   type (object, array, string, integer, number, boolean, null, or a list of them),
//   properties, required, additionalProperties (false or a schema), items, enum, const,
//   minimum, maximum, minLength, maxLength, minItems, maxItems, oneOf (exactly one
//   branch must hold), description and title (ignored).
// Any other keyword is refused when the schema itself is checked, so that a manifest
// never believes it is protected by a keyword nobody enforces.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace mitigate::plugin {

// The first violation, naming the path ("parameters.variant: must be a string"), or none.
std::optional<std::string> schema_violation(const nlohmann::json& value,
                                            const nlohmann::json& schema, const std::string& path);

// Problems with a schema itself (unknown keywords, wrong keyword types), or none.
std::optional<std::string> schema_problem(const nlohmann::json& schema, const std::string& path);

}  // namespace mitigate::plugin
