// The snapshot cache (controller/runtime/snapshot_cache.hpp) with the fake clock: one
// observation serves every caller inside the window, a caller that needs a newer one gets it,
// and concurrent callers share the one refresh in flight.
#include "controller/runtime/snapshot_cache.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>

#include "tests/support/fake_clock.hpp"

namespace {

using namespace std::chrono_literals;
using tmaster::controller::SnapshotCache;
using tmaster::testing::FakeClock;

}  // namespace

TEST_CASE("snapshot cache: one observation serves callers that accept its age") {
  FakeClock clock;
  SnapshotCache<std::string, int> cache;
  int observed = 0;
  const auto observe = [&] { return ++observed; };
  const auto window = [&] { return clock.Now() - 1s; };

  CHECK(*cache.Get("db1", window(), clock, observe) == 1);
  clock.Advance(500ms);
  CHECK(*cache.Get("db1", window(), clock, observe) == 1);  // 0.5 s old: shared
  CHECK(observed == 1);
  CHECK(*cache.Get("db2", window(), clock, observe) == 2);  // another key: its own
  clock.Advance(600ms);
  CHECK(*cache.Get("db1", window(), clock, observe) == 3);  // 1.1 s old: refreshed
  CHECK(cache.Observations() == 3);
}

TEST_CASE("snapshot cache: a caller that changed something after the snapshot gets a new one") {
  FakeClock clock;
  SnapshotCache<int, int> cache;
  int observed = 0;
  const auto observe = [&] { return ++observed; };
  CHECK(*cache.Get(1, clock.Now() - 1s, clock, observe) == 1);
  clock.Advance(1ms);
  const auto wrote_at = clock.Now();  // a worker changed the cluster now
  CHECK(*cache.Get(1, wrote_at, clock, observe) == 2);
  // The new snapshot was taken at wrote_at: it covers the change and serves the next caller.
  CHECK(*cache.Get(1, wrote_at, clock, observe) == 2);
}

TEST_CASE("snapshot cache: the time of a snapshot is when its observation started") {
  FakeClock clock;
  SnapshotCache<int, int> cache;
  const auto started = clock.Now();
  // The observation takes 2 s on the clock; a change made meanwhile is not covered by it.
  CHECK(*cache.Get(1, started, clock, [&] {
    clock.Advance(2s);
    return 7;
  }) == 7);
  int again = 0;
  CHECK(*cache.Get(1, started + 1s, clock, [&] { return ++again; }) == 1);
}

TEST_CASE("snapshot cache: concurrent callers wait for the refresh in flight") {
  FakeClock clock;
  SnapshotCache<int, int> cache;
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  int observations = 0;
  auto first = std::async(std::launch::async, [&] {
    return *cache.Get(1, clock.Now(), clock, [&] {
      ++observations;
      entered.set_value();
      released.wait();
      return 42;
    });
  });
  entered.get_future().wait();
  // The second caller must not observe on its own: it blocks until the first one is done.
  auto second = std::async(std::launch::async, [&] {
    return *cache.Get(1, clock.Now() - 1s, clock, [&] {
      ++observations;
      return -1;
    });
  });
  CHECK(second.wait_for(50ms) == std::future_status::timeout);
  release.set_value();
  CHECK(first.get() == 42);
  CHECK(second.get() == 42);
  CHECK(observations == 1);
}

TEST_CASE("snapshot cache: a failed observation lets the next caller try") {
  FakeClock clock;
  SnapshotCache<int, int> cache;
  CHECK_THROWS_AS(
      cache.Get(1, clock.Now(), clock, []() -> int { throw std::runtime_error("down"); }),
      std::runtime_error);
  CHECK(*cache.Get(1, clock.Now(), clock, [] { return 5; }) == 5);
  SUBCASE("Clear forgets every snapshot") {
    cache.Clear();
    CHECK(*cache.Get(1, clock.Now() - 1h, clock, [] { return 6; }) == 6);
  }
}
