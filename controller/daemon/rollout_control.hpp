#pragma once
// What the API asks of the rollout driver (docs/rollouts.md, docs/api.md#rollouts): a product's
// rollout status, and the verbs of `tenantctl rollout`. The driver (rollout_driver.hpp) answers
// on the leader; the API answers 503 itself on a standby. Plain strings in and out, so the API
// room knows nothing of the rollouts room.

#include <string>

#include "common/outcome.hpp"

namespace tmaster::controller {

/// Thread-safe.
class RolloutControl {
 public:
  virtual ~RolloutControl() = default;

  /// `GET /api/v1/products/{name}/rollout`: the product's rollout status as a JSON object
  /// (docs/api.md#rollouts):
  /// `{"product", "revision": {"number", "digest"} | null, "refused": {"reason","message"} | null,
  ///   "rollout": null | {"revision", "previousRevision", "phase", "currentWave" (1-based),
  ///   "waveCount", "pausedUntil", "pausedByPerson", "startedAt", "finishedAt" (RFC 3339 or
  ///   null), "counts": {"pending","inProgress","ready","failed"},
  ///   "workspaces": [{"name", "wave" (1-based), "state", "fromRevision", "reason",
  ///   "preMigrationBackup", "restore"}]}}`.
  /// Failure reason `NotFound` when no source declares the product.
  [[nodiscard]] virtual Outcome<std::string> StatusJson(const std::string& product) const = 0;

  /// The short form for each item of `GET /api/v1/products` (`"rolloutStatus"`): `{"phase",
  /// "revision", "currentWave", "waveCount", "counts"}` of the product's rollout, or `null`.
  [[nodiscard]] virtual std::string SummaryJson(const std::string& product) const = 0;

  /// `POST /api/v1/products/{name}/rollout/{verb}`, verb one of pause, resume, promote, abort,
  /// undo; `who` is the principal's description (recorded in the event). Returns the new status
  /// (as StatusJson). Failure reasons: `NotFound` (no such product, or it never had a rollout),
  /// `RolloutCommandRefused` (the verb does not apply in this phase; the message says why and
  /// what would), `InvalidVerb`, or a store failure (`Unavailable`, transient: retry).
  virtual Outcome<std::string> Command(const std::string& product, const std::string& verb,
                                       const std::string& who) = 0;
};

}  // namespace tmaster::controller
