// Where the flags provider keeps a flag: one implementation per backend. A backend's
// state is a small JSON object of the fields mitigate may change:
//   flagd         {"state": "ENABLED", "defaultVariant": "on"}
//   unleash       {"enabled": true}
//   launchdarkly  {"on": true, "fallthrough": "<variation name or value>"}
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "plugins/sdk/provider.h"

namespace mitigate::plugin {

class FlagBackend {
  public:
    virtual ~FlagBackend() = default;
    virtual json read(const std::string& flag) = 0;
    // The fields `set` changes for these parameters, given the current state.
    virtual json desired_state(const std::string& flag, const json& parameters,
                               const json& state) = 0;
    virtual json kill_switch_state(const json& state) = 0;
    // Sets `to`; refuses with a conflict when the flag no longer holds `from` (as far
    // as the backend can tell: the flagd file is checked atomically, the APIs right
    // before the write).
    virtual void write(const std::string& flag, const json& from, const json& to) = 0;
    // The flag as one name across spellings and actions: backend, where, and key.
    virtual std::string resource(const std::string& flag) const = 0;
    // See Action::settle_margin.
    virtual std::chrono::milliseconds settle_margin() const = 0;
};

std::unique_ptr<FlagBackend> make_flag_backend(const json& settings, const Host& host);

}  // namespace mitigate::plugin
