// The one owner of mitigation transitions. Every write of a mitigation, by the reconciler
// or by a person's request, goes through here, so that the store, the in-memory index of
// open mitigations and the recent history never disagree; whoever waits on a change
// (the reconciler, chat, drills) is told after each commit.
//
// A transition is compare-and-set on the version of the snapshot it starts from: two
// writers never both win, and the loser gets the row as it is now.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/core/clock.h"
#include "runtime/core/model.h"
#include "runtime/store/mitigation_store.h"

namespace mitigate {

class OpenMitigations;

class Transitions {
  public:
    using Listener = std::function<void(const Mitigation& before, const Mitigation& after)>;

    Transitions(MitigationStore& store, OpenMitigations& open, const Clock& clock);

    // Told after every commit, on the committing thread. Set before any transition.
    void on_committed(Listener listener) { listener_ = std::move(listener); }

    // Stores a new mitigation (proposed, version 1).
    void create(const Mitigation& mitigation, const std::string& actor, const std::string& reason);

    // Moves `current` to `next` (its state and whatever else changed). The result holds the
    // stored row either way: the new one, or the one that won.
    TransitionResult move(const Mitigation& current, Mitigation next, const std::string& actor,
                          const std::string& reason,
                          nlohmann::json details = nlohmann::json::object());

    // Consecutive transitions with no effect between them (planned, decided, applying),
    // committed together: one fsync instead of three. All or nothing; the result is the
    // last step's, or the refusal.
    struct Step {
        Mitigation next;
        std::string actor;
        std::string reason;
        nlohmann::json details = nlohmann::json::object();
    };
    TransitionResult move_chain(const Mitigation& current, std::vector<Step> steps);

    MitigationStore& store() { return store_; }

  private:
    MitigationStore& store_;
    OpenMitigations& open_;
    const Clock& clock_;
    Listener listener_;
};

}  // namespace mitigate
