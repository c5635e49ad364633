#include "controller/runtime/events.hpp"

#include <spdlog/spdlog.h>

namespace tmaster::controller {

void EventRecorder::Emit(const std::string& workspace, const std::string& type,
                         const std::string& reason, const std::string& message) {
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
