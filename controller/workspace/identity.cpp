#include "controller/workspace/identity.hpp"

#include <string>
#include <utility>
#include <vector>

#include "common/text.hpp"

namespace tmaster::controller {

WorkspaceIdentity IdentityOf(const manifests::Workspace& workspace) {
  return {workspace.product, workspace.database.cluster, workspace.database.name,
          workspace.database.owner};
}

std::optional<Failure> CheckIdentity(const std::string& workspace,
                                     const WorkspaceIdentity& recorded,
                                     const WorkspaceIdentity& desired) {
  if (recorded == desired) return std::nullopt;
  std::vector<std::string> changes;
  const auto compare = [&changes](const char* field, const std::string& was,
                                  const std::string& now) {
    if (was != now) {
      changes.push_back(std::string(field) + " was " + Quoted(was) + " and is now " + Quoted(now));
    }
  };
  compare("spec.product", recorded.product, desired.product);
  compare("spec.database.cluster", recorded.cluster, desired.cluster);
  compare("spec.database.name", recorded.database, desired.database);
  compare("spec.database.owner", recorded.owner, desired.owner);
  return Failure::Stalled(
      "ImmutableField",
      "workspace " + Quoted(workspace) + ": " + Join(changes, "; ") +
          "; these fields are fixed once the workspace has converged (its data is in database " +
          Quoted(recorded.database) + " on cluster " + Quoted(recorded.cluster) +
          ", nothing was changed): put the old values back, or declare a new workspace and "
          "restore the data into it (README.md#changing-a-workspaces-identity)");
}

}  // namespace tmaster::controller
