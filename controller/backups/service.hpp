#pragma once

// What the API asks of the backups room (docs/backups.md#on-demand): take a backup now, list what
// is queued, restore a backup, follow a restore. The daemon's BackupRunner
// (controller/backups/runner.hpp) implements it on the leader; the API
// (controller/daemon/workspace_api.hpp) answers a standby's writes 503 before it gets here, and
// tests answer with anything. The catalog itself is read from the store, not from here, so a
// standby lists it too.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"

namespace tmaster::backups {

/// The Failure reasons a BackupService returns, and the HTTP status each maps to.
inline constexpr std::string_view kNotFound = "NotFound";            ///< 404: no such workspace or backup
inline constexpr std::string_view kNotConverged = "NotConverged";    ///< 409: no database yet
inline constexpr std::string_view kRestoreInProgress = "RestoreInProgress";  ///< 409
inline constexpr std::string_view kNotRestorable = "NotRestorable";  ///< 422: a failed backup, a file gone
inline constexpr std::string_view kUnavailable = "Unavailable";      ///< 503: not leading, stopping

/// A backup asked for and not finished yet.
struct QueuedBackup {
  std::string id;         ///< the catalog id it will have
  std::string workspace;
  std::string kind;       ///< scheduled, manual, pre-migration, safety, final
  std::string state;      ///< queued or running
  std::int64_t queued_unix = 0;
};

struct RestoreCall {
  std::string from;       ///< the workspace whose backup it is (the path's `{name}`)
  std::string backup_id;  ///< must be one of `from`'s
  std::string into;       ///< the workspace restored into; empty: `from`
  std::string who;        ///< the principal's description, for the events
};

/// One restore, as `GET /api/v1/restores/{id}` shows it.
struct RestoreProgress {
  std::string id;         ///< `r-<workspace>-<time>-<4 random>`
  std::string workspace;  ///< the target
  std::string from;       ///< the backup's workspace
  std::string backup_id;
  std::string state;      ///< running, succeeded or failed
  std::string step;       ///< checksum, safety-backup, suspend, restore, resume, done
  std::string message;    ///< what happened last, or why it failed; never a secret
  std::string safety_backup;  ///< the id of the safety backup taken; empty: none (yet)
  std::int64_t started_unix = 0;
  std::int64_t finished_unix = 0;  ///< 0 while running
};

/// Thread-safe.
class BackupService {
 public:
  virtual ~BackupService() = default;
  /// Queues a manual backup of `workspace`; a manual backup already queued or running for it is
  /// returned instead of a second one. kNotFound, kNotConverged, kUnavailable.
  virtual Outcome<QueuedBackup> RequestBackup(const std::string& workspace,
                                              const std::string& who) = 0;
  /// The backups of `workspace` queued or running, oldest first; empty on a standby.
  [[nodiscard]] virtual std::vector<QueuedBackup> Pending(const std::string& workspace) const = 0;
  /// Starts a restore (docs/backups.md#restore). kNotFound (workspace or backup, or the backup is
  /// another workspace's), kNotRestorable, kRestoreInProgress (on the target), kNotConverged
  /// (the target has no database), kUnavailable.
  virtual Outcome<RestoreProgress> RequestRestore(const RestoreCall& call) = 0;
  /// A restore this leader started or finished (kept for an hour after it finished); nullopt:
  /// unknown here.
  [[nodiscard]] virtual std::optional<RestoreProgress> FindRestore(const std::string& id) const = 0;
};

}  // namespace tmaster::backups
