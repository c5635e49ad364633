#pragma once

#include <cstddef>
#include <filesystem>
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
/// the next pass, never a wrong plan. Thread-safe. The controller may keep it in its store;
/// `--once` keeps it in a small text file (Load/Save).
class StackLedger {
 public:
  [[nodiscard]] std::optional<LedgerEntry> Get(const std::string& workspace) const;
  void Put(const std::string& workspace, const LedgerEntry& entry);
  void Erase(const std::string& workspace);
  [[nodiscard]] std::map<std::string, LedgerEntry> Snapshot() const;

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
  mutable std::mutex mutex_;
  std::map<std::string, LedgerEntry> entries_;
};

}  // namespace tmaster::stacks
