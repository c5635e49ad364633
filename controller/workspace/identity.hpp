#pragma once

// A workspace's identity (product, cluster, database, owner) is fixed at its first convergence
// and recorded in the store (docs/decisions.md#hardening-i-issue-11). Renaming any of them would
// point the application at a new, empty database and leave the tenant's data behind, so an edit
// stalls `ImmutableField` and nothing is touched.

#include <optional>

#include "common/outcome.hpp"
#include "controller/store/store.hpp"
#include "manifests/types.hpp"

namespace tmaster::controller {

/// The identity a spec names: `spec.product`, `spec.database.{cluster,name,owner}`.
WorkspaceIdentity IdentityOf(const manifests::Workspace& workspace);

/// Pure: nullopt when `desired` names what `recorded` does; otherwise Stalled `ImmutableField`
/// naming every changed field with its old and new value, and what to do instead.
std::optional<Failure> CheckIdentity(const std::string& workspace,
                                     const WorkspaceIdentity& recorded,
                                     const WorkspaceIdentity& desired);

}  // namespace tmaster::controller
