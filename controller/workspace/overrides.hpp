#pragma once
// Temporary overrides of source-owned workspaces (docs/api.md: `POST .../suspend` on a workspace
// a directory or git source owns): the repository stays the truth for the spec, the operator is
// told to hold the workspace suspended until `resume`. The reconciler converges an overridden
// workspace exactly as if its spec said `suspend: true` (role NOLOGIN, stack stopped); its status
// shows `status.override: {suspend, by, at}`.
//
// The durable copy lives behind OverrideStore (the store's `tm_overrides` table once the store
// has it; MemoryOverrideStore meanwhile and in tests); Overrides is the daemon's in-memory copy,
// loaded at the start of each leadership term and written through by the API.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/outcome.hpp"
#include "controller/store/store.hpp"

namespace tmaster::controller {

struct SuspendOverride {
  std::string workspace;
  bool suspend = true;
  std::string by;            ///< who set it: the principal's description (`token:abc (ci)`)
  std::int64_t at_unix = 0;  ///< when, seconds since the epoch

  friend bool operator==(const SuspendOverride&, const SuspendOverride&) = default;
};

/// Where overrides persist. Thread-safe.
class OverrideStore {
 public:
  virtual ~OverrideStore() = default;
  /// Every override, ordered by workspace.
  virtual Outcome<std::vector<SuspendOverride>> ListOverrides() = 0;
  /// Inserts or replaces the override of `override.workspace`.
  virtual Outcome<Done> SetOverride(const SuspendOverride& override) = 0;
  /// Removes the override of `workspace`; true when there was one.
  virtual Outcome<bool> ClearOverride(const std::string& workspace) = 0;
};

/// The store's table (schema v6, `tm_overrides`) as an OverrideStore: the daemon's default, so an
/// override outlives a restart and is seen by the replica that takes over.
class StoreOverrideStore final : public OverrideStore {
 public:
  explicit StoreOverrideStore(Store& store) : store_(store) {}
  Outcome<std::vector<SuspendOverride>> ListOverrides() override;
  Outcome<Done> SetOverride(const SuspendOverride& override) override;
  Outcome<bool> ClearOverride(const std::string& workspace) override;

 private:
  Store& store_;
};

/// An OverrideStore in memory (a single replica without the store's table; tests).
class MemoryOverrideStore final : public OverrideStore {
 public:
  Outcome<std::vector<SuspendOverride>> ListOverrides() override;
  Outcome<Done> SetOverride(const SuspendOverride& override) override;
  Outcome<bool> ClearOverride(const std::string& workspace) override;

 private:
  std::mutex mutex_;
  std::map<std::string, SuspendOverride> rows_;
};

/// The names whose next run was asked for (`POST .../reconcile`, docs/api.md#routes): that run
/// is recorded in `status.lastRuns` even when it had nothing to do, so a client can wait for it
/// (`tenantctl reconcile --wait`). The reconciler takes the mark when a run starts, so a request
/// that arrives during a run marks the run the queue makes next. Thread-safe.
class RequestedRuns {
 public:
  void Add(const std::string& workspace);
  /// Whether `workspace` was marked; clears the mark.
  bool Take(const std::string& workspace);

 private:
  std::mutex mutex_;
  std::set<std::string> names_;
};

/// The daemon's copy of the overrides. Thread-safe.
class Overrides {
 public:
  void Load(const std::vector<SuspendOverride>& rows);
  [[nodiscard]] std::optional<SuspendOverride> Get(const std::string& workspace) const;
  void Set(const SuspendOverride& override);
  void Clear(const std::string& workspace);
  void ClearAll();

 private:
  mutable std::mutex mutex_;
  std::map<std::string, SuspendOverride> rows_;
};

}  // namespace tmaster::controller
