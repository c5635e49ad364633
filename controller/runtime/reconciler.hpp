#pragma once
// The reconcile contract (docs/architecture.md#the-reconcile-contract), in the spirit of
// controller-runtime's Reconciler: a name in, a small answer out. The key is only the name; the
// reconciler reads the current desired and observed state itself, so many adds of one name
// merge into one run and lose nothing (level-triggered).

#include <optional>
#include <string>

#include "common/outcome.hpp"
#include "controller/runtime/clock.hpp"

namespace tmaster::controller {

/// Lets a reconcile announce, before it returns, how long its retry will wait: a transient
/// failure's status names its next retry, and that is the delay the queue then uses.
class RetryPlanner {
 public:
  virtual ~RetryPlanner() = default;
  /// Counts one more failure of `name` and draws the backoff delay its retry will wait; the
  /// manager's AddRateLimited for this run then uses exactly this delay.
  virtual Duration PlanRetry(const std::string& name) = 0;
};

/// One run's request: the name, and the planner of this term's queue.
struct Request {
  std::string name;
  RetryPlanner* retries = nullptr;  ///< never null inside a manager
};

/// A successful run's answer.
struct Result {
  /// Come back after this long (jittered by the queue); nullopt: not until the name is added
  /// again (gone, rejected, or deleted).
  std::optional<Duration> requeue_after;
};

/// Converges one name toward its desired state. The manager calls Reconcile from its workers,
/// never for the same name on two workers at once, and acts on the answer:
///   - a Result: the name's backoff is forgotten, and it comes back after `requeue_after`;
///   - Failure kTransient or kWaiting: it comes back after its per-name backoff (PlanRetry's
///     delay when the run planned one);
///   - Failure kStalled: a person must act; its backoff is forgotten and it is looked at again
///     at the next resync, or at once when its source changes.
class Reconciler {
 public:
  virtual ~Reconciler() = default;
  virtual Outcome<Result> Reconcile(const Request& request) = 0;
};

}  // namespace tmaster::controller
