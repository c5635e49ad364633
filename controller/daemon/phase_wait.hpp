#pragma once
// Waiting for a workspace's stored phase: the backup runner's restores and the move runner both
// suspend or resume a workspace through the reconciler and then wait until its status, as the
// store holds it, says so.

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <string_view>

#include "common/outcome.hpp"

namespace tmaster::controller {

class Store;

struct PhaseWait {
  std::chrono::seconds limit{120};
  std::chrono::milliseconds poll{50};
  /// The Transient reason when `limit` passes (`MoveTimedOut`, `RestoreTimedOut`).
  std::string_view timeout_reason;
  /// Sleeps at most `poll`; true when the caller is stopping (the wait ends `Stopping`).
  std::function<bool(std::chrono::milliseconds)> sleep_or_stop;
};

/// The phase once the stored status of `workspace` is one of `phases`. Transient `Stopping`, or
/// `wait.timeout_reason` naming the last phase seen (and its error) after `wait.limit`.
Outcome<std::string> WaitForStoredPhase(Store& store, const std::string& workspace,
                                        const std::set<std::string>& phases,
                                        const PhaseWait& wait);

}  // namespace tmaster::controller
