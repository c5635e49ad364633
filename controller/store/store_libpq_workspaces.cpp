#include <utility>

#include "common/crypto.hpp"
#include "common/text.hpp"
#include "controller/store/store_libpq_internal.hpp"

// Workspaces (specs, generations, deletion marks) and their status.

namespace tmaster::controller::pqstore {
namespace {

constexpr std::string_view kWorkspaceColumns =
    "name, source, revision, spec_json, spec_digest, generation,"
    " to_char(deleting_since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " identity_product, identity_cluster, identity_database, identity_owner, stack_endpoint,"
    " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

const std::string kUpsertSpec =
    "INSERT INTO tm_workspaces AS w (name, source, revision, spec_json, spec_digest, generation)"
    " VALUES ($1, $2, $3, $4, $5, 1)"
    " ON CONFLICT (name) DO UPDATE SET source = EXCLUDED.source, revision = EXCLUDED.revision,"
    " spec_json = EXCLUDED.spec_json, spec_digest = EXCLUDED.spec_digest,"
    " generation = w.generation"
    "   + CASE WHEN w.spec_digest = EXCLUDED.spec_digest THEN 0 ELSE 1 END,"
    " updated_at = now()"
    " RETURNING " +
    std::string(kWorkspaceColumns);
// "Ordered by name" is byte order (COLLATE "C"), whatever the database's locale: the same order
// as the in-memory fake, and names with '-' sort the same everywhere.
const std::string kListAll =
    "SELECT " + std::string(kWorkspaceColumns) + " FROM tm_workspaces ORDER BY name COLLATE \"C\"";
const std::string kListSource = "SELECT " + std::string(kWorkspaceColumns) +
                                " FROM tm_workspaces WHERE source = $1 ORDER BY name COLLATE \"C\"";
const std::string kGet =
    "SELECT " + std::string(kWorkspaceColumns) + " FROM tm_workspaces WHERE name = $1";
const std::string kMarkDeleting =
    "UPDATE tm_workspaces SET deleting_since = coalesce(deleting_since, now()), updated_at = now()"
    " WHERE name = $1 RETURNING " +
    std::string(kWorkspaceColumns);
const std::string kCancelDeleting =
    "UPDATE tm_workspaces SET deleting_since = NULL, updated_at = now()"
    " WHERE name = $1 RETURNING " +
    std::string(kWorkspaceColumns);
// Only the first convergence records: a recorded identity is never overwritten.
const std::string kRecordIdentity =
    "UPDATE tm_workspaces SET identity_product = $2, identity_cluster = $3,"
    " identity_database = $4, identity_owner = $5"
    " WHERE name = $1 AND identity_product IS NULL RETURNING " +
    std::string(kWorkspaceColumns);
constexpr std::string_view kRecordStackEndpoint =
    "UPDATE tm_workspaces SET stack_endpoint = $2::integer WHERE name = $1";
constexpr std::string_view kRemove =
    "WITH s AS (DELETE FROM tm_workspace_status WHERE name = $1)"
    " DELETE FROM tm_workspaces WHERE name = $1";
constexpr std::string_view kPutStatus =
    "INSERT INTO tm_workspace_status (name, observed_generation, phase, conditions_json,"
    " last_error, next_retry, revision, last_runs_json, product_revision, attempted_revision,"
    " rollout_attempt, pre_migration_backup)"
    " VALUES ($1, $2::bigint, $3, $4, $5, to_timestamp($6::bigint), $7, $8, $9::integer,"
    " $10::integer, $11::bigint, $12)"
    " ON CONFLICT (name) DO UPDATE SET observed_generation = EXCLUDED.observed_generation,"
    " phase = EXCLUDED.phase, conditions_json = EXCLUDED.conditions_json,"
    " last_error = EXCLUDED.last_error, next_retry = EXCLUDED.next_retry,"
    " revision = EXCLUDED.revision, last_runs_json = EXCLUDED.last_runs_json,"
    " product_revision = EXCLUDED.product_revision,"
    " attempted_revision = EXCLUDED.attempted_revision,"
    " rollout_attempt = EXCLUDED.rollout_attempt,"
    " pre_migration_backup = EXCLUDED.pre_migration_backup, updated_at = now()";
constexpr std::string_view kStatusColumns =
    "SELECT name, observed_generation, phase, conditions_json, last_error,"
    " extract(epoch FROM next_retry)::bigint, revision, last_runs_json, product_revision,"
    " attempted_revision, rollout_attempt, pre_migration_backup FROM tm_workspace_status";
const std::string kGetStatus = std::string(kStatusColumns) + " WHERE name = $1";
const std::string kListStatuses = std::string(kStatusColumns) + " ORDER BY name COLLATE \"C\"";

Outcome<StoredWorkspace> WorkspaceAt(PGresult* res, int row) {
  if (row >= PQntuples(res)) return BadValue("tm_workspaces");
  StoredWorkspace workspace;
  workspace.name = PQgetvalue(res, row, 0);
  workspace.source = PQgetvalue(res, row, 1);
  workspace.revision = PQgetvalue(res, row, 2);
  workspace.spec_json = PQgetvalue(res, row, 3);
  workspace.spec_digest = PQgetvalue(res, row, 4);
  auto generation = ParseInt(PQgetvalue(res, row, 5));
  if (!generation) return BadValue("tm_workspaces.generation");
  workspace.generation = *generation;
  if (PQgetisnull(res, row, 6) == 0) workspace.deleting_since = PQgetvalue(res, row, 6);
  if (PQgetisnull(res, row, 7) == 0) {
    workspace.identity = WorkspaceIdentity{PQgetvalue(res, row, 7), PQgetvalue(res, row, 8),
                                           PQgetvalue(res, row, 9), PQgetvalue(res, row, 10)};
  }
  if (PQgetisnull(res, row, 11) == 0) {
    auto endpoint = ParseInt(PQgetvalue(res, row, 11));
    if (!endpoint) return BadValue("tm_workspaces.stack_endpoint");
    workspace.stack_endpoint = static_cast<int>(*endpoint);
  }
  if (PQgetisnull(res, row, 12) == 0) workspace.created_at = PQgetvalue(res, row, 12);
  return workspace;
}

/// A row of kStatusColumns.
Outcome<WorkspaceStatus> StatusAt(PGresult* res, int row) {
  WorkspaceStatus status;
  status.name = PQgetvalue(res, row, 0);
  auto generation = ParseInt(PQgetvalue(res, row, 1));
  if (!generation) return BadValue("tm_workspace_status.observed_generation");
  status.observed_generation = *generation;
  status.phase = PQgetvalue(res, row, 2);
  status.conditions_json = PQgetvalue(res, row, 3);
  status.last_error = PQgetvalue(res, row, 4);
  if (PQgetisnull(res, row, 5) == 0) {
    status.next_retry_unix = ParseInt(PQgetvalue(res, row, 5));
    if (!status.next_retry_unix) return BadValue("tm_workspace_status.next_retry");
  }
  status.revision = PQgetvalue(res, row, 6);
  status.last_runs_json = PQgetvalue(res, row, 7);
  auto product_revision = ParseInt(PQgetvalue(res, row, 8));
  auto attempted_revision = ParseInt(PQgetvalue(res, row, 9));
  auto attempt = ParseInt(PQgetvalue(res, row, 10));
  if (!product_revision || !attempted_revision || !attempt) {
    return BadValue("tm_workspace_status.product_revision");
  }
  status.product_revision = static_cast<int>(*product_revision);
  status.attempted_revision = static_cast<int>(*attempted_revision);
  status.rollout_attempt = *attempt;
  status.pre_migration_backup = PQgetvalue(res, row, 11);
  return status;
}

}  // namespace

Outcome<StoredWorkspace> LibpqStore::UpsertSpec(const std::string& name, const std::string& source,
                                                const std::string& revision,
                                                const std::string& spec_json) {
  const std::string digest = crypto::Sha256Hex(spec_json);
  return Run("upsert spec of workspace " + Quoted(name),
             [&](PGconn* conn) -> Outcome<StoredWorkspace> {
               auto result = Exec(conn, kUpsertSpec, {name, source, revision, spec_json, digest});
               if (!result) return result.failure();
               return WorkspaceAt(result->get(), 0);
             });
}

Outcome<std::vector<StoredWorkspace>> LibpqStore::ListWorkspaces(
    const std::optional<std::string>& source) {
  return Run("list workspaces", [&](PGconn* conn) -> Outcome<std::vector<StoredWorkspace>> {
    auto result = source ? Exec(conn, kListSource, {*source}) : Exec(conn, kListAll, {});
    if (!result) return result.failure();
    return ReadRows<StoredWorkspace>(result->get(), WorkspaceAt);
  });
}

Outcome<std::optional<StoredWorkspace>> LibpqStore::Get(const std::string& name) {
  return Run("read workspace " + Quoted(name),
             [&](PGconn* conn) -> Outcome<std::optional<StoredWorkspace>> {
               auto result = Exec(conn, kGet, {name});
               if (!result) return result.failure();
               return ReadOptional<StoredWorkspace>(result->get(), WorkspaceAt);
             });
}

Outcome<StoredWorkspace> LibpqStore::MarkDeleting(const std::string& name) {
  return UpdateWorkspace("mark workspace " + Quoted(name) + " deleting", kMarkDeleting, name);
}

Outcome<StoredWorkspace> LibpqStore::CancelDeleting(const std::string& name) {
  return UpdateWorkspace("cancel the deletion of workspace " + Quoted(name), kCancelDeleting, name);
}

Outcome<StoredWorkspace> LibpqStore::UpdateWorkspace(const std::string& step, std::string_view sql,
                                                     const std::string& name) {
  return Run(step, [&](PGconn* conn) -> Outcome<StoredWorkspace> {
    auto result = Exec(conn, sql, {name});
    if (!result) return result.failure();
    if (PQntuples(result->get()) == 0) {
      return Failure::Stalled("WorkspaceNotFound", "no workspace of that name is stored");
    }
    return WorkspaceAt(result->get(), 0);
  });
}

Outcome<StoredWorkspace> LibpqStore::RecordIdentity(const std::string& name,
                                                    const WorkspaceIdentity& identity) {
  return Run("record the identity of workspace " + Quoted(name),
             [&](PGconn* conn) -> Outcome<StoredWorkspace> {
               auto result = Exec(conn, kRecordIdentity,
                                  {name, identity.product, identity.cluster, identity.database,
                                   identity.owner});
               if (!result) return result.failure();
               if (PQntuples(result->get()) > 0) return WorkspaceAt(result->get(), 0);
               auto stored = Exec(conn, kGet, {name});  // already recorded, or absent
               if (!stored) return stored.failure();
               if (PQntuples(stored->get()) == 0) {
                 return Failure::Stalled("WorkspaceNotFound", "no workspace of that name is stored");
               }
               return WorkspaceAt(stored->get(), 0);
             });
}

Outcome<Done> LibpqStore::RecordStackEndpoint(const std::string& name,
                                              std::optional<int> endpoint) {
  return Run("record the stack endpoint of workspace " + Quoted(name),
             [&](PGconn* conn) -> Outcome<Done> {
               std::vector<std::optional<std::string>> params = {name, std::nullopt};
               if (endpoint) params[1] = std::to_string(*endpoint);
               auto result = connector_.ExecNullable(conn, kRecordStackEndpoint, params);
               if (!result) return result.failure();
               if (std::string_view(PQcmdTuples(result->get())) == "0") {
                 return Failure::Stalled("WorkspaceNotFound", "no workspace of that name is stored");
               }
               return Done{};
             });
}

Outcome<bool> LibpqStore::Remove(const std::string& name) {
  return Run("remove workspace " + Quoted(name), [&](PGconn* conn) -> Outcome<bool> {
    auto result = Exec(conn, kRemove, {name});
    if (!result) return result.failure();
    return std::string_view(PQcmdTuples(result->get())) != "0";
  });
}

Outcome<Done> LibpqStore::PutStatus(const WorkspaceStatus& status) {
  return Run("store status of workspace " + Quoted(status.name),
             [&](PGconn* conn) -> Outcome<Done> {
               std::vector<std::optional<std::string>> params = {
                   status.name,       std::to_string(status.observed_generation),
                   status.phase,      status.conditions_json,
                   status.last_error, std::nullopt,
                   status.revision,   status.last_runs_json,
                   std::to_string(status.product_revision),
                   std::to_string(status.attempted_revision),
                   std::to_string(status.rollout_attempt),
                   status.pre_migration_backup};
               if (status.next_retry_unix) params[5] = std::to_string(*status.next_retry_unix);
               auto result = connector_.ExecNullable(conn, kPutStatus, params);
               if (!result) return result.failure();
               return Done{};
             });
}

Outcome<std::optional<WorkspaceStatus>> LibpqStore::GetStatus(const std::string& name) {
  return Run("read status of workspace " + Quoted(name),
             [&](PGconn* conn) -> Outcome<std::optional<WorkspaceStatus>> {
               auto result = Exec(conn, kGetStatus, {name});
               if (!result) return result.failure();
               return ReadOptional<WorkspaceStatus>(result->get(), StatusAt);
             });
}

Outcome<std::vector<WorkspaceStatus>> LibpqStore::ListStatuses() {
  return Run("list workspace statuses", [&](PGconn* conn) -> Outcome<std::vector<WorkspaceStatus>> {
    auto result = Exec(conn, kListStatuses, {});
    if (!result) return result.failure();
    return ReadRows<WorkspaceStatus>(result->get(), StatusAt);
  });
}

}  // namespace tmaster::controller::pqstore
