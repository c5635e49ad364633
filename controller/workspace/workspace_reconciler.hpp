#pragma once
// The reconciler of one workspace in the daemon (docs/architecture.md#the-workspace-reconciler):
// a name in, a Result or a typed Failure out (runtime/reconciler.hpp). Per name, from the
// desired state the sync left:
//   - deleting: the reclaim policy runs from the last stored spec (the stack first, then the
//     database and role), always against a fresh observation;
//   - declared: ReconcileWorkspace (the path --once shares; `suspend` forced on while an API
//     override holds it, overrides.hpp) on observations shared between
//     workers (one catalog query per cluster, one stack list per endpoint, at most
//     `snapshot_max_age` old and never older than this reconciler's own last change to it);
//   - rejected: its status says why (Stalled), nothing is reconciled;
//   - unknown: nothing to do.
// Status is summarised by the pure functions of conditions.hpp and written only on change.

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/secret.hpp"
#include "controller/runtime/clock.hpp"
#include "controller/runtime/events.hpp"
#include "controller/runtime/metrics.hpp"
#include "controller/runtime/reconciler.hpp"
#include "controller/runtime/snapshot_cache.hpp"
#include "controller/sources/desired_state.hpp"
#include "controller/store/store.hpp"
#include "controller/sources/workspace_observer.hpp"
#include "controller/workspace/backup_hooks.hpp"
#include "controller/workspace/conditions.hpp"
#include "controller/workspace/overrides.hpp"
#include "controller/workspace/reconcile_pass.hpp"
#include "controller/workspace/placer.hpp"
#include "controller/workspace/revision_pins.hpp"

namespace tmaster::controller {

/// The caller owns everything pointed to and keeps it alive as long as the reconciler.
struct WorkspaceReconcilerDeps {
  DesiredState* desired = nullptr;
  Store* store = nullptr;
  EventRecorder* events = nullptr;
  Gateways gateways;                ///< by cluster name
  StacksContext* stacks = nullptr;  ///< nullptr: dedicated workspaces get their database only
  const Secret* master_key = nullptr;
  Metrics* metrics = nullptr;
  const Clock* clock = nullptr;
  const manifests::Config* config = nullptr;  ///< each cluster's adoptPattern; nullptr: none
  /// The store's database name: never adopted (postgres::AdoptPolicy).
  std::string store_database = std::string(postgres::kDefaultStoreDatabase);
  /// nullptr: none. A workspace with a suspend override converges as if its spec said
  /// `suspend: true` (overrides.hpp).
  const Overrides* overrides = nullptr;
  /// nullptr: none. A run of a marked name is recorded in lastRuns even when it did nothing.
  RequestedRuns* requested = nullptr;
  WorkspaceObserver* observer = nullptr;  ///< told of each status written and each removal
  /// nullptr: no backups. Else: a backup before new migrations, a final one before a
  /// `reclaimPolicy: Delete` drop, and the conditions backups add (backup_hooks.hpp).
  BackupHooks* backups = nullptr;
  /// nullptr: none. A marked name's next run is a deep one (every in-database step again, e.g.
  /// the migrations a restored database lacks).
  RequestedRuns* deep = nullptr;
  /// nullptr: every workspace is reconciled against its product as declared now. Else: the
  /// revision each pass applies (revision_pins.hpp), recorded in the status.
  RevisionPins* pins = nullptr;
  /// nullptr: a workspace without `spec.database.cluster` cannot be placed (it stalls
  /// `Unschedulable`). Else: where such a workspace is (placer.hpp).
  Placer* placer = nullptr;
};

struct WorkspaceReconcilerOptions {
  /// A converged workspace is looked at again after this long (the queue jitters it).
  Duration resync_interval = std::chrono::minutes(5);
  /// How long a cluster's catalog or an endpoint's stack list serves other workspaces.
  Duration snapshot_max_age = std::chrono::seconds(1);
};

class WorkspaceReconciler final : public Reconciler {
 public:
  WorkspaceReconciler(WorkspaceReconcilerDeps deps, WorkspaceReconcilerOptions options);

  /// See runtime/reconciler.hpp. A Result asks for the resync after a converged run and for
  /// nothing after a deletion, a rejected document or an unknown name.
  Outcome<Result> Reconcile(const Request& request) override;

  /// A leadership term starts with the statuses the store holds.
  void BeginTerm(std::vector<WorkspaceStatus> statuses);
  /// The term ended: forget statuses and snapshots.
  void EndTerm();
  /// A move switched `name` to another cluster (docs/moves.md): its recorded identity is read
  /// from the store again, and its next pass observes its clusters afresh.
  void Moved(const std::string& name);
  /// Workspaces by phase for the gauge; declared ones without a status yet count as Pending.
  [[nodiscard]] std::map<std::string, int> PhaseCounts() const;

 private:
  Outcome<Result> ReconcileLive(const Request& request, const DesiredEntry& entry);
  Outcome<Result> ReconcileDeletion(const Request& request);
  Outcome<Result> RecordRejected(const std::string& name, const Rejection& rejection);
  /// Deletes the workspace's stack if it is still there and ours; appends what it did.
  Status DeleteStack(const std::string& name, int endpoint, std::vector<std::string>& done);
  [[nodiscard]] std::optional<WorkspaceStatus> Previous(const std::string& name) const;
  /// Emits the update's events and writes its status when it asks to, or when the last write
  /// of this name failed.
  void Write(const std::string& name, const StatusUpdate& update);
  void MarkWritten(const std::string& name);
  /// Sets the revision fields of the status a pass writes (what `pin` applied), and asks for
  /// the write when they changed.
  static void RecordRevision(StatusUpdate& update, const std::optional<WorkspaceStatus>& previous,
                             const WorkspaceResult& result, const RevisionPin& pin);
  /// What the store recorded of a workspace's convergence: its identity (nullopt: not yet
  /// converged) and where its stack lives. Read from the store once per term, then kept here.
  struct Recorded {
    std::optional<WorkspaceIdentity> identity;
    std::optional<int> stack_endpoint;
  };
  Outcome<Recorded> RecordedFor(const std::string& name);
  void RecordIdentity(const std::string& name, const WorkspaceIdentity& identity);
  /// After a converged pass: removes the stack the workspace no longer has (switched to shared,
  /// or moved to another endpoint) and records where its stack now is. Appends what it did.
  Status SettleStackEndpoint(const std::string& name, const manifests::Workspace& workspace,
                             std::optional<int> recorded, std::vector<std::string>& done);

  WorkspaceReconcilerDeps deps_;
  WorkspaceReconcilerOptions options_;
  SnapshotCache<std::string, Outcome<postgres::ObservedCluster>> clusters_;
  SnapshotCache<int, StackList> endpoints_;
  mutable std::mutex mutex_;
  std::map<std::string, WorkspaceStatus> statuses_;  ///< last written (or to be written)
  std::set<std::string> unsaved_;                    ///< statuses whose write failed
  std::map<std::string, TimePoint> last_write_;      ///< when this reconciler last changed one
  std::map<std::string, Recorded> recorded_;  ///< read this term
  /// Names whose term-start row (DesiredState::StoredAtStart) is stale: read from the store.
  std::set<std::string> reread_;
};

}  // namespace tmaster::controller
