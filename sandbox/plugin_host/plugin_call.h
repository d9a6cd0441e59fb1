// How one call of the provider contract ended, as the runtime sees it: the plugin's own
// status (plugins/sdk/mitigate_plugin.h) or what happened to its process. Shared by the
// plugin host (plugin_process.h) and the engine's provider seam (runtime/providers).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace mitigate {

enum class PluginCallStatus {
    ok,
    invalid,      // MITIGATE_INVALID: bad target or parameters
    conflict,     // MITIGATE_CONFLICT: live state is not what the operation expects
    provider,     // MITIGATE_PROVIDER: the provider refused or failed
    unavailable,  // MITIGATE_UNAVAILABLE: transient, may be retried
    internal,     // MITIGATE_INTERNAL: a bug in the plugin
    crashed,      // the worker died, sent garbage or an oversized frame; it was killed
    timeout,      // no answer by the deadline; the worker was killed
    refused,      // the worker could not start (unsafe file, ABI, confinement, load)
    backoff,      // a restart is not due yet
    circuit_open  // the plugin kept failing; not called
};

std::string_view to_string(PluginCallStatus status);

struct PluginCallResult {
    PluginCallStatus status = PluginCallStatus::internal;
    nlohmann::json response;  // set when ok
    std::string error;        // set otherwise
    bool ok() const { return status == PluginCallStatus::ok; }
};

}  // namespace mitigate
