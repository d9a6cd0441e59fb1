#include "runtime/engine/resource_claims.h"

#include "runtime/engine/open_mitigations.h"

namespace mitigate {

std::string resource_key(const Action& action, const Plan& plan) {
    // The unit separator cannot appear in a provider's name; "\x1e" starts no resource.
    return plan.resource.empty() ? action.provider + '\x1f' + action.target
                                 : '\x1e' + plan.resource;
}

std::optional<std::string> ResourceClaims::holder_locked(const std::string& id,
                                                         const std::string& key) const {
    if (const auto claimed = claims_.find(key); claimed != claims_.end() && claimed->second != id) {
        return claimed->second;
    }
    for (const MitigationSnapshot& other : open_.on_resource(key)) {
        if (other->id != id) {
            return other->id;
        }
    }
    return std::nullopt;
}

std::optional<std::string> ResourceClaims::claim(const std::string& id, const std::string& key) {
    std::lock_guard lock(mutex_);
    if (auto holder = holder_locked(id, key)) {
        waiting_[id] = key;
        return holder;
    }
    claims_[key] = id;
    waiting_.erase(id);
    return std::nullopt;
}

bool ResourceClaims::held_by_another(const std::string& id, const std::string& key) const {
    std::lock_guard lock(mutex_);
    return holder_locked(id, key).has_value();
}

std::vector<std::string> ResourceClaims::release(const std::string& id, const std::string& key) {
    std::lock_guard lock(mutex_);
    if (const auto claimed = claims_.find(key); claimed != claims_.end() && claimed->second == id) {
        claims_.erase(claimed);
    }
    return waiting_for_locked(key);
}

std::optional<std::string> ResourceClaims::awaited_by(const std::string& id) const {
    std::lock_guard lock(mutex_);
    const auto found = waiting_.find(id);
    return found == waiting_.end() ? std::nullopt : std::optional<std::string>(found->second);
}

std::vector<std::string> ResourceClaims::waiting_for(const std::string& key) const {
    std::lock_guard lock(mutex_);
    return waiting_for_locked(key);
}

std::vector<std::string> ResourceClaims::waiting_for_locked(const std::string& key) const {
    std::vector<std::string> ids;
    for (const auto& [id, awaited] : waiting_) {
        if (awaited == key) {
            ids.push_back(id);
        }
    }
    return ids;
}

void ResourceClaims::forget(const std::string& id) {
    std::lock_guard lock(mutex_);
    waiting_.erase(id);
}

}  // namespace mitigate
