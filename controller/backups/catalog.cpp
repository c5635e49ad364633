#include "controller/backups/catalog.hpp"

#include <array>
#include <ctime>

namespace tmaster::backups {

std::optional<BackupKind> ParseBackupKind(std::string_view word) {
  for (const BackupKind kind :
       {BackupKind::kScheduled, BackupKind::kManual, BackupKind::kPreMigration, BackupKind::kSafety,
        BackupKind::kFinal}) {
    if (ToString(kind) == word) return kind;
  }
  return std::nullopt;
}

std::optional<BackupState> ParseBackupState(std::string_view word) {
  for (const BackupState state : {BackupState::kOk, BackupState::kVerified,
                                  BackupState::kVerifyFailed, BackupState::kFailed}) {
    if (ToString(state) == word) return state;
  }
  return std::nullopt;
}

std::string NewBackupId(std::string_view workspace, std::int64_t created_unix,
                        std::string_view suffix) {
  const auto time = static_cast<std::time_t>(created_unix);
  std::tm utc{};
  gmtime_r(&time, &utc);
  std::array<char, 32> stamp{};
  const std::size_t n = std::strftime(stamp.data(), stamp.size(), "%Y%m%dT%H%M%SZ", &utc);
  std::string id(workspace);
  id += '-';
  id.append(stamp.data(), n);
  id += '-';
  id += suffix;
  return id;
}

std::vector<RetentionEntry> ToRetentionEntries(const std::vector<controller::StoredBackup>& rows) {
  std::vector<RetentionEntry> entries;
  entries.reserve(rows.size());
  for (const controller::StoredBackup& row : rows) {
    const std::optional<BackupKind> kind = ParseBackupKind(row.kind);
    const std::optional<BackupState> state = ParseBackupState(row.state);
    if (!kind || !state) continue;
    entries.push_back({row.id, *kind, row.created_unix, *state});
  }
  return entries;
}

}  // namespace tmaster::backups
