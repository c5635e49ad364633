#pragma once

// What the HTTP server hands to the workspace API (docs/api.md#routes) and gets back: plain
// values, so that the server (this room) knows nothing of the daemon that answers
// (controller/daemon/workspace_api.hpp, ServeWorkspaceCall) and tests can answer with anything.

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tmaster::controller {

struct WorkspaceCall {
  enum class Op {
    kList, kGet, kApply, kDelete, kReconcile, kSuspend, kResume, kPlan, kProducts,
    kSummary,  ///< GET /api/v1/summary: counts by phase, product and mode
    // Backups (docs/api.md#backups): `name` is the workspace, or the restore's id for
    // kGetRestore.
    kBackup,       ///< POST /api/v1/workspaces/{name}/backups
    kListBackups,  ///< GET /api/v1/workspaces/{name}/backups
    kRestore,      ///< POST /api/v1/workspaces/{name}/restore
    kGetRestore,   ///< GET /api/v1/restores/{id}
    // Rollouts (docs/api.md#rollouts): `name` is the product.
    kRolloutStatus,   ///< GET /api/v1/products/{name}/rollout
    kRolloutCommand,  ///< POST /api/v1/products/{name}/rollout/{verb}
    kClusters,        ///< GET /api/v1/clusters (docs/placement.md)
    kEndpoints,       ///< GET /api/v1/endpoints (docs/placement.md#endpoints)
    // Moves (docs/api.md#moves): `name` is the workspace.
    kMove,       ///< POST /api/v1/workspaces/{name}/move: start one, or prune its source
    kGetMove,    ///< GET /api/v1/workspaces/{name}/move
    kListMoves,  ///< GET /api/v1/moves
  };
  Op op = Op::kList;
  std::string name;          ///< the `{name}` of the path
  std::string verb;          ///< kRolloutCommand: the `{verb}` as sent (the answerer checks it)
  std::string body;          ///< PUT and POST bodies
  std::string content_type;  ///< the request's Content-Type
  bool force = false;        ///< `?force=true`
  std::string who;           ///< Principal::Describe() of the caller
  // GET /api/v1/workspaces
  std::optional<std::size_t> limit;  ///< checked by the server: 1..1000
  std::string continue_token;
  std::string label_selector;  ///< as sent; the answerer parses it (400 when it does not)
  std::string phase;
  /// Every query parameter as sent (percent-decoded, in order): the list's filters and sort
  /// (`product`, `mode`, `q`, `sort`) are read and checked by the answerer.
  std::vector<std::pair<std::string, std::string>> params;
};

struct WorkspaceAnswer {
  int status = 200;
  std::string body;  ///< JSON
  std::vector<std::pair<std::string, std::string>> headers;
};

}  // namespace tmaster::controller
