#pragma once

// The long-running controller, composed from the rooms (docs/architecture.md#the-daemon): the
// manager (runtime/) leads and runs the workers; each term, the sources (sources/) feed the
// desired state and the work queue through the sync; the workspace reconciler (workspace/)
// converges one name at a time; only the holder of the leader lock does any of it, standbys
// serve reads.
//
// Only the main wires concrete adapters in; everything here talks to interfaces, so the daemon
// runs in tests against real PostgreSQL or against fakes alike.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/secret.hpp"
#include "controller/api/event_stream.hpp"
#include "controller/api/webhook.hpp"
#include "controller/daemon/backup_runner.hpp"
#include "controller/daemon/cluster_monitor.hpp"
#include "controller/daemon/endpoint_monitor.hpp"
#include "controller/daemon/fleet_view.hpp"
#include "controller/daemon/move_runner.hpp"
#include "controller/daemon/rollout_driver.hpp"
#include "controller/daemon/shared_runtime_loop.hpp"
#include "controller/daemon/workspace_api.hpp"
#include "controller/runtime/clock.hpp"
#include "controller/runtime/events.hpp"
#include "controller/runtime/manager.hpp"
#include "controller/runtime/metrics.hpp"
#include "controller/sources/desired_state.hpp"
#include "controller/sources/git_repo.hpp"
#include "controller/sources/product_registry.hpp"
#include "controller/sources/source.hpp"
#include "controller/sources/source_runner.hpp"
#include "controller/sources/sync.hpp"
#include "controller/store/store.hpp"
#include "controller/workspace/overrides.hpp"
#include "controller/workspace/reconcile_pass.hpp"
#include "controller/workspace/workspace_reconciler.hpp"
#include "manifests/config.hpp"

namespace tmaster::controller {

/// Makes the Source of one configured source; the daemon's default makes a DirectorySource or
/// a GitSource. Tests inject fakes (a fetch that fails, a read that blocks).
using SourceFactory = std::function<std::unique_ptr<Source>(const manifests::SourceConfig&)>;

/// What the daemon is given; the caller owns everything pointed to and keeps it alive until the
/// daemon is destroyed.
struct DaemonDeps {
  const manifests::Config* config = nullptr;
  Store* store = nullptr;
  /// The store's database name (its DSN's dbname): never adopted on any cluster.
  std::string store_database = "tenant_master";
  LeaderLock* leader_lock = nullptr;  ///< nullptr: always the leader (single replica, tests)
  Gateways gateways;                  ///< by cluster name
  /// nullptr: dedicated workspaces get their database only. Its ledger, when set, is kept in
  /// the store: loaded at the start of each leadership term (over what it held), written
  /// through on every change while Run() runs (it sets the ledger's observer).
  StacksContext* stacks = nullptr;
  const Secret* master_key = nullptr;
  Metrics* metrics = nullptr;
  const Clock* clock = nullptr;
  Random* random = nullptr;
  std::map<std::string, Secret> webhook_secrets;          ///< by git source name
  std::map<std::string, GitCredentials> git_credentials;  ///< by git source name
  std::filesystem::path git_cache;  ///< where git checkouts live (one folder per source)
  SourceFactory make_source;        ///< empty: directory and git sources from the config
  /// Cancels the PostgreSQL statements in flight (each libpq gateway's CancelAll), called when
  /// a stop's drain passes DaemonOptions::drain_timeout. Empty: nothing to cancel.
  std::function<void()> cancel_in_flight = {};
  /// Where the API's suspend overrides persist (workspace/overrides.hpp); nullptr: the store's
  /// table (StoreOverrideStore).
  OverrideStore* override_store = nullptr;
  /// Each cluster's admin DSN, by cluster name, for the backups (pg_dump and pg_restore run as
  /// the admin; docs/backups.md#in-the-daemon). Empty: no backups (the tests' fakes).
  std::map<std::string, Secret> cluster_dsns = {};
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
  /// The bound on Stop()'s drain (`reconcile.drainTimeout`): after it the statements in flight
  /// are cancelled (DaemonDeps::cancel_in_flight), and a worker still busy a second later is
  /// given up on (Run() returns false).
  Duration drain_timeout = std::chrono::seconds(30);
  /// How often the leader prunes the store's events and deliveries (Store::Prune).
  Duration prune_interval = std::chrono::minutes(5);
  /// How often a standby reloads its workspace list (the API's) from the store.
  Duration standby_refresh = std::chrono::seconds(2);
  /// How often each Portainer endpoint is asked what it is (`GET /api/v1/endpoints`): one light
  /// call per endpoint (a swarm inspect through Portainer's proxy).
  std::chrono::milliseconds endpoint_check_interval = std::chrono::seconds(10);
};

/// The daemon. Run() blocks until Stop(); every public method is thread-safe.
class Daemon final : private Term {
 public:
  Daemon(DaemonDeps deps, DaemonOptions options);
  ~Daemon() override;
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// Standby until the leader lock is taken, then leads until Stop() or until the lock is lost
  /// (then standby again). Returns when stopped, after draining in-flight work and releasing the
  /// lock: true. false: the drain passed its bound and a worker is still busy, detached; the
  /// caller must end the process without destroying the daemon (Manager::Run).
  bool Run();
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

  /// The workspace routes of the API (docs/api.md#routes): writes, plan, products, and the list
  /// answered from memory (on a standby, reloaded from the store when older than
  /// DaemonOptions::standby_refresh at the time of a read).
  WorkspaceApi& Api();
  /// The rollouts (docs/rollouts.md): the products' rollout status and the verbs; the API's
  /// routes go through Api(), which holds it.
  RolloutControl& Rollouts() { return rollouts_; }
  /// Each cluster's capacity, usage and reachability (`GET /api/v1/clusters`), and each
  /// endpoint's (`GET /api/v1/endpoints`).
  [[nodiscard]] const Placer& Placement() const { return placer_; }

  /// Product -> port of every product a source of this term declares with a shared runtime
  /// (spec.sharedRuntime), for the Traefik document (TraefikRouting::shared_runtimes). Empty on a
  /// standby: the products are known to the leader only.
  [[nodiscard]] std::map<std::string, int> SharedRuntimePorts() const;
  /// Endpoint -> the products (in name order) whose shared runtime is on it, as SharedRuntimePorts
  /// knows them: `get endpoints` lists them, and the endpoint monitor checks their endpoints.
  [[nodiscard]] std::map<int, std::vector<std::string>> SharedRuntimeEndpoints() const;

  /// The live stream's hub (`GET /api/v1/stream`; HttpHandlers::events): told of every change of
  /// the fleet view (FleetView::SetChangeListener) and, while a stream is open, every
  /// standby_refresh, of a change of the sources' statuses or of the newest webhook delivery
  /// (read from the store, so a standby tells its dashboards too); a standby's view is reloaded
  /// at the same pace. Stop() ends its streams.
  EventHub& StreamHub() { return stream_hub_; }

  [[nodiscard]] bool Leading() const { return manager_.Leading(); }
  [[nodiscard]] bool Stopping() const { return manager_.Stopping(); }

 private:
  // Term: what a leadership term does besides running the workers (runtime/manager.hpp).
  bool Begin(WorkQueue& queue) override;
  void Tick() override;
  void StopIntake() override;
  void End() override;

  /// Tells the fleet view of each write (and forgets a removed workspace's override).
  class Observer final : public WorkspaceObserver {
   public:
    explicit Observer(Daemon& daemon) : daemon_(daemon) {}
    void SpecChanged(const StoredWorkspace& workspace) override;
    void StatusChanged(const WorkspaceStatus& status) override;
    void Removed(const std::string& name) override;

   private:
    Daemon& daemon_;
  };

  std::unique_ptr<Source> MakeSource(const manifests::SourceConfig& config) const;
  std::unique_ptr<BackupRunner> MakeBackupRunner();
  std::unique_ptr<MoveRunner> MakeMoveRunner();
  /// Queues `name` in the current term; false without one (a standby).
  bool Enqueue(const std::string& name);
  /// A standby's list older than standby_refresh is reloaded from the store.
  void RefreshStandbyView();
  /// deps_.stacks->ledger, or nullptr without stacks.
  [[nodiscard]] stacks::StackLedger* Ledger() const;
  /// What the shared runtimes converge to now (on the runtime loop's thread): the products of
  /// the registry, the dedicated workspaces' endpoints, prune when every source of the term has
  /// read and its last read was clean and valid.
  SharedRuntimeLoop::Pass RuntimePass();
  /// The hub's poll (its checker thread, while a stream is open): a standby's view reloaded, and
  /// `sources` sent when the sources' statuses or the newest delivery changed.
  void PollForStreams();
  /// Every source of the term has synced once and its last read was clean, valid and applied;
  /// `marks` gets each source's read mark (CleanReadSource), in the order of the runners.
  [[nodiscard]] bool SourcesClean(std::vector<CleanReadSource::Mark>* marks = nullptr) const;

  DaemonDeps deps_;
  DaemonOptions options_;
  DesiredState desired_;
  EventRecorder events_;
  StoreOverrideStore store_overrides_;  ///< used without DaemonDeps::override_store
  Overrides overrides_;
  RequestedRuns requested_;
  RequestedRuns deep_;  ///< a restored workspace's next run is a deep one
  /// The backups (nullptr without DaemonDeps::cluster_dsns): started by the first Tick of a term,
  /// stopped by StopIntake.
  std::unique_ptr<BackupRunner> backups_;
  ProductRegistry products_;
  /// The rollouts' health checks (`rollout.healthCheck`), on a thread of their own while leading.
  std::unique_ptr<HealthProber> health_prober_;
  HealthGate health_;
  /// The leader's rollouts (docs/rollouts.md): loaded in Begin, stepped on its own thread while
  /// the term runs, stopped by StopIntake; the reconciler asks it each workspace's revision.
  RolloutDriver rollouts_;
  /// Whether each cluster answers (docs/placement.md): checked every 5 s while Run runs.
  ClusterMonitor cluster_monitor_;
  /// Where workspaces without a named cluster are (docs/placement.md): loaded in Begin.
  Placer placer_;
  /// What each endpoint the placer knows is, and whether it answers
  /// (docs/placement.md#endpoints): checked every DaemonOptions::endpoint_check_interval while
  /// Run runs.
  EndpointMonitor endpoint_monitor_;
  std::unique_ptr<MoveRunner> moves_;  ///< nullptr without cluster DSNs (the tests' fakes)
  FleetView fleet_;
  Observer observer_;
  WorkspaceApi api_;
  WorkspaceReconciler reconciler_;
  Manager manager_;
  TimePoint next_prune_{};  ///< the manager's thread only (Tick)
  std::uint64_t products_seen_ = 0;  ///< the manager's thread only (Tick)
  bool sources_clean_ = false;       ///< the manager's thread only (Tick)
  /// The term's shared tenants were given to the publisher (its pooler waits for them).
  bool pooler_expected_ = false;     ///< the manager's thread only (Begin, Tick)
  std::mutex refresh_mutex_;
  std::chrono::steady_clock::time_point refreshed_{};  ///< guarded by refresh_mutex_

  // Per leadership term, guarded by term_mutex_ (the webhook and readiness read them).
  mutable std::mutex term_mutex_;
  std::unique_ptr<Sync> sync_;
  std::vector<std::unique_ptr<Source>> sources_;
  std::vector<std::unique_ptr<SourceRunner>> runners_;
  WorkQueue* queue_ = nullptr;
  /// The products' shared runtimes, when a stack backend is configured; made in Begin, stopped
  /// in StopIntake, dropped in End (the manager's thread only).
  std::unique_ptr<SharedRuntimeLoop> runtimes_;

  std::string sources_seen_;  ///< the hub's checker thread only (PollForStreams)
  /// Last: destroyed (its threads joined) before what its poll and the fleet's listener use.
  EventHub stream_hub_;
};

}  // namespace tmaster::controller
