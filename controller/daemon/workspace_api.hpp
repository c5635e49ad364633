#pragma once
// The daemon side of the workspace API (docs/api.md#routes): what `PUT/DELETE
// /api/v1/workspaces/{name}`, `POST /api/v1/plan`, `POST .../reconcile|suspend|resume`,
// `GET /api/v1/products` and the in-memory `GET /api/v1/workspaces` do. The HTTP server
// (controller/api/http_server.cpp) parses the request, authenticates it and answers with an
// ApiAnswer; nothing here knows HTTP beyond the status codes and error codes of
// docs/api.md#errors.
//
// Every write takes `who`, the principal's description (`token:k3j5... (ci deploy)`,
// `env:admin`), and records an event naming it. Writes need the leader: a standby answers 503.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/secret.hpp"
#include "controller/api/workspace_call.hpp"
#include "controller/backups/service.hpp"
#include "controller/daemon/fleet_view.hpp"
#include "controller/daemon/rollout_control.hpp"
#include "controller/runtime/events.hpp"
#include "controller/sources/desired_state.hpp"
#include "controller/sources/product_registry.hpp"
#include "controller/store/store.hpp"
#include "controller/workspace/overrides.hpp"
#include "controller/workspace/placer.hpp"
#include "controller/workspace/reconcile_pass.hpp"
#include "manifests/config.hpp"
#include "manifests/loader.hpp"
#include "manifests/types.hpp"

namespace tmaster::moves {
class MoveService;  // controller/moves/service.hpp
}  // namespace tmaster::moves

namespace tmaster::controller {

/// What a route answers: a status, a JSON body and extra headers. For an error (status >= 400)
/// `error` is its code (docs/api.md#errors) and `body` is `{"error","message","details"?}`.
struct ApiAnswer {
  int status = 200;
  std::string body;     ///< JSON
  std::string error;    ///< empty unless status >= 400
  std::string message;  ///< empty unless status >= 400
  std::map<std::string, std::string> headers;

  [[nodiscard]] bool ok() const { return status < 400; }
};

/// An error answer: `{"error": ApiErrorCode(status), "message": message, "details"?: details}`
/// (`details_json` already serialized; empty: none).
ApiAnswer ApiError(int status, std::string message, std::string details_json = {});
/// docs/api.md#errors: 400 BadRequest, 404 NotFound, 409 Conflict, 415 UnsupportedMediaType,
/// 422 Invalid, 503 Unavailable, ...
const char* ApiErrorCode(int status);

/// A body read as a manifest (docs/api.md: "validated as a file is"): findings as JSON
/// `[{file, line, column, field, message, severity}]`, lines relative to the body.
struct ValidatedBody {
  manifests::Fleet fleet;      ///< products resolved from the sources
  std::size_t body_lines = 0;  ///< lines of the request body (later lines: the registry's)
  std::string findings_json;   ///< errors and notices
  bool has_errors = false;
};

/// Reads `body` (YAML or JSON, many documents) as the loader reads a file named `request`,
/// resolving `spec.product` against `products` (the products the configured sources declared),
/// exactly like a manifest of a source (same schema, same messages, same defaults). A Product
/// document in the body is an error (products come from the sources). Pure but for reading the
/// products' stack templates to check they exist, as the loader does.
ValidatedBody ValidateBody(std::string_view body,
                           const std::map<std::string, ProductRegistry::Found>& products,
                           const manifests::LoadOptions& options);

struct WorkspaceApiDeps {
  const manifests::Config* config = nullptr;
  Store* store = nullptr;
  DesiredState* desired = nullptr;
  ProductRegistry* products = nullptr;
  EventRecorder* events = nullptr;
  Overrides* overrides = nullptr;
  /// Marked by Reconcile: the run it causes is recorded (nullptr: none).
  RequestedRuns* requested = nullptr;
  OverrideStore* override_store = nullptr;
  FleetView* fleet = nullptr;
  /// Told of the API's own spec writes (the daemon's observer: the fleet view).
  WorkspaceObserver* observer = nullptr;
  /// Queues a name now; false when this replica does not lead (then nothing was queued).
  std::function<bool(const std::string&)> enqueue;
  std::function<bool()> leading;
  /// For Plan: the clusters, stacks and key the reconciler uses (nothing is applied).
  Gateways gateways;
  StacksContext* stacks = nullptr;
  const Secret* master_key = nullptr;
  std::string store_database = std::string(postgres::kDefaultStoreDatabase);
  /// Seconds since the epoch (tests fix it); empty: the system clock.
  std::function<std::int64_t()> now_unix;
  /// Takes backups and restores them (the daemon's BackupRunner; docs/backups.md). nullptr:
  /// the backup and restore writes answer 503; the catalog is still read from the store.
  ::tmaster::backups::BackupService* backups = nullptr;
  /// The rollout driver (docs/rollouts.md): the products' rollout status and the verbs.
  /// nullptr: the rollout routes answer 503 and the products' `rolloutStatus` is null.
  RolloutControl* rollouts = nullptr;
  /// Each cluster's capacity, usage and reachability (`GET /api/v1/clusters`,
  /// docs/placement.md), and each endpoint's (`GET /api/v1/endpoints`); nullptr: both routes
  /// answer 404.
  const Placer* placer = nullptr;
  /// Moves a workspace's database to another cluster and prunes the source it kept (the
  /// daemon's MoveRunner; docs/moves.md). nullptr: `POST .../move` answers 503; a move's
  /// progress is still read from the store.
  ::tmaster::moves::MoveService* moves = nullptr;
};

/// The verbs of `POST /api/v1/products/{name}/rollout/{verb}` (docs/rollouts.md#the-state-machine).
inline constexpr std::string_view kRolloutVerbs[] = {"pause", "resume", "promote", "abort", "undo"};

/// Thread-safe; writes are serialized among themselves.
class WorkspaceApi {
 public:
  explicit WorkspaceApi(WorkspaceApiDeps deps);

  /// `PUT /api/v1/workspaces/{name}` (`?force=true`: `force`). 201 created / 200 configured or
  /// unchanged (header `Tenant-Master-Apply`), body the stored object. 400 a body that is not
  /// one Workspace document or names another workspace; 415 a content type other than JSON or
  /// YAML; 422 findings; 409 a workspace a directory or git source owns (`details: {source,
  /// kind}`), unless `force`, which moves it to the API; 503 on a standby or a store failure.
  ApiAnswer Apply(const std::string& name, std::string_view body, std::string_view content_type,
                  bool force, const std::string& who);
  /// `DELETE /api/v1/workspaces/{name}`: marked deleting and queued, as a removed manifest;
  /// 202 with the object. 404 unknown; 409 source-owned unless `force`.
  ApiAnswer Delete(const std::string& name, bool force, const std::string& who);
  /// `POST /api/v1/workspaces/{name}/reconcile`: 202 `{"workspace","queuedAt"}`; 404 unknown.
  ApiAnswer Reconcile(const std::string& name, const std::string& who);
  /// `POST .../suspend` (`suspend` true) and `.../resume` (false): API-owned: a new spec with
  /// `spec.suspend`; source-owned: an override (overrides.hpp) set or cleared. 200 with the
  /// object; 404 unknown.
  ApiAnswer Suspend(const std::string& name, bool suspend, const std::string& who);
  ApiAnswer Resume(const std::string& name, const std::string& who) {
    return Suspend(name, false, who);
  }
  /// `POST /api/v1/plan`: `{"items":[{workspace, converged, actions:[{kind, description}],
  /// blocked?}], "diagnostics":[...]}`; nothing applied. 415 as Apply.
  ApiAnswer Plan(std::string_view body, std::string_view content_type);
  /// `GET /api/v1/products`: `{"items":[{name, source, displayName, defaultVersion, modes,
  /// workspaces, sharedRuntime, rollout, revision, rolloutStatus}]}` (`sharedRuntime`: `{stack,
  /// endpoint}` or null; `rollout`: the policy with its defaults, or null; `rolloutStatus`:
  /// RolloutControl::SummaryJson, null without a rollout or without a RolloutControl).
  ApiAnswer Products() const;
  /// `GET /api/v1/clusters`: each configured cluster with its capacity, labels, the workspaces
  /// on it, and its last check (reachable, server version).
  ApiAnswer Clusters() const;
  /// `GET /api/v1/endpoints`: each endpoint the fleet knows (Placer::EndpointUsages) with its
  /// capacity, labels, the stacks on it, and its last check (kind, swarm id, reachable).
  ApiAnswer Endpoints() const;
  /// `GET /api/v1/workspaces`: from the fleet view. 400 for a bad continue token.
  ApiAnswer List(const FleetQuery& query) const;
  /// `GET /api/v1/summary`: counts by phase, product and mode (FleetSummaryJson).
  ApiAnswer Summary() const;
  /// `GET /api/v1/workspaces/{name}`: from the fleet view; 404 unknown.
  ApiAnswer Get(const std::string& name) const;

  // Backups (docs/api.md#backups; controller/daemon/backup_api.cpp). A BackupService failure
  // maps by its reason (controller/backups/service.hpp): NotFound 404, NotConverged and
  // RestoreInProgress 409, NotRestorable 422, Unavailable (and any other) 503, with
  // `details: {"reason"}`. The writes answer 503 on a standby and without a service.

  /// `POST /api/v1/workspaces/{name}/backups`: a manual backup queued (or the one already queued
  /// or running). 202 `{"backup", "workspace", "kind", "state", "queuedAt"}`.
  ApiAnswer Backup(const std::string& name, const std::string& who);
  /// `GET /api/v1/workspaces/{name}/backups`: 200 `{"items": [catalog rows, newest first],
  /// "pending": [{"id", "workspace", "kind", "state", "queuedAt"}]}`, the catalog read from the
  /// store (so a standby answers, and a deleted workspace's final backups are listed). 404 when
  /// the workspace is unknown and has no backup; 503 when the store cannot be read.
  ApiAnswer ListBackups(const std::string& name) const;
  /// `POST /api/v1/workspaces/{name}/restore` with `{"backup": ID, "into"?: WORKSPACE}` (JSON):
  /// 202 the restore's progress (RestoreJson). 400 a body that is not that object (an unknown
  /// member, `backup` missing, a name or id that cannot be one), naming the field; 415 a
  /// content type other than JSON.
  ApiAnswer Restore(const std::string& name, std::string_view body, std::string_view content_type,
                    const std::string& who);
  /// `GET /api/v1/restores/{id}`: 200 the restore's progress; 404 when this replica does not
  /// know it (a standby, a restart, finished over an hour ago).
  ApiAnswer GetRestore(const std::string& id) const;

  // Rollouts (docs/api.md#rollouts): the driver's answers (RolloutControl) passed through, a
  // failure mapped by its reason with `details: {"reason"}`. Both need the leader (a standby
  // answers 503, as Products does) and a RolloutControl (else 503).

  /// `GET /api/v1/products/{name}/rollout`: 200 RolloutControl::StatusJson; 404 NotFound.
  ApiAnswer RolloutStatus(const std::string& product) const;
  /// `POST /api/v1/products/{name}/rollout/{verb}` (kRolloutVerbs): 200 the new status. 400 an
  /// unknown verb (`InvalidVerb`, naming the verbs); 404 `NotFound`; 409 `RolloutCommandRefused`
  /// (the driver's message says why and what would apply); 503 `Unavailable` and any other.
  /// Records nothing itself: the driver's events name `who`.
  ApiAnswer RolloutCommand(const std::string& product, const std::string& verb,
                           const std::string& who);

  // Moves (docs/api.md#moves; controller/daemon/move_api.cpp). A MoveService failure maps by
  // its reason (controller/moves/service.hpp): NotFound 404; NotConverged, MoveInProgress,
  // MovePinned and MoveConflict 409; InvalidTarget 422; Unavailable (and any other) 503, with
  // `details: {"reason"}`. The write answers 503 on a standby and without a service.

  /// `POST /api/v1/workspaces/{name}/move` with `{"to": CLUSTER}` (JSON): the move recorded and
  /// started, 202 with the move (MoveJson); or with `{"prune": true}`: the source a succeeded
  /// move kept dropped, 200 with the move (state pruned). 400 a body that is not exactly one of
  /// those (an unknown or repeated member, `to` missing or not a cluster name, both given),
  /// naming the field; 415 a content type other than JSON.
  ApiAnswer Move(const std::string& name, std::string_view body, std::string_view content_type,
                 const std::string& who);
  /// `GET /api/v1/workspaces/{name}/move`: 200 the workspace's newest move, read from the store
  /// (so a standby answers); 404 when none is recorded; 503 when the store cannot be read.
  ApiAnswer GetMove(const std::string& name) const;
  /// `GET /api/v1/moves`: 200 `{"items": [every workspace's newest move]}` from the store.
  ApiAnswer ListMoves() const;

  /// Declares the API-owned workspaces the store holds whose product a source now declares (or
  /// whose product changed): called at the start of a term and after each sync of a source.
  /// Returns the names declared (queued by the caller).
  std::vector<std::string> DeclareApiOwned();

 private:
  std::int64_t Now() const;
  /// 409 when `stored` is owned by a configured source and `force` is false.
  std::optional<ApiAnswer> Refuse(const StoredWorkspace& stored, bool force) const;
  ApiAnswer Object(int status, const std::string& name) const;
  /// Declares an API-owned workspace in the desired state from its validated document.
  void Declare(const StoredWorkspace& stored, const manifests::Workspace& workspace,
               const std::shared_ptr<const ProductEntry>& product);
  /// Reads an API-owned row's stored spec back (it is manifest-shaped JSON).
  std::optional<manifests::Workspace> ReadStored(const StoredWorkspace& stored,
                                                 std::shared_ptr<const ProductEntry>& product);
  ApiAnswer SuspendApiOwned(const StoredWorkspace& stored, bool suspend, const std::string& who);

  WorkspaceApiDeps deps_;
  std::mutex write_mutex_;
};

/// Answers one call of the HTTP server (HttpHandlers::workspaces) with `api`: the label selector
/// parsed (400 when it does not), the operation chosen, the ApiAnswer copied.
WorkspaceAnswer ServeWorkspaceCall(WorkspaceApi& api, const WorkspaceCall& call);

}  // namespace tmaster::controller
