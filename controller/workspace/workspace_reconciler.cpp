#include "controller/workspace/workspace_reconciler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/time.hpp"
#include "controller/bindings/publisher.hpp"
#include "controller/store/spec_json.hpp"
#include "controller/workspace/identity.hpp"
#include "reconcilers/postgres/model.hpp"
#include "reconcilers/stacks/plan.hpp"
#include "reconcilers/stacks/render.hpp"

namespace tmaster::controller {
namespace {

/// The Unix time a retry `delay` from now falls on (the status's next retry).
std::int64_t RetryAtUnix(Duration delay) {
  return UnixNow() + std::chrono::duration_cast<std::chrono::seconds>(delay).count();
}

}  // namespace

WorkspaceReconciler::WorkspaceReconciler(WorkspaceReconcilerDeps deps,
                                         WorkspaceReconcilerOptions options)
    : deps_(std::move(deps)), options_(options) {}

void WorkspaceReconciler::BeginTerm(std::vector<WorkspaceStatus> statuses) {
  const std::lock_guard lock(mutex_);
  for (WorkspaceStatus& status : statuses) statuses_[status.name] = std::move(status);
}

void WorkspaceReconciler::EndTerm() {
  {
    const std::lock_guard lock(mutex_);
    statuses_.clear();
    unsaved_.clear();
    last_write_.clear();
    recorded_.clear();
    reread_.clear();
  }
  clusters_.Clear();
  endpoints_.Clear();
}

void WorkspaceReconciler::Moved(const std::string& name) {
  const std::lock_guard lock(mutex_);
  recorded_.erase(name);
  reread_.insert(name);  // the switch changed its identity in the store
  // The move created the target's database outside this reconciler: a snapshot older than now
  // may not show it.
  last_write_[name] = deps_.clock->Now();
}

std::map<std::string, int> WorkspaceReconciler::PhaseCounts() const {
  const std::set<std::string> deleting = deps_.desired->DeletingNames();
  const std::vector<std::string> declared = deps_.desired->DeclaredNames();
  std::map<std::string, int> phases;
  const std::lock_guard lock(mutex_);
  for (const auto& [name, status] : statuses_) {
    if (deleting.count(name) == 0) ++phases[status.phase];
  }
  for (const std::string& name : declared) {
    if (statuses_.count(name) == 0) ++phases["Pending"];
  }
  phases["Deleting"] += static_cast<int>(deleting.size());
  return phases;
}

Outcome<Result> WorkspaceReconciler::Reconcile(const Request& request) {
  const DesiredState::View view = deps_.desired->Lookup(request.name);
  if (view.deleting) return ReconcileDeletion(request);
  if (view.declared) return ReconcileLive(request, *view.declared);
  if (view.rejected) return RecordRejected(request.name, *view.rejected);
  return Result{};  // gone: nothing to converge
}

std::optional<WorkspaceStatus> WorkspaceReconciler::Previous(const std::string& name) const {
  const std::lock_guard lock(mutex_);
  auto it = statuses_.find(name);
  if (it == statuses_.end()) return std::nullopt;
  return it->second;
}

void WorkspaceReconciler::MarkWritten(const std::string& name) {
  const std::lock_guard lock(mutex_);
  last_write_[name] = deps_.clock->Now();
}

void WorkspaceReconciler::Write(const std::string& name, const StatusUpdate& update) {
  for (const EventDraft& event : update.events) {
    deps_.events->Emit(name, event.type, event.reason, event.message);
  }
  {
    const std::lock_guard lock(mutex_);
    if (!update.write && unsaved_.count(name) == 0) return;  // nothing new: no write
    statuses_[name] = update.status;
  }
  Outcome<Done> put = deps_.store->PutStatus(update.status);
  if (put && deps_.observer != nullptr) deps_.observer->StatusChanged(update.status);
  const std::lock_guard lock(mutex_);
  if (put) {
    unsaved_.erase(name);
    return;
  }
  unsaved_.insert(name);
  spdlog::warn("store: status of {}: {}", name, put.failure().message);
}

Outcome<Result> WorkspaceReconciler::RecordRejected(const std::string& name,
                                                    const Rejection& rejection) {
  WorkspaceResult result;
  result.name = name;
  result.phase = Phase::kStalled;
  result.reason = rejection.reason;
  result.message = rejection.message + " (the last valid spec and its database are kept)";
  result.failure_kind = FailureKind::kStalled;
  const std::optional<WorkspaceStatus> previous = Previous(name);
  const RunInfo run{.generation = previous ? previous->observed_generation : 0,
                    .revision = rejection.revision,
                    .started = FormatRfc3339Utc(std::chrono::system_clock::now()),
                    .seconds = 0,
                    .drift = false,
                    .dedicated = false,
                    .next_retry_unix = std::nullopt};
  Write(name, SummarizeRun(previous, name, result, run, run.started));
  return Result{};  // nothing to converge until the document changes
}

Outcome<Result> WorkspaceReconciler::ReconcileLive(const Request& request,
                                                   const DesiredEntry& entry) {
  const std::string& name = request.name;
  const auto started = std::chrono::system_clock::now();
  const bool requested = deps_.requested != nullptr && deps_.requested->Take(name);
  const TimePoint t0 = deps_.clock->Now();
  TimePoint fresh_after = t0 - options_.snapshot_max_age;
  {
    const std::lock_guard lock(mutex_);
    if (auto it = last_write_.find(name); it != last_write_.end()) {
      fresh_after = std::max(fresh_after, it->second);
    }
  }
  const std::optional<WorkspaceStatus> previous = Previous(name);
  // An API override suspends a source-owned workspace: converged exactly as `suspend: true`.
  std::optional<manifests::Workspace> overridden;
  if (deps_.overrides != nullptr && !entry.workspace.suspend) {
    if (std::optional<SuspendOverride> held = deps_.overrides->Get(name); held && held->suspend) {
      overridden = entry.workspace;
      overridden->suspend = true;
    }
  }
  // The revision of its product this pass applies (docs/rollouts.md): the declared product, or
  // the revision a rollout has it on.
  RevisionPin pin{entry.product, entry.product->revision, 0};
  std::optional<Failure> unpinned;
  if (deps_.pins != nullptr) {
    Outcome<RevisionPin> asked =
        deps_.pins->PinFor(name, entry, previous ? previous->product_revision : 0);
    if (asked) {
      pin = std::move(*asked);
    } else {
      unpinned = asked.failure();
    }
  }
  const ProductEntry& product = *pin.product;
  // A dedicated workspace's version defaulted from the product follows the revision it is on;
  // one its manifest names is its own (outside rollouts).
  const manifests::DedicatedSpec* dedicated =
      overridden ? (overridden->dedicated ? &*overridden->dedicated : nullptr)
                 : (entry.workspace.dedicated ? &*entry.workspace.dedicated : nullptr);
  if (dedicated != nullptr && dedicated->version_defaulted &&
      dedicated->version != product.product.default_version) {
    if (!overridden) overridden = entry.workspace;
    overridden->dedicated->version = product.product.default_version;
  }
  // A workspace without a named cluster is where its placement says (docs/placement.md).
  Outcome<Recorded> recorded = RecordedFor(name);
  std::optional<Failure> unplaced;
  if (entry.workspace.database.cluster_placed) {
    Outcome<std::string> cluster =
        deps_.placer == nullptr
            ? Outcome<std::string>(Failure::Stalled(
                  "Unschedulable", "spec.database.cluster is omitted and this operator does not "
                                   "place workspaces (no store)"))
        : !recorded ? Outcome<std::string>(recorded.failure())
                    : deps_.placer->ClusterFor(name, entry.workspace, recorded->identity);
    if (cluster) {
      if (!overridden) overridden = entry.workspace;
      overridden->database.cluster = *cluster;
    } else {
      unplaced = cluster.failure();
    }
  }
  // A dedicated workspace without a named endpoint: its stack's placement (docs/placement.md).
  if (!unplaced && entry.workspace.dedicated && entry.workspace.dedicated->endpoint_placed) {
    Outcome<int> endpoint =
        deps_.placer == nullptr
            ? Outcome<int>(Failure::Stalled(
                  "Unschedulable", "spec.dedicated.endpoint is omitted and this operator does "
                                   "not place stacks (no store)"))
        : !recorded ? Outcome<int>(recorded.failure())
                    : deps_.placer->EndpointFor(name, entry.workspace, recorded->stack_endpoint);
    if (endpoint) {
      if (!overridden) overridden = entry.workspace;
      overridden->dedicated->endpoint = *endpoint;
      if (recorded->stack_endpoint != *endpoint) {  // placed now: recorded as its stack endpoint
        recorded->stack_endpoint = *endpoint;
        const std::lock_guard lock(mutex_);
        recorded_[name].stack_endpoint = *endpoint;
      }
    } else {
      unplaced = endpoint.failure();
    }
  }
  const manifests::Workspace& workspace = overridden ? *overridden : entry.workspace;
  WorkspaceInputs inputs;
  inputs.workspace = &workspace;
  inputs.product = &product.product;
  inputs.migrations = &product.migrations;
  inputs.adopt = AdoptPolicyFor(deps_.config, workspace.database.cluster, deps_.store_database);
  inputs.backups = deps_.backups;
  inputs.generation = entry.generation;
  const bool deep = deps_.deep != nullptr && deps_.deep->Take(name);
  std::shared_ptr<const Outcome<postgres::ObservedCluster>> observed;
  std::shared_ptr<const StackList> stack_list;
  if (auto gateway = deps_.gateways.find(workspace.database.cluster);
      gateway != deps_.gateways.end()) {
    inputs.gateway = gateway->second;
    observed = clusters_.Get(gateway->first, fresh_after, *deps_.clock,
                             [&] { return gateway->second->Observe(); });
    inputs.observed = observed.get();
  }
  if (workspace.dedicated && deps_.stacks != nullptr && deps_.stacks->gateway != nullptr) {
    const int endpoint = workspace.dedicated->endpoint;
    stack_list = endpoints_.Get(endpoint, fresh_after, *deps_.clock,
                                [&] { return deps_.stacks->gateway->List(endpoint); });
    inputs.stack_list = stack_list.get();
    inputs.stack_template = &product.stack_template;
  }
  const WorkspaceIdentity identity = IdentityOf(workspace);
  std::optional<Failure> blocked = unplaced ? unplaced : unpinned;
  if (!blocked && !recorded) {
    blocked = recorded.failure();
  } else if (!blocked && recorded->identity) {
    blocked = CheckIdentity(name, *recorded->identity, identity);
  }
  WorkspaceResult result;
  if (blocked) {
    result.name = name;
    result.cluster = workspace.database.cluster;
    result.phase = blocked->kind == FailureKind::kStalled ? Phase::kStalled : Phase::kDegraded;
    result.reason = blocked->reason;
    result.message = blocked->message;
    result.failure_kind = blocked->kind;
    result.failed_condition = "DatabaseReady";
  } else {
    result = ReconcileWorkspace(inputs, *deps_.master_key, {.deep = deep, .workers = 1},
                                deps_.stacks);
    if (result.ready && !recorded->identity) RecordIdentity(name, identity);
    if (result.ready && deps_.stacks != nullptr && deps_.stacks->gateway != nullptr) {
      std::vector<std::string> removed;
      Status settled = SettleStackEndpoint(name, workspace, recorded->stack_endpoint, removed);
      for (const std::string& line : removed) {
        result.applied.push_back(line);
        result.applied_kinds.emplace_back("DeleteStack");
        deps_.events->Emit(name, "Normal", "StackRemoved", line);
      }
      if (!removed.empty()) result.wrote = true;
      if (!settled) {
        result.ready = false;
        result.phase = settled.failure().kind == FailureKind::kStalled ? Phase::kStalled
                                                                        : Phase::kDegraded;
        result.reason = settled.failure().reason;
        result.message = "removing the stack it no longer has: " + settled.failure().message;
        result.failure_kind = settled.failure().kind;
        result.failed_condition = "StackReady";
      }
    }
  }
  if (result.wrote) MarkWritten(name);
  const double seconds = std::chrono::duration<double>(deps_.clock->Now() - t0).count();
  // Drift: the spec was already converged at this generation and on this product revision, yet
  // something had to change (a new revision's migrations are no drift: a rollout moved it).
  const bool drift = previous && previous->observed_generation == entry.generation &&
                     (previous->phase == "Ready" || previous->phase == "Suspended") &&
                     (pin.revision == 0 || previous->product_revision == 0 ||
                      previous->product_revision == pin.revision);
  RunInfo run{.generation = entry.generation,
              .revision = entry.revision,
              .started = FormatRfc3339Utc(started),
              .seconds = seconds,
              .drift = drift,
              .dedicated = workspace.dedicated.has_value(),
              .next_retry_unix = std::nullopt,
              .requested = requested};
  if (deps_.backups != nullptr) run.extra = deps_.backups->Conditions(name);

  deps_.metrics->ObserveReconcileDuration(seconds);
  Outcome<Result> answer = Result{options_.resync_interval};
  if (result.ready) {
    deps_.metrics->IncReconcile("success");
    if (drift) {
      for (const std::string& kind : result.applied_kinds) deps_.metrics->IncDriftCorrected(kind);
    }
  } else if (result.failure_kind == FailureKind::kStalled) {
    deps_.metrics->IncReconcile("stalled");
    answer = Failure::Stalled(result.reason, result.message);
  } else {
    deps_.metrics->IncReconcile("failure");
    run.next_retry_unix = RetryAtUnix(request.retries->PlanRetry(name));
    answer = Failure::Transient(result.reason, result.message);
  }
  StatusUpdate update =
      SummarizeRun(previous, name, result, run, FormatRfc3339Utc(std::chrono::system_clock::now()));
  if (!blocked) RecordRevision(update, previous, result, pin);
  Write(name, update);
  return answer;
}

void WorkspaceReconciler::RecordRevision(StatusUpdate& update,
                                         const std::optional<WorkspaceStatus>& previous,
                                         const WorkspaceResult& result, const RevisionPin& pin) {
  WorkspaceStatus& status = update.status;
  // What this pass applied, so a rollout can tell its reading from an earlier one's; the
  // revision it converged on only once Ready on it.
  // The backup taken before this attempt's migration stays named until another attempt (or
  // another revision) is applied: the passes after it take none, and an undo needs its id.
  const bool same_attempt = previous && previous->attempted_revision == pin.revision &&
                            previous->rollout_attempt == pin.attempt;
  status.attempted_revision = pin.revision;
  status.rollout_attempt = pin.attempt;
  if (!result.pre_migration_backup.empty() || !same_attempt) {
    status.pre_migration_backup = result.pre_migration_backup;
  }
  if (result.ready && pin.revision > 0) status.product_revision = pin.revision;
  if (!previous || previous->product_revision != status.product_revision ||
      previous->attempted_revision != status.attempted_revision ||
      previous->rollout_attempt != status.rollout_attempt ||
      previous->pre_migration_backup != status.pre_migration_backup) {
    update.write = true;
  }
}

Outcome<WorkspaceReconciler::Recorded> WorkspaceReconciler::RecordedFor(
    const std::string& name) {
  bool reread = false;
  {
    const std::lock_guard lock(mutex_);
    if (auto it = recorded_.find(name); it != recorded_.end()) return it->second;
    reread = reread_.count(name) != 0;
  }
  // The row read when the term began serves the first pass of a workspace that existed then:
  // a restart's resync costs no store query per workspace (bench/README.md "Past one server"
  // found one each). Later changes go through this reconciler (RecordIdentity,
  // SettleStackEndpoint) or mark the name for a fresh read (Moved).
  if (!reread) {
    if (std::optional<StoredWorkspace> at_start = deps_.desired->StoredAtStart(name)) {
      const Recorded recorded{at_start->identity, at_start->stack_endpoint};
      const std::lock_guard lock(mutex_);
      return recorded_.try_emplace(name, recorded).first->second;
    }
  }
  Outcome<std::optional<StoredWorkspace>> stored = deps_.store->Get(name);
  if (!stored) return stored.failure();
  Recorded recorded;
  if (*stored) recorded = {(*stored)->identity, (*stored)->stack_endpoint};
  const std::lock_guard lock(mutex_);
  recorded_[name] = recorded;
  return recorded;
}

void WorkspaceReconciler::RecordIdentity(const std::string& name,
                                         const WorkspaceIdentity& identity) {
  Outcome<StoredWorkspace> stored = deps_.store->RecordIdentity(name, identity);
  if (!stored) {  // recorded on a later Ready pass
    spdlog::warn("store: identity of {}: {}", name, stored.failure().message);
    return;
  }
  {
    const std::lock_guard lock(mutex_);
    recorded_[name].identity = stored->identity;
  }
  // The API's view shows the identity's cluster (status.cluster): it gets the row as stored now.
  if (deps_.observer != nullptr) deps_.observer->SpecChanged(*stored);
}

Status WorkspaceReconciler::SettleStackEndpoint(const std::string& name,
                                                const manifests::Workspace& workspace,
                                                std::optional<int> recorded,
                                                std::vector<std::string>& done) {
  std::optional<int> now;
  if (workspace.dedicated) now = workspace.dedicated->endpoint;
  if (recorded == now) return Ok();
  // Held by the deletion guard: the source shows DeletionGuard; the stack stays until it clears.
  if (recorded && deps_.desired->StackRemovalHeld(name)) return Ok();
  // The stack where it was: gone from a workspace switched to shared, or left behind by a move to
  // another endpoint (the new one is already Ready: this runs after a converged pass).
  if (recorded) {
    if (Status deleted = DeleteStack(name, *recorded, done); !deleted) return deleted;
  }
  if (Outcome<Done> put = deps_.store->RecordStackEndpoint(name, now); !put) return put.failure();
  if (deps_.placer != nullptr) deps_.placer->StackOn(name, now);
  const std::lock_guard lock(mutex_);
  recorded_[name].stack_endpoint = now;
  return Ok();
}

Status WorkspaceReconciler::DeleteStack(const std::string& name, int endpoint,
                                        std::vector<std::string>& done) {
  Outcome<std::vector<stacks::ObservedStack>> list = deps_.stacks->gateway->List(endpoint);
  if (!list) return list.failure();
  const stacks::ObservedStack* found = stacks::FindStack(*list, endpoint, stacks::StackName(name));
  std::optional<stacks::LedgerEntry> entry;
  if (deps_.stacks->ledger != nullptr) entry = deps_.stacks->ledger->Get(name);
  if (found == nullptr || !stacks::IsOurs(name, *found, entry)) return Ok();
  return DeleteUndeclaredStack(*deps_.stacks, name, *found, done);
}

Outcome<Result> WorkspaceReconciler::ReconcileDeletion(const Request& request) {
  const std::string& name = request.name;
  const TimePoint t0 = deps_.clock->Now();
  const auto now = [] { return FormatRfc3339Utc(std::chrono::system_clock::now()); };
  auto fail = [&](const Failure& failure) -> Outcome<Result> {
    const bool stalled = failure.kind == FailureKind::kStalled;
    deps_.metrics->IncReconcile(stalled ? "stalled" : "failure");
    std::optional<std::int64_t> next_retry;
    if (!stalled) {
      next_retry = RetryAtUnix(request.retries->PlanRetry(name));
    }
    Write(name, SummarizeDeleting(Previous(name), name, failure, next_retry, now()));
    if (stalled) deps_.events->Emit(name, "Warning", failure.reason, failure.message);
    return failure;
  };
  Write(name, SummarizeDeleting(Previous(name), name, std::nullopt, std::nullopt, now()));

  Outcome<std::optional<StoredWorkspace>> stored = deps_.store->Get(name);
  if (!stored) return fail(stored.failure());
  if (!*stored) {
    deps_.desired->FinishDeleting(name);
    if (deps_.observer != nullptr) deps_.observer->Removed(name);
    const std::lock_guard lock(mutex_);
    statuses_.erase(name);
    recorded_.erase(name);
    return Result{};
  }
  Outcome<ReclaimSpec> spec = ReclaimSpecFromJson((*stored)->spec_json);
  if (!spec) return fail(spec.failure());
  std::vector<std::string> done;

  // What connects to the database goes first: the binding its runtime reads (docs/bindings.md),
  // then the stack.
  if (deps_.stacks != nullptr && deps_.stacks->shared != nullptr) {
    Outcome<bool> removed = deps_.stacks->shared->Remove(name);
    if (!removed) return fail(removed.failure());
    if (*removed) done.push_back("remove the binding of workspace " + name);
  }
  // A placed stack's endpoint is the stored one (its spec names none).
  if (!spec->endpoint) spec->endpoint = (*stored)->stack_endpoint;
  if (spec->endpoint && deps_.stacks != nullptr && deps_.stacks->gateway != nullptr) {
    if (Status deleted = DeleteStack(name, *spec->endpoint, done); !deleted) {
      return fail(deleted.failure());
    }
  }

  // The identity recorded at the first convergence names the data, whatever a later (stalled)
  // spec said.
  if (const auto& identity = (*stored)->identity) {
    spec->cluster = identity->cluster;
    spec->database = identity->database;
    spec->role = identity->owner;
  }
  // A placed workspace's spec names no cluster: its placement does (none: nothing was created).
  if (spec->cluster.empty() && deps_.placer != nullptr) {
    spec->cluster = deps_.placer->PlacedOn(name).value_or("");
  }
  const bool never_placed = spec->cluster.empty();
  if (!never_placed) {
    auto gateway = deps_.gateways.find(spec->cluster);
    if (gateway == deps_.gateways.end()) {
      return fail(Failure::Stalled("InvalidReference", "workspace " + name + ": cluster \"" +
                                                           spec->cluster + "\" is not configured"));
    }
    const postgres::ReclaimTarget target{name, spec->cluster, spec->database, spec->role,
                                         spec->policy};
    // Always a fresh observation: deletion must not act on a stale catalog.
    Outcome<postgres::ObservedCluster> observed = gateway->second->Observe();
    if (!observed) return fail(observed.failure());
    const postgres::Plan plan = postgres::MakeReclaimPlan(target, *observed);
    if (plan.blocked) return fail(*plan.blocked);
    // A database about to be dropped is backed up first; the drop waits for that backup.
    const bool drops = std::any_of(plan.actions.begin(), plan.actions.end(), [](const auto& a) {
      return std::holds_alternative<postgres::DropDatabase>(a);
    });
    if (drops && deps_.backups != nullptr) {
      const BackupSubject subject{name, spec->cluster, spec->database, spec->role,
                                  (*stored)->generation, std::string()};
      Outcome<std::string> final_backup = deps_.backups->BeforeDrop(subject);
      if (!final_backup) {
        return fail(Failure::Transient("FinalBackupFailed",
                                       "the final backup before dropping database \"" +
                                           spec->database + "\" failed, so the drop waits: " +
                                           final_backup.failure().message));
      }
      if (!final_backup->empty()) {
        done.push_back("back up database \"" + spec->database + "\" before dropping it: " +
                       *final_backup);
      }
    }
    for (const postgres::Action& action : plan.actions) {
      Outcome<postgres::ApplyResult> applied = gateway->second->Apply(action);
      if (!applied) return fail(applied.failure());
      done.push_back(postgres::Describe(action));
    }
  }
  MarkWritten(name);
  for (const std::string& line : done) deps_.events->Emit(name, "Normal", "Reclaimed", line);
  const bool retain = spec->policy == manifests::ReclaimPolicy::kRetain;
  if (never_placed) {
    deps_.events->Emit(name, "Normal", "Deleted",
                       "it was never placed on a cluster, so it has no database to reclaim");
  } else {
    deps_.events->Emit(name, "Normal", retain ? "Retained" : "Deleted",
                       retain ? "reclaim policy Retain: database \"" + spec->database +
                                    "\" kept, role \"" + spec->role + "\" set NOLOGIN"
                              : "reclaim policy Delete: database \"" + spec->database +
                                    "\" and role \"" + spec->role + "\" dropped");
  }
  // Its placement stays while its database may exist (Retain keeps it, and a workspace of the
  // same name coming back finds it there); a dropped one frees the room.
  if (!retain && deps_.placer != nullptr) {
    if (Status forgotten = deps_.placer->Forget(name); !forgotten) {
      return fail(forgotten.failure());
    }
  }
  Outcome<bool> removed = deps_.store->Remove(name);
  if (!removed) return fail(removed.failure());
  if (deps_.placer != nullptr) deps_.placer->StackOn(name, std::nullopt);  // its stack went above
  deps_.desired->FinishDeleting(name);
  if (deps_.observer != nullptr) deps_.observer->Removed(name);
  if (deps_.backups != nullptr) deps_.backups->Deleted(name);
  {
    const std::lock_guard lock(mutex_);
    statuses_.erase(name);
    unsaved_.erase(name);
    recorded_.erase(name);
  }
  deps_.metrics->IncReconcile("success");
  deps_.metrics->ObserveReconcileDuration(
      std::chrono::duration<double>(deps_.clock->Now() - t0).count());
  return Result{};
}

}  // namespace tmaster::controller
