#include "controller/daemon/phase_wait.hpp"

#include "common/text.hpp"
#include "controller/store/store.hpp"

namespace tmaster::controller {

Outcome<std::string> WaitForStoredPhase(Store& store, const std::string& workspace,
                                        const std::set<std::string>& phases,
                                        const PhaseWait& wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait.limit;
  std::string last = "unknown";
  for (;;) {
    Outcome<std::optional<WorkspaceStatus>> status = store.GetStatus(workspace);
    if (status && *status) {
      last = (*status)->phase +
             ((*status)->last_error.empty() ? "" : " (" + (*status)->last_error + ")");
      if (phases.contains((*status)->phase)) return (*status)->phase;
    }
    if (wait.sleep_or_stop(wait.poll)) {
      return Failure::Transient("Stopping", "the operator is stopping");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Failure::Transient(std::string(wait.timeout_reason),
                                "workspace " + Quoted(workspace) + " is still " + last + " after " +
                                    std::to_string(wait.limit.count()) + " s");
    }
  }
}

}  // namespace tmaster::controller
