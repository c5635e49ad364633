#include "reconcilers/stacks/ledger.hpp"

#include <algorithm>
#include <cerrno>
#include <sstream>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include "common/crypto.hpp"
#include "reconcilers/stacks/files.hpp"

namespace tmaster::stacks {
namespace {

constexpr std::string_view kHeader =
    "# tenant-master stack ledger v1: workspace id update_date sha256\n";

bool IsHexDigest(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool IsPlainName(std::string_view name) {
  return !name.empty() && std::none_of(name.begin(), name.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\0' || c == '#';
  });
}

bool SameEntry(const LedgerEntry& a, const LedgerEntry& b) {
  return a.id == b.id && a.update_date == b.update_date && a.file_digest == b.file_digest;
}

}  // namespace

void StackLedger::SetObserver(Observer observer) {
  std::lock_guard lock(mutex_);
  observer_ = std::move(observer);
}

void StackLedger::Notify(const std::string& workspace,
                         const std::optional<LedgerEntry>& entry) const {
  Observer observer;
  {
    std::lock_guard lock(mutex_);
    observer = observer_;
  }
  // Outside the lock: the observer may write to a store, and other workspaces must not wait.
  if (observer) observer(workspace, entry);
}

void StackLedger::Restore(const std::map<std::string, LedgerEntry>& entries) {
  std::lock_guard lock(mutex_);
  for (const auto& [workspace, entry] : entries) entries_[workspace] = entry;
}

std::optional<LedgerEntry> StackLedger::Get(const std::string& workspace) const {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(workspace);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void StackLedger::Put(const std::string& workspace, const LedgerEntry& entry) {
  {
    std::lock_guard lock(mutex_);
    auto [it, inserted] = entries_.try_emplace(workspace, entry);
    if (!inserted) {
      if (SameEntry(it->second, entry)) return;
      it->second = entry;
    }
  }
  Notify(workspace, entry);
}

void StackLedger::Erase(const std::string& workspace) {
  {
    std::lock_guard lock(mutex_);
    if (entries_.erase(workspace) == 0) return;
  }
  Notify(workspace, std::nullopt);
}

std::map<std::string, LedgerEntry> StackLedger::Snapshot() const {
  std::lock_guard lock(mutex_);
  return entries_;
}

void StackLedger::Record(const std::string& workspace, const Action& action,
                         const ApplyResult& result) {
  std::visit(
      [&](const auto& a) {
        using T = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<T, CreateStack> || std::is_same_v<T, UpdateStack>) {
          Put(workspace, {result.id, result.update_date, crypto::Sha256Hex(a.stack.file)});
        } else if constexpr (std::is_same_v<T, DeleteStack>) {
          {
            std::lock_guard lock(mutex_);
            const auto it = entries_.find(workspace);
            if (it == entries_.end() || it->second.id != a.id) return;
            entries_.erase(it);
          }
          Notify(workspace, std::nullopt);
        }
      },
      action);
}

void StackLedger::RecordObserved(const std::string& workspace, const ObservedStack& stack,
                                 std::string_view file) {
  Put(workspace, {stack.id, stack.update_date, crypto::Sha256Hex(file)});
}

Outcome<std::size_t> StackLedger::Load(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    std::lock_guard lock(mutex_);
    entries_.clear();
    return std::size_t{0};
  }
  auto text = files::Read(path);
  if (!text) return text.failure();
  std::map<std::string, LedgerEntry> loaded;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line.front() == '#') continue;
    std::istringstream fields(line);
    std::string name;
    std::string digest;
    std::string extra;
    LedgerEntry entry;
    if (!(fields >> name >> entry.id >> entry.update_date >> digest) || (fields >> extra)) {
      continue;
    }
    if (!IsPlainName(name) || !IsHexDigest(digest) || entry.id <= 0) continue;
    entry.file_digest = digest;
    loaded[name] = entry;
  }
  std::lock_guard lock(mutex_);
  entries_ = std::move(loaded);
  return entries_.size();
}

Status StackLedger::Save(const std::filesystem::path& path) const {
  std::string text(kHeader);
  for (const auto& [name, entry] : Snapshot()) {
    if (!IsPlainName(name)) continue;  // cannot be read back; costs a file read next time
    text += name + " " + std::to_string(entry.id) + " " + std::to_string(entry.update_date) + " " +
            entry.file_digest + "\n";
  }
  return files::WriteAtomic(path, text, 0600);
}

}  // namespace tmaster::stacks
