// WorkQueue::PlanRetry (controller/runtime/work_queue.hpp): the delay a run announces in its
// status before it ends is the delay the queue then waits.
#include <doctest/doctest.h>

#include <chrono>

#include "controller/runtime/work_queue.hpp"
#include "tests/support/fake_clock.hpp"

namespace {

using namespace std::chrono_literals;
using tmaster::controller::Duration;
using tmaster::controller::WorkQueue;
using tmaster::testing::FakeClock;
using tmaster::testing::FakeRandom;

WorkQueue MakeQueue(FakeClock& clock, FakeRandom& random) {
  tmaster::controller::WorkQueueOptions options;
  options.backoff.base = 100ms;
  options.backoff.max = 1s;
  options.backoff.jitter = 0.5;
  return WorkQueue(clock, random, options);
}

}  // namespace

TEST_CASE("work queue: AddRateLimited waits exactly the delay PlanRetry announced") {
  FakeClock clock;
  FakeRandom random;
  random.Set({0.25, 0.75});  // two different jitters: a second draw would change the delay
  WorkQueue queue = MakeQueue(clock, random);
  const Duration planned = queue.PlanRetry("a");
  CHECK(planned == 112500us);  // 100 ms * (1 + 0.5 * 0.25)
  CHECK(queue.PlanRetry("a") == planned);  // asked again: the same plan, no second failure
  CHECK(queue.Failures("a") == 1);
  CHECK(queue.AddRateLimited("a") == planned);
  clock.Advance(planned - 1ms);
  CHECK_FALSE(queue.TryGet());
  clock.Advance(1ms);
  CHECK(queue.TryGet() == "a");
  queue.Done("a");
  // The plan was used up: the next failure draws anew and doubles.
  CHECK(queue.AddRateLimited("a") == 275ms);  // 200 ms * (1 + 0.5 * 0.75)
}

TEST_CASE("work queue: Forget and Succeeded drop a plan") {
  FakeClock clock;
  FakeRandom random;
  WorkQueue queue = MakeQueue(clock, random);
  (void)queue.PlanRetry("a");
  queue.Forget("a");
  CHECK(queue.Failures("a") == 0);
  CHECK(queue.AddRateLimited("a") == 100ms);
  (void)queue.PlanRetry("b");
  (void)queue.Succeeded("b", 1h);
  CHECK(queue.AddRateLimited("b") == 100ms);
}
