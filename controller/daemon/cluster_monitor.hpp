#pragma once
// Whether each cluster answers now (docs/placement.md): a light statement per cluster every few
// seconds on a thread of its own (`server_version`), so placement skips a cluster that is down
// and `tenantctl get clusters` shows reachability and version, on the leader and on standbys.
// A cluster that is down delays only the workspaces on it; nothing here moves anyone.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "controller/runtime/periodic_thread.hpp"
#include "controller/workspace/placer.hpp"
#include "controller/workspace/reconcile_pass.hpp"

namespace tmaster::controller {

/// Thread-safe.
class ClusterMonitor {
 public:
  /// `now_unix`: seconds since the epoch (tests fix it); empty: the system clock.
  ClusterMonitor(Gateways gateways, std::chrono::milliseconds interval,
                 std::function<std::int64_t()> now_unix = {});
  ~ClusterMonitor();
  ClusterMonitor(const ClusterMonitor&) = delete;
  ClusterMonitor& operator=(const ClusterMonitor&) = delete;

  /// Asks every cluster once, on the caller's thread (the monitor's thread calls it; tests too).
  void CheckAll();
  /// The last check of `cluster` (known false before the first).
  [[nodiscard]] ClusterReach Reach(const std::string& cluster) const;
  void Start();
  void Stop();

 private:
  std::int64_t Now() const;

  Gateways gateways_;
  std::function<std::int64_t()> now_unix_;
  mutable std::mutex mutex_;
  std::map<std::string, ClusterReach> reach_;
  PeriodicThread thread_;  ///< last: stopped before the members its ticks read
};

}  // namespace tmaster::controller
