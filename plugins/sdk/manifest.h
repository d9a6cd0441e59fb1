// What a plugin manifest must look like (mitigate_plugin.h documents it). The runtime
// checks every manifest it receives with this before it uses one: a plugin's output is
// untrusted input like any other.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace mitigate::plugin {

// The first problem, naming the field ("manifest.actions.flag.set.parameters.type: ..."),
// or none.
std::optional<std::string> manifest_problem(const nlohmann::json& manifest);

}  // namespace mitigate::plugin
