#pragma once
// Placement for a pass without a store (`tenant-operator --once`, docs/placement.md): a workspace
// without `spec.database.cluster` whose database already carries its signed marker on a cluster
// stays there (so repeated runs are sticky); the others are placed by capacity over what each
// cluster holds (databases with a signed marker, and workspaces that name it), one after another.

#include <map>
#include <string>
#include <vector>

#include "common/outcome.hpp"
#include "common/secret.hpp"
#include "manifests/config.hpp"
#include "manifests/types.hpp"
#include "reconcilers/postgres/model.hpp"

namespace tmaster::controller {

/// Sets `database.cluster` of each placed workspace in `workspaces`, from the clusters'
/// catalogs (`observed`, by cluster; a failed one takes no new workspace). One that cannot be
/// placed leaves `workspaces`; its failure (`Unschedulable`) is returned by name.
std::map<std::string, Failure> PlaceFromObserved(
    std::vector<manifests::Workspace>& workspaces,
    const std::map<std::string, Outcome<postgres::ObservedCluster>>& observed,
    const std::vector<manifests::ClusterConfig>& clusters, const Secret& master_key);

}  // namespace tmaster::controller
