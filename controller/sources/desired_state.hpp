#pragma once
// The desired state of one leadership term (docs/architecture.md#desired-state): what the
// sources declared, as the sync left it for the workers. The sync writes it; the workspace
// reconciler reads it. Per name, exactly one of: declared (a spec to converge), rejected (an
// invalid document: its last valid spec and its database are kept, nothing is reconciled),
// deleting (its manifest is gone from a clean read: the reclaim policy runs), or unknown.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controller/store/store.hpp"
#include "manifests/types.hpp"
#include "reconcilers/migrations/migrations.hpp"

namespace tmaster::controller {

/// A product as a sync read it: its migrations and stack template loaded once for every
/// workspace of the product, and a digest of all of it (a change re-queues its workspaces).
struct ProductEntry {
  manifests::Product product;
  Outcome<std::vector<migrations::Migration>> migrations = std::vector<migrations::Migration>{};
  Outcome<std::string> stack_template = std::string();
  std::string digest;
  /// `spec.sharedRuntime` (endpoint, template path) and the bytes of its template: what the
  /// product's shared runtime stack converges to. Apart from `digest`, so a change of the runtime
  /// alone re-queues no workspace; the registry's Version moves on either.
  std::string runtime_digest = {};
  /// The product's revision (docs/rollouts.md#revisions): what it hands a workspace, digested;
  /// empty when its migrations or template could not be read (no revision then).
  std::string revision_digest = {};
  /// Its number in the store (tm_product_revisions), 0 until recorded.
  int revision = 0;
  /// `digest` without what a revision hands a workspace (version, image, template, migrations,
  /// extensions): under a rollout policy a change of the revision alone is handed out by the
  /// rollout (docs/rollouts.md), so it re-queues nobody by itself; a change of this does.
  std::string other_digest = {};
};

/// A declared workspace.
struct DesiredEntry {
  manifests::Workspace workspace;
  std::shared_ptr<const ProductEntry> product;
  std::string source;
  std::string revision;  ///< the revision that last changed this spec
  std::string spec_digest;
  std::int64_t generation = 0;
};

/// An invalid document, as its source last read it.
struct Rejection {
  std::string source;
  std::string revision;
  std::string reason;   ///< `InvalidManifest` or `Conflict`
  std::string message;  ///< the first finding, with its file and line
};

/// Thread-safe.
class DesiredState {
 public:
  struct View {
    std::shared_ptr<const DesiredEntry> declared;  ///< set when declared
    std::optional<Rejection> rejected;             ///< set when rejected
    bool deleting = false;
  };
  [[nodiscard]] View Lookup(const std::string& name) const;
  [[nodiscard]] std::shared_ptr<const DesiredEntry> Declared(const std::string& name) const;
  [[nodiscard]] bool Deleting(const std::string& name) const;

  /// The store's rows when the term started (spec_json dropped): what the first sync compares
  /// against, so a restart saves nothing that did not change. Returns the names being deleted.
  std::vector<std::string> BeginTerm(const std::vector<StoredWorkspace>& stored);
  /// The row read at the start of the term, if any.
  [[nodiscard]] std::optional<StoredWorkspace> StoredAtStart(const std::string& name) const;

  /// Declares `entry` (it replaces a rejection and cancels a deletion).
  void Declare(const std::string& name, std::shared_ptr<const DesiredEntry> entry);
  /// Records an invalid document; the name is no longer declared.
  void Reject(const std::string& name, Rejection rejection);
  /// The manifest is gone: the name is no longer declared and its reclaim must run.
  void MarkDeleting(const std::string& name);
  /// The reclaim finished (or the row is gone): the name is unknown from now on.
  void FinishDeleting(const std::string& name);

  /// The names `source` last read as invalid documents (never declared since), sorted.
  [[nodiscard]] std::vector<std::string> RejectedBy(const std::string& source) const;
  /// Forgets a rejection (its document is gone from a clean read).
  void ForgetRejected(const std::string& name);

  /// Names declared now, sorted.
  [[nodiscard]] std::vector<std::string> DeclaredNames() const;
  /// Moves on whenever the declared set or an entry in it changes (Declare, Reject,
  /// MarkDeleting, Clear): a reader of DeclaredNames may keep what it derived until then.
  [[nodiscard]] std::uint64_t DeclaredVersion() const;
  [[nodiscard]] std::size_t DeletingCount() const;
  [[nodiscard]] std::set<std::string> DeletingNames() const;

  /// The stack removals (a workspace switched to shared, or moved to another endpoint) that the
  /// last sync of `source` held back under the deletion guard; replaces that source's earlier set.
  void HoldStackRemovals(const std::string& source, std::set<std::string> names);
  /// True while the workspace's stack removal is held back by the deletion guard.
  [[nodiscard]] bool StackRemovalHeld(const std::string& name) const;

  /// Workspaces whose store row belongs to the API (source `api`, product_registry.hpp): no
  /// configured source may declare them (the sync reports its document as a Conflict on the
  /// source) until they are deleted. BeginTerm takes them from the store's rows; the API adds
  /// them; FinishDeleting forgets them.
  void SetApiOwned(const std::string& name);
  [[nodiscard]] bool ApiOwned(const std::string& name) const;
  [[nodiscard]] std::set<std::string> ApiOwnedNames() const;

  /// Drops everything (the term ended).
  void Clear();

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const DesiredEntry>> declared_;
  std::map<std::string, Rejection> rejected_;
  std::set<std::string> deleting_;
  std::map<std::string, StoredWorkspace> stored_;
  std::map<std::string, std::set<std::string>> held_stack_removals_;  ///< by source
  std::set<std::string> api_owned_;
  std::uint64_t declared_version_ = 0;
};

}  // namespace tmaster::controller
