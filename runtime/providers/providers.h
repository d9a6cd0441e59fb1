// The engine's view of providers: the five operations of the provider contract
// (plugins/sdk/mitigate_plugin.h), typed. ProviderRegistry implements it over confined
// plugin processes, speaking the JSON protocol of plugin_protocol.h; tests implement it in
// memory (tests/support/fake_providers.h) to drive the whole engine without processes.
//
// Failures are values: every answer says how the call ended (PluginCallStatus) and, when
// it did not succeed, why in words. An implementation never throws for anything a provider
// or a plugin does; an exception out of one is a bug in mitigate, and the engine contains
// it to the one mitigation it was working on.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "runtime/core/model.h"
#include "sandbox/plugin_host/plugin_call.h"

namespace mitigate {

template <class T>
struct ProviderAnswer {
    PluginCallStatus status = PluginCallStatus::internal;
    T value{};          // meaningful when ok()
    std::string error;  // set otherwise
    bool ok() const { return status == PluginCallStatus::ok; }
};

struct Applied {
    bool changed = true;  // false: the change was already there (a retried apply)
};

struct Checked {
    bool applied = false;  // the live state is the plan's forward state
};

struct Reverted {
    bool changed = true;  // false: the inverse was already there
};

class Providers {
  public:
    virtual ~Providers() = default;

    // Reads the target and plans the change; the plan's planned_at is the caller's to set.
    virtual ProviderAnswer<Plan> plan(const Action& action) = 0;
    virtual ProviderAnswer<Applied> apply(const Action& action, const Plan& plan) = 0;
    virtual ProviderAnswer<Checked> check(const Action& action, const Plan& plan) = 0;
    // Compare-and-set: `conflict` when the live state is no longer what apply set.
    virtual ProviderAnswer<Reverted> revert(const Action& action, const Plan& plan) = 0;
    // The provider's read-only view of a target, for playbooks (mitigate.state()).
    virtual ProviderAnswer<nlohmann::json> state(const std::string& provider,
                                                 const std::string& target) = 0;
};

// A failure after which a change may or may not have happened: only reading the target
// again can tell.
bool outcome_unknown(PluginCallStatus status);

}  // namespace mitigate
