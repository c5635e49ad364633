#include "controller/backups/retention.hpp"

#include <algorithm>

namespace tmaster::backups {
namespace {

std::string AgeText(std::int64_t seconds) {
  if (seconds % 86400 == 0) return std::to_string(seconds / 86400) + " days";
  return std::to_string(seconds) + " s";
}

bool NewerThan(const RetentionEntry* a, const RetentionEntry* b) {
  if (a->created_unix != b->created_unix) return a->created_unix > b->created_unix;
  return a->id > b->id;
}

}  // namespace

std::string_view ToString(BackupKind kind) {
  switch (kind) {
    case BackupKind::kScheduled: return "scheduled";
    case BackupKind::kManual: return "manual";
    case BackupKind::kPreMigration: return "pre-migration";
    case BackupKind::kSafety: return "safety";
    case BackupKind::kFinal: return "final";
  }
  return "unknown";
}

std::string_view ToString(BackupState state) {
  switch (state) {
    case BackupState::kOk: return "ok";
    case BackupState::kVerified: return "verified";
    case BackupState::kVerifyFailed: return "verifyFailed";
    case BackupState::kFailed: return "failed";
  }
  return "unknown";
}

std::vector<Removal> SelectRemovals(const std::vector<RetentionEntry>& entries,
                                    const RetentionPolicy& policy, std::int64_t now_unix) {
  std::vector<const RetentionEntry*> newest_first;
  newest_first.reserve(entries.size());
  for (const RetentionEntry& entry : entries) newest_first.push_back(&entry);
  std::sort(newest_first.begin(), newest_first.end(), NewerThan);

  const RetentionEntry* newest_verified = nullptr;
  const RetentionEntry* newest_pre_migration = nullptr;
  for (const RetentionEntry* entry : newest_first) {
    if (newest_verified == nullptr && entry->state == BackupState::kVerified) {
      newest_verified = entry;
    }
    if (newest_pre_migration == nullptr && entry->kind == BackupKind::kPreMigration &&
        entry->state != BackupState::kFailed) {
      newest_pre_migration = entry;
    }
  }

  const int keep = std::max(policy.keep, 1);
  int scheduled = 0;
  std::vector<Removal> removals;
  for (const RetentionEntry* entry : newest_first) {
    if (entry->kind == BackupKind::kFinal || entry == newest_verified) {
      if (entry->kind == BackupKind::kScheduled) ++scheduled;
      continue;
    }
    const bool expired = now_unix - entry->created_unix > policy.keep_other_seconds;
    if (entry->state == BackupState::kFailed) {
      if (expired) {
        removals.push_back({entry->id, "failed " + std::string(ToString(entry->kind)) +
                                           " attempt older than " +
                                           AgeText(policy.keep_other_seconds)});
      }
      continue;
    }
    if (entry->kind == BackupKind::kScheduled) {
      ++scheduled;
      if (scheduled > keep) {
        removals.push_back({entry->id, "scheduled backup beyond keep " + std::to_string(keep) +
                                           " (" + std::to_string(scheduled - 1) + " newer)"});
      }
      continue;
    }
    if (expired && entry != newest_pre_migration) {
      removals.push_back({entry->id, std::string(ToString(entry->kind)) + " backup older than " +
                                         AgeText(policy.keep_other_seconds)});
    }
  }
  std::reverse(removals.begin(), removals.end());
  return removals;
}

}  // namespace tmaster::backups
