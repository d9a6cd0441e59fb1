// The provider contract as JSON, both ways, in one place: the requests the runtime sends a
// plugin for each operation, and the strict reading of its answers. An answer that is not
// exactly what the contract says (a missing field, a wrong type, an unknown field) is a
// typed failure (`internal`: a bug in the plugin) that names the field; it never throws.
//
//   plan    {"operation":"plan","action","target","parameters"} ->
//           {"observed_state","forward","inverse","blast_radius","idempotency_key",
//            "reversible"}
//   apply   {"operation":"apply","action","target","plan"} -> {"applied":true,"changed"}
//   check   {"operation":"check","action","target","plan"} -> {"applied","state"?}
//   revert  {"operation":"revert","action","target","plan"} -> {"reverted":true,"changed"}
//   state   {"operation":"state","target"} -> {"state"}
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "runtime/core/clock.h"
#include "runtime/providers/providers.h"

namespace mitigate {

nlohmann::json plugin_plan_request(const Action& action);
// apply, check and revert carry the plan.
nlohmann::json plugin_plan_operation_request(std::string_view operation, const Action& action,
                                             const Plan& plan);
nlohmann::json plugin_state_request(const std::string& target);

// Each reads the result of one call; a failed call keeps its status and error.
ProviderAnswer<Plan> read_plan_answer(const PluginCallResult& result, const Action& action);
ProviderAnswer<Applied> read_apply_answer(const PluginCallResult& result);
ProviderAnswer<Checked> read_check_answer(const PluginCallResult& result);
ProviderAnswer<Reverted> read_revert_answer(const PluginCallResult& result);
ProviderAnswer<nlohmann::json> read_state_answer(const PluginCallResult& result);

}  // namespace mitigate
