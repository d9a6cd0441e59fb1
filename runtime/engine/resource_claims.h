// One change at a time per resource. A target can be spelled several ways (ecs/checkout and
// ecs/default/checkout) and changed by several actions (flag.set and flag.kill_switch):
// only the provider knows that two of them are one resource, and it says so in its plan
// (Plan::resource). So a proposal may plan only to learn that its resource is taken: the
// plan is dropped (it was read from a state another mitigation is about to change), and
// the proposal waits, as proposed, for the resource to be free, then plans afresh.
//
// Held by the open mitigations that have a plan on the resource (OpenMitigations indexes
// them) and, between a plan's answer and its commit, by a claim here: two proposals that
// plan at once (through two providers configured on one service) cannot both take it.
// Lock order: this class's mutex, then OpenMitigations'.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/model.h"

namespace mitigate {

class OpenMitigations;

// The resource a planned mitigation changes: the plan's resource, which names its service
// (two providers configured on one account or one flag file are one resource); for a
// plan from a plugin older than ABI 1.2, the provider and the target as spelled.
std::string resource_key(const Action& action, const Plan& plan);

class ResourceClaims {
  public:
    explicit ResourceClaims(const OpenMitigations& open) : open_(open) {}

    // `id` has planned a change of `key`. Returns the id of the open mitigation that holds
    // it (and remembers that `id` waits for it), or nothing: the claim is `id`'s until
    // release(), by which time its commit has made the index say so.
    std::optional<std::string> claim(const std::string& id, const std::string& key);
    // Returns whoever waits for `key`, to be looked at again (the claim may have come to
    // nothing: a commit refused).
    std::vector<std::string> release(const std::string& id, const std::string& key);
    // Another mitigation holds `key`: an open one with a plan on it, or a claim.
    bool held_by_another(const std::string& id, const std::string& key) const;

    // The resource `id` last found taken, if it still waits for it.
    std::optional<std::string> awaited_by(const std::string& id) const;
    // Whoever waits for `key`.
    std::vector<std::string> waiting_for(const std::string& key) const;
    // `id` planned or ended: it waits for nothing any more.
    void forget(const std::string& id);

  private:
    std::optional<std::string> holder_locked(const std::string& id, const std::string& key) const;
    std::vector<std::string> waiting_for_locked(const std::string& key) const;

    const OpenMitigations& open_;
    mutable std::mutex mutex_;
    std::map<std::string, std::string> claims_;   // key -> id, between plan and commit
    std::map<std::string, std::string> waiting_;  // id -> key
};

}  // namespace mitigate
