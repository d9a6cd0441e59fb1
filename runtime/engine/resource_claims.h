// One change at a time per resource. A target can be spelled several ways (ecs/checkout and
// ecs/default/checkout) and changed by several actions (flag.set and flag.kill_switch):
// only the provider knows that two of them are one resource, and it says so in its plan
// (Plan::resource). So a proposal may plan only to learn that its resource is taken: the
// plan is dropped (it was read from a state another mitigation is about to change), and
// the proposal waits, as proposed, for the resource to be free, then plans afresh.
//
// Held by the open mitigations that have a plan on the resource (OpenMitigations indexes
// them) and, between a plan's answer and its commit, by a claim here: two proposals that
// plan at once cannot both take it.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/model.h"

namespace mitigate {

class OpenMitigations;

// The resource a planned mitigation changes: its provider and the plan's resource (the
// target as spelled, for a plan from a plugin older than ABI 1.2).
std::string resource_key(const Action& action, const Plan& plan);

class ResourceClaims {
  public:
    explicit ResourceClaims(const OpenMitigations& open) : open_(open) {}

    // `id` has planned a change of `key`. Returns the id of the open mitigation that holds
    // it (and remembers that `id` waits for it), or nothing: the claim is `id`'s until
    // release(), by which time its commit has made the index say so.
    std::optional<std::string> claim(const std::string& id, const std::string& key);
    void release(const std::string& id, const std::string& key);

    // The resource `id` last found taken, if it still waits for it.
    std::optional<std::string> awaited_by(const std::string& id) const;
    // Whoever waits for `key`.
    std::vector<std::string> waiting_for(const std::string& key) const;
    // `id` planned or ended: it waits for nothing any more.
    void forget(const std::string& id);

  private:
    const OpenMitigations& open_;
    mutable std::mutex mutex_;
    std::map<std::string, std::string> claims_;   // key -> id, between plan and commit
    std::map<std::string, std::string> waiting_;  // id -> key
};

}  // namespace mitigate
