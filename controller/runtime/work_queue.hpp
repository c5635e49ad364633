#pragma once

// The controller's work queue (docs/architecture.md#the-work-queue): client-go's rate-limiting, delaying work queue
// (k8s.io/client-go/util/workqueue `queue.go`, `delaying_queue.go`, `rate_limiting_queue.go`)
// for workspace names. Level-triggered: an item is only a name; whoever processes it reads the
// current spec and state, so merging several adds into one run loses nothing.
//
// A name is in at most one of: nowhere, queued, processing (handed out, not yet Done), or
// processing + dirty (re-added while processing: queued again on Done). Independently, it may
// have one pending delayed add (the earliest wins).
//
// Where this differs from client-go, and why:
// - Get returns nullopt as soon as ShutDown is called, even with items still queued: on SIGTERM
//   the controller stops taking work (docs/architecture.md#shutdown); everything is reconciled again after restart.
// - Get drops the name's pending delayed add: the run it hands out supersedes it, and that run
//   ends with its own Succeeded / AddRateLimited / AddAfter. Without this a resync scheduled
//   before an edit would cause one extra, useless run.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "controller/runtime/backoff.hpp"
#include "controller/runtime/clock.hpp"
#include "controller/runtime/reconciler.hpp"

namespace tmaster::controller {

struct WorkQueueOptions {
  BackoffOptions backoff;      ///< per-name failure backoff (AddRateLimited)
  double resync_jitter = 0.1;  ///< Succeeded waits resync_interval * (1 ± resync_jitter)
};

/// Counters for the metrics of docs/architecture.md#metrics (`tenant_master_workqueue_depth`,
/// `tenant_master_workqueue_retries_total`).
struct WorkQueueStats {
  std::uint64_t adds = 0;      ///< adds that queued or dirtied a name (duplicates not counted)
  std::uint64_t retries = 0;   ///< AddRateLimited calls
  std::size_t depth = 0;       ///< names queued and ready to be handed out (Len)
  std::size_t delayed = 0;     ///< names waiting for a delayed add to fall due
  std::size_t processing = 0;  ///< names handed out and not yet Done
  std::size_t waiting = 0;     ///< Gets blocked for want of a ready name (idle workers)
};

/// A thread-safe queue of workspace names. Clock and Random are injected; with a fake clock,
/// tests advance time and then call TryGet or Tick, and never sleep.
class WorkQueue final : public RetryPlanner {
 public:
  /// `clock` and `random` must outlive the queue.
  WorkQueue(const Clock& clock, Random& random, WorkQueueOptions options = {});
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  /// Queues `name` for processing now. A name already queued is not queued twice (dedup). A
  /// name being processed is marked dirty and queued again when Done(name) is called, never
  /// handed to a second worker meanwhile. Ignored after ShutDown.
  void Add(const std::string& name);

  /// Adds `name` once `delay` has passed on the clock; a delay of zero or less is Add. If the
  /// name already has a pending delayed add, the earlier of the two is kept. Ignored after
  /// ShutDown.
  void AddAfter(const std::string& name, Duration delay);

  /// A failed run: AddAfter(name, backoff delay), the delay growing per name with each failure
  /// (BackoffOptions). Returns the delay used (the workspace's "next retry"), or zero when
  /// ignored after ShutDown.
  Duration AddRateLimited(const std::string& name);
  /// Counts one more failure of `name` and draws the delay its next AddRateLimited will use
  /// (RetryPlanner), so a status written before the run ends can name its next retry. A second
  /// PlanRetry before that AddRateLimited returns the same delay. Forget and Succeeded drop it.
  Duration PlanRetry(const std::string& name) override;

  /// Resets `name`'s backoff, so its next failure waits `base` again. Does not remove it from
  /// the queue or cancel a delayed add.
  void Forget(const std::string& name);

  /// A successful run: Forget(name), then AddAfter(name, resync_interval with ±resync_jitter).
  /// Returns the delay used, or zero when ignored after ShutDown.
  Duration Succeeded(const std::string& name, Duration resync_interval);

  /// How many failures `name` has had since its last Forget / Succeeded.
  [[nodiscard]] std::uint32_t Failures(const std::string& name) const;

  /// Blocks until a name is ready and hands it out (it is then processing until Done), waking
  /// when the earliest delayed add falls due. Returns nullopt once ShutDown was called. With a
  /// fake clock, a blocked Get re-checks due items only when woken, e.g. by Tick.
  std::optional<std::string> Get();

  /// As Get without blocking: first moves due delayed adds into the queue, then returns the
  /// next ready name, or nullopt when none is ready or after ShutDown.
  std::optional<std::string> TryGet();

  /// Ends the processing of `name` handed out by Get/TryGet. If it was re-added meanwhile, it
  /// is queued again now (unless shutting down). Done for a name not processing is a no-op.
  void Done(const std::string& name);

  /// Moves the delayed adds that are due by the clock into the queue and wakes blocked Gets.
  /// Returns how many names were moved (including ones already queued, so merged).
  std::size_t Tick();

  /// Names queued and ready to be handed out (the depth metric; delayed and processing names
  /// are not counted).
  [[nodiscard]] std::size_t Len() const;

  /// Stops the queue: later adds are ignored, every blocked Get returns nullopt now, and later
  /// Gets return nullopt. Names still processing may still be Done.
  void ShutDown();

  /// ShutDown, then blocks until every name handed out has been Done.
  void ShutDownWithDrain();

  [[nodiscard]] bool ShuttingDown() const;

  [[nodiscard]] WorkQueueStats Stats() const;

 private:
  struct DelayedKey {
    TimePoint due;
    std::uint64_t sequence;  ///< FIFO among names due at the same time
    auto operator<=>(const DelayedKey&) const = default;
  };

  void AddLocked(const std::string& name);
  void AddAfterLocked(const std::string& name, Duration delay);
  std::size_t MoveDueLocked();
  std::optional<std::string> PopLocked();

  const Clock& clock_;
  Random& random_;
  const WorkQueueOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable ready_;    ///< an item was queued, or shutting down, or delays changed
  std::condition_variable drained_;  ///< processing became empty
  Backoff backoff_;
  std::deque<std::string> queue_;               ///< ready, in order; each name at most once
  std::unordered_set<std::string> dirty_;       ///< queued, or re-added while processing
  std::unordered_set<std::string> processing_;  ///< handed out, not yet Done
  // Delayed adds, earliest first: an ordered map works as the min-heap and, unlike
  // std::priority_queue, lets "earliest wins" and Get's drop remove an entry directly.
  std::map<DelayedKey, std::string> delayed_;
  std::unordered_map<std::string, DelayedKey> delayed_by_name_;
  std::unordered_map<std::string, Duration> planned_;  ///< PlanRetry delays not yet used
  std::uint64_t next_sequence_ = 0;
  bool shutting_down_ = false;
  std::uint64_t adds_ = 0;
  std::uint64_t retries_ = 0;
  std::size_t waiting_ = 0;
};

}  // namespace tmaster::controller
