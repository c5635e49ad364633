#include "controller/workspace/placer.hpp"

#include <chrono>
#include <set>
#include <utility>

#include "controller/sources/desired_state.hpp"
#include "reconcilers/placement/placement.hpp"

namespace tmaster::controller {

Placer::Placer(PlacerDeps deps) : deps_(std::move(deps)) {}

std::int64_t Placer::Now() const {
  if (deps_.now_unix) return deps_.now_unix();
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status Placer::Load() {
  Outcome<std::vector<StoredPlacement>> placements = deps_.store->ListPlacements();
  if (!placements) return placements.failure();
  Outcome<std::vector<StoredWorkspace>> stored = deps_.store->ListWorkspaces(std::nullopt);
  if (!stored) return stored.failure();
  const std::lock_guard lock(mutex_);
  placed_.clear();
  identities_.clear();
  for (const StoredPlacement& placement : *placements) {
    placed_[placement.workspace] = placement.cluster;
  }
  for (const StoredWorkspace& workspace : *stored) {
    if (workspace.identity) identities_[workspace.name] = workspace.identity->cluster;
  }
  return Ok();
}

std::optional<std::string> Placer::PlacedOn(const std::string& name) const {
  const std::lock_guard lock(mutex_);
  if (const auto found = placed_.find(name); found != placed_.end()) return found->second;
  return std::nullopt;
}

std::map<std::string, std::int64_t> Placer::CountUsed(
    std::map<std::string, std::int64_t>* placed) const {
  std::map<std::string, std::int64_t> used;
  std::set<std::string> counted;
  if (deps_.desired != nullptr) {
    for (const std::string& name : deps_.desired->DeclaredNames()) {
      const std::shared_ptr<const DesiredEntry> entry = deps_.desired->Declared(name);
      if (entry == nullptr) continue;
      const manifests::DatabaseSpec& database = entry->workspace.database;
      std::string cluster = database.cluster_placed ? "" : database.cluster;
      if (cluster.empty()) {
        if (const auto p = placed_.find(name); p != placed_.end()) {
          cluster = p->second;
        } else if (const auto i = identities_.find(name); i != identities_.end()) {
          cluster = i->second;
        }
      }
      if (cluster.empty()) continue;  // not placed yet
      ++used[cluster];
      counted.insert(name);
    }
  }
  for (const auto& [name, cluster] : placed_) {
    if (placed != nullptr) ++(*placed)[cluster];
    if (counted.count(name) == 0) ++used[cluster];  // removed with Retain: its database stays
  }
  return used;
}

Outcome<std::string> Placer::Record(const std::string& name, const std::string& cluster) {
  Outcome<StoredPlacement> recorded = deps_.store->RecordPlacement(name, cluster, Now());
  if (!recorded) {
    Failure failure = recorded.failure();
    failure.kind = FailureKind::kTransient;  // placed again at the next pass
    failure.message = "recording the placement of workspace " + name + " on cluster " + cluster +
                      ": " + failure.message;
    return failure;
  }
  placed_[name] = recorded->cluster;  // another replica's earlier choice wins
  return recorded->cluster;
}

Outcome<std::string> Placer::ClusterFor(const std::string& name,
                                        const manifests::Workspace& workspace,
                                        const std::optional<WorkspaceIdentity>& identity) {
  if (!workspace.database.cluster_placed) return workspace.database.cluster;
  const std::lock_guard lock(mutex_);
  if (const auto found = placed_.find(name); found != placed_.end()) return found->second;
  // Converged before it had a placement (an older version defaulted it to a cluster): it stays.
  if (identity && !identity->cluster.empty()) return Record(name, identity->cluster);
  if (const auto found = identities_.find(name); found != identities_.end()) {
    return Record(name, found->second);
  }
  const std::map<std::string, std::int64_t> used = CountUsed(nullptr);
  std::vector<placement::Candidate> candidates;
  for (const manifests::ClusterConfig& cluster : deps_.clusters) {
    placement::Candidate candidate;
    candidate.name = cluster.name;
    candidate.capacity = cluster.capacity;
    candidate.labels = cluster.labels;
    if (const auto u = used.find(cluster.name); u != used.end()) candidate.used = u->second;
    if (deps_.reach) {
      const ClusterReach reach = deps_.reach(cluster.name);
      candidate.reachable = !reach.known || reach.reachable;
      candidate.down_reason = reach.reason;
    }
    candidates.push_back(std::move(candidate));
  }
  Outcome<std::string> chosen =
      placement::Choose(candidates, workspace.database.cluster_selector, "cluster");
  if (!chosen) return chosen.failure();
  return Record(name, *chosen);
}

Status Placer::Forget(const std::string& name) {
  Outcome<bool> removed = deps_.store->RemovePlacement(name);
  if (!removed) return removed.failure();
  const std::lock_guard lock(mutex_);
  placed_.erase(name);
  identities_.erase(name);
  return Ok();
}

void Placer::Moved(const std::string& name, const std::string& cluster) {
  const std::lock_guard lock(mutex_);
  placed_[name] = cluster;
  if (auto identity = identities_.find(name); identity != identities_.end()) {
    identity->second = cluster;
  }
}

std::vector<Placer::Usage> Placer::Usages() const {
  std::map<std::string, std::int64_t> placed;
  std::map<std::string, std::int64_t> used;
  {
    const std::lock_guard lock(mutex_);
    used = CountUsed(&placed);
  }
  std::vector<Usage> out;
  for (const manifests::ClusterConfig& cluster : deps_.clusters) {
    Usage usage;
    usage.cluster = cluster.name;
    usage.capacity = cluster.capacity;
    usage.labels = cluster.labels;
    if (const auto u = used.find(cluster.name); u != used.end()) usage.used = u->second;
    if (const auto p = placed.find(cluster.name); p != placed.end()) usage.placed = p->second;
    if (deps_.reach) usage.reach = deps_.reach(cluster.name);
    out.push_back(std::move(usage));
  }
  return out;
}

}  // namespace tmaster::controller
