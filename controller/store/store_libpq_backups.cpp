#include <utility>

#include "common/text.hpp"
#include "controller/store/store_libpq_internal.hpp"

// The backup catalog (schema v8, tm_backups; docs/backups.md#the-catalog): one row per backup
// file (or failed attempt), written by the backup runner, read by retention, restore and
// `tenantctl backups`. Rows outlive their workspace.

namespace tmaster::controller::pqstore {
namespace {

constexpr std::string_view kBackupColumns =
    "SELECT id, workspace, kind, file, size_bytes, sha256, duration_ms, server_version,"
    " generation, applied_migration, key_id, table_rows_json, state, reason,"
    " extract(epoch FROM created_at)::bigint, extract(epoch FROM verified_at)::bigint"
    " FROM tm_backups";
constexpr std::string_view kPutBackup =
    "INSERT INTO tm_backups (id, workspace, kind, file, size_bytes, sha256, duration_ms,"
    " server_version, generation, applied_migration, key_id, table_rows_json, state, reason,"
    " created_at, verified_at)"
    " VALUES ($1, $2, $3, $4, $5::bigint, $6, $7::bigint, $8, $9::bigint, $10, $11, $12, $13,"
    " $14, to_timestamp($15::bigint), to_timestamp($16::bigint))"
    " ON CONFLICT (id) DO UPDATE SET workspace = EXCLUDED.workspace, kind = EXCLUDED.kind,"
    " file = EXCLUDED.file, size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256,"
    " duration_ms = EXCLUDED.duration_ms, server_version = EXCLUDED.server_version,"
    " generation = EXCLUDED.generation, applied_migration = EXCLUDED.applied_migration,"
    " key_id = EXCLUDED.key_id, table_rows_json = EXCLUDED.table_rows_json,"
    " state = EXCLUDED.state, reason = EXCLUDED.reason, created_at = EXCLUDED.created_at,"
    " verified_at = EXCLUDED.verified_at";
constexpr std::string_view kUpdateVerification =
    "UPDATE tm_backups SET state = $2, reason = $3, verified_at = to_timestamp($4::bigint)"
    " WHERE id = $1 AND state <> 'failed'";

/// A bigint column of tm_backups, NULL allowed only where `nullable`.
Outcome<std::optional<std::int64_t>> BackupInt(PGresult* res, int row, int column,
                                               bool nullable = false) {
  if (PQgetisnull(res, row, column) != 0) {
    if (nullable) return std::optional<std::int64_t>();
    return BadValue("tm_backups");
  }
  auto value = ParseInt(PQgetvalue(res, row, column));
  if (!value) return BadValue("tm_backups");
  return std::optional<std::int64_t>(*value);
}

/// A row of kBackupColumns.
Outcome<StoredBackup> BackupAt(PGresult* res, int row) {
  auto size = BackupInt(res, row, 4);
  auto duration = BackupInt(res, row, 6);
  auto generation = BackupInt(res, row, 8);
  auto created = BackupInt(res, row, 14);
  auto verified = BackupInt(res, row, 15, /*nullable=*/true);
  for (const auto* value : {&size, &duration, &generation, &created, &verified}) {
    if (!*value) return value->failure();
  }
  StoredBackup backup;
  backup.id = PQgetvalue(res, row, 0);
  backup.workspace = PQgetvalue(res, row, 1);
  backup.kind = PQgetvalue(res, row, 2);
  backup.file = PQgetvalue(res, row, 3);
  backup.size_bytes = **size;
  backup.sha256 = PQgetvalue(res, row, 5);
  backup.duration_ms = **duration;
  backup.server_version = PQgetvalue(res, row, 7);
  backup.generation = **generation;
  backup.applied_migration = PQgetvalue(res, row, 9);
  backup.key_id = PQgetvalue(res, row, 10);
  backup.table_rows_json = PQgetvalue(res, row, 11);
  backup.state = PQgetvalue(res, row, 12);
  backup.reason = PQgetvalue(res, row, 13);
  backup.created_unix = **created;
  backup.verified_unix = *verified;
  return backup;
}

}  // namespace

Outcome<Done> LibpqStore::PutBackup(const StoredBackup& backup) {
  if (std::optional<Failure> bad = CheckBackupRecord(backup)) return *bad;
  return Run("put backup " + Quoted(backup.id), [&](PGconn* conn) -> Outcome<Done> {
    const std::vector<std::optional<std::string>> params = {
        backup.id,
        backup.workspace,
        backup.kind,
        backup.file,
        std::to_string(backup.size_bytes),
        backup.sha256,
        std::to_string(backup.duration_ms),
        backup.server_version,
        std::to_string(backup.generation),
        backup.applied_migration,
        backup.key_id,
        backup.table_rows_json,
        backup.state,
        backup.reason,
        std::to_string(backup.created_unix),
        backup.verified_unix ? std::optional<std::string>(std::to_string(*backup.verified_unix))
                             : std::nullopt};
    auto result = connector_.ExecNullable(conn, kPutBackup, params);
    if (!result) return result.failure();
    return Done{};
  });
}

Outcome<std::optional<StoredBackup>> LibpqStore::FindBackup(const std::string& id) {
  return Run("find backup " + Quoted(id),
             [&](PGconn* conn) -> Outcome<std::optional<StoredBackup>> {
               auto result = Exec(conn, std::string(kBackupColumns) + " WHERE id = $1", {id});
               if (!result) return result.failure();
               return ReadOptional<StoredBackup>(result->get(), BackupAt);
             });
}

Outcome<std::vector<StoredBackup>> LibpqStore::ListBackups(
    const std::optional<std::string>& workspace) {
  const std::string step =
      workspace ? "list the backups of " + Quoted(*workspace) : std::string("list backups");
  return Run(step, [&](PGconn* conn) -> Outcome<std::vector<StoredBackup>> {
    constexpr std::string_view kOrder =
        " ORDER BY workspace COLLATE \"C\", created_at DESC, id COLLATE \"C\" DESC";
    auto result =
        workspace
            ? Exec(conn,
                   std::string(kBackupColumns) + " WHERE workspace = $1" + std::string(kOrder),
                   {*workspace})
            : Exec(conn, std::string(kBackupColumns) + std::string(kOrder), {});
    if (!result) return result.failure();
    return ReadRows<StoredBackup>(result->get(), BackupAt);
  });
}

Outcome<bool> LibpqStore::UpdateBackupVerification(const std::string& id, const std::string& state,
                                                   const std::string& reason,
                                                   std::int64_t at_unix) {
  if (state != "verified" && state != "verifyFailed") {
    return Failure::Stalled("InvalidValue", "backup " + Quoted(id) +
                                                ": a verification's state must be verified or "
                                                "verifyFailed, not " +
                                                Quoted(state));
  }
  return Run("record the verification of backup " + Quoted(id), [&](PGconn* conn) -> Outcome<bool> {
    auto result = Exec(conn, kUpdateVerification, {id, state, reason, std::to_string(at_unix)});
    if (!result) return result.failure();
    return std::string_view(PQcmdTuples(result->get())) != "0";
  });
}

Outcome<bool> LibpqStore::DeleteBackup(const std::string& id) {
  return Run("delete backup " + Quoted(id), [&](PGconn* conn) -> Outcome<bool> {
    auto result = Exec(conn, "DELETE FROM tm_backups WHERE id = $1", {id});
    if (!result) return result.failure();
    return std::string_view(PQcmdTuples(result->get())) != "0";
  });
}

}  // namespace tmaster::controller::pqstore
