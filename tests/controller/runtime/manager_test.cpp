// The manager (controller/runtime/manager.hpp) with a fake lock, term and reconciler: what a
// leader does when it leads, when it loses its lock, when it is stopped, and how each answer of
// the reconciler brings a name back. The queue runs on the real clock with millisecond
// delays; threads are ordered with futures and condition waits, never sleeps.
#include "controller/runtime/manager.hpp"

#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/eventually.hpp"
#include "tests/support/fake_leader_lock.hpp"

namespace {

using namespace tmaster;
using namespace tmaster::controller;
using namespace std::chrono_literals;
using tmaster::testing::Eventually;

/// Queues `names` when a term begins; counts the calls.
class FakeTerm final : public Term {
 public:
  bool Begin(WorkQueue& queue) override {
    ++begins;
    if (!can_begin) return false;
    for (const std::string& name : names) queue.Add(name);
    return true;
  }
  void Tick() override { ++ticks; }
  void StopIntake() override { ++stops; }
  void End() override { ++ends; }
  std::vector<std::string> names;
  std::atomic<bool> can_begin{true};
  std::atomic<int> begins{0}, ticks{0}, stops{0}, ends{0};
};

/// Answers per name; can hold a run until the test releases it.
class FakeReconciler final : public Reconciler {
 public:
  Outcome<Result> Reconcile(const Request& request) override {
    std::unique_lock lock(mutex);
    runs.push_back(request.name);
    changed.notify_all();
    if (request.name == hold_name) {
      holding = true;
      changed.notify_all();
      changed.wait(lock, [&] { return !hold_name.has_value(); });
      ++released_runs;
    }
    if (auto it = answers.find(request.name); it != answers.end()) {
      if (it->second.kind == Kind::kThrow) throw std::runtime_error("bug");
      if (it->second.kind == Kind::kFail) {
        if (it->second.failure.kind != FailureKind::kStalled) {
          planned.push_back(request.retries->PlanRetry(request.name));
        }
        return it->second.failure;
      }
      return it->second.result;
    }
    return Result{};
  }
  int Runs(const std::string& name) {
    const std::lock_guard lock(mutex);
    int n = 0;
    for (const std::string& r : runs) n += r == name ? 1 : 0;
    return n;
  }
  std::size_t TotalRuns() {
    const std::lock_guard lock(mutex);
    return runs.size();
  }
  void Hold(const std::string& name) {
    const std::lock_guard lock(mutex);
    hold_name = name;
  }
  bool WaitHolding(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, limit, [&] { return holding; });
  }
  void Release() {
    {
      const std::lock_guard lock(mutex);
      hold_name.reset();
    }
    changed.notify_all();
  }

  enum class Kind { kResult, kFail, kThrow };
  struct Answer {
    Kind kind = Kind::kResult;
    Result result;
    Failure failure;
  };
  std::map<std::string, Answer> answers;  // set before Run
  std::vector<Duration> planned;
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> runs;
  std::optional<std::string> hold_name;
  bool holding = false;
  int released_runs = 0;  ///< held runs that have returned from their hold
};

struct Harness {
  Harness() {
    spdlog::set_level(spdlog::level::off);
    options.workers = 2;
    options.leader_poll = 5ms;
    options.resync_interval = 1h;
    options.backoff.base = 1ms;
    options.backoff.max = 4ms;
  }
  Manager Make(LeaderLock* lock, std::function<void()> cancel_in_flight = {}) {
    return Manager({.leader_lock = lock,
                    .reconciler = &reconciler,
                    .term = &term,
                    .metrics = &metrics,
                    .clock = &clock,
                    .random = &random,
                    .cancel_in_flight = std::move(cancel_in_flight)},
                   options);
  }
  FakeTerm term;
  FakeReconciler reconciler;
  Metrics metrics;
  SteadyClock clock;
  MtRandom random;
  ManagerOptions options;
};

}  // namespace

TEST_CASE("manager: a leader that loses its lock stops its workers and sends nothing more") {
  Harness h;
  testing::FakeLeaderLock lock;
  h.term.names = {"busy", "a", "b", "c"};
  h.reconciler.Hold("busy");
  h.reconciler.answers["a"] = {FakeReconciler::Kind::kResult, Result{1ms}, {}};
  Manager manager = h.Make(&lock);
  std::thread runner([&] { manager.Run(); });

  REQUIRE(h.reconciler.WaitHolding(5s));                                 // one action is in flight
  REQUIRE(Eventually([&] { return h.reconciler.Runs("a") >= 3; }, 5s));  // "a" keeps coming back
  lock.held = false;  // the session ended: the lock is gone
  REQUIRE(Eventually([&] { return h.term.stops.load() == 1; }, 5s));
  // The queue is shut: whatever runs now is only the action already in flight.
  const std::size_t at_loss = h.reconciler.TotalRuns();
  lock.available = false;  // another replica took it
  h.reconciler.Release();  // the in-flight action finishes
  REQUIRE(Eventually([&] { return h.term.ends.load() == 1; }, 5s));
  CHECK_FALSE(manager.Leading());
  const int tries = lock.tries.load();
  REQUIRE(Eventually([&] { return lock.tries.load() > tries + 2; }, 5s));  // standing by
  CHECK(h.reconciler.TotalRuns() == at_loss);
  CHECK(lock.releases.load() == 1);
  CHECK(h.metrics.Render().find("tenant_master_leader 0") != std::string::npos);
  manager.Stop();
  runner.join();
  CHECK(h.term.begins.load() == 1);
}

TEST_CASE("manager: Stop drains the action in flight before Run returns") {
  Harness h;
  h.term.names = {"busy"};
  h.reconciler.Hold("busy");
  Manager manager = h.Make(nullptr);
  auto done = std::async(std::launch::async, [&] { manager.Run(); });
  REQUIRE(h.reconciler.WaitHolding(5s));
  manager.Stop();
  CHECK(done.wait_for(50ms) == std::future_status::timeout);  // still draining
  h.reconciler.Release();
  CHECK(done.wait_for(5s) == std::future_status::ready);
  CHECK(h.term.ends.load() == 1);
  CHECK(h.term.stops.load() == 1);
}

TEST_CASE("manager: a drain that passes drainTimeout cancels what is in flight, then returns") {
  Harness h;
  h.options.drain_timeout = 200ms;
  h.term.names = {"busy"};
  h.reconciler.Hold("busy");
  std::atomic<int> cancels{0};
  // The cancel is what ends the blocked statement: here it releases the held run.
  Manager manager = h.Make(nullptr, [&] {
    ++cancels;
    h.reconciler.Release();
  });
  auto done = std::async(std::launch::async, [&] { return manager.Run(); });
  REQUIRE(h.reconciler.WaitHolding(5s));
  const auto stopped_at = std::chrono::steady_clock::now();
  manager.Stop();
  CHECK(done.wait_for(100ms) == std::future_status::timeout);  // still within the bound
  REQUIRE(done.wait_for(5s) == std::future_status::ready);
  CHECK(done.get());  // drained: the worker returned after the cancel
  CHECK(cancels.load() == 1);
  CHECK(std::chrono::steady_clock::now() - stopped_at >= 200ms);
  CHECK(h.term.ends.load() == 1);
}

TEST_CASE("manager: a worker that ignores the cancel is given up on; Run says so") {
  Harness h;
  h.options.drain_timeout = 100ms;
  h.options.cancel_grace = 100ms;
  h.term.names = {"stuck"};
  h.reconciler.Hold("stuck");
  std::atomic<int> cancels{0};
  auto manager = std::make_unique<Manager>(
      ManagerDeps{.leader_lock = nullptr,
                  .reconciler = &h.reconciler,
                  .term = &h.term,
                  .metrics = &h.metrics,
                  .clock = &h.clock,
                  .random = &h.random,
                  .cancel_in_flight = [&] { ++cancels; }},
      h.options);
  auto done = std::async(std::launch::async, [&] { return manager->Run(); });
  REQUIRE(h.reconciler.WaitHolding(5s));
  manager->Stop();
  REQUIRE(done.wait_for(5s) == std::future_status::ready);
  CHECK_FALSE(done.get());
  CHECK(cancels.load() == 1);
  CHECK(h.term.ends.load() == 0);  // the term is not ended under a worker still in it
  // The test must outlive the detached worker: release it and let it leave the manager.
  h.reconciler.Release();
  REQUIRE(Eventually([&] {
    const std::lock_guard lock(h.reconciler.mutex);
    return h.reconciler.released_runs == 1;
  }));
  std::this_thread::sleep_for(50ms);  // the worker's last steps after its run: queue shut down
}

TEST_CASE("manager: each answer brings the name back as the reconcile contract says") {
  Harness h;
  h.term.names = {"ok-soon", "gone", "transient", "stalled", "bug"};
  h.reconciler.answers["ok-soon"] = {FakeReconciler::Kind::kResult, Result{2ms}, {}};
  h.reconciler.answers["gone"] = {FakeReconciler::Kind::kResult, Result{}, {}};
  h.reconciler.answers["transient"] = {
      FakeReconciler::Kind::kFail, {}, Failure::Transient("Down", "refused")};
  h.reconciler.answers["stalled"] = {
      FakeReconciler::Kind::kFail, {}, Failure::Stalled("Conflict", "a person must act")};
  h.reconciler.answers["bug"] = {FakeReconciler::Kind::kThrow, {}, {}};
  Manager manager = h.Make(nullptr);
  std::thread runner([&] { manager.Run(); });
  // Requeued: a success after its requeue_after, a transient failure and a thrown exception
  // after their backoff (1-4 ms here).
  CHECK(Eventually([&] { return h.reconciler.Runs("ok-soon") >= 3; }, 5s));
  CHECK(Eventually([&] { return h.reconciler.Runs("transient") >= 3; }, 5s));
  CHECK(Eventually([&] { return h.reconciler.Runs("bug") >= 3; }, 5s));
  manager.Stop();
  runner.join();
  // Not requeued: nothing to come back for, and a stalled name waits for the resync (1 h).
  CHECK(h.reconciler.Runs("gone") == 1);
  CHECK(h.reconciler.Runs("stalled") == 1);
  // The delay a transient run planned (and could write in its status) is the backoff's.
  REQUIRE_FALSE(h.reconciler.planned.empty());
  for (const Duration d : h.reconciler.planned) {
    CHECK(d >= 1ms);
    CHECK(d <= 5ms);
  }
  const std::string metrics = h.metrics.Render();
  // The thrown exception was counted as a failure (the fake reconciler counts nothing itself).
  CHECK(metrics.find("tenant_master_reconcile_total{result=\"failure\"} ") != std::string::npos);
  CHECK(metrics.find("tenant_master_reconcile_total{result=\"failure\"} 0\n") == std::string::npos);
}

TEST_CASE("manager: a term that cannot start steps down and tries again") {
  Harness h;
  testing::FakeLeaderLock lock;
  h.term.can_begin = false;
  Manager manager = h.Make(&lock);
  std::thread runner([&] { manager.Run(); });
  REQUIRE(Eventually([&] { return h.term.begins.load() >= 2; }, 5s));
  CHECK(h.term.ends.load() >= 1);
  CHECK(lock.releases.load() >= 1);
  CHECK(h.reconciler.TotalRuns() == 0);
  h.term.names = {"x"};
  h.term.can_begin = true;
  CHECK(Eventually([&] { return h.reconciler.Runs("x") == 1; }, 5s));
  manager.Stop();
  runner.join();
}

TEST_CASE("manager: the term ticks once before its workers start, not one poll later") {
  // A slow poll: without the first tick at Begin, nothing ticks for an hour.
  Harness h;
  h.options.leader_poll = 1h;
  h.term.names = {"x"};
  Manager manager = h.Make(nullptr);
  std::thread runner([&] { manager.Run(); });
  REQUIRE(Eventually([&] { return h.reconciler.Runs("x") == 1; }, 5s));
  CHECK(h.term.ticks.load() == 1);
  manager.Stop();
  runner.join();
}
