#pragma once

// The long-running controller (DESIGN §2, §7, §9; issue 3): sources feed desired specs into the
// store and the work queue; a fixed pool of workers reconciles one workspace name at a time
// from batched observations; deletions run the reclaim policy from the last stored spec; only
// the holder of the leader lock runs sources and workers, standbys serve reads.
//
// Only the main wires concrete adapters in; everything here talks to interfaces, so the daemon
// runs in tests against real PostgreSQL or against fakes alike.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/secret.hpp"
#include "controller/runtime/clock.hpp"
#include "controller/sources/git_repo.hpp"
#include "controller/runtime/metrics.hpp"
#include "controller/workspace/reconcile_pass.hpp"
#include "controller/store/store.hpp"
#include "controller/api/webhook.hpp"
#include "controller/runtime/work_queue.hpp"
#include "manifests/config.hpp"

namespace tmaster::controller {

/// What the daemon is given; the caller owns everything pointed to and keeps it alive until the
/// daemon is destroyed.
struct DaemonDeps {
  const manifests::Config* config = nullptr;
  Store* store = nullptr;
  LeaderLock* leader_lock = nullptr;  ///< nullptr: always the leader (single replica, tests)
  Gateways gateways;                  ///< by cluster name
  StacksContext* stacks = nullptr;    ///< nullptr: dedicated workspaces get their database only
  const Secret* master_key = nullptr;
  Metrics* metrics = nullptr;
  const Clock* clock = nullptr;
  Random* random = nullptr;
  std::map<std::string, Secret> webhook_secrets;       ///< by git source name
  std::map<std::string, GitCredentials> git_credentials;  ///< by git source name
  std::filesystem::path git_cache;  ///< where git checkouts live (one folder per source)
};

struct DaemonOptions {
  int workers = 4;
  Duration resync_interval = std::chrono::minutes(5);
  int max_deletions_per_sync = 3;
  /// A directory source is re-read this long after the last change event, so a burst of writes
  /// (an editor's save, a `git checkout`) is one sync.
  std::chrono::milliseconds debounce{50};
  /// Directory sources are also re-read this often, in case inotify missed something.
  Duration rescan_interval = std::chrono::minutes(1);
  /// A cluster's catalog snapshot serves every workspace for this long, except a workspace the
  /// daemon itself changed since the snapshot was taken (it always gets a fresh one).
  Duration snapshot_max_age = std::chrono::seconds(1);
  Duration leader_poll = std::chrono::seconds(1);
  BackoffOptions backoff;  ///< per-workspace failure backoff
};

/// The daemon. Run() blocks until Stop(); every public method is thread-safe.
class Daemon {
 public:
  Daemon(DaemonDeps deps, DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// Standby until the leader lock is taken, then leads until Stop() or until the lock is lost
  /// (then standby again). Returns when stopped, after draining in-flight work and releasing the
  /// lock.
  void Run();
  /// Asks Run() to return: stop taking work, let in-flight reconciles finish. Async-signal
  /// unsafe; call it from a normal thread (the main's signal thread does).
  void Stop();

  /// The webhook handler for the HTTP server: verifies the delivery against every git source's
  /// secret and branch, and on an accepted push fetches that source now.
  WebhookResult HandleWebhook(const WebhookRequest& request);
  /// /readyz: store reachable; when leading, also every source synced once and healthy.
  struct ReadinessReport {
    bool ready = false;
    std::vector<std::string> problems;
  };
  ReadinessReport Readiness();

  [[nodiscard]] bool Leading() const { return leading_; }
  [[nodiscard]] bool Stopping() const { return stop_; }

 private:
  struct Source;
  struct ProductEntry;
  struct DesiredEntry;
  struct Snapshot;
  class SnapshotCache;
  struct Term;

  void Lead();
  void StartSources();
  void StopSources();
  void SourceLoop(Source& source);
  /// Reads one source; false when it must be retried soon (fetch failed, store down).
  bool SyncSource(Source& source);
  bool ApplySync(Source& source, const std::string& revision, const manifests::Fleet& fleet);
  void PutSourceStatus(Source& source, bool ready, const std::string& reason,
                       const std::string& message, bool synced);

  void WorkerLoop();
  void Reconcile(const std::string& name);
  void ReconcileLive(const std::string& name, const DesiredEntry& entry);
  void ReconcileDeletion(const std::string& name);
  /// What Record needs to know about the run besides its result.
  struct RunInfo {
    std::int64_t generation = 0;
    std::string revision;
    std::chrono::system_clock::time_point started;
    double seconds = 0;
    bool drift = false;      ///< the spec was converged at this generation already
    bool dedicated = false;  ///< the workspace has a stack (StackReady condition)
    std::optional<std::int64_t> next_retry_unix;
  };
  /// Writes the workspace's status (conditions, phase, last runs, next retry) when it changed,
  /// and an event for every action applied and every new failure.
  void Record(const std::string& name, const WorkspaceResult& result, const RunInfo& run);
  void PutDeletingStatus(const std::string& name, const std::string& reason,
                         const std::string& message, std::optional<std::int64_t> next_retry);
  void EmitEvent(const std::string& workspace, const std::string& type, const std::string& reason,
                 const std::string& message);
  void UpdateGauges();
  bool LoadStored();

  DaemonDeps deps_;
  DaemonOptions options_;

  std::atomic<bool> stop_{false};
  std::atomic<bool> leading_{false};
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;

  // Per leadership term.
  std::unique_ptr<WorkQueue> queue_;
  std::vector<std::unique_ptr<Source>> sources_;
  std::vector<std::thread> workers_;
  std::unique_ptr<SnapshotCache> snapshots_;

  // Desired state, guarded by state_mutex_.
  mutable std::mutex state_mutex_;
  std::map<std::string, std::shared_ptr<const DesiredEntry>> desired_;
  /// The store's rows when the term started (spec_json dropped): what the first sync compares
  /// against, so a restart saves nothing that did not change.
  std::map<std::string, StoredWorkspace> stored_;
  std::set<std::string> deleting_;
  std::map<std::string, std::string> rejected_;  ///< name -> source
  std::map<std::string, WorkspaceStatus> statuses_;  ///< last written (or to be written)
  std::set<std::string> unsaved_;  ///< statuses whose write to the store failed
  std::map<std::string, TimePoint> last_write_;  ///< when the daemon last changed a workspace
};

}  // namespace tmaster::controller
