#include "controller/reconcile_pass.hpp"

#include <algorithm>
#include <atomic>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "reconcilers/migrations/migrations.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "reconcilers/postgres/model.hpp"

namespace tmaster::controller {
namespace {

using postgres::DesiredTenant;
using postgres::ObservedCluster;

/// Everything a worker needs for one workspace, prepared before the pool starts so the workers
/// share nothing mutable.
struct Job {
  WorkspaceResult result;
  std::optional<DesiredTenant> desired;
  postgres::Plan plan;
  postgres::PostgresGateway* gateway = nullptr;
};

void SetFailure(WorkspaceResult& result, const Failure& failure) {
  result.ready = false;
  result.phase = failure.kind == FailureKind::kStalled ? Phase::kStalled : Phase::kDegraded;
  result.reason = failure.reason;
  result.message = failure.message;
}

void SetConverged(WorkspaceResult& result, const DesiredTenant& desired, std::size_t actions) {
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
  if (desired.suspend) result.message += "; logins closed (suspended)";
}

void Apply(Job& job) {
  int applied = 0;
  for (const postgres::Action& action : job.plan.actions) {
    Outcome<postgres::ApplyResult> outcome = job.gateway->Apply(action);
    if (!outcome) {
      SetFailure(job.result, outcome.failure());
      job.result.message += " (after " + std::to_string(applied) + " of " +
                            std::to_string(job.plan.actions.size()) + " actions)";
      return;
    }
    job.result.statements += outcome->statements;
    std::string line = postgres::Describe(action);
    if (!outcome->detail.empty()) line += ": " + outcome->detail;
    job.result.applied.push_back(std::move(line));
    ++applied;
  }
  SetConverged(job.result, *job.desired, job.plan.actions.size());
}

void RunPool(std::vector<Job*>& jobs, int workers) {
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < jobs.size(); i = next++) Apply(*jobs[i]);
  };
  const auto count = static_cast<std::size_t>(std::max(1, workers));
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < std::min(count, jobs.size()); ++i) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();
}

std::set<std::string> KnownNames(const manifests::Fleet& fleet) {
  std::set<std::string> names;
  for (const auto& w : fleet.workspaces) names.insert(w.name);
  for (const auto& r : fleet.rejected) names.insert(r.name);
  return names;
}

void CollectOrphans(const std::string& cluster, const ObservedCluster& observed,
                    const std::set<std::string>& known, std::vector<Orphan>& out) {
  for (const auto& [name, db] : observed.databases) {
    auto marker = postgres::Marker::Parse(db.comment);
    if (marker && known.count(marker->workspace) == 0) {
      out.push_back({cluster, "database", name, marker->workspace});
    }
  }
  for (const auto& [name, role] : observed.roles) {
    auto marker = postgres::Marker::Parse(role.comment);
    if (marker && known.count(marker->workspace) == 0) {
      out.push_back({cluster, "role", name, marker->workspace});
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

bool PassReport::AllReady() const {
  return std::all_of(workspaces.begin(), workspaces.end(),
                     [](const WorkspaceResult& w) { return w.ready; });
}

PassReport RunPass(const manifests::Fleet& fleet, const Gateways& gateways,
                   const Secret& master_key, const PassOptions& options) {
  PassReport report;

  // Each product's migrations are read once and shared by all its workspaces.
  std::map<std::string, Outcome<std::vector<migrations::Migration>>> product_migrations;
  for (const manifests::Product& product : fleet.products) {
    if (product.migrations.empty()) {
      product_migrations.emplace(product.name, std::vector<migrations::Migration>{});
      continue;
    }
    product_migrations.emplace(product.name, migrations::LoadDirectory(product.migrations));
  }

  // One catalog query per cluster serves every workspace (and the orphan listing).
  std::map<std::string, Outcome<ObservedCluster>> observed;
  for (const auto& [cluster, gateway] : gateways) {
    observed.emplace(cluster, gateway->Observe());
    ++report.observe_queries;
  }

  std::vector<Job> jobs;
  jobs.reserve(fleet.workspaces.size());
  for (const manifests::Workspace& workspace : fleet.workspaces) {
    Job& job = jobs.emplace_back();
    job.result.name = workspace.name;
    job.result.cluster = workspace.database.cluster;
    const manifests::Product* product = fleet.FindProduct(workspace.product);
    auto gateway = gateways.find(workspace.database.cluster);
    if (product == nullptr || gateway == gateways.end()) {
      SetFailure(job.result, Failure::Stalled("InvalidReference",
                                              "workspace " + workspace.name +
                                                  ": product or cluster is not available"));
      continue;
    }
    const auto& loaded = product_migrations.at(product->name);
    if (!loaded) {
      SetFailure(job.result, loaded.failure());
      continue;
    }
    const auto& snapshot = observed.at(gateway->first);
    if (!snapshot) {
      SetFailure(job.result, snapshot.failure());
      continue;
    }
    job.gateway = gateway->second;
    job.desired = postgres::BuildDesired(workspace, *product, *loaded, master_key);
    job.plan = postgres::MakePlan(*job.desired, *snapshot, {.deep = options.deep});
    for (const auto& action : job.plan.actions) {
      job.result.plan.push_back(postgres::Describe(action));
    }
    if (job.plan.blocked) SetFailure(job.result, *job.plan.blocked);
  }

  std::vector<Job*> runnable;
  for (Job& job : jobs) {
    if (job.gateway == nullptr || job.plan.blocked) continue;
    if (options.dry_run) {
      job.result.ready = true;
      job.result.phase = job.plan.actions.empty()
                             ? (job.desired->suspend ? Phase::kSuspended : Phase::kReady)
                             : Phase::kProgressing;
      job.result.reason = job.plan.actions.empty() ? "UpToDate" : "DryRun";
      job.result.message = job.plan.actions.empty()
                               ? "nothing to do"
                               : std::to_string(job.plan.actions.size()) +
                                     " actions planned, none applied (dry run)";
      continue;
    }
    runnable.push_back(&job);
  }
  RunPool(runnable, options.workers);

  for (Job& job : jobs) report.workspaces.push_back(std::move(job.result));
  for (const manifests::RejectedWorkspace& rejected : fleet.rejected) {
    WorkspaceResult result;
    result.name = rejected.name;
    SetFailure(result, Failure::Stalled(rejected.reason, rejected.message));
    report.workspaces.push_back(std::move(result));
  }
  std::sort(report.workspaces.begin(), report.workspaces.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });

  const std::set<std::string> known = KnownNames(fleet);
  for (const auto& [cluster, snapshot] : observed) {
    if (snapshot) CollectOrphans(cluster, *snapshot, known, report.orphans);
  }
  return report;
}

}  // namespace tmaster::controller
