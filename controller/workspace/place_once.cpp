#include "controller/workspace/place_once.hpp"

#include <algorithm>
#include <optional>
#include <utility>

#include "reconcilers/placement/placement.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "reconcilers/stacks/plan.hpp"

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

std::map<std::string, Failure> PlaceStacksFromObserved(
    std::vector<manifests::Workspace>& workspaces,
    const std::map<int, Outcome<std::vector<stacks::ObservedStack>>>& lists,
    const std::vector<manifests::EndpointConfig>& endpoints) {
  std::map<std::string, Failure> failed;
  const auto placed = [](const manifests::Workspace& w) {
    return w.dedicated && w.dedicated->endpoint_placed;
  };
  if (std::none_of(workspaces.begin(), workspaces.end(), placed)) return failed;
  std::map<std::string, int> found;  // workspace -> the endpoint its stack is on
  std::vector<placement::Candidate> candidates;
  std::optional<Failure> unreadable;
  for (const manifests::EndpointConfig& endpoint : endpoints) {
    placement::Candidate candidate;
    candidate.name = std::to_string(endpoint.id);
    candidate.capacity = endpoint.capacity;
    candidate.labels = endpoint.labels;
    candidate.tie_rank = endpoint.id;
    const auto list = lists.find(endpoint.id);
    if (list == lists.end() || !list->second) {
      candidate.reachable = false;
      candidate.down_reason = list == lists.end() ? "not listed" : list->second.failure().reason;
      if (!unreadable) {
        unreadable = list == lists.end()
                         ? Failure::Transient("Unschedulable", "not listed")
                         : list->second.failure();
        unreadable->kind = FailureKind::kTransient;
        unreadable->message = "not placed while endpoint " + candidate.name +
                              " cannot be listed (it may hold its stack): " + unreadable->message;
      }
    } else {
      for (const stacks::ObservedStack& stack : *list->second) {
        // A workspace's stack: tm-<its TM_WORKSPACE> (a shared runtime's or a stranger's is not).
        if (!stacks::IsOurs("", stack, std::nullopt)) continue;
        ++candidate.used;
        found.emplace(stack.workspace, endpoint.id);
      }
    }
    candidates.push_back(std::move(candidate));
  }
  // Workspaces that name a configured endpoint and have no stack yet count there too.
  for (const manifests::Workspace& workspace : workspaces) {
    if (!workspace.dedicated || placed(workspace) || found.count(workspace.name) != 0) continue;
    for (placement::Candidate& candidate : candidates) {
      if (candidate.tie_rank == workspace.dedicated->endpoint) ++candidate.used;
    }
  }
  std::vector<manifests::Workspace> kept;
  kept.reserve(workspaces.size());
  for (manifests::Workspace& workspace : workspaces) {
    if (placed(workspace)) {
      if (const auto at = found.find(workspace.name); at != found.end()) {
        workspace.dedicated->endpoint = at->second;
      } else if (unreadable) {
        failed.emplace(workspace.name, *unreadable);
        continue;
      } else {
        Outcome<std::string> chosen = placement::Choose(
            candidates, workspace.dedicated->endpoint_selector, "endpoint");
        if (!chosen) {
          failed.emplace(workspace.name, chosen.failure());
          continue;
        }
        for (placement::Candidate& candidate : candidates) {
          if (candidate.name == *chosen) ++candidate.used;
        }
        workspace.dedicated->endpoint = std::stoi(*chosen);
      }
    }
    kept.push_back(std::move(workspace));
  }
  workspaces = std::move(kept);
  return failed;
}

}  // namespace tmaster::controller
