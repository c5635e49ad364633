#pragma once
// Events (docs/architecture.md#status-and-events): what happened to a workspace, for people.
// Each is logged and appended to the store; a store that cannot take it costs the event, never
// the run that emitted it.

#include <string>

#include "controller/store/store.hpp"

namespace tmaster::controller {

/// Emits events to the log and the store. Thread-safe as the store is.
class EventRecorder {
 public:
  /// `store` must outlive the recorder.
  explicit EventRecorder(Store& store) : store_(store) {}

  /// `type` is `Normal` or `Warning` (logged as a warning); `reason` is CamelCase; `message`
  /// names the object and step. The message is passed through ScrubProcessSecrets
  /// (common/scrub.hpp) before it is logged or stored, so no registered secret is kept.
  void Emit(const std::string& workspace, const std::string& type, const std::string& reason,
            const std::string& message);

 private:
  Store& store_;
};

}  // namespace tmaster::controller
