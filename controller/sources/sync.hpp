#pragma once
// The sync (docs/architecture.md#the-sync): one read of one source turned into stored specs and
// queued names, in four phases:
//   1. load products: each product's migrations and stack template read once, digested;
//   2. upsert declared: each valid workspace compared with what the store holds, saved (with a
//      new generation) only when its spec changed, queued when its spec or product changed;
//   3. record rejected: an invalid document keeps its last valid spec and its database; its
//      name is queued so that its status says why;
//   4. guard deletions: after a clean parse only, workspaces the store holds from this source
//      but the read lacks are marked deleting, within the deletion guard.
// A workspace the API owns (moved there by `PUT ...?force=true`, DesiredState::ApiOwned) is not
// taken back: the source's document for it is ignored and the verdict says `Conflict` (the
// source stays ready) until the workspace is deleted through the API.
// A store failure stops the sync where it is; what was saved stays saved and the next sync
// finishes the rest (every phase compares with the store before writing).

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/outcome.hpp"
#include "controller/runtime/events.hpp"
#include "controller/sources/desired_state.hpp"
#include "controller/sources/product_registry.hpp"
#include "controller/sources/workspace_observer.hpp"
#include "controller/store/store.hpp"
#include "manifests/types.hpp"
#include "reconcilers/migrations/migrations.hpp"
#include "reconcilers/stacks/render.hpp"

namespace tmaster::controller {

/// What a sync says about its source (the source's status).
struct SyncVerdict {
  bool ready = true;
  std::string reason = "Synced";  ///< Synced, InvalidManifests, DeletionGuard, Conflict
  std::string message;
};

struct SyncDeps {
  Store* store = nullptr;
  DesiredState* desired = nullptr;
  EventRecorder* events = nullptr;
  ProductRegistry* products = nullptr;     ///< nullptr: the products are not kept
  WorkspaceObserver* observer = nullptr;   ///< nullptr: nobody is told of the writes
};

struct SyncOptions {
  int max_deletions_per_sync = 3;
  /// reconcile.maxMigrationSize / maxTemplateSize: larger files are refused unread.
  std::uintmax_t max_migration_bytes = migrations::kDefaultMaxMigrationBytes;
  std::uintmax_t max_template_bytes = stacks::kDefaultMaxTemplateBytes;
};

class Sync {
 public:
  Sync(SyncDeps deps, SyncOptions options);

  /// Applies one read of `source` at `revision` (empty for a directory). The verdict is the
  /// source's new status; a failure (the store) means "retry soon", never "no manifests".
  /// `to_queue` receives the names to queue, also when a later phase failed (a name the desired
  /// state already took would otherwise wait for its next change); the caller queues them once
  /// the source's status is written. Thread-safe: one Sync serves every source.
  Outcome<SyncVerdict> Apply(const std::string& source, const std::string& revision,
                             const manifests::Fleet& fleet, std::vector<std::string>& to_queue);

  using Products = std::map<std::string, std::shared_ptr<const ProductEntry>>;
  /// Phase 1.
  static Products LoadProducts(const manifests::Fleet& fleet, const SyncOptions& options);
  /// Phase 1b: each product's revision recorded in the store (numbered there) and its number
  /// set on its entry; a store failure leaves the number 0 (logged), nothing else.
  Products RecordRevisions(Products products);

 private:
  struct Pass {
    const std::string& source;
    const std::string& revision;
    const manifests::Fleet& fleet;
    std::set<std::string> parsed;      ///< every name the read has, valid or not
    std::vector<std::string> enqueue;  ///< queued once the sync is through
    std::vector<std::string> api_owned;  ///< declared here, but the API owns them
  };
  Outcome<SyncVerdict> RunPhases(Pass& pass);
  /// Phase 2: one workspace.
  Status UpsertDeclared(Pass& pass, const manifests::Workspace& workspace,
                        const Products& products);
  /// Phase 3.
  void RecordRejected(Pass& pass);
  /// Phase 4; sets the verdict's reason when the guard refuses.
  Status GuardDeletions(Pass& pass, SyncVerdict& verdict);

  SyncDeps deps_;
  SyncOptions options_;
  /// The revisions recorded so far, by product: (digest, number). An unchanged product costs
  /// no store call.
  std::mutex revisions_mutex_;
  std::map<std::string, std::pair<std::string, int>> recorded_revisions_;
};

/// The Conflict verdict's message: "N workspace(s) of this source are owned by the API ...".
std::string ApiOwnedMessage(const std::vector<std::string>& names);

/// Summarises a read's invalid documents: "N invalid document(s), nothing deleted; first: ...".
std::string InvalidManifestsMessage(const manifests::Fleet& fleet);

}  // namespace tmaster::controller
