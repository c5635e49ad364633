// The work queue's client-go semantics, with a fake clock and fake randomness: time moves only
// by FakeClock::Advance, and TryGet / Tick observe it, so nothing here sleeps. Only the shutdown
// test uses a real thread, because waking a blocked Get is what it tests.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "controller/runtime/clock.hpp"
#include "controller/runtime/work_queue.hpp"
#include "tests/support/fake_clock.hpp"

namespace {

using namespace std::chrono_literals;
using tmaster::controller::Duration;
using tmaster::controller::WorkQueue;
using tmaster::controller::WorkQueueOptions;
using tmaster::testing::FakeClock;
using tmaster::testing::FakeRandom;

constexpr double kAlmostOne = 0.999999;

// A queue with its fake clock and random source (FakeRandom returns 0.0 until set: no jitter).
struct Fixture {
  FakeClock clock;
  FakeRandom random;
  WorkQueue queue{clock, random};
};

std::optional<std::string> Name(const char* name) { return std::string(name); }

}  // namespace

TEST_CASE("queue: a name is queued at most once") {
  Fixture f;
  f.queue.Add("a");
  f.queue.Add("b");
  f.queue.Add("a");
  f.queue.Add("a");
  CHECK(f.queue.Len() == 2u);
  CHECK(f.queue.Stats().adds == 2u);

  CHECK(f.queue.TryGet() == Name("a"));  // first come, first served
  CHECK(f.queue.TryGet() == Name("b"));
  CHECK(f.queue.TryGet() == std::nullopt);
  CHECK(f.queue.Len() == 0u);
}

TEST_CASE("queue: a name being processed is never handed to a second worker") {
  Fixture f;
  f.queue.Add("a");
  REQUIRE(f.queue.TryGet() == Name("a"));
  CHECK(f.queue.Stats().processing == 1u);

  f.queue.Add("a");
  CHECK(f.queue.Len() == 0u);  // held back, not queued
  CHECK(f.queue.TryGet() == std::nullopt);

  // Other names are not held back by it.
  f.queue.Add("b");
  CHECK(f.queue.TryGet() == Name("b"));
  f.queue.Done("b");

  f.queue.Done("a");
  CHECK(f.queue.Len() == 1u);
  CHECK(f.queue.TryGet() == Name("a"));  // handed out again ...
  CHECK(f.queue.TryGet() == std::nullopt);
  f.queue.Done("a");
  CHECK(f.queue.TryGet() == std::nullopt);  // ... exactly once
  CHECK(f.queue.Stats().processing == 0u);
}

TEST_CASE("queue: re-adds while processing merge into one more run after Done") {
  Fixture f;
  f.queue.Add("a");
  REQUIRE(f.queue.TryGet() == Name("a"));
  f.queue.Add("a");
  f.queue.Add("a");
  f.queue.Add("a");
  CHECK(f.queue.Stats().adds == 2u);  // the first Add, then one dirty mark

  f.queue.Done("a");
  CHECK(f.queue.Len() == 1u);
  REQUIRE(f.queue.TryGet() == Name("a"));
  f.queue.Done("a");
  CHECK(f.queue.Len() == 0u);
  CHECK(f.queue.TryGet() == std::nullopt);

  SUBCASE("without a re-add, Done queues nothing") {
    f.queue.Add("b");
    REQUIRE(f.queue.TryGet() == Name("b"));
    f.queue.Done("b");
    CHECK(f.queue.TryGet() == std::nullopt);
  }
  SUBCASE("Done for a name not processing is a no-op") {
    f.queue.Done("never-handed-out");
    CHECK(f.queue.Len() == 0u);
    CHECK(f.queue.TryGet() == std::nullopt);
  }
}

TEST_CASE("queue: a delayed add becomes available exactly when the clock reaches it") {
  Fixture f;
  f.queue.AddAfter("a", 500ms);
  CHECK(f.queue.Len() == 0u);
  CHECK(f.queue.Stats().delayed == 1u);
  CHECK(f.queue.TryGet() == std::nullopt);

  f.clock.Advance(499ms);
  CHECK(f.queue.TryGet() == std::nullopt);
  CHECK(f.queue.Tick() == 0u);
  CHECK(f.queue.Len() == 0u);

  f.clock.Advance(1ms);
  SUBCASE("TryGet moves it") { CHECK(f.queue.TryGet() == Name("a")); }
  SUBCASE("Tick moves it") {
    CHECK(f.queue.Tick() == 1u);
    CHECK(f.queue.Len() == 1u);
    CHECK(f.queue.Stats().delayed == 0u);
    CHECK(f.queue.TryGet() == Name("a"));
  }
  CHECK(f.queue.TryGet() == std::nullopt);
}

TEST_CASE("queue: delayed adds come out in due order; a zero delay is an Add") {
  Fixture f;
  f.queue.AddAfter("late", 3s);
  f.queue.AddAfter("early", 1s);
  f.queue.AddAfter("now", 0ms);
  CHECK(f.queue.Len() == 1u);
  CHECK(f.queue.TryGet() == Name("now"));

  f.clock.Advance(5s);
  CHECK(f.queue.Tick() == 2u);
  CHECK(f.queue.TryGet() == Name("early"));
  CHECK(f.queue.TryGet() == Name("late"));
}

TEST_CASE("queue: the earliest delayed add of a name wins") {
  Fixture f;
  SUBCASE("later, then earlier") {
    f.queue.AddAfter("a", 2s);
    f.queue.AddAfter("a", 500ms);
  }
  SUBCASE("earlier, then later") {
    f.queue.AddAfter("a", 500ms);
    f.queue.AddAfter("a", 2s);
  }
  CHECK(f.queue.Stats().delayed == 1u);
  f.clock.Advance(499ms);
  CHECK(f.queue.TryGet() == std::nullopt);
  f.clock.Advance(1ms);
  REQUIRE(f.queue.TryGet() == Name("a"));
  f.queue.Done("a");

  // One entry only: nothing more when the later deadline passes.
  f.clock.Advance(10s);
  CHECK(f.queue.TryGet() == std::nullopt);
  CHECK(f.queue.Stats().delayed == 0u);
}

TEST_CASE("queue: a delayed add of a queued name does not queue it twice") {
  Fixture f;
  f.queue.Add("a");
  f.queue.AddAfter("a", 1s);
  f.clock.Advance(1s);
  CHECK(f.queue.Tick() == 1u);
  CHECK(f.queue.Len() == 1u);
  CHECK(f.queue.TryGet() == Name("a"));
  CHECK(f.queue.TryGet() == std::nullopt);
}

TEST_CASE("queue: a run supersedes the name's pending delayed add") {
  Fixture f;
  // A resync scheduled, then an edit arrives before it is due.
  f.queue.AddAfter("a", 10s);
  f.queue.Add("a");
  REQUIRE(f.queue.TryGet() == Name("a"));
  CHECK(f.queue.Stats().delayed == 0u);
  f.queue.Done("a");
  f.clock.Advance(10s);
  CHECK(f.queue.TryGet() == std::nullopt);

  // A delayed add made while processing belongs to the next run and is kept.
  f.queue.Add("a");
  REQUIRE(f.queue.TryGet() == Name("a"));
  f.queue.AddAfter("a", 1s);
  f.queue.Done("a");
  f.clock.Advance(1s);
  CHECK(f.queue.TryGet() == Name("a"));
}

TEST_CASE("queue: failures back off per name and reset on success") {
  Fixture f;
  f.queue.Add("a");
  REQUIRE(f.queue.TryGet() == Name("a"));

  // Each failed run waits twice as long as the previous one, exactly.
  for (const Duration expected : {Duration(100ms), Duration(200ms), Duration(400ms)}) {
    CAPTURE(expected.count());
    CHECK(f.queue.AddRateLimited("a") == expected);
    f.queue.Done("a");
    f.clock.Advance(expected - 1ms);
    CHECK(f.queue.TryGet() == std::nullopt);
    f.clock.Advance(1ms);
    REQUIRE(f.queue.TryGet() == Name("a"));
  }
  CHECK(f.queue.Failures("a") == 3u);
  CHECK(f.queue.Stats().retries == 3u);
  CHECK(f.queue.AddRateLimited("b") == 100ms);  // another name starts at base

  SUBCASE("Succeeded resets the backoff") {
    f.queue.Succeeded("a", 1min);
    CHECK(f.queue.Failures("a") == 0u);
    CHECK(f.queue.AddRateLimited("a") == 100ms);
  }
  SUBCASE("Forget resets the backoff") {
    f.queue.Forget("a");
    CHECK(f.queue.Failures("a") == 0u);
    CHECK(f.queue.AddRateLimited("a") == 100ms);
  }
  CHECK(f.queue.Failures("b") == 1u);
}

TEST_CASE("queue: backoff options reach the queue, and failures are capped") {
  FakeClock clock;
  FakeRandom random;
  WorkQueueOptions options;
  options.backoff.base = 1s;
  options.backoff.max = 3s;
  WorkQueue queue(clock, random, options);
  CHECK(queue.AddRateLimited("a") == 1s);
  CHECK(queue.AddRateLimited("a") == 2s);
  CHECK(queue.AddRateLimited("a") == 3s);
  CHECK(queue.AddRateLimited("a") == 3s);
}

TEST_CASE("queue: success requeues after the resync interval, within the jitter bounds") {
  Fixture f;
  f.queue.Add("a");
  REQUIRE(f.queue.TryGet() == Name("a"));

  SUBCASE("lower bound: 0.9 x") {
    f.random.Set(0.0);
    CHECK(f.queue.Succeeded("a", 10s) == 9s);
    f.queue.Done("a");
    f.clock.Advance(9s - 1ms);
    CHECK(f.queue.TryGet() == std::nullopt);
    f.clock.Advance(1ms);
    CHECK(f.queue.TryGet() == Name("a"));
  }
  SUBCASE("middle: the interval itself") {
    f.random.Set(0.5);
    CHECK(f.queue.Succeeded("a", 10s) == 10s);
  }
  SUBCASE("upper bound: just under 1.1 x") {
    f.random.Set(kAlmostOne);
    const Duration delay = f.queue.Succeeded("a", 10s);
    CHECK(delay > 10999ms);
    CHECK(delay < 11s);
    f.queue.Done("a");
    f.clock.Advance(10999ms);
    CHECK(f.queue.TryGet() == std::nullopt);
    f.clock.Advance(1ms);
    CHECK(f.queue.TryGet() == Name("a"));
  }
  SUBCASE("configurable jitter") {
    FakeClock clock;
    WorkQueueOptions options;
    options.resync_jitter = 0.5;
    WorkQueue queue(clock, f.random, options);
    f.random.Set(0.0);
    CHECK(queue.Succeeded("x", 10s) == 5s);
  }
}

TEST_CASE("queue: resync jitter from the real random source stays within +-10% and varies") {
  FakeClock clock;
  tmaster::controller::MtRandom random;
  WorkQueue queue(clock, random);
  Duration low = Duration::max();
  Duration high = Duration::min();
  for (int i = 0; i < 500; ++i) {
    const Duration delay = queue.Succeeded("a" + std::to_string(i), 10s);
    REQUIRE(delay >= 9s);
    REQUIRE(delay <= 11s);
    low = std::min(low, delay);
    high = std::max(high, delay);
  }
  // Spread over most of the band, both sides of the interval.
  CHECK(low < 9500ms);
  CHECK(high > 10500ms);
  CHECK(queue.Stats().delayed == 500u);
}

TEST_CASE("queue: Len counts ready names only; Stats counts the rest") {
  Fixture f;
  f.queue.Add("a");
  f.queue.Add("b");
  f.queue.Add("c");
  f.queue.AddAfter("d", 1s);
  CHECK(f.queue.Len() == 3u);
  REQUIRE(f.queue.TryGet() == Name("a"));
  CHECK(f.queue.Len() == 2u);

  const auto stats = f.queue.Stats();
  CHECK(stats.depth == 2u);
  CHECK(stats.delayed == 1u);
  CHECK(stats.processing == 1u);
  CHECK(stats.adds == 3u);  // d is not added until it is due
  CHECK(stats.retries == 0u);
  CHECK(stats.waiting == 0u);
}

TEST_CASE("queue: after ShutDown, adds are ignored and TryGet returns nothing") {
  Fixture f;
  f.queue.Add("a");
  f.queue.AddAfter("b", 1s);
  REQUIRE(f.queue.TryGet() == Name("a"));
  f.queue.Add("c");
  f.queue.ShutDown();
  CHECK(f.queue.ShuttingDown());

  f.queue.Add("d");
  f.queue.AddAfter("e", 1ms);
  CHECK(f.queue.AddRateLimited("f") == Duration::zero());
  CHECK(f.queue.Succeeded("g", 1s) == Duration::zero());
  f.clock.Advance(1min);
  CHECK(f.queue.TryGet() == std::nullopt);
  CHECK(f.queue.Get() == std::nullopt);  // does not block
  CHECK(f.queue.Len() == 1u);            // "c", never handed out
  f.queue.Done("a");                     // still allowed
  CHECK(f.queue.Stats().processing == 0u);
}

TEST_CASE("queue: a blocked Get is woken by Add, by Tick on a due item, and by ShutDown") {
  Fixture f;
  std::optional<std::string> got;
  std::atomic<bool> returned{false};
  const auto wait_until_blocked = [&f] {
    while (f.queue.Stats().waiting == 0) std::this_thread::yield();
  };

  SUBCASE("Add") {
    std::thread worker([&] {
      got = f.queue.Get();
      returned = true;
    });
    wait_until_blocked();
    CHECK_FALSE(returned.load());
    f.queue.Add("a");
    worker.join();
    CHECK(got == Name("a"));
  }
  SUBCASE("Tick after the fake clock passes a delayed add") {
    // The fake delay is far longer than the test may run: only Tick can wake the Get in time.
    f.queue.AddAfter("a", 1h);
    std::thread worker([&] {
      got = f.queue.Get();
      returned = true;
    });
    wait_until_blocked();
    f.clock.Advance(1h);
    f.queue.Tick();
    worker.join();
    CHECK(got == Name("a"));
  }
  SUBCASE("ShutDown wakes every blocked Get") {
    std::optional<std::string> other{"sentinel"};
    std::thread worker([&] { got = f.queue.Get(); });
    std::thread second([&] { other = f.queue.Get(); });
    while (f.queue.Stats().waiting < 2) std::this_thread::yield();
    f.queue.ShutDown();
    worker.join();
    second.join();
    CHECK(got == std::nullopt);
    CHECK(other == std::nullopt);
  }
  SUBCASE("ShutDownWithDrain waits for the names in flight") {
    f.queue.Add("a");
    REQUIRE(f.queue.TryGet() == Name("a"));
    std::thread stopper([&] {
      f.queue.ShutDownWithDrain();
      returned = true;
    });
    while (!f.queue.ShuttingDown()) std::this_thread::yield();
    // "a" is still processing, so the drain cannot have finished.
    CHECK_FALSE(returned.load());
    f.queue.Done("a");
    stopper.join();
    CHECK(returned.load());
  }
}

TEST_CASE("queue: with the real clock, a blocked Get wakes by itself when a delay falls due") {
  // The one path a fake clock cannot drive: Get's timed wait. It waits 10 ms of real time.
  const tmaster::controller::SteadyClock clock;
  FakeRandom random;
  WorkQueue queue(clock, random);
  const auto start = clock.Now();
  queue.AddAfter("a", 10ms);
  CHECK(queue.Get() == Name("a"));
  CHECK(clock.Now() - start >= 10ms);
}
