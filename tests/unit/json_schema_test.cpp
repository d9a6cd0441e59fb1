// The JSON Schema subset plugin manifests use, and the manifest check the runtime applies
// to what a plugin reports about itself.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "plugins/sdk/json_schema.h"
#include "plugins/sdk/manifest.h"

namespace mitigate::plugin {
namespace {

using nlohmann::json;

const json parameters = json::parse(R"({
  "type": "object",
  "properties": {
    "variant": {"type": "string", "minLength": 1},
    "value": {},
    "limit": {"type": "integer", "minimum": 1, "maximum": 100000},
    "mode": {"enum": ["soft", "hard"]},
    "hosts": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
  },
  "additionalProperties": false,
  "oneOf": [{"required": ["variant"]}, {"required": ["value"]}]
})");

std::string violation(const json& value) {
    return schema_violation(value, parameters, "parameters").value_or("");
}

TEST(JsonSchema, AcceptsWhatTheSchemaAllows) {
    EXPECT_EQ(violation({{"variant", "off"}}), "");
    EXPECT_EQ(violation({{"value", false}, {"limit", 5}, {"mode", "soft"}}), "");
    EXPECT_EQ(violation({{"value", nullptr}, {"hosts", {"a", "b"}}}), "");
}

TEST(JsonSchema, NamesTheFieldThatIsWrong) {
    EXPECT_EQ(violation({{"variant", 3}}), "parameters.variant: must be string, not 3");
    EXPECT_EQ(violation({{"variant", ""}}), "parameters.variant: must have at least 1 characters");
    EXPECT_EQ(violation({{"value", 1}, {"limit", 0}}), "parameters.limit: must be at least 1");
    EXPECT_EQ(violation({{"value", 1}, {"limit", 2.5}}),
              "parameters.limit: must be integer, not 2.5");
    EXPECT_EQ(violation({{"value", 1}, {"mode", "medium"}}),
              "parameters.mode: must be one of [\"soft\",\"hard\"], not \"medium\"");
    EXPECT_EQ(violation({{"value", 1}, {"hosts", {"a", 2}}}),
              "parameters.hosts[1]: must be string, not 2");
    EXPECT_EQ(violation({{"value", 1}, {"hosts", {"a", "b", "c"}}}),
              "parameters.hosts: must have at most 2 items");
    EXPECT_EQ(violation({{"value", 1}, {"colour", "red"}}),
              "parameters.colour: unknown field (known: hosts, limit, mode, value, variant)");
    EXPECT_EQ(violation(json::object()), "parameters.variant: is required");
    EXPECT_EQ(violation({{"variant", "off"}, {"value", 1}}),
              "parameters: matches more than one of the allowed forms");
    EXPECT_EQ(violation(json::array()), "parameters: must be object, not []");
}

TEST(JsonSchema, RefusesKeywordsItDoesNotEnforce) {
    EXPECT_EQ(schema_problem(parameters, "schema"), std::nullopt);
    EXPECT_EQ(schema_problem(json{{"type", "string"}, {"pattern", "^a"}}, "schema").value_or(""),
              "schema.pattern: schema keyword not supported");
    EXPECT_EQ(
        schema_problem(json{{"properties", {{"x", {{"format", "uri"}}}}}}, "schema").value_or(""),
        "schema.properties.x.format: schema keyword not supported");
}

TEST(Manifest, RequiresNameVersionAndValidActionSchemas) {
    const json good{{"name", "flags"},
                    {"version", "1.0.0"},
                    {"actions", {{"flag.set", {{"parameters", parameters}}}}}};
    EXPECT_EQ(manifest_problem(good), std::nullopt);
    json unnamed = good;
    unnamed.erase("name");
    EXPECT_EQ(manifest_problem(unnamed).value_or(""),
              "manifest.name: a non-empty string is required");
    json no_actions = good;
    no_actions["actions"] = json::object();
    EXPECT_EQ(manifest_problem(no_actions).value_or(""),
              "manifest.actions: an object with at least one action is required");
    json bad_schema = good;
    bad_schema["actions"]["flag.set"]["parameters"] = {{"type", "object"}, {"$ref", "#/x"}};
    EXPECT_EQ(manifest_problem(bad_schema).value_or(""),
              "manifest.actions.flag.set.parameters.$ref: schema keyword not supported");
    EXPECT_EQ(manifest_problem(json::array()).value_or(""), "manifest: must be a JSON object");
}

TEST(Manifest, MistypedFieldsAndKeywordArgumentsAreProblemsNeverExceptions) {
    const json good{{"name", "flags"},
                    {"version", "1.0.0"},
                    {"actions", {{"flag.set", {{"parameters", parameters}}}}}};
    const std::vector<std::pair<json, std::string>> cases{
        {{{"oneOf", 5}}, "oneOf: not a valid argument"},
        {{{"oneOf", "x"}}, "oneOf: not a valid argument"},
        {{{"properties", 5}}, "properties: not a valid argument"},
        {{{"required", {1, 2}}}, "required: not a valid argument"},
        {{{"type", {{"a", 1}}}}, "type: not a valid argument"},
        {{{"minLength", -1}}, "minLength: not a valid argument"},
        {{{"items", true}}, "items: not a valid argument"},
        {{{"enum", 3}}, "enum: not a valid argument"},
    };
    for (const auto& [schema, problem] : cases) {
        json manifest = good;
        manifest["actions"]["flag.set"]["parameters"] = schema;
        EXPECT_THAT(manifest_problem(manifest).value_or(""), ::testing::HasSubstr(problem))
            << schema;
    }
    json description = good;
    description["description"] = 5;
    EXPECT_EQ(manifest_problem(description).value_or(""), "manifest.description: must be a string");
    json action_description = good;
    action_description["actions"]["flag.set"]["description"] = json::array();
    EXPECT_THAT(manifest_problem(action_description).value_or(""),
                ::testing::HasSubstr("description: must be a string"));
}

}  // namespace
}  // namespace mitigate::plugin
