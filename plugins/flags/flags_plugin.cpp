// The `flags` provider: flips feature flags on one of three backends, chosen by
// settings.backend:
//   flagd         a flagd flag-definition file, read and replaced through the runtime
//                 (the plugin cannot write files itself): the embedded default
//   unleash       the Unleash admin API, one environment's toggle
//   launchdarkly  the LaunchDarkly REST API with semantic patches
//
// Actions (the target is the flag key; named resource.verb like every provider's):
//   flag.set     {"variant": "off"} or {"value": false}: what the flag serves.
//                flagd: defaultVariant (by name, or the variant whose value matches);
//                unleash: {"value": true|false} turns the environment on or off;
//                launchdarkly: variant = the fallthrough variation (by name or value),
//                value true|false turns targeting on or off.
//   flag.kill_switch  {}: the flag off at the platform (flagd state DISABLED, Unleash
//                environment off, LaunchDarkly targeting off, serving its off variation).
// Reverts restore exactly the fields the change set, and only while they still hold the
// values mitigate set (plugins/sdk/provider.h). mitigate.state("flags", KEY) is the
// backend's state of the flag.
#include <memory>

#include "plugins/flags/flag_backend.h"
#include "plugins/sdk/provider.h"

namespace mitigate::plugin {
namespace {

const json set_parameters = json::parse(R"json({
  "type": "object",
  "properties": {
    "variant": {"type": "string", "minLength": 1, "description": "the variant to serve"},
    "value": {"description": "serve the variant with this value (flagd, launchdarkly), or turn the flag on/off (true/false)"}
  },
  "additionalProperties": false,
  "oneOf": [{"required": ["variant"]}, {"required": ["value"]}]
})json");

const json kill_switch_parameters = json::parse(R"json({
  "type": "object", "properties": {}, "additionalProperties": false
})json");

const json settings_schema = json::parse(R"json({
  "type": "object",
  "properties": {
    "backend": {"enum": ["flagd", "unleash", "launchdarkly"]},
    "path": {"type": "string", "minLength": 1, "description": "flagd: the flag file (also on egress.allow_files)"},
    "url": {"type": "string", "minLength": 1, "description": "unleash, launchdarkly: the API base URL"},
    "project": {"type": "string", "minLength": 1},
    "environment": {"type": "string", "minLength": 1},
    "credential": {"type": "string", "minLength": 1, "description": "the credential profile for the API"}
  },
  "required": ["backend"],
  "additionalProperties": false
})json");

std::string describe(const json& state) {
    std::string text;
    for (const auto& [key, value] : state.items()) {
        text += (text.empty() ? "" : ", ") + key + " " + value.dump();
    }
    return text;
}

class FlagAction : public Action {
  public:
    FlagAction(std::unique_ptr<FlagBackend>& backend, bool kill_switch)
        : backend_(backend), kill_switch_(kill_switch) {}

    json read(const std::string& target) override { return backend().read(target); }

    PlannedChange plan(const std::string& target, const json& parameters,
                       const json& state) override {
        PlannedChange change;
        change.forward = kill_switch_ ? backend().kill_switch_state(state)
                                      : backend().desired_state(target, parameters, state);
        change.inverse = json::object();
        for (const auto& [key, value] : change.forward.items()) {
            if (!state.contains(key)) {
                fail_provider("the state of " + target + " has no \"" + key + "\"");
            }
            change.inverse[key] = state[key];
        }
        change.blast_ratio = 1.0;  // every evaluation of the flag is affected
        change.blast_description = target + ": " + describe(change.inverse) + " -> " +
                                   describe(change.forward) + " (every evaluation of the flag)";
        return change;
    }

    void write(const std::string& target, const json& from, const json& to) override {
        backend().write(target, from, to);
    }

    // flag.set and flag.kill_switch on one flag change one resource.
    std::string resource(const std::string& target) override { return backend().resource(target); }

    std::chrono::milliseconds settle_margin() const override { return backend().settle_margin(); }

  private:
    FlagBackend& backend() const {
        if (!backend_) {
            fail_invalid("the flags provider is not configured");
        }
        return *backend_;
    }
    std::unique_ptr<FlagBackend>& backend_;
    bool kill_switch_;
};

class FlagsProvider : public Provider {
  public:
    json manifest() const override {
        return {{"name", "flags"},
                {"version", "1.0.0"},
                {"description",
                 "Feature flags on a flagd file, Unleash or LaunchDarkly: serve another "
                 "variant, or switch a flag off"},
                {"actions",
                 {{"flag.set",
                   {{"description", "serve another variant or value"},
                    {"target", "the flag key"},
                    {"parameters", set_parameters}}},
                  {"flag.kill_switch",
                   {{"description", "switch the flag off at the platform"},
                    {"target", "the flag key"},
                    {"parameters", kill_switch_parameters}}}}},
                {"settings", settings_schema},
                {"egress",
                 {{"hosts", "the unleash or launchdarkly API host (settings.url)"},
                  {"files", "the flagd file (settings.path)"},
                  {"credentials",
                   "unleash: api_key with header Authorization (an admin token); "
                   "launchdarkly: api_key with header Authorization (an API access token)"}}}};
    }

    void configure(const json& settings, const Host& host) override {
        backend_ = make_flag_backend(settings, host);
    }

    // mitigate.state("flags", KEY): the flag as flag.set reads it.
    json state(const std::string& target) override { return set_.read(target); }

    Action* action(const std::string& name) override {
        if (name == "flag.set") {
            return &set_;
        }
        if (name == "flag.kill_switch") {
            return &kill_switch_;
        }
        return nullptr;
    }

  private:
    std::unique_ptr<FlagBackend> backend_;
    FlagAction set_{backend_, false};
    FlagAction kill_switch_{backend_, true};
};

}  // namespace
}  // namespace mitigate::plugin

MITIGATE_PLUGIN(mitigate::plugin::FlagsProvider)
