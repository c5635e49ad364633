// The monitors' loop (controller/runtime/periodic_thread.hpp): a tick at once, then one every
// interval; Stop ends it without waiting out the interval; Start twice makes one thread.
#include "controller/runtime/periodic_thread.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace {

using namespace std::chrono_literals;
using tmaster::controller::PeriodicThread;

template <class Predicate>
bool WaitFor(Predicate done) {
  for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(10ms);
  return done();
}

TEST_CASE("PeriodicThread: ticks at once, then again, and a stop does not wait the interval") {
  std::atomic<int> ticks{0};
  PeriodicThread thread(20ms, [&] { ++ticks; });
  CHECK_FALSE(thread.Stopping());
  thread.Start();
  thread.Start();  // no second thread
  REQUIRE(WaitFor([&] { return ticks.load() >= 3; }));
  thread.Stop();
  CHECK(thread.Stopping());
  const int stopped_at = ticks.load();
  std::this_thread::sleep_for(60ms);
  CHECK(ticks.load() == stopped_at);

  std::atomic<int> slow{0};
  PeriodicThread hourly(std::chrono::hours(1), [&] { ++slow; });
  hourly.Start();
  REQUIRE(WaitFor([&] { return slow.load() == 1; }));
  const auto before = std::chrono::steady_clock::now();
  hourly.Stop();
  CHECK(std::chrono::steady_clock::now() - before < 5s);
  CHECK(slow.load() == 1);
}

TEST_CASE("PeriodicThread: a tick sees Stopping once Stop was called, and Start again runs") {
  std::atomic<bool> saw_stop{false};
  std::atomic<bool> in_tick{false};
  PeriodicThread* self = nullptr;
  PeriodicThread thread(std::chrono::hours(1), [&] {
    in_tick = true;
    while (!self->Stopping()) std::this_thread::sleep_for(1ms);
    saw_stop = true;
  });
  self = &thread;
  thread.Start();
  REQUIRE(WaitFor([&] { return in_tick.load(); }));
  thread.Stop();  // joins the tick that is waiting for it
  CHECK(saw_stop.load());
  saw_stop = false;
  in_tick = false;
  thread.Start();
  REQUIRE(WaitFor([&] { return in_tick.load(); }));
  thread.Stop();
}

}  // namespace
