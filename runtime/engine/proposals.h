// New mitigations, from playbooks and from people. A proposal equal to an open mitigation
// (same provider, action, target and parameters, same drill mark) merges into it instead
// of starting a second change; one that differs waits its turn on the target
// (next_step.h). A drill's mitigation never merges with a real one: the drill's cleanup
// ends what it caused, and must not end a real incident's answer with it.
#pragma once

#include <mutex>
#include <string>

#include "runtime/core/clock.h"
#include "runtime/core/model.h"
#include "runtime/engine/engine.h"

namespace mitigate {

class Transitions;
class OpenMitigations;
class AuditLog;
class Metrics;

class Proposals {
  public:
    Proposals(Transitions& transitions, OpenMitigations& open, AuditLog& audit, const Clock& clock,
              Metrics& metrics);

    // The new mitigation, or the open one it merged into. `playbook` is empty for a person.
    Mitigation submit(const ProposalRequest& request, const std::string& playbook);

  private:
    Transitions& transitions_;
    OpenMitigations& open_;
    AuditLog& audit_;
    const Clock& clock_;
    Metrics& metrics_;
    std::mutex mutex_;  // two equal proposals at once still make one mitigation
};

}  // namespace mitigate
