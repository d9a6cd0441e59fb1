#include "tests/support/fake_providers.h"

#include <stdexcept>

#include "runtime/providers/plugin_protocol.h"

namespace mitigate::testing {

using nlohmann::json;

FakeProviders::~FakeProviders() {
    release();
}

void FakeProviders::set_settle_margin(Duration margin) {
    std::lock_guard lock(mutex_);
    settle_margin_ = margin;
}

void FakeProviders::alias(const std::string& provider, const std::string& spelling,
                          const std::string& target) {
    std::lock_guard lock(mutex_);
    aliases_[provider + "/" + spelling] = target;
}

std::string FakeProviders::key(const std::string& provider, const std::string& target) const {
    const auto found = aliases_.find(provider + "/" + target);
    return provider + "/" + (found == aliases_.end() ? target : found->second);
}

void FakeProviders::land_late() {
    std::lock_guard lock(mutex_);
    for (const auto& [where, fields] : late_) {
        write_locked(where, fields);
    }
    late_.clear();
}

void FakeProviders::set_fields(const std::string& provider, const std::string& target,
                               json fields) {
    std::lock_guard lock(mutex_);
    fields_[key(provider, target)] = std::move(fields);
}

json FakeProviders::fields(const std::string& provider, const std::string& target) const {
    std::lock_guard lock(mutex_);
    return fields_locked(key(provider, target));
}

std::vector<std::string> FakeProviders::write_log() const {
    std::lock_guard lock(mutex_);
    return write_log_;
}

void FakeProviders::set(const std::string& provider, const std::string& target, json value) {
    std::lock_guard lock(mutex_);
    values_[key(provider, target)] = std::move(value);
}

json FakeProviders::value(const std::string& provider, const std::string& target) const {
    std::lock_guard lock(mutex_);
    const auto found = values_.find(key(provider, target));
    return found == values_.end() ? json() : found->second;
}

void FakeProviders::fail(const std::string& operation, const std::string& target, FakeFault fault,
                         int times, int after) {
    std::lock_guard lock(mutex_);
    faults_[{operation, target}] = {fault, times, after};
}

void FakeProviders::clear_faults() {
    std::lock_guard lock(mutex_);
    faults_.clear();
}

void FakeProviders::release() {
    {
        std::lock_guard lock(mutex_);
        ++release_generation_;
    }
    released_.notify_all();
}

int FakeProviders::hanging() const {
    std::lock_guard lock(mutex_);
    return hanging_;
}

int FakeProviders::calls(const std::string& operation, const std::string& target) const {
    std::lock_guard lock(mutex_);
    const auto found = calls_.find({operation, target});
    return found == calls_.end() ? 0 : found->second;
}

int FakeProviders::writes(const std::string& target) const {
    std::lock_guard lock(mutex_);
    const auto found = writes_.find(target);
    return found == writes_.end() ? 0 : found->second;
}

std::optional<FakeFault> FakeProviders::begin(std::unique_lock<std::mutex>& lock,
                                              const std::string& operation,
                                              const std::string& target) {
    ++calls_[{operation, target}];
    const auto found = faults_.find({operation, target});
    if (found == faults_.end() || found->second.times == 0) {
        return std::nullopt;
    }
    if (found->second.after > 0) {
        --found->second.after;  // this call goes through
        return std::nullopt;
    }
    const FakeFault fault = found->second.fault;
    if (found->second.times > 0) {
        --found->second.times;
    }
    if (fault == FakeFault::hang || fault == FakeFault::hold) {
        ++hanging_;
        const std::uint64_t generation = release_generation_;
        released_.wait(lock, [&] { return release_generation_ != generation; });
        --hanging_;
    }
    if (fault == FakeFault::throw_error) {
        throw std::runtime_error("fake provider: " + operation + " on " + target + " threw");
    }
    if (fault == FakeFault::hold) {
        return std::nullopt;  // released: answers as if nothing had happened
    }
    return fault;
}

namespace {

template <class T>
ProviderAnswer<T> failure(FakeFault fault, const std::string& what) {
    switch (fault) {
        case FakeFault::conflict: return {PluginCallStatus::conflict, T{}, what + ": conflict"};
        case FakeFault::provider: return {PluginCallStatus::provider, T{}, what + ": refused"};
        case FakeFault::lost_answer:
        case FakeFault::late_write:
            return {PluginCallStatus::timeout, T{}, what + ": the answer was lost"};
        case FakeFault::not_called:
            return {PluginCallStatus::backoff, T{}, what + ": not called (restart backoff)"};
        default: return {PluginCallStatus::unavailable, T{}, what + ": unavailable"};
    }
}

}  // namespace

ProviderAnswer<Plan> FakeProviders::plan(const Action& action) {
    std::unique_lock lock(mutex_);
    if (const auto fault = begin(lock, "plan", action.target)) {
        if (*fault == FakeFault::malformed) {
            // A field of the wrong type, read by the same reader as a plugin's answer.
            return read_plan_answer({PluginCallStatus::ok,
                                     {{"observed_state", json::object()},
                                      {"forward", json::object()},
                                      {"inverse", json::object()},
                                      {"blast_radius", {{"ratio", "high"}}},
                                      {"idempotency_key", "k"},
                                      {"reversible", true}},
                                     ""},
                                    action);
        }
        return failure<Plan>(*fault, "plan " + action.target);
    }
    if (const auto with_fields = fields_.find(key(action.provider, action.target));
        with_fields != fields_.end()) {
        // One step per field, in the order the parameters give.
        Plan plan;
        plan.observed_state = with_fields->second;
        for (const json& field : action.parameters.value("order", json::array())) {
            const std::string name = field.get<std::string>();
            plan.forward[name] = action.parameters.value(name, json());
            plan.inverse[name] = with_fields->second.value(name, json());
            plan.steps.push_back({name, {name}});
        }
        plan.blast_radius.description =
            action.target + ": " + plan.inverse.dump() + " -> " + plan.forward.dump();
        plan.idempotency_key = key(action.provider, action.target) + "=" + plan.forward.dump();
        plan.resource = key(action.provider, action.target);
        plan.settle_margin = settle_margin_;
        return {PluginCallStatus::ok, plan, ""};
    }
    const auto found = values_.find(key(action.provider, action.target));
    if (found == values_.end()) {
        return {PluginCallStatus::invalid, Plan{}, "no target " + action.target};
    }
    Plan plan;
    plan.observed_state = {{"value", found->second}};
    plan.forward = {{"value", action.parameters.value("value", json())}};
    plan.inverse = {{"value", found->second}};
    plan.blast_radius.ratio = 0.5;
    plan.blast_radius.description =
        action.target + ": " + found->second.dump() + " -> " + plan.forward["value"].dump();
    plan.idempotency_key = key(action.provider, action.target) + "=" + plan.forward.dump();
    plan.resource = key(action.provider, action.target);
    plan.settle_margin = settle_margin_;
    return {PluginCallStatus::ok, plan, ""};
}

json FakeProviders::fields_locked(const std::string& where) const {
    if (const auto found = fields_.find(where); found != fields_.end()) {
        return found->second;
    }
    const auto found = values_.find(where);
    return {{"value", found == values_.end() ? json() : found->second}};
}

void FakeProviders::write_locked(const std::string& where, const json& fields) {
    if (const auto found = fields_.find(where); found != fields_.end()) {
        for (const auto& [field, value] : fields.items()) {
            found->second[field] = value;
        }
        return;
    }
    values_[where] = fields.value("value", json());
}

namespace {

// Every field of `expected` has that value in `live`.
bool holds(const json& live, const json& expected) {
    for (const auto& [field, value] : expected.items()) {
        if (!live.contains(field) || live[field] != value) {
            return false;
        }
    }
    return true;
}

}  // namespace

ProviderAnswer<Applied> FakeProviders::apply(const Action& action, const Plan& plan) {
    std::unique_lock lock(mutex_);
    const auto fault = begin(lock, "apply", action.target);
    if (fault == FakeFault::malformed) {
        return read_apply_answer(
            {PluginCallStatus::ok, {{"applied", true}, {"changed", "yes"}}, ""});
    }
    const std::string where = key(action.provider, action.target);
    if (fault == FakeFault::late_write) {
        late_.emplace_back(where, plan.forward);
        ++writes_[action.target];
        return failure<Applied>(*fault, "apply " + action.target);
    }
    if (fault && *fault != FakeFault::lost_answer) {
        return failure<Applied>(*fault, "apply " + action.target);
    }
    const json live = fields_locked(where);
    if (holds(live, plan.forward)) {
        return fault ? failure<Applied>(*fault, "apply " + action.target)
                     : ProviderAnswer<Applied>{PluginCallStatus::ok, {false}, ""};
    }
    if (!holds(live, plan.inverse)) {
        return {PluginCallStatus::conflict,
                {},
                action.target + " is " + live.dump() + ", not the state it was planned from"};
    }
    write_locked(where, plan.forward);
    ++writes_[action.target];
    write_log_.push_back("apply " + action.target + " " + plan.forward.dump());
    if (fault) {
        return failure<Applied>(*fault, "apply " + action.target);  // it landed; the answer didn't
    }
    return {PluginCallStatus::ok, {true}, ""};
}

ProviderAnswer<Checked> FakeProviders::check(const Action& action, const Plan& plan) {
    std::unique_lock lock(mutex_);
    if (const auto fault = begin(lock, "check", action.target)) {
        if (*fault == FakeFault::malformed) {
            return read_check_answer({PluginCallStatus::ok, {{"applied", "maybe"}}, ""});
        }
        return failure<Checked>(*fault, "check " + action.target);
    }
    return {PluginCallStatus::ok,
            {holds(fields_locked(key(action.provider, action.target)), plan.forward)},
            ""};
}

ProviderAnswer<Reverted> FakeProviders::revert(const Action& action, const Plan& plan) {
    std::unique_lock lock(mutex_);
    const std::string where = key(action.provider, action.target);
    if (const auto fault = begin(lock, "revert", action.target)) {
        if (*fault == FakeFault::malformed) {
            return read_revert_answer({PluginCallStatus::ok, {{"reverted", 1}}, ""});
        }
        if (*fault == FakeFault::late_write) {
            late_.emplace_back(where, plan.inverse);
            ++writes_[action.target];
        }
        return failure<Reverted>(*fault, "revert " + action.target);
    }
    const json live = fields_locked(where);
    if (holds(live, plan.inverse)) {
        return {PluginCallStatus::ok, {false}, ""};
    }
    if (!holds(live, plan.forward)) {
        return {PluginCallStatus::conflict, {}, action.target + " changed since mitigate set it"};
    }
    write_locked(where, plan.inverse);
    ++writes_[action.target];
    write_log_.push_back("revert " + action.target + " " + plan.inverse.dump());
    return {PluginCallStatus::ok, {true}, ""};
}

ProviderAnswer<json> FakeProviders::state(const std::string& provider, const std::string& target) {
    std::unique_lock lock(mutex_);
    if (const auto fault = begin(lock, "state", target)) {
        return failure<json>(*fault, "state " + target);
    }
    const auto found = values_.find(key(provider, target));
    return {PluginCallStatus::ok, found == values_.end() ? json() : found->second, ""};
}

}  // namespace mitigate::testing
