#pragma once
// What each Portainer endpoint is and whether its engine answers (docs/placement.md#endpoints):
// one light call per endpoint every few seconds (StackGateway::Inspect; Portainer: Docker's swarm
// inspect through its proxy) on a thread of its own, so `tenantctl get endpoints` shows each
// endpoint's kind (standalone or swarm, with the cluster's ID) and reachability, on the leader
// and on standbys. It only observes: placement and the stacks' own calls do not read it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

#include "controller/runtime/periodic_thread.hpp"
#include "controller/workspace/placer.hpp"

namespace tmaster::stacks {
class StackGateway;  // reconcilers/stacks/gateway.hpp
}  // namespace tmaster::stacks

namespace tmaster::controller {

/// Thread-safe.
class EndpointMonitor {
 public:
  /// `gateway`: the stack backend (nullptr: nothing is checked). `endpoints`: the endpoints to
  /// check, asked before each round (the configured ones and those stacks are on). `now_unix`:
  /// seconds since the epoch (tests fix it); empty: the system clock.
  EndpointMonitor(stacks::StackGateway* gateway, std::function<std::vector<int>()> endpoints,
                  std::chrono::milliseconds interval,
                  std::function<std::int64_t()> now_unix = {});
  ~EndpointMonitor();
  EndpointMonitor(const EndpointMonitor&) = delete;
  EndpointMonitor& operator=(const EndpointMonitor&) = delete;

  /// Asks about every endpoint once, on the caller's thread (the monitor's thread calls it;
  /// tests too). An endpoint that fails is unreachable with the gateway's reason and message
  /// (which never carry a secret); its kind is not known then.
  void CheckAll();
  /// The last check of `endpoint` (known false before the first).
  [[nodiscard]] EndpointReach Reach(int endpoint) const;
  void Start();
  void Stop();

 private:
  std::int64_t Now() const;

  stacks::StackGateway* gateway_;
  std::function<std::vector<int>()> endpoints_;
  std::function<std::int64_t()> now_unix_;
  mutable std::mutex mutex_;
  std::map<int, EndpointReach> reach_;
  PeriodicThread thread_;  ///< last: stopped before the members its ticks read
};

}  // namespace tmaster::controller
