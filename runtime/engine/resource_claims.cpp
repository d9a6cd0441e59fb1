#include "runtime/engine/resource_claims.h"

#include "runtime/engine/open_mitigations.h"

namespace mitigate {

std::string resource_key(const Action& action, const Plan& plan) {
    // The unit separator cannot appear in a provider's name.
    return action.provider + '\x1f' + (plan.resource.empty() ? action.target : plan.resource);
}

std::optional<std::string> ResourceClaims::claim(const std::string& id, const std::string& key) {
    std::lock_guard lock(mutex_);
    std::optional<std::string> holder;
    if (const auto claimed = claims_.find(key); claimed != claims_.end() && claimed->second != id) {
        holder = claimed->second;
    } else {
        for (const MitigationSnapshot& other : open_.on_resource(key)) {
            if (other->id != id) {
                holder = other->id;
                break;
            }
        }
    }
    if (holder) {
        waiting_[id] = key;
        return holder;
    }
    claims_[key] = id;
    waiting_.erase(id);
    return std::nullopt;
}

void ResourceClaims::release(const std::string& id, const std::string& key) {
    std::lock_guard lock(mutex_);
    if (const auto claimed = claims_.find(key); claimed != claims_.end() && claimed->second == id) {
        claims_.erase(claimed);
    }
}

std::optional<std::string> ResourceClaims::awaited_by(const std::string& id) const {
    std::lock_guard lock(mutex_);
    const auto found = waiting_.find(id);
    return found == waiting_.end() ? std::nullopt : std::optional<std::string>(found->second);
}

std::vector<std::string> ResourceClaims::waiting_for(const std::string& key) const {
    std::lock_guard lock(mutex_);
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
