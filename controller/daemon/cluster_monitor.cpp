#include "controller/daemon/cluster_monitor.hpp"

#include <utility>

namespace tmaster::controller {

ClusterMonitor::ClusterMonitor(Gateways gateways, std::chrono::milliseconds interval,
                               std::function<std::int64_t()> now_unix)
    : gateways_(std::move(gateways)),
      now_unix_(std::move(now_unix)),
      thread_(interval, [this] { CheckAll(); }) {}

ClusterMonitor::~ClusterMonitor() { Stop(); }

std::int64_t ClusterMonitor::Now() const {
  if (now_unix_) return now_unix_();
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void ClusterMonitor::CheckAll() {
  for (const auto& [cluster, gateway] : gateways_) {
    if (gateway == nullptr) continue;
    Outcome<std::string> version = gateway->ServerVersion();  // outside the lock: it may wait
    ClusterReach reach;
    reach.known = true;
    reach.checked_unix = Now();
    if (version) {
      reach.server_version = *version;
    } else {
      reach.reachable = false;
      reach.reason = version.failure().reason + ": " + version.failure().message;
    }
    const std::lock_guard lock(mutex_);
    reach_[cluster] = std::move(reach);
  }
}

ClusterReach ClusterMonitor::Reach(const std::string& cluster) const {
  const std::lock_guard lock(mutex_);
  const auto found = reach_.find(cluster);
  return found == reach_.end() ? ClusterReach{} : found->second;
}

void ClusterMonitor::Start() { thread_.Start(); }

void ClusterMonitor::Stop() { thread_.Stop(); }

}  // namespace tmaster::controller
