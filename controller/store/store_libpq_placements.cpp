#include <string>

#include "common/text.hpp"
#include "controller/store/store_libpq_internal.hpp"

// Placements (schema v12, tm_placements; docs/placement.md): the first writer's choice stays.

namespace tmaster::controller::pqstore {
namespace {

constexpr std::string_view kPlacementColumns =
    "SELECT workspace, cluster, extract(epoch FROM placed_at)::bigint FROM tm_placements";
constexpr std::string_view kInsertPlacement =
    "INSERT INTO tm_placements (workspace, cluster, placed_at)"
    " VALUES ($1, $2, to_timestamp($3::bigint)) ON CONFLICT (workspace) DO NOTHING";

Outcome<StoredPlacement> PlacementAt(PGresult* res, int row) {
  const auto placed = ParseInt(PQgetvalue(res, row, 2));
  if (!placed) return BadValue("tm_placements");
  return StoredPlacement{PQgetvalue(res, row, 0), PQgetvalue(res, row, 1), *placed};
}

}  // namespace

Outcome<std::vector<StoredPlacement>> LibpqStore::ListPlacements() {
  return Run("list placements", [&](PGconn* conn) -> Outcome<std::vector<StoredPlacement>> {
    auto result =
        Exec(conn, std::string(kPlacementColumns) + " ORDER BY workspace COLLATE \"C\"", {});
    if (!result) return result.failure();
    return ReadRows<StoredPlacement>(result->get(), PlacementAt);
  });
}

Outcome<StoredPlacement> LibpqStore::RecordPlacement(const std::string& workspace,
                                                     const std::string& cluster,
                                                     std::int64_t now_unix) {
  if (workspace.empty() || cluster.empty()) {
    return Failure::Stalled("InvalidValue", "a placement needs a workspace and a cluster");
  }
  return Run("record the placement of workspace " + Quoted(workspace),
             [&](PGconn* conn) -> Outcome<StoredPlacement> {
               auto inserted =
                   Exec(conn, kInsertPlacement, {workspace, cluster, std::to_string(now_unix)});
               if (!inserted) return inserted.failure();
               auto found = Exec(conn, std::string(kPlacementColumns) + " WHERE workspace = $1",
                                 {workspace});
               if (!found) return found.failure();
               auto placement = ReadOptional<StoredPlacement>(found->get(), PlacementAt);
               if (!placement) return placement.failure();
               if (!*placement) return BadValue("tm_placements");
               return **placement;
             });
}

Outcome<bool> LibpqStore::RemovePlacement(const std::string& workspace) {
  return Run("forget the placement of workspace " + Quoted(workspace),
             [&](PGconn* conn) -> Outcome<bool> {
               auto result =
                   Exec(conn, "DELETE FROM tm_placements WHERE workspace = $1", {workspace});
               if (!result) return result.failure();
               return std::string_view(PQcmdTuples(result->get())) != "0";
             });
}

}  // namespace tmaster::controller::pqstore
