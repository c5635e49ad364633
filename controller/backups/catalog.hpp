#pragma once
// Between the store's catalog rows (controller/store/store.hpp, StoredBackup, kinds and states as
// text) and the backups room's types: the words both sides use, the ids of new backups, and the
// entries retention reads. docs/backups.md#the-catalog.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/backups/retention.hpp"
#include "controller/store/store.hpp"

namespace tmaster::backups {

/// The kind `ToString(kind)` wrote; nullopt for any other word.
std::optional<BackupKind> ParseBackupKind(std::string_view word);
/// The state `ToString(state)` wrote; nullopt for any other word.
std::optional<BackupState> ParseBackupState(std::string_view word);

/// The id of a new backup of `workspace` taken at `created_unix`:
/// `<workspace>-<YYYYMMDD>T<HHMMSS>Z-<suffix>`, e.g. `acme-20261203T030000Z-k3x9`. The time
/// makes a folder listing read in order; `suffix` (a few random lower-case letters and digits
/// from the caller, so two backups of one second differ) keeps ids unique. Workspace names
/// are DNS labels, so the id is a valid catalog id and file name (CheckBackupRecord).
std::string NewBackupId(std::string_view workspace, std::int64_t created_unix,
                        std::string_view suffix);

/// The catalog rows as retention reads them. A row whose kind or state is not a known word
/// (the table's constraints make that impossible) is left out, so it is never removed by
/// mistake.
std::vector<RetentionEntry> ToRetentionEntries(const std::vector<controller::StoredBackup>& rows);

}  // namespace tmaster::backups
