#include "controller/daemon/backup_runner.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <system_error>
#include <utility>

#include "common/crypto.hpp"
#include "common/scrub.hpp"
#include "common/time.hpp"
#include "controller/api/status_json.hpp"
#include "controller/backups/catalog.hpp"
#include "controller/backups/retention.hpp"
#include "controller/daemon/phase_wait.hpp"
#include "reconcilers/backups/backup_tools.hpp"

namespace tmaster::controller {
namespace {

namespace fs = std::filesystem;
using backups::QueuedBackup;
using backups::RestoreProgress;

/// A backup asked for again within this long reuses the one taken (a retried migration, a
/// deletion whose drop failed after its final backup) instead of taking another.
constexpr std::int64_t kReuseSeconds = 15 * 60;
/// How long a restore waits for its target to be suspended, then to come back.
constexpr int kPhaseWaitSeconds = 180;
/// A finished restore stays visible (`GET /api/v1/restores/{id}`) this long.
constexpr std::int64_t kKeepRestoreSeconds = 3600;
/// How often the scheduler removes expired final backups and applies retention to every catalog.
constexpr std::int64_t kSweepSeconds = 600;

std::string Quoted(const std::string& text) { return "\"" + text + "\""; }

std::string HumanSize(std::int64_t bytes) {
  char out[32];
  if (bytes >= 1024 * 1024) {
    std::snprintf(out, sizeof out, "%.1f MB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  } else {
    std::snprintf(out, sizeof out, "%.1f kB", static_cast<double>(bytes) / 1024.0);
  }
  return out;
}

std::string Seconds(std::int64_t ms) {
  char out[32];
  std::snprintf(out, sizeof out, "%.1f s", static_cast<double>(ms) / 1000.0);
  return out;
}

Failure Reasoned(std::string_view reason, std::string message) {
  return Failure::Stalled(std::string(reason), std::move(message));
}

}  // namespace

BackupRunner::BackupRunner(BackupRunnerDeps deps) : deps_(std::move(deps)) {}

BackupRunner::~BackupRunner() { Stop(); }

std::int64_t BackupRunner::Now() const { return deps_.now_unix ? deps_.now_unix() : UnixNow(); }

bool BackupRunner::Running() const {
  const std::lock_guard lock(mutex_);
  return running_ && !stopping_;
}

Secret BackupRunner::AdminDsn(const std::string& cluster) const {
  const auto found = deps_.admin_dsns.find(cluster);
  return found != deps_.admin_dsns.end() ? found->second : Secret();
}

std::string BackupRunner::FileOf(const StoredBackup& row) const {
  return (deps_.config->backups.directory / row.file).string();
}

std::string BackupRunner::NewId(const std::string& workspace) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  const std::string bytes = crypto::RandomBytes(4);
  std::string suffix;
  for (const char b : bytes) suffix += kAlphabet[static_cast<unsigned char>(b) % 36];
  return backups::NewBackupId(workspace, Now(), suffix);
}

void BackupRunner::Start() {
  const std::lock_guard lock(mutex_);
  if (running_) return;
  running_ = true;
  stopping_ = false;
  const int pool = std::clamp(deps_.config->backups.concurrency, 1, 16);
  for (int i = 0; i < pool; ++i) threads_.emplace_back([this] { Worker(); });
  threads_.emplace_back([this] { Scheduler(); });
}

void BackupRunner::Prepare() {
  // What a crash left: the engine's private folders, partial files, scratch databases.
  if (Status removed = backups::RemoveStaleWorkFolders(); !removed) {
    spdlog::warn("backups: stale work folders: {}", removed.failure().message);
  }
  if (Outcome<int> partials = backups::RemoveStalePartials(deps_.config->backups.directory.string());
      !partials) {
    spdlog::warn("backups: stale partial files: {}", partials.failure().message);
  }
  for (const auto& [cluster, dsn] : deps_.admin_dsns) {
    Outcome<std::vector<std::string>> dropped = backups::DropScratchDatabases(dsn);
    if (!dropped) {
      spdlog::warn("backups: scratch databases on cluster {}: {}", cluster,
                   ScrubProcessSecrets(dropped.failure().message));
    } else if (!dropped->empty()) {
      spdlog::info("backups: dropped {} scratch database(s) a crash left on cluster {}",
                   dropped->size(), cluster);
    }
  }
  // The catalog: each workspace's summary, its last scheduled run, backups to verify.
  Outcome<std::vector<StoredBackup>> rows = deps_.store->ListBackups(std::nullopt);
  std::set<std::string> names;
  if (rows) {
    std::vector<Job> verify;
    {
      const std::lock_guard lock(mutex_);
      for (const StoredBackup& row : *rows) {
        names.insert(row.workspace);
        if (row.kind == "scheduled") {
          Schedule& schedule = schedules_[row.workspace];
          schedule.last_run = std::max(schedule.last_run, row.created_unix);
        }
        if (row.state == "ok" &&
            deps_.config->backups.verify == manifests::BackupVerify::kRestore) {
          verify.push_back({Job::Type::kVerify, {row.id, row.workspace, row.kind, "queued", Now()}, {}});
        }
      }
    }
    for (Job& job : verify) Push(std::move(job));
  } else {
    spdlog::warn("backups: reading the catalog: {}", rows.failure().message);
  }
  for (const std::string& name : names) Refresh(name);
  // A restore a crash interrupted left its target suspended: say so; a person resumes it.
  if (deps_.override_store != nullptr) {
    Outcome<std::vector<SuspendOverride>> held = deps_.override_store->ListOverrides();
    for (const SuspendOverride& o : held ? *held : std::vector<SuspendOverride>{}) {
      if (o.by.rfind("restore ", 0) != 0) continue;
      deps_.events->Emit(o.workspace, "Warning", "RestoreInterrupted",
                         "the operator stopped during " + o.by +
                             "; the workspace stays suspended: check its data, then resume it "
                             "(tenantctl resume " + o.workspace + ") or restore again");
    }
  }
}

void BackupRunner::Stop() {
  std::vector<std::thread> threads;
  {
    const std::lock_guard lock(mutex_);
    if (!running_) return;
    stopping_ = true;
    threads.swap(threads_);
  }
  wake_.notify_all();
  for (std::thread& thread : threads) thread.join();
  const std::lock_guard lock(mutex_);
  running_ = false;
  stopping_ = false;
  queue_.clear();
  active_.clear();
  schedules_.clear();
}

void BackupRunner::Push(Job job) {
  {
    const std::lock_guard lock(mutex_);
    if (job.type == Job::Type::kRestore) {
      queue_.push_front(std::move(job));
    } else if (job.type == Job::Type::kVerify) {
      queue_.push_back(std::move(job));
    } else {
      // Backups before verifications, in the order asked.
      auto at = std::find_if(queue_.begin(), queue_.end(),
                             [](const Job& j) { return j.type == Job::Type::kVerify; });
      queue_.insert(at, std::move(job));
    }
  }
  wake_.notify_all();  // the scheduler and a restore's waits share the variable
}

void BackupRunner::Worker() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      if (job.type == Job::Type::kBackup) active_[job.backup.id].state = "running";
    }
    switch (job.type) {
      case Job::Type::kBackup: {
        Outcome<BackupSubject> subject = SubjectOf(job.backup.workspace);
        if (subject) {
          (void)TakeBackup(*subject, job.backup.kind, job.backup.id);
        } else {
          deps_.events->Emit(job.backup.workspace, "Warning", "BackupFailed",
                             "backup " + job.backup.id + " not taken: " + subject.failure().message);
        }
        const std::lock_guard lock(mutex_);
        active_.erase(job.backup.id);
        break;
      }
      case Job::Type::kVerify:
        Verify(job.backup.id);
        break;
      case Job::Type::kRestore:
        RunRestore(job.restore_id);
        break;
    }
  }
}

void BackupRunner::Scheduler() {
  Prepare();
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
      if (stopping_) return;
    }
    ScheduleDue();
  }
}

void BackupRunner::ScheduleDue() {
  const std::int64_t now = Now();
  for (const std::string& name : deps_.desired->DeclaredNames()) {
    const std::shared_ptr<const DesiredEntry> entry = deps_.desired->Declared(name);
    if (!entry) continue;
    const std::string& text = entry->workspace.backup.schedule;
    std::unique_lock lock(mutex_);
    if (text.empty()) {
      schedules_.erase(name);
      continue;
    }
    Schedule& schedule = schedules_[name];
    if (schedule.text != text) {
      Outcome<CronSchedule> cron = CronSchedule::Parse(text);
      if (!cron) continue;  // refused when the manifest loaded; never here
      schedule.text = text;
      schedule.cron = *cron;
      if (schedule.began == 0) {
        schedule.began = now;
        if (const std::optional<StoredWorkspace> stored = deps_.desired->StoredAtStart(name);
            stored && stored->created_at) {
          schedule.began = ParseRfc3339Seconds(*stored->created_at).value_or(now);
        }
      }
      if (schedule.last_run == 0) schedule.last_run = schedule.began;
      schedule.next = schedule.cron->Next(schedule.last_run);
    }
    if (!schedule.next || *schedule.next > now) continue;
    // Due: one run, however many slots passed (a daemon that was down runs it once).
    schedule.last_run = now;
    schedule.next = schedule.cron->Next(now);
    const bool queued = std::any_of(active_.begin(), active_.end(), [&](const auto& a) {
      return a.second.workspace == name && a.second.kind == "scheduled";
    });
    lock.unlock();
    if (queued) continue;
    Outcome<BackupSubject> subject = SubjectOf(name);
    if (!subject) continue;  // not converged yet: nothing to back up at this slot
    QueuedBackup backup{NewId(name), name, "scheduled", "queued", now};
    {
      const std::lock_guard relock(mutex_);
      active_[backup.id] = backup;
    }
    Push({Job::Type::kBackup, backup, {}});
  }
  if (now < next_sweep_) return;
  next_sweep_ = now + kSweepSeconds;
  Outcome<std::vector<StoredBackup>> rows = deps_.store->ListBackups(std::nullopt);
  if (!rows) return;
  std::set<std::string> names;
  const manifests::KeepAfterDelete& after = deps_.config->backups.keep_after_delete;
  for (const StoredBackup& row : *rows) {
    names.insert(row.workspace);
    if (row.kind == "final" && after.kind == manifests::KeepAfterDelete::Kind::kFor &&
        !deps_.desired->Declared(row.workspace) &&
        row.created_unix + after.duration.count() <= now) {
      RemoveBackup(row, "final backup older than backups.keepAfterDelete (" +
                            std::to_string(after.duration.count() / 3600) + "h)");
    }
  }
  for (const std::string& name : names) ApplyRetention(name);
}

Outcome<BackupSubject> BackupRunner::SubjectOf(const std::string& workspace) {
  Outcome<std::optional<StoredWorkspace>> stored = deps_.store->Get(workspace);
  if (!stored) return Failure::Transient("StoreUnavailable", stored.failure().message);
  if (!*stored) return Reasoned(backups::kNotFound, "workspace " + Quoted(workspace) + " not found");
  if (!(*stored)->identity) {
    return Reasoned(backups::kNotConverged,
                    "workspace " + Quoted(workspace) + " has no database yet (never converged)");
  }
  const WorkspaceIdentity& identity = *(*stored)->identity;
  return BackupSubject{workspace, identity.cluster, identity.database, identity.owner,
                       (*stored)->generation, std::string()};
}

Outcome<StoredBackup> BackupRunner::TakeBackup(const BackupSubject& subject,
                                               const std::string& kind, const std::string& id) {
  const manifests::BackupsConfig& config = deps_.config->backups;
  backups::DumpRequest request;
  request.admin_dsn = AdminDsn(subject.cluster);
  request.database = subject.database;
  request.folder = (config.directory / subject.workspace).string();
  request.backup_id = id;
  // A backup a reconcile pass waits for (before migrations, before a drop) waits for a tenant's
  // lock no longer than the pass's own statements would: the migration behind it would wait
  // for the same lock, and the worker is not held for the backup's default 30 s.
  if (kind == "pre-migration" || kind == "final") {
    request.lock_timeout = deps_.config->reconcile.lock_timeout;
  }
  // A restore waits for its safety backup: gzip's fastest level (a 180 MB table of text dumped
  // in 1.4-1.6 s instead of 2.6-2.9 s at pg_dump's default, the file 41 MB instead of 38 MB;
  // docs/backups.md).
  if (kind == "safety") request.compress_level = 1;
  if (config.encrypt && deps_.master_key != nullptr) request.master_key = *deps_.master_key;
  if (!deps_.pg_bin_dir.empty()) {
    request.tools = {deps_.pg_bin_dir + "/pg_dump", deps_.pg_bin_dir + "/pg_restore"};
  }
  const std::int64_t started = Now();
  const auto t0 = std::chrono::steady_clock::now();
  Outcome<backups::DumpResult> dump = backups::Dump(request);
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  const double seconds = std::chrono::duration<double>(elapsed).count();

  StoredBackup row;
  row.id = id;
  row.workspace = subject.workspace;
  row.kind = kind;
  row.generation = subject.generation;
  row.applied_migration = subject.applied_migration;
  row.created_unix = started;
  row.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
  if (dump) {
    row.file = subject.workspace + "/" + fs::path(dump->path).filename().string();
    row.size_bytes = static_cast<std::int64_t>(dump->size);
    row.sha256 = dump->sha256;
    row.server_version = dump->server_version;
    row.key_id = dump->key_id;
    row.table_rows_json = dump->table_rows_json;
    row.state = "ok";
  } else {
    row.file = subject.workspace + "/" + id + ".dump";
    row.state = "failed";
    row.reason = ScrubProcessSecrets(dump.failure().message);
  }
  Outcome<Done> put = deps_.store->PutBackup(row);
  if (!put && dump) {
    // No file without its catalog row: a backup nobody can find is a leak, not a backup.
    std::error_code ec;
    fs::remove(dump->path, ec);
  }
  deps_.metrics->IncBackup(kind, dump && put ? "success" : "failure");
  if (dump && put) {
    deps_.metrics->ObserveBackupDuration(seconds);
    deps_.metrics->SetBackupLastSuccess(subject.workspace, static_cast<double>(started));
    deps_.events->Emit(subject.workspace, "Normal", "BackupSucceeded",
                       kind + " backup " + id + " of database " + Quoted(subject.database) +
                           ": " + HumanSize(row.size_bytes) + " in " + Seconds(row.duration_ms) +
                           ", sha256 " + row.sha256.substr(0, 12) + "...");
    if (config.verify == manifests::BackupVerify::kRestore) {
      Push({Job::Type::kVerify, {id, subject.workspace, kind, "queued", Now()}, {}});
    }
  } else {
    const std::string why = dump ? "recording it in the catalog failed: " + put.failure().message
                                 : row.reason;
    deps_.events->Emit(subject.workspace, "Warning", "BackupFailed",
                       kind + " backup " + id + " of database " + Quoted(subject.database) +
                           " failed: " + why);
  }
  Refresh(subject.workspace);
  if (kind == "scheduled" || kind == "manual") ApplyRetention(subject.workspace);
  if (!dump) return dump.failure();
  if (!put) return put.failure();
  return row;
}

void BackupRunner::Verify(const std::string& id) {
  Outcome<std::optional<StoredBackup>> found = deps_.store->FindBackup(id);
  if (!found || !*found || (*found)->state != "ok") return;
  const StoredBackup& row = **found;
  std::string cluster;
  if (Outcome<BackupSubject> subject = SubjectOf(row.workspace)) cluster = subject->cluster;
  if (cluster.empty() && !deps_.admin_dsns.empty()) cluster = deps_.admin_dsns.begin()->first;
  backups::VerifyRequest request;
  request.admin_dsn = AdminDsn(cluster);
  request.file = FileOf(row);
  request.expected_sha256 = row.sha256;
  request.backup_id = row.id;
  if (!row.key_id.empty() && deps_.master_key != nullptr) request.master_key = *deps_.master_key;
  if (!deps_.pg_bin_dir.empty()) {
    request.tools = {deps_.pg_bin_dir + "/pg_dump", deps_.pg_bin_dir + "/pg_restore"};
  }
  Outcome<backups::TableRows> expected = backups::ParseTableRowsJson(row.table_rows_json);
  if (expected) request.expected_rows = *expected;
  Outcome<backups::VerifyResult> verified =
      expected ? backups::VerifyByRestore(request) : Outcome<backups::VerifyResult>(expected.failure());
  const std::string reason = verified ? "" : ScrubProcessSecrets(verified.failure().message);
  Outcome<bool> updated = deps_.store->UpdateBackupVerification(
      id, verified ? "verified" : "verifyFailed", reason, Now());
  if (!updated) spdlog::warn("backups: recording the verification of {}: {}", id, updated.failure().message);
  if (verified) {
    deps_.events->Emit(row.workspace, "Normal", "BackupVerified",
                       "backup " + id + " restored into a scratch database in " +
                           Seconds(verified->duration.count()) + ": the row counts of " +
                           std::to_string(verified->restored_rows.size()) +
                           " table(s) match the dump's");
  } else {
    deps_.events->Emit(row.workspace, "Warning", "BackupVerifyFailed",
                       "backup " + id + " failed its verification: " + reason);
  }
  Refresh(row.workspace);
  ApplyRetention(row.workspace);
}

void BackupRunner::Refresh(const std::string& workspace) {
  Outcome<std::vector<StoredBackup>> rows = deps_.store->ListBackups(workspace);
  if (!rows) return;
  const bool need_verified = deps_.config->backups.verify == manifests::BackupVerify::kRestore;
  Summary summary;
  bool newest = true;
  bool seen_written = false;
  std::int64_t last_written = 0;
  for (const StoredBackup& row : *rows) {  // newest first
    if (row.state != "failed" && last_written == 0) last_written = row.created_unix;
    if (row.kind != "scheduled") continue;
    if (newest && row.state == "failed") {
      summary.last_failure = row.reason;
      summary.last_failure_id = row.id;
    }
    newest = false;
    if (!seen_written && row.state != "failed") {
      seen_written = true;
      if (row.state == "verifyFailed") {
        summary.verify_failure = row.reason;
        summary.verify_failure_id = row.id;
      }
    }
    const bool counts = row.state == "verified" || (!need_verified && row.state == "ok");
    if (counts && summary.last_success == 0) {
      summary.last_success = row.created_unix;
      summary.last_success_id = row.id;
    }
  }
  if (last_written != 0) {
    deps_.metrics->SetBackupLastSuccess(workspace, static_cast<double>(last_written));
  }
  {
    const std::lock_guard lock(mutex_);
    summaries_[workspace] = summary;
  }
  if (deps_.enqueue) deps_.enqueue(workspace);  // its status shows the new BackupReady
}

void BackupRunner::ApplyRetention(const std::string& workspace) {
  Outcome<std::vector<StoredBackup>> rows = deps_.store->ListBackups(workspace);
  if (!rows) return;
  backups::RetentionPolicy policy;
  if (const auto entry = deps_.desired->Declared(workspace)) policy.keep = entry->workspace.backup.keep;
  const std::vector<backups::Removal> removals =
      backups::SelectRemovals(backups::ToRetentionEntries(*rows), policy, Now());
  for (const backups::Removal& removal : removals) {
    const auto row = std::find_if(rows->begin(), rows->end(),
                                  [&](const StoredBackup& r) { return r.id == removal.id; });
    if (row != rows->end()) RemoveBackup(*row, removal.reason);
  }
}

void BackupRunner::RemoveBackup(const StoredBackup& row, const std::string& why) {
  std::error_code ec;
  if (row.state != "failed") fs::remove(FileOf(row), ec);
  if (ec) {
    spdlog::warn("backups: removing {}: {}", FileOf(row), ec.message());
    return;  // the row stays, so the file is tried again and never lost track of
  }
  Outcome<bool> deleted = deps_.store->DeleteBackup(row.id);
  if (!deleted) return;
  deps_.events->Emit(row.workspace, "Normal", "BackupPruned", "backup " + row.id + " removed: " + why);
}

Outcome<TakenBackup> BackupRunner::BeforeMigrations(const BackupSubject& subject) {
  if (!deps_.config->backups.before_migrations) return TakenBackup{};
  Outcome<std::vector<StoredBackup>> rows = deps_.store->ListBackups(subject.workspace);
  if (rows) {
    for (const StoredBackup& row : *rows) {
      if (row.kind == "pre-migration" && row.state != "failed" &&
          row.applied_migration == subject.applied_migration &&
          row.created_unix + kReuseSeconds > Now()) {
        // A retried migration: the database is still as that backup holds it.
        return TakenBackup{row.id, true};
      }
    }
  }
  Outcome<StoredBackup> taken = TakeBackup(subject, "pre-migration", NewId(subject.workspace));
  if (!taken) return taken.failure();
  return TakenBackup{taken->id, false};
}

Outcome<std::string> BackupRunner::BeforeDrop(const BackupSubject& subject) {
  Outcome<std::vector<StoredBackup>> rows = deps_.store->ListBackups(subject.workspace);
  if (rows) {
    for (const StoredBackup& row : *rows) {
      if (row.kind == "final" && row.state != "failed" && row.created_unix + kReuseSeconds > Now()) {
        return row.id;  // a retried deletion
      }
    }
  }
  Outcome<StoredBackup> taken = TakeBackup(subject, "final", NewId(subject.workspace));
  if (!taken) return taken.failure();
  return taken->id;
}

void BackupRunner::Deleted(const std::string& workspace) {
  {
    const std::lock_guard lock(mutex_);
    schedules_.erase(workspace);
    summaries_.erase(workspace);
  }
  if (deps_.config->backups.keep_after_delete.kind != manifests::KeepAfterDelete::Kind::kDelete) {
    return;
  }
  Outcome<std::vector<StoredBackup>> rows = deps_.store->ListBackups(workspace);
  if (!rows) return;
  for (const StoredBackup& row : *rows) {
    if (row.kind == "final") RemoveBackup(row, "backups.keepAfterDelete: delete");
  }
}

std::vector<Condition> BackupRunner::Conditions(const std::string& workspace) const {
  std::vector<Condition> out;
  const std::shared_ptr<const DesiredEntry> entry = deps_.desired->Declared(workspace);
  const std::lock_guard lock(mutex_);
  if (entry && !entry->workspace.backup.schedule.empty()) {
    const auto schedule = schedules_.find(workspace);
    const auto summary_it = summaries_.find(workspace);
    const Summary summary = summary_it != summaries_.end() ? summary_it->second : Summary{};
    const bool verified = deps_.config->backups.verify == manifests::BackupVerify::kRestore;
    Condition c{"BackupReady", "Unknown", "NoBackupYet", "", ""};
    if (schedule == schedules_.end() || !schedule->second.cron) {
      c.message = "the schedule " + Quoted(entry->workspace.backup.schedule) + " starts with the leader";
    } else if (!summary.last_failure.empty()) {
      c = {"BackupReady", "False", "BackupFailed",
           "scheduled backup " + summary.last_failure_id + " failed: " + summary.last_failure, ""};
    } else if (!summary.verify_failure.empty()) {
      c = {"BackupReady", "False", "BackupVerifyFailed",
           "backup " + summary.verify_failure_id + " failed its verification: " +
               summary.verify_failure, ""};
    } else if (summary.last_success != 0 &&
               !BackupOverdue(*schedule->second.cron, summary.last_success, Now())) {
      c = {"BackupReady", "True", verified ? "BackupVerified" : "BackupSucceeded",
           "scheduled backup " + summary.last_success_id + " taken at " +
               FormatRfc3339Utc(summary.last_success) +
               (verified ? ", proven by a restore" : ", read back by pg_restore --list"), ""};
    } else if (summary.last_success == 0 &&
               !BackupOverdue(*schedule->second.cron, schedule->second.began, Now())) {
      const std::optional<std::int64_t> first = schedule->second.cron->Next(schedule->second.began);
      c.message = "no scheduled backup " + std::string(verified ? "verified " : "") + "yet" +
                  (first ? "; the first was due at " + FormatRfc3339Utc(*first) : "");
    } else {
      c = {"BackupReady", "False", "BackupOverdue",
           summary.last_success == 0
               ? "no scheduled backup " + std::string(verified ? "verified " : "") + "since " +
                     FormatRfc3339Utc(schedule->second.began) +
                     ", more than twice the schedule's period"
               : "the newest " + std::string(verified ? "verified " : "") + "scheduled backup, " +
                     summary.last_success_id + " at " + FormatRfc3339Utc(summary.last_success) +
                     ", is older than twice the schedule's period",
           ""};
    }
    out.push_back(std::move(c));
  }
  if (const auto restored = restored_by_.find(workspace); restored != restored_by_.end()) {
    if (const auto p = restores_.find(restored->second); p != restores_.end()) {
      const RestoreProgress& progress = p->second;
      const std::string head = "restore " + progress.id + " of backup " + progress.backup_id;
      if (progress.state == "running") {
        out.push_back({"Restored", "Unknown", "RestoreInProgress", head + ": " + progress.step, ""});
      } else if (progress.state == "succeeded") {
        out.push_back({"Restored", "True", "RestoreSucceeded", head + ": " + progress.message, ""});
      } else {
        out.push_back({"Restored", "False", "RestoreFailed", head + ": " + progress.message, ""});
      }
    }
  }
  return out;
}

Outcome<QueuedBackup> BackupRunner::RequestBackup(const std::string& workspace,
                                                  const std::string& who) {
  if (!Running()) return Reasoned(backups::kUnavailable, "backups run on the leader only");
  Outcome<BackupSubject> subject = SubjectOf(workspace);
  if (!subject) return subject.failure();
  {
    const std::lock_guard lock(mutex_);
    for (const auto& [id, queued] : active_) {
      if (queued.workspace == workspace && queued.kind == "manual") return queued;
    }
  }
  QueuedBackup backup{NewId(workspace), workspace, "manual", "queued", Now()};
  {
    const std::lock_guard lock(mutex_);
    active_[backup.id] = backup;
  }
  deps_.events->Emit(workspace, "Normal", "BackupRequested",
                     "manual backup " + backup.id + " asked for by " + who);
  Push({Job::Type::kBackup, backup, {}});
  return backup;
}

std::vector<QueuedBackup> BackupRunner::Pending(const std::string& workspace) const {
  std::vector<QueuedBackup> out;
  const std::lock_guard lock(mutex_);
  for (const auto& [id, queued] : active_) {
    if (queued.workspace == workspace) out.push_back(queued);
  }
  std::sort(out.begin(), out.end(), [](const QueuedBackup& a, const QueuedBackup& b) {
    return a.queued_unix != b.queued_unix ? a.queued_unix < b.queued_unix : a.id < b.id;
  });
  return out;
}

Outcome<RestoreProgress> BackupRunner::RequestRestore(const backups::RestoreCall& call) {
  if (!Running()) return Reasoned(backups::kUnavailable, "restores run on the leader only");
  Outcome<std::optional<StoredBackup>> found = deps_.store->FindBackup(call.backup_id);
  if (!found) return Failure::Transient("StoreUnavailable", found.failure().message);
  if (!*found || (*found)->workspace != call.from) {
    return Reasoned(backups::kNotFound,
                    "workspace " + Quoted(call.from) + " has no backup " + Quoted(call.backup_id));
  }
  const StoredBackup& row = **found;
  if (row.state == "failed") {
    return Reasoned(backups::kNotRestorable,
                    "backup " + row.id + " is a failed attempt (" + row.reason + "): nothing to restore");
  }
  std::error_code ec;
  if (!fs::is_regular_file(FileOf(row), ec)) {
    return Reasoned(backups::kNotRestorable,
                    "backup " + row.id + ": its file " + row.file + " is missing from " +
                        deps_.config->backups.directory.string());
  }
  const std::string target = call.into.empty() ? call.from : call.into;
  Outcome<BackupSubject> subject = SubjectOf(target);
  if (!subject) return subject.failure();
  RestoreProgress progress;
  progress.id = "r-" + NewId(target);
  progress.workspace = target;
  progress.from = call.from;
  progress.backup_id = row.id;
  progress.state = "running";
  progress.step = "queued";
  progress.message = "queued by " + call.who;
  progress.started_unix = Now();
  {
    const std::lock_guard lock(mutex_);
    if (restoring_.count(target) != 0) {
      return Reasoned(backups::kRestoreInProgress,
                      "workspace " + Quoted(target) + " is being restored already (" +
                          restored_by_[target] + ")");
    }
    // Forget restores finished long ago.
    for (auto it = restores_.begin(); it != restores_.end();) {
      const bool old = it->second.finished_unix != 0 &&
                       it->second.finished_unix + kKeepRestoreSeconds < Now() &&
                       restored_by_[it->second.workspace] != it->first;
      it = old ? restores_.erase(it) : std::next(it);
    }
    restores_[progress.id] = progress;
    restoring_.insert(target);
    restored_by_[target] = progress.id;
  }
  deps_.events->Emit(target, "Normal", "RestoreStarted",
                     "restore " + progress.id + " of backup " + row.id +
                         (target != call.from ? " (of workspace " + call.from + ")" : "") +
                         " asked for by " + call.who);
  Push({Job::Type::kRestore, {}, progress.id});
  if (deps_.enqueue) deps_.enqueue(target);
  return progress;
}

std::optional<RestoreProgress> BackupRunner::FindRestore(const std::string& id) const {
  const std::lock_guard lock(mutex_);
  const auto found = restores_.find(id);
  if (found == restores_.end()) return std::nullopt;
  return found->second;
}

void BackupRunner::SetProgress(const std::string& restore_id, const std::string& step,
                               const std::string& message) {
  std::string workspace;
  {
    const std::lock_guard lock(mutex_);
    RestoreProgress& progress = restores_[restore_id];
    progress.step = step;
    progress.message = message;
    workspace = progress.workspace;
  }
  if (deps_.enqueue) deps_.enqueue(workspace);
}

Outcome<std::string> BackupRunner::WaitForPhase(const std::string& workspace,
                                                const std::set<std::string>& phases,
                                                int seconds) {
  return WaitForStoredPhase(
      *deps_.store, workspace, phases,
      {.limit = std::chrono::seconds(seconds),
       .poll = std::chrono::milliseconds(200),
       .timeout_reason = "RestoreTimedOut",
       .sleep_or_stop = [this](std::chrono::milliseconds poll) {
         std::unique_lock lock(mutex_);
         return wake_.wait_for(lock, poll, [this] { return stopping_; });
       }});
}

void BackupRunner::RunRestore(const std::string& restore_id) {
  RestoreProgress progress;
  {
    const std::lock_guard lock(mutex_);
    progress = restores_[restore_id];
  }
  Status done = DoRestore(restore_id, progress);
  std::string message;
  {
    const std::lock_guard lock(mutex_);
    RestoreProgress& p = restores_[restore_id];
    p.state = done ? "succeeded" : "failed";
    p.finished_unix = Now();
    if (!done) p.message = ScrubProcessSecrets(done.failure().message);
    p.step = done ? "done" : p.step;
    restoring_.erase(p.workspace);
    progress = p;
  }
  if (done) {
    deps_.events->Emit(progress.workspace, "Normal", "Restored",
                       "restore " + restore_id + " of backup " + progress.backup_id + ": " +
                           progress.message);
  } else {
    deps_.events->Emit(progress.workspace, "Warning", "RestoreFailed",
                       "restore " + restore_id + " of backup " + progress.backup_id + " failed at " +
                           progress.step + ": " + progress.message);
  }
  if (deps_.enqueue) deps_.enqueue(progress.workspace);
}

Status BackupRunner::DoRestore(const std::string& restore_id, RestoreProgress progress) {
  const std::string& target = progress.workspace;
  Outcome<std::optional<StoredBackup>> found = deps_.store->FindBackup(progress.backup_id);
  if (!found || !*found) {
    return Failure::Stalled("NotFound", "backup " + progress.backup_id + " is gone from the catalog");
  }
  const StoredBackup row = **found;
  // 1. The file is the one the catalog recorded, before anything is touched.
  SetProgress(restore_id, "checksum", "checking the file's SHA-256 against the catalog");
  if (Status sum = backups::CheckFileSha256(FileOf(row), row.sha256); !sum) {
    return Failure::Stalled(sum.failure().reason,
                            sum.failure().message + "; nothing was touched");
  }
  Outcome<BackupSubject> subject = SubjectOf(target);
  if (!subject) return subject.failure();
  // 2. A safety backup of the target as it is now.
  SetProgress(restore_id, "safety-backup", "backing up " + target + " as it is now");
  Outcome<StoredBackup> safety = TakeBackup(*subject, "safety", NewId(target));
  if (!safety) {
    return Failure::Transient("SafetyBackupFailed",
                              "the safety backup failed, so nothing was touched: " +
                                  safety.failure().message);
  }
  {
    const std::lock_guard lock(mutex_);
    restores_[restore_id].safety_backup = safety->id;
  }
  deps_.events->Emit(target, "Normal", "SafetyBackupTaken",
                     "restore " + restore_id + ": safety backup " + safety->id + " taken");
  // 3. Suspended: logins closed, sessions ended, stack stopped.
  const std::shared_ptr<const DesiredEntry> entry = deps_.desired->Declared(target);
  const std::optional<SuspendOverride> held = deps_.overrides->Get(target);
  const bool was_suspended = (entry && entry->workspace.suspend) || (held && held->suspend);
  bool ours = false;
  const auto resume = [&] {
    if (!ours) return;
    if (Outcome<bool> cleared = deps_.override_store->ClearOverride(target); !cleared) {
      spdlog::warn("backups: clearing the override of {}: {}", target, cleared.failure().message);
    }
    deps_.overrides->Clear(target);
    if (deps_.enqueue) deps_.enqueue(target);
  };
  SetProgress(restore_id, "suspend", "suspending " + target + " (logins closed, sessions ended)");
  if (!was_suspended) {
    const SuspendOverride override{target, true, "restore " + restore_id, Now()};
    if (Outcome<Done> set = deps_.override_store->SetOverride(override); !set) {
      return Failure::Transient("StoreUnavailable", "suspending: " + set.failure().message);
    }
    deps_.overrides->Set(override);
    ours = true;
    if (deps_.enqueue) deps_.enqueue(target);
  }
  if (Outcome<std::string> phase = WaitForPhase(target, {"Suspended"}, kPhaseWaitSeconds); !phase) {
    resume();
    return Failure::Transient(phase.failure().reason,
                              "the workspace did not reach Suspended, so nothing was restored: " +
                                  phase.failure().message);
  }
  deps_.events->Emit(target, "Normal", "RestoreSuspended",
                     "restore " + restore_id + ": " + target + " suspended");
  // 4. The restore, in one transaction.
  SetProgress(restore_id, "restore", "restoring backup " + row.id + " into database " +
                                         Quoted(subject->database));
  backups::RestoreRequest request;
  request.admin_dsn = AdminDsn(subject->cluster);
  request.file = FileOf(row);
  request.expected_sha256 = row.sha256;
  request.backup_id = row.id;
  if (!row.key_id.empty() && deps_.master_key != nullptr) request.master_key = *deps_.master_key;
  request.target_database = subject->database;
  request.role = subject->role;
  if (!deps_.pg_bin_dir.empty()) {
    request.tools = {deps_.pg_bin_dir + "/pg_dump", deps_.pg_bin_dir + "/pg_restore"};
  }
  const auto t0 = std::chrono::steady_clock::now();
  Status restored = backups::Restore(request);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - t0).count();
  if (!restored) {
    resume();
    return Failure::Transient(restored.failure().reason,
                              restored.failure().message +
                                  " (one transaction: the database is as it was; safety backup " +
                                  safety->id + ")");
  }
  // 5. Resumed; the next run re-applies what the product's migrations say is missing.
  SetProgress(restore_id, "resume", "restored in " + Seconds(ms) + "; resuming " + target);
  if (deps_.deep != nullptr) deps_.deep->Add(target);
  if (ours) {
    resume();
  } else if (deps_.enqueue) {
    deps_.enqueue(target);
  }
  Outcome<std::string> phase =
      WaitForPhase(target, was_suspended ? std::set<std::string>{"Suspended"}
                                         : std::set<std::string>{"Ready"},
                   kPhaseWaitSeconds);
  deps_.events->Emit(target, "Normal", "RestoreResumed",
                     "restore " + restore_id + ": " +
                         (phase ? target + " is " + *phase : "resumed; " + phase.failure().message));
  const std::lock_guard lock(mutex_);
  restores_[restore_id].message = "backup " + row.id + " restored into database " +
                                  Quoted(subject->database) + " in " + Seconds(ms) +
                                  "; safety backup " + safety->id +
                                  (phase ? "; the workspace is " + *phase : "; " + phase.failure().message);
  return Ok();
}

}  // namespace tmaster::controller
