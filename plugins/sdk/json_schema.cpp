#include "plugins/sdk/json_schema.h"

#include <algorithm>

#include <set>

namespace mitigate::plugin {
namespace {

using nlohmann::json;

bool has_type(const json& value, const std::string& type) {
    if (type == "object") {
        return value.is_object();
    }
    if (type == "array") {
        return value.is_array();
    }
    if (type == "string") {
        return value.is_string();
    }
    if (type == "integer") {
        return value.is_number_integer();
    }
    if (type == "number") {
        return value.is_number();
    }
    if (type == "boolean") {
        return value.is_boolean();
    }
    if (type == "null") {
        return value.is_null();
    }
    return false;
}

std::string describe_types(const json& types) {
    if (types.is_string()) {
        return types.get<std::string>();
    }
    std::string text;
    for (const auto& type : types) {
        text += (text.empty() ? "" : " or ") + type.get<std::string>();
    }
    return text;
}

std::string child(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
}

}  // namespace

std::optional<std::string> schema_violation(const json& value, const json& schema,
                                            const std::string& path) {
    const std::string where = path.empty() ? "value" : path;
    if (schema.contains("type")) {
        const json& types = schema["type"];
        bool matched = false;
        if (types.is_string()) {
            matched = has_type(value, types.get<std::string>());
        } else {
            for (const auto& type : types) {
                matched = matched || has_type(value, type.get<std::string>());
            }
        }
        if (!matched) {
            return where + ": must be " + describe_types(types) + ", not " + value.dump();
        }
    }
    if (schema.contains("const") && value != schema["const"]) {
        return where + ": must be " + schema["const"].dump();
    }
    if (schema.contains("enum")) {
        bool listed = false;
        for (const auto& option : schema["enum"]) {
            listed = listed || option == value;
        }
        if (!listed) {
            return where + ": must be one of " + schema["enum"].dump() + ", not " + value.dump();
        }
    }
    if (value.is_number()) {
        const double number = value.get<double>();
        if (schema.contains("minimum") && number < schema["minimum"].get<double>()) {
            return where + ": must be at least " + schema["minimum"].dump();
        }
        if (schema.contains("maximum") && number > schema["maximum"].get<double>()) {
            return where + ": must be at most " + schema["maximum"].dump();
        }
    }
    if (value.is_string()) {
        const auto length = value.get_ref<const std::string&>().size();
        if (schema.contains("minLength") && length < schema["minLength"].get<std::size_t>()) {
            return where + ": must have at least " + schema["minLength"].dump() + " characters";
        }
        if (schema.contains("maxLength") && length > schema["maxLength"].get<std::size_t>()) {
            return where + ": must have at most " + schema["maxLength"].dump() + " characters";
        }
    }
    if (value.is_array()) {
        if (schema.contains("minItems") && value.size() < schema["minItems"].get<std::size_t>()) {
            return where + ": must have at least " + schema["minItems"].dump() + " items";
        }
        if (schema.contains("maxItems") && value.size() > schema["maxItems"].get<std::size_t>()) {
            return where + ": must have at most " + schema["maxItems"].dump() + " items";
        }
        if (schema.contains("items")) {
            for (std::size_t index = 0; index < value.size(); ++index) {
                if (auto problem = schema_violation(value[index], schema["items"],
                                                    where + "[" + std::to_string(index) + "]")) {
                    return problem;
                }
            }
        }
    }
    if (value.is_object()) {
        for (const auto& name : schema.value("required", json::array())) {
            if (!value.contains(name.get<std::string>())) {
                return child(path, name.get<std::string>()) + ": is required";
            }
        }
        const json properties = schema.value("properties", json::object());
        for (const auto& [key, member] : value.items()) {
            if (properties.contains(key)) {
                if (auto problem = schema_violation(member, properties[key], child(path, key))) {
                    return problem;
                }
                continue;
            }
            if (!schema.contains("additionalProperties")) {
                continue;
            }
            const json& additional = schema["additionalProperties"];
            if (additional.is_boolean() && !additional.get<bool>()) {
                std::string known;
                for (const auto& [name, unused] : properties.items()) {
                    known += (known.empty() ? "" : ", ") + name;
                }
                return child(path, key) + ": unknown field (known: " + known + ")";
            }
            if (additional.is_object()) {
                if (auto problem = schema_violation(member, additional, child(path, key))) {
                    return problem;
                }
            }
        }
    }
    if (schema.contains("oneOf")) {
        int holding = 0;
        std::string first_problem;
        for (const auto& branch : schema["oneOf"]) {
            if (auto problem = schema_violation(value, branch, path)) {
                if (first_problem.empty()) {
                    first_problem = *problem;
                }
            } else {
                ++holding;
            }
        }
        if (holding != 1) {
            return holding == 0 ? first_problem
                                : where + ": matches more than one of the allowed forms";
        }
    }
    return std::nullopt;
}

std::optional<std::string> schema_problem(const json& schema, const std::string& path) {
    static const std::set<std::string> known{
        "type",     "properties", "required",    "additionalProperties",
        "items",    "enum",       "const",       "minimum",
        "maximum",  "minLength",  "maxLength",   "minItems",
        "maxItems", "oneOf",      "description", "title",
        "default",  "examples"};
    if (!schema.is_object()) {
        return path + ": a schema must be an object";
    }
    for (const auto& [keyword, argument] : schema.items()) {
        if (!known.contains(keyword)) {
            return path + "." + keyword + ": schema keyword not supported";
        }
        // Each keyword's argument has one shape; anything else is refused here, so that
        // validating against the schema later never meets a surprise (a manifest is a
        // plugin's output: untrusted).
        const auto all_strings = [](const json& list) {
            return list.is_array() && std::all_of(list.begin(), list.end(), [](const json& item) {
                       return item.is_string();
                   });
        };
        const bool shaped =
            keyword == "type"                   ? argument.is_string() || all_strings(argument)
            : keyword == "properties"           ? argument.is_object()
            : keyword == "required"             ? all_strings(argument)
            : keyword == "additionalProperties" ? argument.is_boolean() || argument.is_object()
            : keyword == "items"                ? argument.is_object()
            : keyword == "enum" || keyword == "oneOf" || keyword == "examples" ? argument.is_array()
            : keyword == "minimum" || keyword == "maximum" ? argument.is_number()
            : keyword == "minLength" || keyword == "maxLength" || keyword == "minItems" ||
                    keyword == "maxItems"
                ? argument.is_number_unsigned()
            : keyword == "description" || keyword == "title" ? argument.is_string()
                                                             : true;  // default, const: any
        if (!shaped) {
            return path + "." + keyword + ": not a valid argument for this keyword (a " +
                   argument.type_name() + ")";
        }
        if (keyword == "properties") {
            for (const auto& [name, member] : argument.items()) {
                if (auto problem = schema_problem(member, path + ".properties." + name)) {
                    return problem;
                }
            }
        } else if ((keyword == "items" || keyword == "additionalProperties") &&
                   argument.is_object()) {
            if (auto problem = schema_problem(argument, path + "." + keyword)) {
                return problem;
            }
        } else if (keyword == "oneOf") {
            for (std::size_t index = 0; index < argument.size(); ++index) {
                if (auto problem = schema_problem(argument[index],
                                                  path + ".oneOf[" + std::to_string(index) + "]")) {
                    return problem;
                }
            }
        }
    }
    return std::nullopt;
}

}  // namespace mitigate::plugin
