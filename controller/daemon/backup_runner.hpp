#pragma once
// The daemon's backups (docs/backups.md#in-the-daemon): on the leader only, a scheduler that
// looks every second for workspaces whose `spec.backup.schedule` is due, a bounded pool
// (`backups.concurrency` threads) that takes backups, verifies them by restoring them into a
// scratch database, and restores; the catalog in the store, retention after each scheduled
// backup, events, metrics and the conditions BackupReady and Restored. It is the reconciler's
// BackupHooks (a backup before new migrations, a final one before a drop, taken on the calling
// worker) and the API's BackupService (a backup now, a restore).
//
// Reconciliation never waits for the pool: the scheduler and the pool have their own threads,
// and their only way into the reconciler is to queue a name (so its status picks up a changed
// condition) or, for a restore, to set and clear a suspend override.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/cron.hpp"
#include "common/secret.hpp"
#include "controller/backups/service.hpp"
#include "controller/runtime/events.hpp"
#include "controller/runtime/metrics.hpp"
#include "controller/sources/desired_state.hpp"
#include "controller/store/store.hpp"
#include "controller/workspace/backup_hooks.hpp"
#include "controller/workspace/overrides.hpp"
#include "manifests/config.hpp"

namespace tmaster::controller {

/// The caller owns everything pointed to and keeps it alive as long as the runner.
struct BackupRunnerDeps {
  const manifests::Config* config = nullptr;  ///< `backups.*`
  Store* store = nullptr;
  DesiredState* desired = nullptr;
  EventRecorder* events = nullptr;
  Metrics* metrics = nullptr;
  Overrides* overrides = nullptr;          ///< a restore suspends its target through them
  OverrideStore* override_store = nullptr;
  RequestedRuns* deep = nullptr;           ///< a restored workspace's next run is a deep one
  std::map<std::string, Secret> admin_dsns;  ///< by cluster name
  const Secret* master_key = nullptr;        ///< `backups.encrypt`
  /// Queues a name for the reconciler; false when not leading.
  std::function<bool(const std::string&)> enqueue;
  /// Seconds since the epoch; empty: the system clock.
  std::function<std::int64_t()> now_unix;
  std::string pg_bin_dir;  ///< empty: the engine finds the Debian tools
};

class BackupRunner final : public BackupHooks, public backups::BackupService {
 public:
  explicit BackupRunner(BackupRunnerDeps deps);
  ~BackupRunner() override;
  BackupRunner(const BackupRunner&) = delete;
  BackupRunner& operator=(const BackupRunner&) = delete;

  /// A leadership term begins: the scheduler and the pool start; the scheduler first removes
  /// what a crash left (scratch databases, partial files, the engine's private folders), reads
  /// the catalog and queues every backup not yet verified. Idempotent.
  void Start();
  /// The term ends: nothing new starts; waits for what runs (each tool run is bounded).
  void Stop();
  [[nodiscard]] bool Running() const;

  // BackupHooks (the reconciler's workers).
  Outcome<TakenBackup> BeforeMigrations(const BackupSubject& subject) override;
  Outcome<std::string> BeforeDrop(const BackupSubject& subject) override;
  void Deleted(const std::string& workspace) override;
  [[nodiscard]] std::vector<Condition> Conditions(const std::string& workspace) const override;

  // BackupService (the API).
  Outcome<backups::QueuedBackup> RequestBackup(const std::string& workspace,
                                               const std::string& who) override;
  [[nodiscard]] std::vector<backups::QueuedBackup> Pending(
      const std::string& workspace) const override;
  Outcome<backups::RestoreProgress> RequestRestore(const backups::RestoreCall& call) override;
  [[nodiscard]] std::optional<backups::RestoreProgress> FindRestore(
      const std::string& id) const override;

  /// One look of the scheduler (its thread calls it every second; tests call it directly):
  /// queues the scheduled backups that are due and applies `keepAfterDelete` durations.
  void ScheduleDue();

 private:
  struct Job {
    enum class Type { kBackup, kVerify, kRestore } type = Type::kBackup;
    backups::QueuedBackup backup;  ///< kBackup: what is queued; kVerify: id and workspace
    std::string restore_id;        ///< kRestore
  };
  /// What the catalog says of a workspace's scheduled backups, for BackupReady.
  struct Summary {
    std::int64_t last_success = 0;  ///< newest scheduled backup that counts (verified, or ok)
    std::string last_success_id;
    std::string last_failure;       ///< the newest scheduled attempt's failure; empty: it did not fail
    std::string last_failure_id;
    std::string verify_failure;     ///< the newest scheduled backup's failed verification
    std::string verify_failure_id;
  };
  struct Schedule {
    std::string text;
    std::optional<CronSchedule> cron;
    std::int64_t began = 0;     ///< when the schedule took effect (the workspace's creation)
    std::int64_t last_run = 0;  ///< start of the newest scheduled run (or when the schedule began)
    std::optional<std::int64_t> next;
  };

  std::int64_t Now() const;
  /// On the scheduler's thread when a term begins: what a crash left removed, the catalog read.
  void Prepare();
  /// The database of a converged workspace: its recorded identity; kNotConverged, kNotFound.
  Outcome<BackupSubject> SubjectOf(const std::string& workspace);
  std::string NewId(const std::string& workspace);
  /// Takes one backup now on this thread: the dump, the catalog row (ok or failed), events,
  /// metrics, the summary; a verification queued. Its catalog row, or the failure (recorded).
  Outcome<StoredBackup> TakeBackup(const BackupSubject& subject, const std::string& kind,
                                   const std::string& id);
  void Verify(const std::string& id);
  void RunRestore(const std::string& restore_id);
  /// Restore steps; a failure returns the message for RestoreFailed.
  Status DoRestore(const std::string& restore_id, backups::RestoreProgress progress);
  void SetProgress(const std::string& restore_id, const std::string& step,
                   const std::string& message);
  /// Waits until the workspace's stored phase is one of `phases` (or `deadline` passes).
  Outcome<std::string> WaitForPhase(const std::string& workspace,
                                    const std::set<std::string>& phases, int seconds);
  void ApplyRetention(const std::string& workspace);
  void RemoveBackup(const StoredBackup& row, const std::string& why);
  void Worker();
  void Scheduler();
  void Push(Job job);
  void Refresh(const std::string& workspace);  ///< the summary from the catalog; then queued
  std::string FileOf(const StoredBackup& row) const;
  Secret AdminDsn(const std::string& cluster) const;

  BackupRunnerDeps deps_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool running_ = false;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
  std::deque<Job> queue_;                       ///< restores at the front
  std::map<std::string, backups::QueuedBackup> active_;  ///< queued or running, by id
  std::map<std::string, Schedule> schedules_;   ///< by workspace
  std::map<std::string, Summary> summaries_;    ///< by workspace
  std::map<std::string, backups::RestoreProgress> restores_;  ///< by id
  std::set<std::string> restoring_;             ///< target workspaces
  std::map<std::string, std::string> restored_by_;  ///< target -> newest restore id
  std::int64_t next_sweep_ = 0;  ///< the scheduler's thread only
};

}  // namespace tmaster::controller
