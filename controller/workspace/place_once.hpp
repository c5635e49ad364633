#pragma once
// Placement for a pass without a store (`tenant-operator --once`, docs/placement.md): a workspace
// without `spec.database.cluster` whose database already carries its signed marker on a cluster
// stays there (so repeated runs are sticky); the others are placed by capacity over what each
// cluster holds (databases with a signed marker, and workspaces that name it), one after another.
// Dedicated stacks without `spec.dedicated.endpoint` likewise, from the endpoints' stack lists.

#include <map>
#include <string>
#include <vector>

#include "common/outcome.hpp"
#include "common/secret.hpp"
#include "manifests/config.hpp"
#include "manifests/types.hpp"
#include "reconcilers/postgres/model.hpp"
#include "reconcilers/stacks/model.hpp"

namespace tmaster::controller {

/// Sets `database.cluster` of each placed workspace in `workspaces`, from the clusters'
/// catalogs (`observed`, by cluster; a failed one takes no new workspace). One that cannot be
/// placed leaves `workspaces`; its failure (`Unschedulable`) is returned by name.
std::map<std::string, Failure> PlaceFromObserved(
    std::vector<manifests::Workspace>& workspaces,
    const std::map<std::string, Outcome<postgres::ObservedCluster>>& observed,
    const std::vector<manifests::ClusterConfig>& clusters, const Secret& master_key);

/// Sets `dedicated->endpoint` of each dedicated workspace in `workspaces` without
/// `spec.dedicated.endpoint`, from the stack lists of the configured `endpoints` (`lists`, by
/// endpoint id): where its stack `tm-<name>` carrying its TM_WORKSPACE already is (repeated
/// runs are sticky), else by capacity over the workspace stacks each endpoint holds and the
/// workspaces that name it. While a configured endpoint cannot be listed, none is placed anew
/// (its stack may be there). One that cannot be placed leaves `workspaces`; its failure
/// (`Unschedulable`) is returned by name.
std::map<std::string, Failure> PlaceStacksFromObserved(
    std::vector<manifests::Workspace>& workspaces,
    const std::map<int, Outcome<std::vector<stacks::ObservedStack>>>& lists,
    const std::vector<manifests::EndpointConfig>& endpoints);

}  // namespace tmaster::controller
