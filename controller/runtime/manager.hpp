#pragma once
// The manager (docs/architecture.md#the-manager): runs a controller while this replica holds the
// leader lock, in the spirit of controller-runtime's manager. One leadership term is: a fresh
// work queue, the term's own start (the daemon reads the store and starts its sources), a fixed
// pool of workers calling the Reconciler, and a poll of the lock. Losing the lock shuts the queue
// at once: a worker finishes the action it is in and starts no other; then the term's state is
// dropped and the replica stands by again. Stop() drains the same way and returns from Run().

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "controller/runtime/backoff.hpp"
#include "controller/runtime/clock.hpp"
#include "controller/runtime/metrics.hpp"
#include "controller/runtime/reconciler.hpp"
#include "controller/runtime/work_queue.hpp"
#include "controller/store/leader_lock.hpp"

namespace tmaster::controller {

/// What a leadership term does besides running the workers. Called from Run()'s thread only.
class Term {
 public:
  virtual ~Term() = default;
  /// The term starts: read what must be known before work begins, queue what must run first,
  /// start feeding the queue. false: the term cannot start now (say, the store is unreachable):
  /// the manager steps down, waits one poll and tries again. End() is called either way.
  virtual bool Begin(WorkQueue& queue) = 0;
  /// Once as soon as Begin has succeeded, before any worker starts; then once per lock poll
  /// while leading (gauges, what starts with the term).
  virtual void Tick() = 0;
  /// The queue is shut down: stop feeding it. Called before the workers are joined.
  virtual void StopIntake() = 0;
  /// Every worker has returned: drop the term's state.
  virtual void End() = 0;
};

struct ManagerDeps {
  LeaderLock* leader_lock = nullptr;  ///< nullptr: always the leader (single replica, tests)
  Reconciler* reconciler = nullptr;
  Term* term = nullptr;
  Metrics* metrics = nullptr;
  const Clock* clock = nullptr;
  Random* random = nullptr;
  /// Called once when a Stop()'s drain passes its bound: cancels what the workers wait on (the
  /// PostgreSQL statements in flight), so they return. Empty: nothing to cancel.
  std::function<void()> cancel_in_flight = {};
};

struct ManagerOptions {
  int workers = 4;
  /// A stalled name is looked at again after this long (jittered), unless it changes first.
  Duration resync_interval = std::chrono::minutes(5);
  /// How often a standby tries the lock and a leader checks it still holds it.
  Duration leader_poll = std::chrono::seconds(1);
  BackoffOptions backoff;  ///< per-name failure backoff
  /// Stop()'s bound on the drain (`reconcile.drainTimeout`): the workers still busy after it get
  /// `cancel_in_flight`, then `cancel_grace` more to return.
  Duration drain_timeout = std::chrono::seconds(30);
  Duration cancel_grace = std::chrono::seconds(1);
};

/// Run() blocks until Stop(); every public method is thread-safe. The pointees of ManagerDeps
/// must outlive the manager.
class Manager {
 public:
  Manager(ManagerDeps deps, ManagerOptions options);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  /// Stands by until the leader lock is taken, then leads until Stop() or until the lock is
  /// lost (then stands by again). Returns when stopped, after draining in-flight work and
  /// releasing the lock: true. The drain is bounded (ManagerOptions::drain_timeout, then
  /// cancel_in_flight and cancel_grace): false when a worker was still busy after that. The
  /// workers are then left running, detached, and still use the manager and its deps: the
  /// caller must end the process without destroying them (std::_Exit).
  bool Run();
  /// Asks Run() to return: stop taking work, let in-flight reconciles finish (within the bound).
  void Stop();

  [[nodiscard]] bool Leading() const { return leading_; }
  [[nodiscard]] bool Stopping() const { return stop_; }

 private:
  enum class TermEnd { kStopped, kLost, kAbandoned };
  struct Crew;
  /// One term: ended by Stop() (drained), by the lock lost or a term that could not start, or by
  /// a drain that passed its bound with workers still busy (they are detached).
  TermEnd Lead();
  /// Waits for the crew's workers within the drain bound, cancelling in-flight work once the
  /// bound passes; true when every worker returned.
  bool Drain(Crew& crew);
  void WorkerLoop(WorkQueue& queue);
  /// Acts on a run's answer as reconciler.hpp says.
  void Requeue(WorkQueue& queue, const std::string& name, const Outcome<Result>& outcome);
  /// Waits up to `limit`; true when Stop() was called.
  bool WaitForStop(Duration limit);

  ManagerDeps deps_;
  ManagerOptions options_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> leading_{false};
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
};

}  // namespace tmaster::controller
