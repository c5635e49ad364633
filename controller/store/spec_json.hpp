#pragma once

// Workspaces as JSON in manifest shape (docs/architecture.md#interfaces): what the store keeps as a
// workspace's last valid spec, what the API returns (with status added), and what deletion reads
// back. Defaults are resolved, so two manifests that mean the same thing have the same JSON and the
// same digest, and a reformatted file does not bump the generation.

#include <optional>
#include <string>
#include <vector>

#include "common/outcome.hpp"
#include "manifests/types.hpp"
#include "reconcilers/migrations/migrations.hpp"

namespace tmaster::controller {

/// `{"apiVersion","kind":"Workspace","metadata":{"name","labels"},"spec":{...}}`, keys in a
/// fixed order, defaults filled in, except what is not the manifest's: a placed cluster or
/// endpoint (recorded apart) and a dedicated version defaulted from the product (it follows the
/// product's revisions; read back, it is defaulted again). Holds no secret (manifests cannot
/// carry one).
std::string WorkspaceToJson(const manifests::Workspace& workspace);

/// What deleting a workspace needs from its last stored spec
/// (docs/architecture.md#deletion-and-the-guard: the reclaim policy runs from the stored spec,
/// never from a manifest that is gone).
struct ReclaimSpec {
  std::string workspace;
  std::string cluster;  ///< empty for a placed workspace (its spec names none)
  std::string database;
  std::string role;
  manifests::ReclaimPolicy policy = manifests::ReclaimPolicy::kRetain;
  /// Set for dedicated workspaces that name their endpoint: their stack goes too (a placed
  /// one's is the stored stack endpoint).
  std::optional<int> endpoint;
};

/// Reads a ReclaimSpec from WorkspaceToJson's output. Stalled `InvalidStoredSpec` when a field
/// is missing or of the wrong type (the message names the field and the workspace).
Outcome<ReclaimSpec> ReclaimSpecFromJson(const std::string& spec_json);

/// A digest of everything about a product that changes what its workspaces converge to: the
/// document's fields, each migration's file name and checksum, and the stack template's bytes,
/// from what the caller already read (a failure to read is part of the digest too). A source
/// sync re-queues a product's workspaces when it changes.
std::string ProductDigest(const manifests::Product& product,
                          const Outcome<std::vector<migrations::Migration>>& migrations,
                          const Outcome<std::string>& stack_template);

}  // namespace tmaster::controller
