// A LaunchDarkly REST API emulator on loopback, strict where the real service is:
//   GET   /api/v2/flags/{project}/{flag}[?env=E]    the flag, as LaunchDarkly returns it
//   PATCH /api/v2/flags/{project}/{flag}            semantic patch only:
//         Content-Type: application/json; domain-model=launchdarkly.semanticpatch
//         {"environmentKey": "...", "comment": "...", "instructions": [{"kind": ...}]}
//         kinds: turnFlagOn, turnFlagOff,
//                updateFallthroughVariationOrRollout {"variationId": "<_id>"}
// Every request needs `Authorization: <access token>` (the raw token, no "Bearer").
// Errors are LaunchDarkly's shape, {"code": "...", "message": "..."}, with 400, 401, 404.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace mitigate {

class LaunchDarklyEmulator {
  public:
    explicit LaunchDarklyEmulator(std::string access_token);
    ~LaunchDarklyEmulator();
    LaunchDarklyEmulator(const LaunchDarklyEmulator&) = delete;
    LaunchDarklyEmulator& operator=(const LaunchDarklyEmulator&) = delete;

    std::string url() const;

    // A boolean flag with variations "on" (true) and "off" (false), in `environment`,
    // targeting `on`, serving "on" by fallthrough and "off" when off.
    void add_boolean_flag(const std::string& project, const std::string& flag,
                          const std::string& environment, bool on);
    // As a person in the LaunchDarkly UI would: no semantic patch, no token.
    void set_on(const std::string& project, const std::string& flag, const std::string& environment,
                bool on);
    nlohmann::json flag(const std::string& project, const std::string& flag) const;
    int patches() const;  // successful PATCH requests

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace mitigate
