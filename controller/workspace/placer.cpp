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
  stacks_.clear();
  counts_ = {};
  for (const StoredPlacement& placement : *placements) {
    placed_[placement.workspace] = placement.cluster;
  }
  for (const StoredWorkspace& workspace : *stored) {
    if (workspace.identity) identities_[workspace.name] = workspace.identity->cluster;
    if (workspace.stack_endpoint) stacks_[workspace.name] = *workspace.stack_endpoint;
  }
  return Ok();
}

std::optional<std::string> Placer::PlacedOn(const std::string& name) const {
  const std::lock_guard lock(mutex_);
  if (const auto found = placed_.find(name); found != placed_.end()) return found->second;
  return std::nullopt;
}

const Placer::Counts& Placer::Counted() const {
  const std::uint64_t version = deps_.desired != nullptr ? deps_.desired->DeclaredVersion() : 0;
  if (counts_.valid && counts_.version == version) return counts_;
  Counts counts;
  counts.valid = true;
  counts.version = version;
  std::set<std::string> on_cluster;
  std::set<std::string> on_endpoint;
  if (deps_.desired != nullptr) {
    for (const std::string& name : deps_.desired->DeclaredNames()) {
      const std::shared_ptr<const DesiredEntry> entry = deps_.desired->Declared(name);
      if (entry == nullptr) continue;
      const manifests::Workspace& workspace = entry->workspace;
      std::string cluster = workspace.database.cluster_placed ? "" : workspace.database.cluster;
      if (cluster.empty()) {
        if (const auto p = placed_.find(name); p != placed_.end()) {
          cluster = p->second;
        } else if (const auto i = identities_.find(name); i != identities_.end()) {
          cluster = i->second;
        }
      }
      if (!cluster.empty()) {  // else not placed yet
        ++counts.clusters[cluster];
        on_cluster.insert(name);
      }
      if (!workspace.dedicated) continue;
      std::optional<int> endpoint;
      if (!workspace.dedicated->endpoint_placed) {
        endpoint = workspace.dedicated->endpoint;
      } else if (const auto s = stacks_.find(name); s != stacks_.end()) {
        endpoint = s->second;
      }
      if (endpoint) {
        ++counts.endpoints[*endpoint];
        on_endpoint.insert(name);
      }
    }
  }
  for (const auto& [name, cluster] : placed_) {
    ++counts.placed[cluster];
    if (on_cluster.count(name) == 0) ++counts.clusters[cluster];  // Retain kept its database
  }
  for (const auto& [name, endpoint] : stacks_) {
    if (on_endpoint.count(name) == 0) ++counts.endpoints[endpoint];  // its removal is pending
  }
  counts_ = std::move(counts);
  return counts_;
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
  counts_.valid = false;
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
  const Counts& counts = Counted();
  std::vector<placement::Candidate> candidates;
  for (const manifests::ClusterConfig& cluster : deps_.clusters) {
    placement::Candidate candidate;
    candidate.name = cluster.name;
    candidate.capacity = cluster.capacity;
    candidate.labels = cluster.labels;
    if (const auto u = counts.clusters.find(cluster.name); u != counts.clusters.end()) {
      candidate.used = u->second;
    }
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
  Outcome<std::string> recorded = Record(name, *chosen);
  if (recorded) {
    // Uncounted until now (neither placed nor converged): one more on its cluster, the rest as
    // just counted (Record's invalidation is for the paths above, which were counted).
    counts_.valid = true;
    ++counts_.clusters[*recorded];
    ++counts_.placed[*recorded];
  }
  return recorded;
}

Outcome<int> Placer::EndpointFor(const std::string& name, const manifests::Workspace& workspace,
                                 std::optional<int> recorded) {
  if (!workspace.dedicated) {
    return Failure::Stalled("Unschedulable", "workspace " + name + " has no dedicated stack");
  }
  if (!workspace.dedicated->endpoint_placed) return workspace.dedicated->endpoint;
  const std::lock_guard lock(mutex_);
  if (const auto found = stacks_.find(name); found != stacks_.end()) return found->second;
  if (recorded) {  // stored since this term began
    stacks_[name] = *recorded;
    counts_.valid = false;
    return *recorded;
  }
  if (deps_.endpoints.empty()) {
    return Failure::Stalled("Unschedulable",
                            "spec.dedicated.endpoint is omitted and the operator config has no "
                            "stacks.endpoints to place the stack on");
  }
  const Counts& counts = Counted();
  std::vector<placement::Candidate> candidates;
  for (const manifests::EndpointConfig& endpoint : deps_.endpoints) {
    placement::Candidate candidate;
    candidate.name = std::to_string(endpoint.id);
    candidate.capacity = endpoint.capacity;
    candidate.labels = endpoint.labels;
    candidate.tie_rank = endpoint.id;
    if (const auto u = counts.endpoints.find(endpoint.id); u != counts.endpoints.end()) {
      candidate.used = u->second;
    }
    candidates.push_back(std::move(candidate));
  }
  Outcome<std::string> chosen =
      placement::Choose(candidates, workspace.dedicated->endpoint_selector, "endpoint");
  if (!chosen) return chosen.failure();
  const int endpoint = std::stoi(*chosen);
  // Recorded before the stack exists: a crash after its creation finds it where the record says.
  if (Outcome<Done> put = deps_.store->RecordStackEndpoint(name, endpoint); !put) {
    Failure failure = put.failure();
    failure.kind = FailureKind::kTransient;
    failure.message = "recording the placement of workspace " + name + "'s stack on endpoint " +
                      *chosen + ": " + failure.message;
    return failure;
  }
  stacks_[name] = endpoint;
  ++counts_.endpoints[endpoint];  // counts_ is the set just counted: one more on it
  return endpoint;
}

void Placer::StackOn(const std::string& name, std::optional<int> endpoint) {
  const std::lock_guard lock(mutex_);
  const auto found = stacks_.find(name);
  const std::optional<int> before =
      found == stacks_.end() ? std::nullopt : std::optional<int>(found->second);
  if (before == endpoint) return;
  if (endpoint) {
    stacks_[name] = *endpoint;
  } else {
    stacks_.erase(name);
  }
  counts_.valid = false;
}

Status Placer::Forget(const std::string& name) {
  Outcome<bool> removed = deps_.store->RemovePlacement(name);
  if (!removed) return removed.failure();
  const std::lock_guard lock(mutex_);
  placed_.erase(name);
  identities_.erase(name);
  stacks_.erase(name);
  counts_.valid = false;
  return Ok();
}

void Placer::Moved(const std::string& name, const std::string& cluster) {
  const std::lock_guard lock(mutex_);
  placed_[name] = cluster;
  if (auto identity = identities_.find(name); identity != identities_.end()) {
    identity->second = cluster;
  }
  counts_.valid = false;
}

std::vector<Placer::Usage> Placer::Usages() const {
  Counts counts;
  {
    const std::lock_guard lock(mutex_);
    counts = Counted();
  }
  std::vector<Usage> out;
  for (const manifests::ClusterConfig& cluster : deps_.clusters) {
    Usage usage;
    usage.cluster = cluster.name;
    usage.capacity = cluster.capacity;
    usage.labels = cluster.labels;
    if (const auto u = counts.clusters.find(cluster.name); u != counts.clusters.end()) {
      usage.used = u->second;
    }
    if (const auto p = counts.placed.find(cluster.name); p != counts.placed.end()) {
      usage.placed = p->second;
    }
    if (deps_.reach) usage.reach = deps_.reach(cluster.name);
    out.push_back(std::move(usage));
  }
  return out;
}

std::vector<Placer::EndpointUsage> Placer::CountEndpoints() const {
  Counts counts;
  {
    const std::lock_guard lock(mutex_);
    counts = Counted();
  }
  std::map<int, std::vector<std::string>> runtimes;
  if (deps_.runtimes) runtimes = deps_.runtimes();
  const auto take_runtimes = [&runtimes](EndpointUsage& usage) {
    if (const auto r = runtimes.find(usage.endpoint); r != runtimes.end()) {
      usage.runtimes = std::move(r->second);
      runtimes.erase(r);
    }
  };
  std::vector<EndpointUsage> out;
  for (const manifests::EndpointConfig& endpoint : deps_.endpoints) {
    EndpointUsage usage;
    usage.endpoint = endpoint.id;
    usage.configured = true;
    usage.capacity = endpoint.capacity;
    usage.labels = endpoint.labels;
    if (const auto u = counts.endpoints.find(endpoint.id); u != counts.endpoints.end()) {
      usage.used = u->second;
      counts.endpoints.erase(u);
    }
    take_runtimes(usage);
    out.push_back(std::move(usage));
  }
  // The others, by id: those a stack is on, and those only a shared runtime is on.
  std::map<int, std::int64_t> others;
  for (const auto& [endpoint, used] : counts.endpoints) {
    if (used > 0) others[endpoint] = used;
  }
  for (const auto& [endpoint, products] : runtimes) {
    if (!products.empty()) others.try_emplace(endpoint, 0);
  }
  for (const auto& [endpoint, used] : others) {
    EndpointUsage usage;
    usage.endpoint = endpoint;
    usage.used = used;
    take_runtimes(usage);
    out.push_back(std::move(usage));
  }
  return out;
}

std::vector<Placer::EndpointUsage> Placer::EndpointUsages() const {
  std::vector<EndpointUsage> out = CountEndpoints();
  if (deps_.endpoint_reach) {
    for (EndpointUsage& usage : out) usage.reach = deps_.endpoint_reach(usage.endpoint);
  }
  return out;
}

std::vector<int> Placer::KnownEndpoints() const {
  std::vector<int> out;
  for (const EndpointUsage& usage : CountEndpoints()) out.push_back(usage.endpoint);
  return out;
}

}  // namespace tmaster::controller
