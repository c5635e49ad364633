// Whether each cluster answers (controller/daemon/cluster_monitor.hpp, docs/placement.md).
#include "controller/daemon/cluster_monitor.hpp"

#include <doctest/doctest.h>

#include "tests/support/fake_postgres.hpp"

namespace tmaster::controller {

TEST_CASE("cluster monitor: unknown before the first check; then reachable with the version, or "
          "down with the reason; again when it comes back") {
  testing::FakePostgres up;
  testing::FakePostgres down;
  ClusterMonitor monitor({{"up", &up}, {"down", &down}}, std::chrono::hours(1),
                         [] { return std::int64_t{1'800'000'000}; });
  CHECK_FALSE(monitor.Reach("up").known);
  down.FailObserve(Failure::Transient("ConnectionFailed", "connection refused"));
  monitor.CheckAll();
  const ClusterReach ok = monitor.Reach("up");
  CHECK(ok.known);
  CHECK(ok.reachable);
  CHECK(ok.server_version == "unknown");
  CHECK(ok.checked_unix == 1'800'000'000);
  const ClusterReach failed = monitor.Reach("down");
  CHECK(failed.known);
  CHECK_FALSE(failed.reachable);
  CHECK(failed.reason == "ConnectionFailed: connection refused");
  CHECK_FALSE(monitor.Reach("elsewhere").known);
  down.FailObserve(std::nullopt);
  monitor.Start();  // its thread checks at once
  for (int i = 0; i < 200 && !monitor.Reach("down").reachable; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(monitor.Reach("down").reachable);
  monitor.Stop();
}

}  // namespace tmaster::controller
