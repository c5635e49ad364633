#pragma once
// Which revision of its product a workspace is reconciled against (docs/rollouts.md#revisions).
// Without rollouts, always the product as the sources declare it now. With a rollout policy, the
// rollout driver (controller/daemon/rollout_driver.hpp) answers: a workspace a rollout has not
// reached stays on the revision it converged on (its version, template, migrations up to that
// revision's last and extensions, rebuilt from the revision the store recorded), and drift repair
// keeps it there.

#include <cstdint>
#include <memory>
#include <string>

#include "common/outcome.hpp"
#include "controller/sources/desired_state.hpp"

namespace tmaster::controller {

/// What one pass of a workspace applies.
struct RevisionPin {
  /// The product to reconcile against: the declared one, or one rebuilt from a stored revision.
  std::shared_ptr<const ProductEntry> product;
  int revision = 0;          ///< its number; 0: the product has no recorded revision
  std::int64_t attempt = 0;  ///< the rollout's attempt for this workspace; 0: outside rollouts
};

/// Thread-safe: the reconciler's workers ask at once.
class RevisionPins {
 public:
  virtual ~RevisionPins() = default;
  /// The pin of workspace `name`, declared as `entry`, whose status says it converged on
  /// `converged` (0: no revision recorded yet). A failure (the store could not be read for an
  /// older revision) fails the pass, transiently: nothing is applied from a guess.
  virtual Outcome<RevisionPin> PinFor(const std::string& name, const DesiredEntry& entry,
                                      int converged) = 0;
};

}  // namespace tmaster::controller
