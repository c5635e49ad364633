#pragma once

#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/secret.hpp"
#include "manifests/types.hpp"
#include "reconcilers/migrations/migrations.hpp"
#include "reconcilers/postgres/gateway.hpp"
#include "reconcilers/stacks/gateway.hpp"
#include "reconcilers/stacks/ledger.hpp"
#include "manifests/config.hpp"

namespace tmaster::bindings {
class SharedTenants;
}

namespace tmaster::controller {

class BackupHooks;

/// Phases (docs/architecture.md#status-and-events) that a pass can reach.
enum class Phase { kPending, kProgressing, kReady, kDegraded, kStalled, kSuspended };
const char* ToString(Phase phase);

struct PassOptions {
  bool dry_run = false;  ///< plan only; nothing is applied
  bool deep = false;     ///< re-run the in-database steps of every workspace
  int workers = 4;       ///< workspaces applied in parallel
  /// Delete the stacks of workspaces that no source declares any more. The caller sets it only
  /// when every source was read and every document was valid (a failed read must never look
  /// like removed workspaces), and the deletion guard still applies: more than
  /// `max_deletions_per_sync` at once, or all of them, deletes nothing.
  bool prune_stacks = false;
  int max_deletions_per_sync = 3;
  /// The store's database name (`store.dsnEnv`'s dbname): never adopted on any cluster.
  std::string store_database = std::string(postgres::kDefaultStoreDatabase);
};

/// The outcome of one workspace in one pass.
struct WorkspaceResult {
  std::string name;
  std::string cluster;
  Phase phase = Phase::kPending;
  bool ready = false;   ///< the Ready condition: converged (suspended-and-converged counts)
  std::string reason;   ///< CamelCase
  std::string message;  ///< names the failing object and step; never a secret
  std::vector<std::string> plan;     ///< Describe() of each planned action
  std::vector<std::string> plan_kinds;  ///< KindOf() of each planned action, as `plan`
  std::vector<std::string> applied;  ///< Describe() of each action applied, with its detail
  int statements = 0;                ///< SQL statements sent while applying
  /// Set when the workspace is not ready because something failed: the queue retries transient
  /// failures with backoff and leaves stalled ones until the spec changes.
  std::optional<FailureKind> failure_kind;
  /// The narrow condition the failure belongs to (docs/architecture.md#status-and-events): `DatabaseReady`,
  /// `MigrationsApplied` or `StackReady`; empty when nothing failed.
  std::string failed_condition;
  std::vector<std::string> applied_kinds;  ///< KindOf each action applied (the drift metric)
  /// A shared workspace published to StacksContext::shared in this run (its BindingReady
  /// condition is then reported).
  bool published = false;
  bool wrote = false;  ///< an action was attempted: the cluster's observation is stale for it
  /// The backup taken right before this run's migrations (reused for a retry); empty: none.
  std::string pre_migration_backup;
};

/// A database or role that carries our marker but has no workspace in the sources, or whose
/// workspace now names another database, role or cluster (its identity was changed).
struct Orphan {
  std::string cluster;
  std::string kind;  ///< `database`, `role` or `stack`
  std::string name;
  std::string workspace;
  /// Why nothing claims it, after the workspace's name in the report line.
  std::string why = "which no source declares";
};

struct PassReport {
  std::vector<WorkspaceResult> workspaces;  ///< sorted by name; rejected documents included
  std::vector<Orphan> orphans;
  int observe_queries = 0;
  std::vector<std::string> pruned;  ///< Describe() of each stack deleted, with its detail
  std::optional<Failure> prune_blocked;  ///< Stalled `DeletionGuard`, or a failed delete

  /// True when every workspace is Ready (or, for a dry run, none is blocked) and no deletion
  /// was refused or failed.
  [[nodiscard]] bool AllReady() const;
};

using StackList = Outcome<std::vector<stacks::ObservedStack>>;
using MigrationList = Outcome<std::vector<migrations::Migration>>;

/// Everything one workspace's reconcile reads, observed beforehand and shared with the other
/// workspaces of the pass (docs/architecture.md#observation: one catalog query per cluster, one list per endpoint).
/// Pointers are borrowed; nullptr `product` or `gateway` means the reference is not available.
struct WorkspaceInputs {
  const manifests::Workspace* workspace = nullptr;
  const manifests::Product* product = nullptr;
  const MigrationList* migrations = nullptr;  ///< the product's, loaded once
  postgres::PostgresGateway* gateway = nullptr;
  const Outcome<postgres::ObservedCluster>* observed = nullptr;
  const StackList* stack_list = nullptr;  ///< the endpoint's list; dedicated workspaces only
  const Outcome<std::string>* stack_template = nullptr;  ///< the product's, read once
  postgres::AdoptPolicy adopt;  ///< for the workspace's cluster (`AdoptPolicyFor`)
  /// Databases marked for this workspace on the other clusters (`spec.database.cluster` is
  /// immutable once converged); borrowed, empty when the caller observes one cluster only.
  std::span<const postgres::MarkedDatabase> elsewhere;
  /// nullptr: no backups. Set (the daemon): a database that existed before this run and has
  /// migrations to apply is backed up first (BackupHooks::BeforeMigrations), and a failed
  /// migration's message names that backup (docs/backups.md#in-the-reconciler).
  BackupHooks* backups = nullptr;
  std::int64_t generation = 0;  ///< the spec's, recorded with such a backup
};

/// What `spec.database.adopt` may take over on `cluster`: its `adoptPattern` from `config`
/// (nullptr: none) and the store database's default name (the caller replaces it when the store's
/// DSN names another database).
postgres::AdoptPolicy AdoptPolicyFor(const manifests::Config* config, const std::string& cluster,
                                     const std::string& store_database);

/// Gateways by cluster name; the caller owns them.
using Gateways = std::map<std::string, postgres::PostgresGateway*>;

/// How a cluster is reached from the dedicated stacks (their DB_HOST and DB_PORT).
struct DbAddress {
  std::string host;
  int port = 5432;
};

/// What dedicated workspaces need (docs/architecture.md#dedicated-stacks), and where shared ones
/// are published (docs/bindings.md). Without it (nullptr), dedicated workspaces are reconciled
/// for their database only and shared ones are not published. The caller owns everything
/// pointed to.
struct StacksContext {
  stacks::StackGateway* gateway = nullptr;
  stacks::StackLedger* ledger = nullptr;  ///< what we last wrote; saves file reads
  const manifests::Config* config = nullptr;
  std::map<std::string, DbAddress> clusters;  ///< by cluster name, as stacks and runtimes reach it
  /// nullptr: shared workspaces are not published. Otherwise each shared workspace whose database
  /// converged is published here (its binding written when it changed), and a workspace that is
  /// no longer shared is removed from it.
  bindings::SharedTenants* shared = nullptr;
  /// By cluster name, as the operator (and a pooler beside it) reaches it: the DSN's host and
  /// port. A cluster missing here is reached at its `clusters` address.
  std::map<std::string, DbAddress> servers;
};

/// Reconciles one workspace from observations made beforehand: plan purely, then (unless a dry
/// run) apply the database actions in order, stopping at the first failure, then, for a
/// dedicated workspace whose database converged, plan and apply its stack. The daemon's workers
/// and RunPass both call it, so `--once` and the controller share one code path.
WorkspaceResult ReconcileWorkspace(const WorkspaceInputs& inputs, const Secret& master_key,
                                   const PassOptions& options, const StacksContext* stacks);

/// Deletes `stack`, a stack of `workspace` that is no longer declared: the stack plan with no
/// desired stack, each action applied in order and recorded in the ledger. Appends each applied
/// action's Describe() to `applied`; stops at the first failure and returns it. `--once`'s
/// pruning and the daemon's deletion both use it.
Status DeleteUndeclaredStack(const StacksContext& context, const std::string& workspace,
                             const stacks::ObservedStack& stack, std::vector<std::string>& applied);

/// One full pass (docs/architecture.md#observation): load each product's migrations once, observe every cluster with
/// one catalog query, plan every workspace purely, then apply the plans with a pool of
/// `options.workers` threads, each workspace's actions in order, stopping that workspace at its
/// first failure. Workspaces of a cluster whose observation failed get that failure. Rejected
/// manifests appear as Stalled with their reason. Orphans are listed, never touched: objects
/// marked for a workspace that no source declares, or for one that now names other objects
/// (except while that workspace is stalled `ImmutableField`: its message names them). A
/// workspace whose database converged on another cluster stalls `ImmutableField`
/// (`PlanOptions::elsewhere`). `stacks->config`, when set, gives each cluster's `adoptPattern`.
///
/// With `stacks`, each dedicated workspace whose database converged then gets its stack: one
/// list call per endpoint serves every workspace, a stack's file is read only when the ledger
/// cannot vouch for it, and the stack plan is applied the same way. Stacks that carry our marker
/// but have no workspace are listed as orphans.
PassReport RunPass(const manifests::Fleet& fleet, const Gateways& gateways,
                   const Secret& master_key, const PassOptions& options,
                   const StacksContext* stacks = nullptr);

}  // namespace tmaster::controller
