#include "common/text.hpp"
#include "controller/store/store_libpq_internal.hpp"

// Suspend overrides (schema v6, tm_overrides; docs/api.md#routes): a suspend set through the API
// on a workspace a source owns, kept until resume clears it, so a restart or another replica
// keeps it.

namespace tmaster::controller::pqstore {
namespace {

constexpr std::string_view kListOverrides =
    "SELECT workspace, suspend, set_by, extract(epoch FROM set_at)::bigint FROM tm_overrides"
    " ORDER BY workspace COLLATE \"C\"";
constexpr std::string_view kSetOverride =
    "INSERT INTO tm_overrides (workspace, suspend, set_by, set_at)"
    " VALUES ($1, $2::boolean, $3, to_timestamp($4::bigint))"
    " ON CONFLICT (workspace) DO UPDATE SET suspend = EXCLUDED.suspend,"
    " set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at";

Outcome<StoredOverride> OverrideAt(PGresult* res, int row) {
  auto at = ParseInt(PQgetvalue(res, row, 3));
  if (!at) return BadValue("tm_overrides");
  StoredOverride override;
  override.workspace = PQgetvalue(res, row, 0);
  override.suspend = std::string_view(PQgetvalue(res, row, 1)) == "t";
  override.by = PQgetvalue(res, row, 2);
  override.at_unix = *at;
  return override;
}

}  // namespace

Outcome<std::vector<StoredOverride>> LibpqStore::ListOverrides() {
  return Run("list overrides", [&](PGconn* conn) -> Outcome<std::vector<StoredOverride>> {
    auto result = Exec(conn, kListOverrides, {});
    if (!result) return result.failure();
    return ReadRows<StoredOverride>(result->get(), OverrideAt);
  });
}

Outcome<Done> LibpqStore::SetOverride(const StoredOverride& override) {
  return Run("set the override of " + Quoted(override.workspace),
             [&](PGconn* conn) -> Outcome<Done> {
               auto result = Exec(conn, kSetOverride,
                                  {override.workspace, override.suspend ? "true" : "false",
                                   override.by, std::to_string(override.at_unix)});
               if (!result) return result.failure();
               return Done{};
             });
}

Outcome<bool> LibpqStore::ClearOverride(const std::string& workspace) {
  return Run("clear the override of " + Quoted(workspace), [&](PGconn* conn) -> Outcome<bool> {
    auto result = Exec(conn, "DELETE FROM tm_overrides WHERE workspace = $1", {workspace});
    if (!result) return result.failure();
    return std::string_view(PQcmdTuples(result->get())) != "0";
  });
}

}  // namespace tmaster::controller::pqstore
