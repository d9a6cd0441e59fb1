#include "plugins/sdk/manifest.h"

#include "plugins/sdk/json_schema.h"

namespace mitigate::plugin {

std::optional<std::string> manifest_problem(const nlohmann::json& manifest) {
    if (!manifest.is_object()) {
        return "manifest: must be a JSON object";
    }
    for (const char* field : {"name", "version"}) {
        if (!manifest.contains(field) || !manifest[field].is_string() ||
            manifest[field].get<std::string>().empty()) {
            return std::string("manifest.") + field + ": a non-empty string is required";
        }
    }
    if (manifest.contains("description") && !manifest["description"].is_string()) {
        return "manifest.description: must be a string";
    }
    if (manifest.contains("egress") && !manifest["egress"].is_object()) {
        return "manifest.egress: must be an object";
    }
    if (!manifest.contains("actions") || !manifest["actions"].is_object() ||
        manifest["actions"].empty()) {
        return "manifest.actions: an object with at least one action is required";
    }
    for (const auto& [name, action] : manifest["actions"].items()) {
        const std::string path = "manifest.actions." + name;
        if (!action.is_object()) {
            return path + ": must be an object";
        }
        for (const char* text : {"description", "target"}) {
            if (action.contains(text) && !action[text].is_string()) {
                return path + "." + text + ": must be a string";
            }
        }
        if (action.contains("parameters")) {
            if (auto problem = schema_problem(action["parameters"], path + ".parameters")) {
                return problem;
            }
        }
    }
    if (manifest.contains("settings")) {
        if (auto problem = schema_problem(manifest["settings"], "manifest.settings")) {
            return problem;
        }
    }
    return std::nullopt;
}

}  // namespace mitigate::plugin
