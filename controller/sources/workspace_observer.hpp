#pragma once
// Told of every write of a workspace's spec or status the daemon makes to the store, after the
// store took it: the daemon's in-memory list (controller/daemon/fleet_view.hpp) follows them, so
// `GET /api/v1/workspaces` never reads the store on the leader.

#include <string>

#include "controller/store/store.hpp"

namespace tmaster::controller {

class WorkspaceObserver {
 public:
  virtual ~WorkspaceObserver() = default;
  /// UpsertSpec, MarkDeleting, CancelDeleting: the row as the store returned it.
  virtual void SpecChanged(const StoredWorkspace& workspace) = 0;
  /// PutStatus.
  virtual void StatusChanged(const WorkspaceStatus& status) = 0;
  /// Remove: the workspace and its status are gone.
  virtual void Removed(const std::string& name) = 0;
};

}  // namespace tmaster::controller
