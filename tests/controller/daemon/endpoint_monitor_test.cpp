// What each endpoint is and whether it answers (controller/daemon/endpoint_monitor.hpp,
// docs/placement.md#endpoints).
#include "controller/daemon/endpoint_monitor.hpp"

#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "tests/support/fake_stacks.hpp"

namespace tmaster::controller {

TEST_CASE("endpoint monitor: unknown before the first check; then standalone, swarm with its "
          "cluster's id, or down with the reason; the list is asked again each round") {
  testing::FakeStacks gateway;
  gateway.SetEndpoint(4, stacks::EndpointInfo{true, "jo2v8bmcn2c1"});
  gateway.SetEndpoint(7, Failure::Transient("PortainerUnavailable",
                                            "inspect endpoint 7: Environment is down"));
  std::vector<int> endpoints = {1, 4, 7};
  EndpointMonitor monitor(&gateway, [&] { return endpoints; }, std::chrono::hours(1),
                          [] { return std::int64_t{1'800'000'000}; });
  CHECK_FALSE(monitor.Reach(1).known);
  monitor.CheckAll();
  CHECK(gateway.InspectCalls() == 3);

  const EndpointReach standalone = monitor.Reach(1);
  CHECK(standalone.known);
  CHECK(standalone.reachable);
  CHECK_FALSE(standalone.swarm);
  CHECK(standalone.checked_unix == 1'800'000'000);
  const EndpointReach swarm = monitor.Reach(4);
  CHECK(swarm.reachable);
  CHECK(swarm.swarm);
  CHECK(swarm.swarm_id == "jo2v8bmcn2c1");
  const EndpointReach down = monitor.Reach(7);
  CHECK(down.known);
  CHECK_FALSE(down.reachable);
  CHECK_FALSE(down.swarm);
  CHECK(down.reason == "PortainerUnavailable: inspect endpoint 7: Environment is down");
  CHECK_FALSE(monitor.Reach(9).known);

  // A new endpoint in the list is checked at the next round; one that comes back is reachable.
  endpoints.push_back(9);
  gateway.SetEndpoint(7, stacks::EndpointInfo{});
  monitor.Start();  // its thread checks at once
  for (int i = 0; i < 200 && !(monitor.Reach(7).reachable && monitor.Reach(9).known); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  monitor.Stop();
  CHECK(monitor.Reach(7).reachable);
  CHECK(monitor.Reach(7).reason.empty());
  CHECK(monitor.Reach(9).known);
  CHECK(monitor.Reach(9).reachable);
}

TEST_CASE("endpoint monitor: without a stack backend nothing is asked and nothing is known") {
  bool asked = false;
  EndpointMonitor monitor(nullptr, [&] {
    asked = true;
    return std::vector<int>{1};
  }, std::chrono::hours(1));
  monitor.CheckAll();
  monitor.Start();
  monitor.Stop();
  CHECK_FALSE(asked);
  CHECK_FALSE(monitor.Reach(1).known);
}

}  // namespace tmaster::controller
