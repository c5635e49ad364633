#include "controller/workspace/reconcile_pass.hpp"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "common/crypto.hpp"
#include "controller/bindings/publisher.hpp"
#include "controller/runtime/deletion_guard.hpp"
#include "controller/workspace/backup_hooks.hpp"
#include "controller/workspace/place_once.hpp"
#include "reconcilers/migrations/migrations.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "reconcilers/postgres/model.hpp"
#include "reconcilers/stacks/plan.hpp"
#include "reconcilers/stacks/render.hpp"

namespace tmaster::controller {
namespace {

using postgres::DesiredTenant;
using postgres::ObservedCluster;

/// One workspace's reconcile in progress.
struct Job {
  WorkspaceResult result;
  const manifests::Workspace* workspace = nullptr;
  const manifests::Product* product = nullptr;
  std::optional<DesiredTenant> desired;
  postgres::Plan plan;
  postgres::PostgresGateway* gateway = nullptr;
  const StackList* stack_list = nullptr;  ///< the endpoint's list; set for dedicated workspaces
  const Outcome<std::string>* stack_template = nullptr;  ///< the product's, read once per pass
  std::string stack_note;                 ///< appended to the Ready message
  /// Set when the database existed and has migrations to apply: backed up before them.
  std::optional<BackupSubject> backup_before_migrations;
  BackupHooks* backups = nullptr;
  std::string pre_migration_backup;  ///< the id of the backup taken before the migrations
};

void SetFailure(WorkspaceResult& result, const Failure& failure,
                const std::string& condition = "DatabaseReady") {
  result.ready = false;
  result.phase = failure.kind == FailureKind::kStalled ? Phase::kStalled : Phase::kDegraded;
  result.reason = failure.reason;
  result.message = failure.message;
  result.failure_kind = failure.kind;
  result.failed_condition = condition;
}

/// The narrow condition a database-side failure belongs to.
std::string ConditionOf(const postgres::Action& action) {
  return postgres::IsInDatabase(action) ? "MigrationsApplied" : "DatabaseReady";
}

void SetConverged(Job& job, std::size_t actions) {
  const DesiredTenant& desired = *job.desired;
  WorkspaceResult& result = job.result;
  result.ready = true;
  result.phase = desired.suspend ? Phase::kSuspended : Phase::kReady;
  result.reason = desired.suspend ? "Suspended" : (actions == 0 ? "UpToDate" : "Reconciled");
  std::string what = "database \"" + desired.database + "\" and role \"" + desired.role +
                     "\" on cluster \"" + desired.cluster + "\"";
  if (actions == 0) {
    result.message = what + " up to date";
  } else {
    result.message = what + " converged with " + std::to_string(actions) +
                     (actions == 1 ? " action" : " actions");
  }
  result.message += job.stack_note;
  if (desired.suspend) result.message += "; logins closed (suspended)";
}

void SetDryRun(Job& job) {
  const bool nothing = job.result.plan.empty();
  job.result.ready = true;
  job.result.phase = nothing ? (job.desired->suspend ? Phase::kSuspended : Phase::kReady)
                             : Phase::kProgressing;
  job.result.reason = nothing ? "UpToDate" : "DryRun";
  const std::size_t n = job.result.plan.size();
  job.result.message = nothing ? "nothing to do"
                               : std::to_string(n) + (n == 1 ? " action" : " actions") +
                                     " planned, none applied (dry run)";
}

/// The backup before the migrations (docs/backups.md#in-the-reconciler); false (with the
/// failure set: the migrations wait, retried) when it could not be taken.
bool BackUpBeforeMigrations(Job& job) {
  Outcome<TakenBackup> backup = job.backups->BeforeMigrations(*job.backup_before_migrations);
  if (!backup) {
    SetFailure(job.result,
               Failure::Transient("PreMigrationBackupFailed",
                                  "the backup before the migrations failed, so they wait: " +
                                      backup.failure().message),
               "MigrationsApplied");
    return false;
  }
  job.pre_migration_backup = backup->id;
  job.result.pre_migration_backup = backup->id;
  // A reused one (a retried migration) was reported when it was taken.
  if (!backup->id.empty() && !backup->reused) {
    job.result.applied.push_back("back up database \"" + job.desired->database +
                                 "\" before its migrations: " + backup->id);
    job.result.applied_kinds.emplace_back("BackupBeforeMigration");
  }
  return true;
}

/// Applies the database plan; false (with the failure set) when an action failed.
bool ApplyDatabase(Job& job) {
  int applied = 0;
  for (const postgres::Action& action : job.plan.actions) {
    job.result.wrote = true;
    if (std::holds_alternative<postgres::ApplyMigrations>(action) &&
        job.backup_before_migrations && job.backups != nullptr && !BackUpBeforeMigrations(job)) {
      return false;
    }
    Outcome<postgres::ApplyResult> outcome = job.gateway->Apply(action);
    if (!outcome) {
      SetFailure(job.result, outcome.failure(), ConditionOf(action));
      job.result.message += " (after " + std::to_string(applied) + " of " +
                            std::to_string(job.plan.actions.size()) + " database actions)";
      if (!job.pre_migration_backup.empty()) {
        job.result.message += " (backup before the migration: " + job.pre_migration_backup + ")";
      }
      return false;
    }
    job.result.statements += outcome->statements;
    std::string line = postgres::Describe(action);
    if (!outcome->detail.empty()) line += ": " + outcome->detail;
    job.result.applied.push_back(std::move(line));
    job.result.applied_kinds.push_back(postgres::KindOf(action));
    ++applied;
  }
  return true;
}

/// Plans (and unless `dry_run`, applies) the stack of a dedicated workspace after its database
/// converged. Returns the number of stack actions, or the failure.
Outcome<std::size_t> ReconcileStack(Job& job, const StacksContext& context, bool dry_run,
                                    bool deep) {
  const manifests::Workspace& workspace = *job.workspace;
  const DesiredTenant& desired = *job.desired;
  const auto address = context.clusters.find(desired.cluster);
  if (address == context.clusters.end()) {
    return Failure::Stalled("InvalidReference", "stack of workspace " + workspace.name +
                                                    ": cluster \"" + desired.cluster +
                                                    "\" has no address for stacks");
  }
  stacks::DbConnection db{address->second.host, address->second.port, desired.database,
                          desired.role, desired.password};
  if (!*job.stack_template) return job.stack_template->failure();
  Outcome<stacks::DesiredStack> stack =
      stacks::BuildDesiredStack(workspace, *job.product, *context.config, db, **job.stack_template);
  if (!stack) return stack.failure();
  if (!*job.stack_list) return job.stack_list->failure();

  const stacks::ObservedStack* found =
      stacks::FindStack(**job.stack_list, stack->endpoint, stack->name);
  std::optional<stacks::LedgerEntry> entry;
  if (context.ledger != nullptr) entry = context.ledger->Get(workspace.name);
  std::optional<std::string> file;
  if (found != nullptr && stacks::IsOurs(workspace.name, *found, entry) &&
      stacks::NeedsFile(*stack, *found, entry, deep)) {
    Outcome<std::string> read = context.gateway->File(*found);
    if (!read) return read.failure();
    file = std::move(read).value();
  }
  const std::optional<stacks::ObservedStack> observed =
      found != nullptr ? std::optional<stacks::ObservedStack>(*found) : std::nullopt;
  stacks::Plan plan = stacks::MakePlan(*stack, observed, entry, file);
  if (plan.blocked) return *plan.blocked;
  // This pass's list of the endpoint showed no such stack: the adapter need not list again
  // before its first create attempt (it still does before any retry).
  for (stacks::Action& action : plan.actions) {
    if (auto* create = std::get_if<stacks::CreateStack>(&action); create && found == nullptr) {
      create->listed_absent = true;
    }
  }
  for (const auto& action : plan.actions) {
    job.result.plan.push_back(stacks::Describe(action));
    job.result.plan_kinds.push_back(stacks::KindOf(action));
  }
  if (dry_run) return plan.actions.size();

  for (const stacks::Action& action : plan.actions) {
    job.result.wrote = true;
    Outcome<stacks::ApplyResult> outcome = context.gateway->Apply(action);
    if (!outcome) return outcome.failure();
    if (context.ledger != nullptr) context.ledger->Record(workspace.name, action, *outcome);
    std::string line = stacks::Describe(action);
    if (!outcome->detail.empty()) line += ": " + outcome->detail;
    job.result.applied.push_back(std::move(line));
    job.result.applied_kinds.push_back(stacks::KindOf(action));
  }
  if (plan.actions.empty() && file && context.ledger != nullptr) {
    context.ledger->RecordObserved(workspace.name, *found, *file);
  }
  job.stack_note = "; stack \"" + stack->name + "\" on endpoint " +
                   std::to_string(stack->endpoint) +
                   (plan.actions.empty() ? " up to date" : " converged");
  return plan.actions.size();
}

/// What to back up before the migrations, when they are needed: the database existed before
/// this run (a new one holds nothing), the plan applies migrations, and the product declares a
/// migration newer than the one the database's marker records as applied.
std::optional<BackupSubject> PreMigrationSubject(const Job& job, const ObservedCluster& observed,
                                                 std::int64_t generation) {
  const DesiredTenant& desired = *job.desired;
  const bool applies = std::any_of(job.plan.actions.begin(), job.plan.actions.end(), [](const auto& a) {
    return std::holds_alternative<postgres::ApplyMigrations>(a);
  });
  const auto found = observed.databases.find(desired.database);
  if (!applies || found == observed.databases.end() || desired.migrations.empty()) {
    return std::nullopt;
  }
  std::string applied;
  // The tenant owns its database and may rewrite the comment: only a signed marker is believed.
  if (const auto marker = postgres::Marker::Parse(found->second.comment);
      marker && postgres::MarkerSignatureValid(*marker, desired.marker_key)) {
    if (const auto it = marker->fields.find("migration");
        it != marker->fields.end() && it->second != "none") {
      applied = it->second;
    }
  }
  if (applied == desired.migrations.back().version) return std::nullopt;
  return BackupSubject{job.workspace->name, desired.cluster, desired.database, desired.role,
                       generation, applied};
}

void Run(Job& job, const StacksContext* stacks, const PassOptions& options) {
  if (!options.dry_run && !ApplyDatabase(job)) return;
  std::size_t actions = job.plan.actions.size();
  if (job.stack_list != nullptr) {
    Outcome<std::size_t> stack = ReconcileStack(job, *stacks, options.dry_run, options.deep);
    if (!stack) {
      SetFailure(job.result, stack.failure(), "StackReady");
      return;
    }
    actions += *stack;
  }
  if (options.dry_run) {
    SetDryRun(job);
    return;
  }
  SetConverged(job, actions);
}

/// The role's SCRAM verifier as the server now stores it, for PgBouncer's auth_file: the one
/// observed (when pg_authid is readable and the run set no password), else the one the operator
/// sent, which DeriveScramSalt makes reproducible. Made verifiers are kept (a PBKDF2 of 4,096
/// rounds each), keyed by an HMAC of password and salt.
std::string CurrentVerifier(const Job& job, const ObservedCluster& observed) {
  const DesiredTenant& desired = *job.desired;
  const bool password_set =
      std::any_of(job.plan.actions.begin(), job.plan.actions.end(), [](const auto& action) {
        return std::holds_alternative<postgres::CreateRole>(action) ||
               std::holds_alternative<postgres::SetRolePassword>(action);
      });
  if (!password_set && observed.passwords_visible) {
    const auto role = observed.roles.find(desired.role);
    if (role != observed.roles.end() && role->second.verifier) return *role->second.verifier;
  }
  static std::mutex mutex;
  static std::map<std::string, std::string> made;
  const std::string key = crypto::HmacSha256(desired.password.Reveal(), desired.scram_salt);
  {
    std::lock_guard<std::mutex> lock(mutex);
    const auto found = made.find(key);
    if (found != made.end()) return found->second;
  }
  std::string verifier = postgres::MakeScramVerifier(desired.password, desired.scram_salt,
                                                     postgres::kScramIterations);
  std::lock_guard<std::mutex> lock(mutex);
  constexpr std::size_t kMaxMade = 200'000;
  if (made.size() >= kMaxMade) made.clear();
  made.emplace(key, verifier);
  return verifier;
}

/// After the run: a converged shared workspace is published (its binding written when it
/// changed); a workspace that is no longer shared is withdrawn. A failed run leaves the last
/// publication as it was.
void PublishShared(Job& job, const ObservedCluster& observed, const StacksContext& context) {
  const manifests::Workspace& workspace = *job.workspace;
  WorkspaceResult& result = job.result;
  if (workspace.mode != manifests::Mode::kShared) {
    Outcome<bool> removed = context.shared->Remove(workspace.name);
    if (!removed) {
      SetFailure(result, removed.failure(), "StackReady");
    } else if (*removed) {
      result.applied.emplace_back("remove the binding of workspace " + workspace.name +
                                  " (no longer shared)");
      result.applied_kinds.emplace_back("binding");
    }
    return;
  }
  if (!result.ready) return;
  const DesiredTenant& desired = *job.desired;
  const auto runtime = context.clusters.find(desired.cluster);
  if (runtime == context.clusters.end()) {
    SetFailure(result,
               Failure::Stalled("InvalidReference", "binding of workspace " + workspace.name +
                                                        ": cluster \"" + desired.cluster +
                                                        "\" has no address"),
               "BindingReady");
    return;
  }
  const auto server = context.servers.find(desired.cluster);
  const DbAddress& server_address = server != context.servers.end() ? server->second : runtime->second;
  bindings::TenantFacts facts;
  facts.product = workspace.product;
  facts.workspace = workspace.name;
  facts.cluster = desired.cluster;
  facts.runtime_address = {runtime->second.host, runtime->second.port};
  facts.server_address = {server_address.host, server_address.port};
  facts.database = desired.database;
  facts.username = desired.role;
  facts.password = desired.password;
  facts.verifier = CurrentVerifier(job, observed);
  if (context.config != nullptr) {
    facts.hosts.push_back(workspace.subdomain + "." + context.config->base_domain);
  }
  facts.suspended = desired.suspend;
  Outcome<bool> published = context.shared->Publish(facts);
  if (!published) {
    SetFailure(result, published.failure(), "BindingReady");
    return;
  }
  result.published = true;
  if (*published) {
    result.applied.push_back("write the binding " + workspace.product + "/" + workspace.name);
    result.applied_kinds.emplace_back("binding");
  }
}

}  // namespace

WorkspaceResult ReconcileWorkspace(const WorkspaceInputs& inputs, const Secret& master_key,
                                   const PassOptions& options, const StacksContext* stacks) {
  Job job;
  const manifests::Workspace& workspace = *inputs.workspace;
  job.workspace = &workspace;
  job.result.name = workspace.name;
  job.result.cluster = workspace.database.cluster;
  job.product = inputs.product;
  if (inputs.product == nullptr || inputs.gateway == nullptr) {
    SetFailure(job.result, Failure::Stalled("InvalidReference",
                                            "workspace " + workspace.name +
                                                ": product or cluster is not available"));
    return std::move(job.result);
  }
  if (!*inputs.migrations) {
    SetFailure(job.result, inputs.migrations->failure(), "MigrationsApplied");
    return std::move(job.result);
  }
  if (!*inputs.observed) {
    SetFailure(job.result, inputs.observed->failure());
    return std::move(job.result);
  }
  job.gateway = inputs.gateway;
  job.desired = postgres::BuildDesired(workspace, *inputs.product, **inputs.migrations, master_key,
                                       inputs.adopt);
  job.plan = postgres::MakePlan(*job.desired, **inputs.observed,
                                {.deep = options.deep, .elsewhere = inputs.elsewhere});
  for (const auto& action : job.plan.actions) {
    job.result.plan.push_back(postgres::Describe(action));
    job.result.plan_kinds.push_back(postgres::KindOf(action));
  }
  if (job.plan.blocked) {
    const bool migrations = job.plan.blocked->reason.rfind("Migration", 0) == 0;
    SetFailure(job.result, *job.plan.blocked, migrations ? "MigrationsApplied" : "DatabaseReady");
    return std::move(job.result);
  }
  if (inputs.backups != nullptr) {
    job.backups = inputs.backups;
    job.backup_before_migrations =
        PreMigrationSubject(job, **inputs.observed, inputs.generation);
  }
  if (workspace.dedicated && stacks != nullptr && inputs.stack_list != nullptr) {
    job.stack_list = inputs.stack_list;
    job.stack_template = inputs.stack_template;
  }
  Run(job, stacks, options);
  if (stacks != nullptr && stacks->shared != nullptr && !options.dry_run) {
    PublishShared(job, **inputs.observed, *stacks);
  }
  return std::move(job.result);
}

namespace {

std::set<std::string> KnownNames(const manifests::Fleet& fleet) {
  std::set<std::string> names;
  for (const auto& w : fleet.workspaces) names.insert(w.name);
  for (const auto& r : fleet.rejected) names.insert(r.name);
  return names;
}

/// Who claims the marked objects of a cluster: the declared workspaces by name, the names of
/// rejected ones (their spec is unknown, so nothing marked for them is called an orphan) and the
/// workspaces stalled `ImmutableField` (their message names their old objects).
struct Claims {
  std::map<std::string, const manifests::Workspace*> declared;
  std::set<std::string> unknown_spec;
  std::set<std::string> immutable_stalled;
};

/// True when `observed` is the workspace's own cluster under a second name (two config entries
/// for one server): its database is there, and its marker says it lives on the named cluster.
bool SameServer(const manifests::DatabaseSpec& spec, const std::string& workspace,
                const ObservedCluster& observed) {
  const auto db = observed.databases.find(spec.name);
  if (db == observed.databases.end()) return false;
  const auto marker = postgres::Marker::Parse(db->second.comment);
  if (!marker || marker->workspace != workspace) return false;
  const auto cluster = marker->fields.find("cluster");
  return cluster != marker->fields.end() && cluster->second == spec.cluster;
}

/// Empty when `workspace` names this object; else why it is an orphan.
std::string OrphanWhy(const Claims& claims, const std::string& workspace,
                      const std::string& cluster, const ObservedCluster& observed,
                      const std::string& kind, const std::string& name) {
  const auto found = claims.declared.find(workspace);
  if (found == claims.declared.end()) {
    return claims.unknown_spec.count(workspace) != 0 ? std::string() : "which no source declares";
  }
  if (claims.immutable_stalled.count(workspace) != 0) return {};
  const manifests::DatabaseSpec& spec = found->second->database;
  const std::string& named = kind == "database" ? spec.name : spec.owner;
  if (named == name && (spec.cluster == cluster || SameServer(spec, workspace, observed))) {
    return {};
  }
  return "which now names " + kind + " \"" + named + "\" on cluster \"" + spec.cluster + "\"";
}

void CollectOrphans(const std::string& cluster, const ObservedCluster& observed,
                    const Claims& claims, std::vector<Orphan>& out) {
  for (const auto& [name, db] : observed.databases) {
    auto marker = postgres::Marker::Parse(db.comment);
    if (!marker) continue;
    std::string why = OrphanWhy(claims, marker->workspace, cluster, observed, "database", name);
    if (!why.empty()) out.push_back({cluster, "database", name, marker->workspace, why});
  }
  for (const auto& [name, role] : observed.roles) {
    auto marker = postgres::Marker::Parse(role.comment);
    if (!marker) continue;
    std::string why = OrphanWhy(claims, marker->workspace, cluster, observed, "role", name);
    if (!why.empty()) out.push_back({cluster, "role", name, marker->workspace, why});
  }
}

/// Deletes the stacks listed as orphans, within the deletion guard. Removed from `orphans`
/// when deleted.
void PruneStacks(const std::map<int, StackList>& lists, const std::set<std::string>& known,
                 const StacksContext& context, const PassOptions& options, PassReport& report) {
  std::set<std::string> gone;
  for (const Orphan& o : report.orphans) {
    if (o.kind == "stack") gone.insert(o.workspace);
  }
  if (gone.empty()) return;
  std::set<std::string> stored = known;
  stored.insert(gone.begin(), gone.end());
  const GuardDecision decision =
      DecideDeletions(stored, known, options.max_deletions_per_sync, /*confirmed=*/false);
  if (!decision.allowed) {
    report.prune_blocked = Failure::Stalled(decision.reason, "stacks: " + decision.message);
    return;
  }
  const std::set<std::string> to_delete(decision.to_delete.begin(), decision.to_delete.end());
  for (const auto& [endpoint, list] : lists) {
    if (!list) continue;
    for (const stacks::ObservedStack& stack : *list) {
      if (to_delete.count(stack.workspace) == 0 ||
          stack.name != stacks::StackName(stack.workspace)) {
        continue;
      }
      std::vector<std::string> applied;
      const Status deleted = DeleteUndeclaredStack(context, stack.workspace, stack, applied);
      for (const std::string& line : applied) {
        report.pruned.push_back(line + " (workspace \"" + stack.workspace +
                                "\" is no longer declared)");
      }
      if (!deleted) {
        report.prune_blocked = deleted.failure();
        return;
      }
      std::erase_if(report.orphans, [&](const Orphan& o) {
        return o.kind == "stack" && o.name == stack.name &&
               o.cluster == "endpoint " + std::to_string(endpoint);
      });
    }
  }
}

void CollectStackOrphans(const std::map<int, StackList>& lists, const std::set<std::string>& known,
                         std::vector<Orphan>& out) {
  for (const auto& [endpoint, list] : lists) {
    if (!list) continue;
    for (const auto& stack : *list) {
      if (stack.workspace.empty() || known.count(stack.workspace) != 0) continue;
      if (stack.name != stacks::StackName(stack.workspace)) continue;  // not one we would name
      out.push_back({"endpoint " + std::to_string(endpoint), "stack", stack.name,
                     stack.workspace});
    }
  }
}

}  // namespace

const char* ToString(Phase phase) {
  switch (phase) {
    case Phase::kPending: return "Pending";
    case Phase::kProgressing: return "Progressing";
    case Phase::kReady: return "Ready";
    case Phase::kDegraded: return "Degraded";
    case Phase::kStalled: return "Stalled";
    case Phase::kSuspended: return "Suspended";
  }
  return "Unknown";
}

postgres::AdoptPolicy AdoptPolicyFor(const manifests::Config* config, const std::string& cluster,
                                     const std::string& store_database) {
  postgres::AdoptPolicy policy;
  policy.store_database = store_database;
  if (config == nullptr) return policy;
  for (const manifests::ClusterConfig& c : config->clusters) {
    if (c.name == cluster) policy.pattern = c.adopt_pattern;
  }
  return policy;
}

bool PassReport::AllReady() const {
  return !prune_blocked && std::all_of(workspaces.begin(), workspaces.end(),
                                       [](const WorkspaceResult& w) { return w.ready; });
}

Status DeleteUndeclaredStack(const StacksContext& context, const std::string& workspace,
                             const stacks::ObservedStack& stack, std::vector<std::string>& applied) {
  std::optional<stacks::LedgerEntry> entry;
  if (context.ledger != nullptr) entry = context.ledger->Get(workspace);
  const stacks::Plan plan = stacks::MakePlan(std::nullopt, stack, entry, std::nullopt);
  for (const stacks::Action& action : plan.actions) {
    Outcome<stacks::ApplyResult> outcome = context.gateway->Apply(action);
    if (!outcome) return outcome.failure();
    if (context.ledger != nullptr) context.ledger->Record(workspace, action, *outcome);
    applied.push_back(stacks::Describe(action));
  }
  return Ok();
}

PassReport RunPass(const manifests::Fleet& fleet, const Gateways& gateways,
                   const Secret& master_key, const PassOptions& options,
                   const StacksContext* stacks) {
  PassReport report;

  // Each product's migrations are read once and shared by all its workspaces, confined to the
  // product's source folder and within the configured sizes.
  const manifests::ReconcileConfig limits =
      stacks != nullptr && stacks->config != nullptr ? stacks->config->reconcile
                                                     : manifests::ReconcileConfig{};
  std::map<std::string, Outcome<std::vector<migrations::Migration>>> product_migrations;
  for (const manifests::Product& product : fleet.products) {
    if (product.migrations.empty()) {
      product_migrations.emplace(product.name, std::vector<migrations::Migration>{});
      continue;
    }
    product_migrations.emplace(product.name,
                               migrations::LoadDirectory(product.root, product.migrations,
                                                         limits.max_migration_bytes));
  }

  // One catalog query per cluster serves every workspace (and the orphan listing).
  std::map<std::string, Outcome<ObservedCluster>> observed;
  for (const auto& [cluster, gateway] : gateways) {
    observed.emplace(cluster, gateway->Observe());
    ++report.observe_queries;
  }

  // One list call per endpoint serves every dedicated workspace on it, and each product's stack
  // template is read once.
  std::map<int, StackList> stack_lists;
  std::map<std::string, Outcome<std::string>> stack_templates;
  if (stacks != nullptr && stacks->gateway != nullptr) {
    for (const manifests::Workspace& workspace : fleet.workspaces) {
      if (!workspace.dedicated) continue;
      const manifests::Product* product = fleet.FindProduct(workspace.product);
      if (product != nullptr && stack_templates.count(product->name) == 0) {
        stack_templates.emplace(product->name,
                                stacks::ReadStackTemplate(*product, limits.max_template_bytes));
      }
      if (workspace.dedicated->endpoint_placed) {
        // Placed below, on a configured endpoint: each is listed (docs/placement.md#endpoints).
        if (stacks->config == nullptr) continue;
        for (const manifests::EndpointConfig& endpoint : stacks->config->stacks.endpoints) {
          if (stack_lists.count(endpoint.id) == 0) {
            stack_lists.emplace(endpoint.id, stacks->gateway->List(endpoint.id));
          }
        }
        continue;
      }
      const int endpoint = workspace.dedicated->endpoint;
      if (stack_lists.count(endpoint) != 0) continue;
      stack_lists.emplace(endpoint, stacks->gateway->List(endpoint));
    }
  }

  // Every cluster's database markers by workspace, read once: a workspace whose database
  // converged on another cluster than it now names stalls (spec.database.cluster is immutable).
  std::multimap<std::string, postgres::MarkedDatabase> marked;
  for (const auto& [cluster, snapshot] : observed) {
    if (!snapshot) continue;
    marked.merge(postgres::IndexDatabaseMarkers(cluster, *snapshot));
  }
  const manifests::Config* config = stacks != nullptr ? stacks->config : nullptr;

  // Workspaces without a named cluster are placed (docs/placement.md): where their signed marker
  // is, else by capacity. Without a config, every connected cluster, unlimited and unlabelled.
  std::vector<manifests::Workspace> workspaces = fleet.workspaces;
  std::vector<manifests::ClusterConfig> clusters;
  if (config != nullptr) {
    clusters = config->clusters;
  } else {
    for (const auto& [cluster, gateway] : gateways) {
      manifests::ClusterConfig named;
      named.name = cluster;
      clusters.push_back(std::move(named));
    }
  }
  const std::map<std::string, Failure> unplaced =
      PlaceFromObserved(workspaces, observed, clusters, master_key);
  // Dedicated stacks without a named endpoint likewise, where their stack is or by capacity.
  std::map<std::string, Failure> unplaced_stacks;
  if (stacks != nullptr && stacks->gateway != nullptr) {
    unplaced_stacks = PlaceStacksFromObserved(
        workspaces, stack_lists,
        config != nullptr ? config->stacks.endpoints : std::vector<manifests::EndpointConfig>{});
  } else {
    for (auto it = workspaces.begin(); it != workspaces.end();) {
      if (it->dedicated && it->dedicated->endpoint_placed) {
        unplaced_stacks.emplace(it->name, Failure::Stalled("Unschedulable",
                                                           "spec.dedicated.endpoint is omitted "
                                                           "and no stacks backend is configured"));
        it = workspaces.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::vector<std::vector<postgres::MarkedDatabase>> elsewhere(workspaces.size());
  std::vector<WorkspaceInputs> inputs;
  inputs.reserve(workspaces.size());
  for (const manifests::Workspace& workspace : workspaces) {
    std::vector<postgres::MarkedDatabase>& others = elsewhere[inputs.size()];
    const auto [first, last] = marked.equal_range(workspace.name);
    for (auto it = first; it != last; ++it) {
      if (it->second.cluster != workspace.database.cluster) others.push_back(it->second);
    }
    WorkspaceInputs& in = inputs.emplace_back();
    in.workspace = &workspace;
    in.elsewhere = others;
    in.adopt = AdoptPolicyFor(config, workspace.database.cluster, options.store_database);
    in.product = fleet.FindProduct(workspace.product);
    auto gateway = gateways.find(workspace.database.cluster);
    if (in.product == nullptr || gateway == gateways.end()) continue;
    in.gateway = gateway->second;
    in.migrations = &product_migrations.at(in.product->name);
    in.observed = &observed.at(gateway->first);
    if (workspace.dedicated && !stack_lists.empty()) {
      in.stack_list = &stack_lists.at(workspace.dedicated->endpoint);
      in.stack_template = &stack_templates.at(in.product->name);
    }
  }

  report.workspaces.resize(inputs.size());
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < inputs.size(); i = next++) {
      report.workspaces[i] = ReconcileWorkspace(inputs[i], master_key, options, stacks);
    }
  };
  const auto count = static_cast<std::size_t>(std::max(1, options.workers));
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < std::min(count, inputs.size()); ++i) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();

  for (const manifests::RejectedWorkspace& rejected : fleet.rejected) {
    WorkspaceResult result;
    result.name = rejected.name;
    SetFailure(result, Failure::Stalled(rejected.reason, rejected.message), "");
    report.workspaces.push_back(std::move(result));
  }
  for (const auto& [name, failure] : unplaced) {
    WorkspaceResult result;
    result.name = name;
    SetFailure(result, failure, "DatabaseReady");
    report.workspaces.push_back(std::move(result));
  }
  for (const auto& [name, failure] : unplaced_stacks) {
    WorkspaceResult result;
    result.name = name;
    SetFailure(result, failure, "StackReady");
    report.workspaces.push_back(std::move(result));
  }
  std::sort(report.workspaces.begin(), report.workspaces.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });

  const std::set<std::string> known = KnownNames(fleet);
  Claims claims;
  for (const manifests::Workspace& w : workspaces) claims.declared.emplace(w.name, &w);
  for (const auto& [name, failure] : unplaced) claims.unknown_spec.insert(name);
  for (const auto& [name, failure] : unplaced_stacks) claims.unknown_spec.insert(name);
  for (const manifests::RejectedWorkspace& r : fleet.rejected) claims.unknown_spec.insert(r.name);
  for (const WorkspaceResult& w : report.workspaces) {
    if (w.reason == "ImmutableField") claims.immutable_stalled.insert(w.name);
  }
  for (const auto& [cluster, snapshot] : observed) {
    if (snapshot) CollectOrphans(cluster, *snapshot, claims, report.orphans);
  }
  CollectStackOrphans(stack_lists, known, report.orphans);
  if (stacks != nullptr && stacks->gateway != nullptr && options.prune_stacks &&
      !options.dry_run) {
    PruneStacks(stack_lists, known, *stacks, options, report);
  }
  return report;
}

}  // namespace tmaster::controller
