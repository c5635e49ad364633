#include "controller/workspace/place_once.hpp"

#include <optional>
#include <utility>

#include "reconcilers/placement/placement.hpp"
#include "reconcilers/postgres/desired.hpp"

namespace tmaster::controller {

std::map<std::string, Failure> PlaceFromObserved(
    std::vector<manifests::Workspace>& workspaces,
    const std::map<std::string, Outcome<postgres::ObservedCluster>>& observed,
    const std::vector<manifests::ClusterConfig>& clusters, const Secret& master_key) {
  std::map<std::string, Failure> failed;
  bool any = false;
  for (const manifests::Workspace& workspace : workspaces) {
    any = any || workspace.database.cluster_placed;
  }
  if (!any) return failed;
  // Where each workspace's signed marker is (a forged one names nobody), and what each holds.
  std::map<std::string, std::string> marked;  // workspace -> cluster
  const Secret marker_key = postgres::MarkerKey(master_key);
  std::vector<placement::Candidate> candidates;
  for (const manifests::ClusterConfig& cluster : clusters) {
    placement::Candidate candidate;
    candidate.name = cluster.name;
    candidate.capacity = cluster.capacity;
    candidate.labels = cluster.labels;
    const auto snapshot = observed.find(cluster.name);
    if (snapshot == observed.end()) {
      candidate.reachable = false;
      candidate.down_reason = "no connection configured";
    } else if (!snapshot->second) {
      candidate.reachable = false;
      candidate.down_reason = snapshot->second.failure().reason;
    } else {
      for (const auto& [name, database] : snapshot->second->databases) {
        std::optional<postgres::Marker> marker = postgres::Marker::Parse(database.comment);
        if (!marker || !postgres::MarkerSignatureValid(*marker, marker_key)) continue;
        ++candidate.used;  // a source a move kept holds its room until it is pruned
        if (!postgres::MarkerMoved(*marker)) marked.emplace(marker->workspace, cluster.name);
      }
    }
    candidates.push_back(std::move(candidate));
  }
  // Workspaces that name their cluster and have no database yet count there too.
  for (const manifests::Workspace& workspace : workspaces) {
    if (workspace.database.cluster_placed || marked.count(workspace.name) != 0) continue;
    for (placement::Candidate& candidate : candidates) {
      if (candidate.name == workspace.database.cluster) ++candidate.used;
    }
  }
  // Without a store, the markers are the only record: while a cluster cannot be read, a
  // workspace not found elsewhere may have its database there, so none is placed anew.
  std::optional<Failure> unreadable;
  for (const manifests::ClusterConfig& cluster : clusters) {
    const auto snapshot = observed.find(cluster.name);
    if (snapshot != observed.end() && !snapshot->second && !unreadable) {
      unreadable = snapshot->second.failure();
      unreadable->kind = FailureKind::kTransient;
      unreadable->message = "not placed while cluster \"" + cluster.name +
                            "\" cannot be read (it may hold its database): " +
                            unreadable->message;
    }
  }
  std::vector<manifests::Workspace> kept;
  kept.reserve(workspaces.size());
  for (manifests::Workspace& workspace : workspaces) {
    if (workspace.database.cluster_placed) {
      if (const auto found = marked.find(workspace.name); found != marked.end()) {
        workspace.database.cluster = found->second;
      } else if (unreadable) {
        failed.emplace(workspace.name, *unreadable);
        continue;
      } else {
        Outcome<std::string> chosen =
            placement::Choose(candidates, workspace.database.cluster_selector, "cluster");
        if (!chosen) {
          failed.emplace(workspace.name, chosen.failure());
          continue;
        }
        for (placement::Candidate& candidate : candidates) {
          if (candidate.name == *chosen) ++candidate.used;
        }
        workspace.database.cluster = *chosen;
      }
    }
    kept.push_back(std::move(workspace));
  }
  workspaces = std::move(kept);
  return failed;
}

}  // namespace tmaster::controller
