#include "controller/runtime/events.hpp"

#include <spdlog/spdlog.h>

#include "common/scrub.hpp"

namespace tmaster::controller {

void EventRecorder::Emit(const std::string& workspace, const std::string& type,
                         const std::string& reason, const std::string& raw_message) {
  // Scrubbed before it is logged or stored: an event is served by the API long after the log
  // line, and its message may quote a server or a file (docs/architecture.md#secrets).
  const std::string message = ScrubProcessSecrets(raw_message);
  if (type == "Warning") {
    spdlog::warn("workspace {}: {}: {}", workspace, reason, message);
  } else {
    spdlog::info("workspace {}: {}: {}", workspace, reason, message);
  }
  Event event;
  event.workspace = workspace;
  event.type = type;
  event.reason = reason;
  event.message = message;
  if (Outcome<std::int64_t> id = store_.AppendEvent(event); !id) {
    spdlog::warn("store: event of {}: {}", workspace, id.failure().message);
  }
}

}  // namespace tmaster::controller
