#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/outcome.hpp"
#include "reconcilers/stacks/model.hpp"

namespace tmaster::stacks {

/// What the operator last wrote to each workspace's stack (id, the UpdateDate the write left,
/// SHA-256 of the file). It only saves file reads: losing it costs one File call per stack on
/// the next pass, never a wrong plan, except for a stack whose Env marker was wiped by hand: the
/// ledger's id is then the only proof it is the operator's (plan.hpp IsOurs). Thread-safe. The
/// daemon keeps it in its store (an Observer writes each change through, Restore loads it);
/// `--once` keeps it in a small text file (Load/Save).
class StackLedger {
 public:
  /// Told of each change after it is made (outside the ledger's lock): the workspace and its
  /// new entry, or nullopt when the entry was erased. Not called when a Put leaves the entry as
  /// it was, nor by Restore/Load. Calls for one workspace come in the order of its changes as
  /// long as one thread at a time changes it (the work queue's guarantee).
  using Observer =
      std::function<void(const std::string& workspace, const std::optional<LedgerEntry>& entry)>;

  /// Replaces the observer (empty: none).
  void SetObserver(Observer observer);

  [[nodiscard]] std::optional<LedgerEntry> Get(const std::string& workspace) const;
  void Put(const std::string& workspace, const LedgerEntry& entry);
  void Erase(const std::string& workspace);
  [[nodiscard]] std::map<std::string, LedgerEntry> Snapshot() const;

  /// Puts every entry of `entries` (those of other workspaces stay) without telling the
  /// observer: they come from where the observer writes to.
  void Restore(const std::map<std::string, LedgerEntry>& entries);

  /// Updates the entry after `action` was applied with `result`: CreateStack and UpdateStack
  /// record (result.id, result.update_date, sha256 of the file sent); DeleteStack erases the
  /// entry if it is for that stack id; StartStack/StopStack change nothing (Portainer keeps
  /// UpdateDate on start/stop).
  void Record(const std::string& workspace, const Action& action, const ApplyResult& result);

  /// After a pass that read the stack's file and found nothing to do (for example after a
  /// restart without a ledger): remembers the stack as observed, so the next pass skips the read.
  void RecordObserved(const std::string& workspace, const ObservedStack& stack,
                      std::string_view file);

  /// Replaces the contents with those of `path`: one line per workspace, `name id update_date
  /// digest`; `#` lines are comments. A missing file is an empty ledger; a malformed line is
  /// skipped (the ledger is a cache). Returns the number of entries read; Transient
  /// `StackReadFailed` when the file exists but cannot be read.
  Outcome<std::size_t> Load(const std::filesystem::path& path);

  /// Writes the contents to `path` atomically (temporary file in the same folder, fsync,
  /// rename), mode 0600. Transient `StackWriteFailed` on I/O errors.
  Status Save(const std::filesystem::path& path) const;

 private:
  void Notify(const std::string& workspace, const std::optional<LedgerEntry>& entry) const;

  mutable std::mutex mutex_;
  std::map<std::string, LedgerEntry> entries_;
  Observer observer_;
};

}  // namespace tmaster::stacks
