#include "controller/sources/desired_state.hpp"

#include "controller/sources/product_registry.hpp"

namespace tmaster::controller {

DesiredState::View DesiredState::Lookup(const std::string& name) const {
  const std::lock_guard lock(mutex_);
  View view;
  view.deleting = deleting_.count(name) != 0;
  if (auto it = declared_.find(name); it != declared_.end()) view.declared = it->second;
  if (auto it = rejected_.find(name); it != rejected_.end()) view.rejected = it->second;
  return view;
}

std::shared_ptr<const DesiredEntry> DesiredState::Declared(const std::string& name) const {
  const std::lock_guard lock(mutex_);
  auto it = declared_.find(name);
  return it == declared_.end() ? nullptr : it->second;
}

bool DesiredState::Deleting(const std::string& name) const {
  const std::lock_guard lock(mutex_);
  return deleting_.count(name) != 0;
}

std::vector<std::string> DesiredState::BeginTerm(const std::vector<StoredWorkspace>& stored) {
  std::vector<std::string> deleting;
  const std::lock_guard lock(mutex_);
  for (const StoredWorkspace& row : stored) {
    StoredWorkspace summary = row;
    summary.spec_json.clear();  // the digest says enough; deletion reads the row afresh
    stored_[row.name] = std::move(summary);
    if (row.source == kApiSource) api_owned_.insert(row.name);
    if (row.deleting_since) {
      deleting_.insert(row.name);
      deleting.push_back(row.name);
    }
  }
  return deleting;
}

std::optional<StoredWorkspace> DesiredState::StoredAtStart(const std::string& name) const {
  const std::lock_guard lock(mutex_);
  auto it = stored_.find(name);
  if (it == stored_.end()) return std::nullopt;
  return it->second;
}

void DesiredState::Declare(const std::string& name, std::shared_ptr<const DesiredEntry> entry) {
  const std::lock_guard lock(mutex_);
  ++declared_version_;
  declared_[name] = std::move(entry);
  rejected_.erase(name);
  deleting_.erase(name);
}

void DesiredState::Reject(const std::string& name, Rejection rejection) {
  const std::lock_guard lock(mutex_);
  ++declared_version_;
  declared_.erase(name);
  rejected_[name] = std::move(rejection);
}

void DesiredState::MarkDeleting(const std::string& name) {
  const std::lock_guard lock(mutex_);
  ++declared_version_;
  declared_.erase(name);
  rejected_.erase(name);
  deleting_.insert(name);
}

void DesiredState::FinishDeleting(const std::string& name) {
  const std::lock_guard lock(mutex_);
  deleting_.erase(name);
  stored_.erase(name);
  api_owned_.erase(name);
}

void DesiredState::SetApiOwned(const std::string& name) {
  const std::lock_guard lock(mutex_);
  api_owned_.insert(name);
}

bool DesiredState::ApiOwned(const std::string& name) const {
  const std::lock_guard lock(mutex_);
  return api_owned_.count(name) != 0;
}

std::set<std::string> DesiredState::ApiOwnedNames() const {
  const std::lock_guard lock(mutex_);
  return api_owned_;
}

std::vector<std::string> DesiredState::RejectedBy(const std::string& source) const {
  const std::lock_guard lock(mutex_);
  std::vector<std::string> names;
  for (const auto& [name, rejection] : rejected_) {
    if (rejection.source == source) names.push_back(name);
  }
  return names;
}

void DesiredState::ForgetRejected(const std::string& name) {
  const std::lock_guard lock(mutex_);
  rejected_.erase(name);
}

std::vector<std::string> DesiredState::DeclaredNames() const {
  const std::lock_guard lock(mutex_);
  std::vector<std::string> names;
  names.reserve(declared_.size());
  for (const auto& [name, entry] : declared_) names.push_back(name);
  return names;
}

std::size_t DesiredState::DeletingCount() const {
  const std::lock_guard lock(mutex_);
  return deleting_.size();
}

std::set<std::string> DesiredState::DeletingNames() const {
  const std::lock_guard lock(mutex_);
  return deleting_;
}

void DesiredState::HoldStackRemovals(const std::string& source, std::set<std::string> names) {
  const std::lock_guard lock(mutex_);
  held_stack_removals_[source] = std::move(names);
}

bool DesiredState::StackRemovalHeld(const std::string& name) const {
  const std::lock_guard lock(mutex_);
  for (const auto& [source, names] : held_stack_removals_) {
    if (names.count(name) != 0) return true;
  }
  return false;
}

std::uint64_t DesiredState::DeclaredVersion() const {
  const std::lock_guard lock(mutex_);
  return declared_version_;
}

void DesiredState::Clear() {
  const std::lock_guard lock(mutex_);
  ++declared_version_;
  declared_.clear();
  rejected_.clear();
  deleting_.clear();
  stored_.clear();
  held_stack_removals_.clear();
  api_owned_.clear();
}

}  // namespace tmaster::controller
