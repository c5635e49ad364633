#pragma once
// What the workspace reconciler asks of backups (docs/backups.md#in-the-reconciler): a backup
// right before new migrations are applied to a database that existed, a final backup before a
// `reclaimPolicy: Delete` drops one, word that a deletion finished, and the conditions backups
// add to a workspace's status (BackupReady, Restored). The daemon's BackupRunner
// (controller/daemon/backup_runner.hpp) implements it; nullptr: no backups (`--once`, tests).

#include <cstdint>
#include <string>
#include <vector>

#include "common/outcome.hpp"
#include "controller/workspace/conditions.hpp"

namespace tmaster::controller {

/// The database a backup is taken of.
struct BackupSubject {
  std::string workspace;
  std::string cluster;
  std::string database;
  std::string role;
  std::int64_t generation = 0;
  std::string applied_migration;  ///< the newest migration applied, as the marker says; empty: none
};

/// A backup the hooks answer with.
struct TakenBackup {
  std::string id;       ///< empty: none (backups before migrations are off)
  bool reused = false;  ///< an earlier one of a retried step, already reported
};

/// Thread-safe: the reconciler's workers call it at once.
class BackupHooks {
 public:
  virtual ~BackupHooks() = default;
  /// A `pre-migration` backup of `subject`, taken now (on the caller's thread), or the one taken
  /// for the same migration a little earlier (a retry: `reused`); or why it could not be taken
  /// (the migration then waits). Empty id: backups before migrations are off.
  virtual Outcome<TakenBackup> BeforeMigrations(const BackupSubject& subject) = 0;
  /// A `final` backup before the database is dropped; its id, or the failure (the drop waits).
  virtual Outcome<std::string> BeforeDrop(const BackupSubject& subject) = 0;
  /// The workspace's deletion finished (`backups.keepAfterDelete: delete` removes its final
  /// backup now).
  virtual void Deleted(const std::string& workspace) = 0;
  /// The conditions backups add to the workspace's status, without transition times (the
  /// status carries them).
  [[nodiscard]] virtual std::vector<Condition> Conditions(const std::string& workspace) const = 0;
};

}  // namespace tmaster::controller
