#include "controller/daemon/endpoint_monitor.hpp"

#include <utility>

#include "reconcilers/stacks/gateway.hpp"

namespace tmaster::controller {

EndpointMonitor::EndpointMonitor(stacks::StackGateway* gateway,
                                 std::function<std::vector<int>()> endpoints,
                                 std::chrono::milliseconds interval,
                                 std::function<std::int64_t()> now_unix)
    : gateway_(gateway),
      endpoints_(std::move(endpoints)),
      now_unix_(std::move(now_unix)),
      thread_(interval, [this] { CheckAll(); }) {}

EndpointMonitor::~EndpointMonitor() { Stop(); }

std::int64_t EndpointMonitor::Now() const {
  if (now_unix_) return now_unix_();
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void EndpointMonitor::CheckAll() {
  if (gateway_ == nullptr || !endpoints_) return;
  for (const int endpoint : endpoints_()) {
    if (thread_.Stopping()) return;  // a stop waits for one call at most, not a whole round
    Outcome<stacks::EndpointInfo> info = gateway_->Inspect(endpoint);  // outside the lock
    EndpointReach reach;
    reach.known = true;
    reach.checked_unix = Now();
    if (info) {
      reach.swarm = info->swarm;
      reach.swarm_id = info->swarm_id;
    } else {
      reach.reachable = false;
      reach.reason = info.failure().reason + ": " + info.failure().message;
    }
    const std::lock_guard lock(mutex_);
    reach_[endpoint] = std::move(reach);
  }
}

EndpointReach EndpointMonitor::Reach(int endpoint) const {
  const std::lock_guard lock(mutex_);
  const auto found = reach_.find(endpoint);
  return found == reach_.end() ? EndpointReach{} : found->second;
}

void EndpointMonitor::Start() {
  if (gateway_ != nullptr) thread_.Start();
}

void EndpointMonitor::Stop() { thread_.Stop(); }

}  // namespace tmaster::controller
