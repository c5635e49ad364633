#pragma once
// Which of one workspace's backups to remove: the pure prune arithmetic of the catalog, tested
// without I/O. The policy and why it is this one: docs/backups.md#retention.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tmaster::backups {

/// Why a backup was taken.
enum class BackupKind {
  kScheduled,     ///< by `spec.backup.schedule`
  kManual,        ///< `tenantctl backup`, `POST .../backups`
  kPreMigration,  ///< right before new migrations were applied
  kSafety,        ///< right before a restore overwrote the database
  kFinal,         ///< before a `reclaimPolicy: Delete` dropped the database
};

/// Where a backup stands.
enum class BackupState {
  kOk,            ///< written and read back by `pg_restore --list`; not yet restored
  kVerified,      ///< restored into a scratch database, row counts equal
  kVerifyFailed,  ///< the file exists, but restoring it failed or the counts differed
  kFailed,        ///< the dump itself failed: a record of the attempt, no usable file
};

std::string_view ToString(BackupKind kind);
std::string_view ToString(BackupState state);

/// What retention needs of one catalog entry.
struct RetentionEntry {
  std::string id;
  BackupKind kind = BackupKind::kScheduled;
  std::int64_t created_unix = 0;
  BackupState state = BackupState::kOk;
};

struct RetentionPolicy {
  /// `spec.backup.keep`: scheduled backups kept. Below 1 counts as 1: retention never removes
  /// the last scheduled backup.
  int keep = 7;
  /// How long manual, pre-migration and safety backups, and failed attempts, are kept.
  std::int64_t keep_other_seconds = std::int64_t{30} * 86400;
};

/// One backup to remove and why, for the event and the log.
struct Removal {
  std::string id;
  std::string reason;  ///< e.g. `scheduled backup beyond keep 7 (9 newer)`
};

/// The entries of one workspace's catalog to remove at `now_unix`, oldest first:
/// - scheduled backups that are not `failed` beyond the newest `keep` of them (newest by
///   created time, then id);
/// - manual, pre-migration and safety backups older than `keep_other_seconds`, except the
///   newest pre-migration backup (the one that undoes the last migration);
/// - `failed` entries of any kind older than `keep_other_seconds`;
/// - never a `final` backup (only `backups.keepAfterDelete` and a person remove those), and
///   never the newest `verified` backup of any kind, whatever its age: the workspace always
///   keeps its last proven restore point, even when that leaves keep + 1 scheduled backups.
/// An empty result means nothing to do.
std::vector<Removal> SelectRemovals(const std::vector<RetentionEntry>& entries,
                                    const RetentionPolicy& policy, std::int64_t now_unix);

}  // namespace tmaster::backups
