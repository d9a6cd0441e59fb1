// Providers in memory, for driving the whole engine in a unit test with no process: each
// provider holds a value per target, and one action, "set", changes a target's value to
// parameters.value with the exact inverse. What a real provider does to the engine can be
// scripted per operation and target: fail with a status, answer something that breaks the
// provider contract (read by the real protocol reader), throw (a bug), or hang until
// released (a provider that does not answer).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/providers/providers.h"

namespace mitigate::testing {

enum class FakeFault {
    unavailable,  // a transient failure (PluginCallStatus::unavailable)
    conflict,     // the live state is not what the operation expects
    provider,     // the provider refused
    malformed,    // an answer with a field of the wrong type, through the real reader
    throw_error,  // an exception out of the call: a bug in mitigate
    hang,         // no answer until release(), then unavailable
    hold,         // no answer until release(), then the call goes on as usual
    lost_answer,  // the operation took effect, then the answer was lost (timeout)
    late_write,   // the answer was lost (timeout) and the write lands later, at land_late()
    not_called,   // the plugin could not be called (restart backoff): nothing was sent
};

class FakeProviders final : public Providers {
  public:
    FakeProviders() = default;
    ~FakeProviders() override;  // releases every hang

    // Every plan declares this settle margin (0 unless set: read back at once).
    void set_settle_margin(Duration margin);
    // `spelling` names the same resource as `target` (as ecs/checkout and
    // ecs/default/checkout do): both read and write one value, and plan the same resource.
    void alias(const std::string& provider, const std::string& spelling, const std::string& target);
    // Lands every write a late_write fault left in flight, as the service finally would.
    void land_late();
    // A target made of fields (an ECS service's range and count): its plans for action
    // parameters {"order": ["f1", "f2"], "f1": v1, "f2": v2} write one step per field, in
    // that order.
    void set_fields(const std::string& provider, const std::string& target, nlohmann::json fields);
    nlohmann::json fields(const std::string& provider, const std::string& target) const;
    // Every write that landed, in order: "apply a {...}", "revert a {...}".
    std::vector<std::string> write_log() const;

    // Sets what a target holds now, as a person or another tool would.
    void set(const std::string& provider, const std::string& target, nlohmann::json value);
    nlohmann::json value(const std::string& provider, const std::string& target) const;

    // The next `times` calls of `operation` (plan, apply, check, revert, state) on that
    // target fail that way, once `after` calls have gone through; times < 0: every call.
    void fail(const std::string& operation, const std::string& target, FakeFault fault,
              int times = -1, int after = 0);
    void clear_faults();
    // Lets every hanging call answer (as a provider that finally timed out: unavailable).
    void release();
    // How many calls are hanging now.
    int hanging() const;

    int calls(const std::string& operation, const std::string& target) const;
    int writes(const std::string& target) const;

    ProviderAnswer<Plan> plan(const Action& action) override;
    ProviderAnswer<Applied> apply(const Action& action, const Plan& plan) override;
    ProviderAnswer<Checked> check(const Action& action, const Plan& plan) override;
    ProviderAnswer<Reverted> revert(const Action& action, const Plan& plan) override;
    ProviderAnswer<nlohmann::json> state(const std::string& provider,
                                         const std::string& target) override;

  private:
    struct Scripted {
        FakeFault fault;
        int times;
        int after = 0;
    };
    // A target's fields ({"value": v} for a plain one); and a write of some of them.
    nlohmann::json fields_locked(const std::string& where) const;
    void write_locked(const std::string& where, const nlohmann::json& fields);
    // The fault for this call, if one is scripted; waits out a hang with the lock released.
    std::optional<FakeFault> begin(std::unique_lock<std::mutex>& lock, const std::string& operation,
                                   const std::string& target);
    // provider/target, with an alias resolved to the target it names.
    std::string key(const std::string& provider, const std::string& target) const;

    mutable std::mutex mutex_;
    std::condition_variable released_;
    std::uint64_t release_generation_ = 0;
    int hanging_ = 0;
    std::map<std::string, nlohmann::json> values_;
    std::map<std::pair<std::string, std::string>, Scripted> faults_;
    std::map<std::pair<std::string, std::string>, int> calls_;
    std::map<std::string, int> writes_;
    std::map<std::string, std::string> aliases_;                // provider/spelling -> target
    std::vector<std::pair<std::string, nlohmann::json>> late_;  // key, fields that land
    std::map<std::string, nlohmann::json> fields_;              // targets made of fields
    std::vector<std::string> write_log_;
    Duration settle_margin_{0};
};

}  // namespace mitigate::testing
