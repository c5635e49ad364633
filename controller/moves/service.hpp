#pragma once

// What the API asks of the moves room (docs/moves.md): move a workspace's database to another
// cluster, prune the source a finished move kept. The daemon's MoveRunner
// (controller/daemon/move_runner.hpp) implements it on the leader; the API
// (controller/daemon/workspace_api.hpp) answers a standby's writes 503 before it gets here. A
// move's progress is read from the store (Store::FindMove, ListMoves), so a standby shows it too.

#include <string>
#include <string_view>

#include "common/outcome.hpp"
#include "controller/store/store.hpp"

namespace tmaster::moves {

/// The Failure reasons a MoveService returns, and the HTTP status each maps to.
inline constexpr std::string_view kNotFound = "NotFound";            ///< 404: no such workspace
inline constexpr std::string_view kNotConverged = "NotConverged";    ///< 409: no database yet
inline constexpr std::string_view kMoveInProgress = "MoveInProgress";  ///< 409
/// 409: `spec.database.cluster` names the cluster: the manifest decides, not a move.
inline constexpr std::string_view kMovePinned = "MovePinned";
/// 409: a finished move's source is still kept (prune it first), or a prune without one.
inline constexpr std::string_view kMoveConflict = "MoveConflict";
/// 422: the target is unknown, the current cluster, full, or outside the workspace's selector.
inline constexpr std::string_view kInvalidTarget = "InvalidTarget";
inline constexpr std::string_view kUnavailable = "Unavailable";  ///< 503: not leading, stopping

/// The move states (StoredMove::state).
inline constexpr std::string_view kPending = "pending";
inline constexpr std::string_view kRunning = "running";
inline constexpr std::string_view kSucceeded = "succeeded";
inline constexpr std::string_view kFailed = "failed";
inline constexpr std::string_view kPruned = "pruned";

/// True for the states a move stays in (succeeded, failed, pruned).
inline bool Finished(std::string_view state) {
  return state == kSucceeded || state == kFailed || state == kPruned;
}

struct MoveCall {
  std::string workspace;
  std::string to;   ///< the target cluster
  std::string who;  ///< the principal's description, for the events
};

/// Thread-safe.
class MoveService {
 public:
  virtual ~MoveService() = default;
  /// Records a move of `call.workspace` to `call.to` (state pending) and starts it; returns the
  /// recorded move. kNotFound, kNotConverged, kMovePinned, kMoveInProgress, kMoveConflict (the
  /// source of an earlier move is still kept), kInvalidTarget, kUnavailable.
  virtual Outcome<controller::StoredMove> RequestMove(const MoveCall& call) = 0;
  /// Drops the source database and role a succeeded move kept; returns the move as pruned.
  /// kNotFound (no move recorded), kMoveConflict (the newest move did not succeed, or was pruned
  /// already), kUnavailable; a cluster's failure as it was classified.
  virtual Outcome<controller::StoredMove> Prune(const std::string& workspace,
                                               const std::string& who) = 0;
};

}  // namespace tmaster::moves
