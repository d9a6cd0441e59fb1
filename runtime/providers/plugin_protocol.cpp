#include "runtime/providers/plugin_protocol.h"

#include <vector>

#include "runtime/core/json_reader.h"
#include "runtime/core/time_format.h"

namespace mitigate {
namespace {

using nlohmann::json;

template <class T>
ProviderAnswer<T> failed(const PluginCallResult& result) {
    return {result.status, T{}, result.error};
}

template <class T>
ProviderAnswer<T> malformed(const std::string& operation, const std::vector<FieldError>& errors) {
    return {
        PluginCallStatus::internal, T{},
        "the plugin's " + operation + " answer breaks the provider contract: " + describe(errors)};
}

}  // namespace

bool outcome_unknown(PluginCallStatus status) {
    return status == PluginCallStatus::crashed || status == PluginCallStatus::timeout ||
           status == PluginCallStatus::unavailable || status == PluginCallStatus::internal;
}

json plugin_plan_request(const Action& action) {
    return {{"operation", "plan"},
            {"action", action.action},
            {"target", action.target},
            {"parameters", action.parameters}};
}

json plugin_plan_operation_request(std::string_view operation, const Action& action,
                                   const Plan& plan) {
    return {{"operation", operation},
            {"action", action.action},
            {"target", action.target},
            {"plan", plan}};
}

json plugin_state_request(const std::string& target) {
    return {{"operation", "state"}, {"target", target}};
}

ProviderAnswer<Plan> read_plan_answer(const PluginCallResult& result, const Action& action) {
    if (!result.ok()) {
        return failed<Plan>(result);
    }
    if (!result.response.is_object()) {
        return malformed<Plan>("plan", {{"answer", "must be a JSON object"}});
    }
    // planned_at is the runtime's to stamp; a placeholder lets the one strict plan reader
    // check everything else.
    json answer = result.response;
    answer["planned_at"] = format_rfc3339(TimePoint{});
    Parsed<Plan> parsed = parse_plan(answer, "answer");
    if (!parsed) {
        return {PluginCallStatus::internal, Plan{},
                "the " + action.provider +
                    " plugin returned an invalid plan: " + describe(parsed.errors)};
    }
    return {PluginCallStatus::ok, std::move(*parsed.value), ""};
}

ProviderAnswer<Applied> read_apply_answer(const PluginCallResult& result) {
    if (!result.ok()) {
        return failed<Applied>(result);
    }
    std::vector<FieldError> errors;
    JsonObjectReader reader(result.response, "answer", errors);
    const json* applied = reader.member("applied", Presence::required);
    if (applied != nullptr && *applied != json(true)) {
        reader.add_error("applied", "must be true (a refusal is a failure status, not false)");
    }
    Applied value;
    if (const json* changed = reader.member("changed", Presence::required)) {
        if (changed->is_boolean()) {
            value.changed = changed->get<bool>();
        } else {
            reader.add_error("changed", "must be true or false");
        }
    }
    reader.reject_unknown_fields();
    if (!errors.empty()) {
        return malformed<Applied>("apply", errors);
    }
    return {PluginCallStatus::ok, value, ""};
}

ProviderAnswer<Checked> read_check_answer(const PluginCallResult& result) {
    if (!result.ok()) {
        return failed<Checked>(result);
    }
    std::vector<FieldError> errors;
    JsonObjectReader reader(result.response, "answer", errors);
    Checked value;
    if (const json* applied = reader.member("applied", Presence::required)) {
        if (applied->is_boolean()) {
            value.applied = applied->get<bool>();
        } else {
            reader.add_error("applied", "must be true or false");
        }
    }
    reader.member("state", Presence::optional);  // the live state, for people; any JSON
    reader.reject_unknown_fields();
    if (!errors.empty()) {
        return malformed<Checked>("check", errors);
    }
    return {PluginCallStatus::ok, value, ""};
}

ProviderAnswer<Reverted> read_revert_answer(const PluginCallResult& result) {
    if (!result.ok()) {
        return failed<Reverted>(result);
    }
    std::vector<FieldError> errors;
    JsonObjectReader reader(result.response, "answer", errors);
    const json* reverted = reader.member("reverted", Presence::required);
    if (reverted != nullptr && *reverted != json(true)) {
        reader.add_error("reverted", "must be true (a refusal is a failure status, not false)");
    }
    Reverted value;
    if (const json* changed = reader.member("changed", Presence::required)) {
        if (changed->is_boolean()) {
            value.changed = changed->get<bool>();
        } else {
            reader.add_error("changed", "must be true or false");
        }
    }
    reader.reject_unknown_fields();
    if (!errors.empty()) {
        return malformed<Reverted>("revert", errors);
    }
    return {PluginCallStatus::ok, value, ""};
}

ProviderAnswer<json> read_state_answer(const PluginCallResult& result) {
    if (!result.ok()) {
        return failed<json>(result);
    }
    std::vector<FieldError> errors;
    JsonObjectReader reader(result.response, "answer", errors);
    const json* state = reader.member("state", Presence::required);
    reader.reject_unknown_fields();
    if (!errors.empty()) {
        return malformed<json>("state", errors);
    }
    return {PluginCallStatus::ok, state != nullptr ? *state : json(), ""};
}

}  // namespace mitigate
