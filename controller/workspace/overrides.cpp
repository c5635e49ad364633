#include "controller/workspace/overrides.hpp"

namespace tmaster::controller {

Outcome<std::vector<SuspendOverride>> MemoryOverrideStore::ListOverrides() {
  const std::lock_guard lock(mutex_);
  std::vector<SuspendOverride> rows;
  rows.reserve(rows_.size());
  for (const auto& [name, row] : rows_) rows.push_back(row);
  return rows;
}

Outcome<Done> MemoryOverrideStore::SetOverride(const SuspendOverride& override) {
  const std::lock_guard lock(mutex_);
  rows_[override.workspace] = override;
  return Done{};
}

Outcome<bool> MemoryOverrideStore::ClearOverride(const std::string& workspace) {
  const std::lock_guard lock(mutex_);
  return rows_.erase(workspace) != 0;
}

void Overrides::Load(const std::vector<SuspendOverride>& rows) {
  const std::lock_guard lock(mutex_);
  rows_.clear();
  for (const SuspendOverride& row : rows) rows_[row.workspace] = row;
}

std::optional<SuspendOverride> Overrides::Get(const std::string& workspace) const {
  const std::lock_guard lock(mutex_);
  auto it = rows_.find(workspace);
  if (it == rows_.end()) return std::nullopt;
  return it->second;
}

void Overrides::Set(const SuspendOverride& override) {
  const std::lock_guard lock(mutex_);
  rows_[override.workspace] = override;
}

void Overrides::Clear(const std::string& workspace) {
  const std::lock_guard lock(mutex_);
  rows_.erase(workspace);
}

void Overrides::ClearAll() {
  const std::lock_guard lock(mutex_);
  rows_.clear();
}

void RequestedRuns::Add(const std::string& workspace) {
  const std::lock_guard lock(mutex_);
  names_.insert(workspace);
}

bool RequestedRuns::Take(const std::string& workspace) {
  const std::lock_guard lock(mutex_);
  return names_.erase(workspace) > 0;
}

Outcome<std::vector<SuspendOverride>> StoreOverrideStore::ListOverrides() {
  Outcome<std::vector<StoredOverride>> rows = store_.ListOverrides();
  if (!rows) return rows.failure();
  std::vector<SuspendOverride> out;
  out.reserve(rows->size());
  for (const StoredOverride& row : *rows) {
    out.push_back({.workspace = row.workspace, .suspend = row.suspend, .by = row.by,
                   .at_unix = row.at_unix});
  }
  return out;
}

Outcome<Done> StoreOverrideStore::SetOverride(const SuspendOverride& override) {
  return store_.SetOverride({.workspace = override.workspace, .suspend = override.suspend,
                             .by = override.by, .at_unix = override.at_unix});
}

Outcome<bool> StoreOverrideStore::ClearOverride(const std::string& workspace) {
  return store_.ClearOverride(workspace);
}

}  // namespace tmaster::controller
