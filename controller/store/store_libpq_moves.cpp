#include <functional>
#include <string>

#include "common/text.hpp"
#include "controller/store/store_libpq_internal.hpp"

// Moves (schema v13, tm_moves; docs/moves.md): each workspace's newest move, written only by the
// writer that read the version it replaces; the switch moves the placement and the recorded
// identity in the same transaction.

namespace tmaster::controller::pqstore {
namespace {

constexpr std::string_view kMoveColumns =
    "SELECT workspace, id, from_cluster, to_cluster, state, step, message, reason, verified, who,"
    " suspended_by_move, switched, target_created, requested_unix, updated_unix, finished_unix,"
    " pruned_unix, downtime_ms, version FROM tm_moves";
constexpr std::string_view kInsertMove =
    "INSERT INTO tm_moves (workspace, id, from_cluster, to_cluster, state, step, message, reason,"
    " verified, who, suspended_by_move, switched, target_created, requested_unix, updated_unix,"
    " finished_unix, pruned_unix, downtime_ms, version)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::boolean, $12::boolean, $13::boolean,"
    " $14::bigint, $15::bigint, $16::bigint, $17::bigint, $18::bigint, 1)"
    " ON CONFLICT (workspace) DO NOTHING";
constexpr std::string_view kUpdateMove =
    "UPDATE tm_moves SET id = $2, from_cluster = $3, to_cluster = $4, state = $5, step = $6,"
    " message = $7, reason = $8, verified = $9, who = $10, suspended_by_move = $11::boolean,"
    " switched = $12::boolean, target_created = $13::boolean, requested_unix = $14::bigint,"
    " updated_unix = $15::bigint, finished_unix = $16::bigint, pruned_unix = $17::bigint,"
    " downtime_ms = $18::bigint, version = version + 1 WHERE workspace = $1 AND version = $19::bigint";
// The placement becomes the target whether or not one was recorded (a workspace placed before
// placements were recorded has only its identity).
constexpr std::string_view kSwitchPlacement =
    "INSERT INTO tm_placements (workspace, cluster, placed_at)"
    " VALUES ($1, $2, to_timestamp($3::bigint))"
    " ON CONFLICT (workspace) DO UPDATE SET cluster = EXCLUDED.cluster";
constexpr std::string_view kSwitchIdentity =
    "UPDATE tm_workspaces SET identity_cluster = $2"
    " WHERE name = $1 AND identity_product IS NOT NULL";

Outcome<StoredMove> MoveAt(PGresult* res, int row) {
  StoredMove move;
  move.workspace = PQgetvalue(res, row, 0);
  move.id = PQgetvalue(res, row, 1);
  move.from_cluster = PQgetvalue(res, row, 2);
  move.to_cluster = PQgetvalue(res, row, 3);
  move.state = PQgetvalue(res, row, 4);
  move.step = PQgetvalue(res, row, 5);
  move.message = PQgetvalue(res, row, 6);
  move.reason = PQgetvalue(res, row, 7);
  move.verified = PQgetvalue(res, row, 8);
  move.who = PQgetvalue(res, row, 9);
  move.suspended_by_move = std::string_view(PQgetvalue(res, row, 10)) == "t";
  move.switched = std::string_view(PQgetvalue(res, row, 11)) == "t";
  move.target_created = std::string_view(PQgetvalue(res, row, 12)) == "t";
  std::int64_t* numbers[] = {&move.requested_unix, &move.updated_unix, &move.finished_unix,
                             &move.pruned_unix,    &move.downtime_ms,  &move.version};
  for (int i = 0; i < 6; ++i) {
    const auto value = ParseInt(PQgetvalue(res, row, 13 + i));
    if (!value) return BadValue("tm_moves");
    *numbers[i] = *value;
  }
  return move;
}

std::vector<std::string> MoveParams(const StoredMove& move, std::int64_t now_unix) {
  const auto flag = [](bool on) { return std::string(on ? "true" : "false"); };
  return {move.workspace,
          move.id,
          move.from_cluster,
          move.to_cluster,
          move.state,
          move.step,
          move.message,
          move.reason,
          move.verified,
          move.who,
          flag(move.suspended_by_move),
          flag(move.switched),
          flag(move.target_created),
          std::to_string(move.requested_unix),
          std::to_string(now_unix),
          std::to_string(move.finished_unix),
          std::to_string(move.pruned_unix),
          std::to_string(move.downtime_ms)};
}

std::optional<Failure> CheckMove(const StoredMove& move) {
  if (move.workspace.empty() || move.id.empty()) {
    return Failure::Stalled("InvalidValue", "a move needs a workspace and an id");
  }
  if (move.version < 0) return Failure::Stalled("InvalidValue", "a move's version is never negative");
  return std::nullopt;
}

}  // namespace

Outcome<std::vector<StoredMove>> LibpqStore::ListMoves() {
  return Run("list moves", [&](PGconn* conn) -> Outcome<std::vector<StoredMove>> {
    auto result = Exec(conn, std::string(kMoveColumns) + " ORDER BY workspace COLLATE \"C\"", {});
    if (!result) return result.failure();
    return ReadRows<StoredMove>(result->get(), MoveAt);
  });
}

Outcome<std::optional<StoredMove>> LibpqStore::FindMove(const std::string& workspace) {
  return Run("read the move of workspace " + Quoted(workspace),
             [&](PGconn* conn) -> Outcome<std::optional<StoredMove>> {
               auto result =
                   Exec(conn, std::string(kMoveColumns) + " WHERE workspace = $1", {workspace});
               if (!result) return result.failure();
               return ReadOptional<StoredMove>(result->get(), MoveAt);
             });
}

namespace {

// In the caller's transaction (or alone): the versioned write. nullopt: the version moved on.
Outcome<std::optional<std::int64_t>> WriteMove(
    const std::function<Outcome<pq::ResultPtr>(std::string_view,
                                               const std::vector<std::string>&)>& exec,
    const StoredMove& move, std::int64_t now_unix) {
  std::vector<std::string> params = MoveParams(move, now_unix);
  if (move.version != 0) params.push_back(std::to_string(move.version));
  auto result = exec(move.version == 0 ? kInsertMove : kUpdateMove, params);
  if (!result) return result.failure();
  if (std::string_view(PQcmdTuples(result->get())) == "0") return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(move.version + 1);
}

}  // namespace

Outcome<std::optional<std::int64_t>> LibpqStore::PutMove(const StoredMove& move,
                                                         std::int64_t now_unix) {
  if (std::optional<Failure> bad = CheckMove(move)) return *bad;
  return Run("write the move of workspace " + Quoted(move.workspace),
             [&](PGconn* conn) -> Outcome<std::optional<std::int64_t>> {
               return WriteMove(
                   [&](std::string_view sql, const std::vector<std::string>& params) {
                     return Exec(conn, sql, params);
                   },
                   move, now_unix);
             });
}

Outcome<std::optional<std::int64_t>> LibpqStore::SwitchPlacement(const StoredMove& move,
                                                                 std::int64_t now_unix) {
  if (std::optional<Failure> bad = CheckMove(move)) return *bad;
  if (move.to_cluster.empty()) {
    return Failure::Stalled("InvalidValue", "a move's switch needs its target cluster");
  }
  return Run("switch the placement of workspace " + Quoted(move.workspace),
             [&](PGconn* conn) -> Outcome<std::optional<std::int64_t>> {
               if (auto begun = Exec(conn, "BEGIN", {}); !begun) return begun.failure();
               const auto in_transaction = [&]() -> Outcome<std::optional<std::int64_t>> {
                 auto written = WriteMove(
                     [&](std::string_view sql, const std::vector<std::string>& params) {
                       return Exec(conn, sql, params);
                     },
                     move, now_unix);
                 if (!written || !*written) return written;
                 if (auto placed = Exec(conn, kSwitchPlacement,
                                        {move.workspace, move.to_cluster,
                                         std::to_string(now_unix)});
                     !placed) {
                   return placed.failure();
                 }
                 if (auto identity =
                         Exec(conn, kSwitchIdentity, {move.workspace, move.to_cluster});
                     !identity) {
                   return identity.failure();
                 }
                 return written;
               };
               Outcome<std::optional<std::int64_t>> out = in_transaction();
               if (!out || !*out) {
                 (void)Exec(conn, "ROLLBACK", {});
                 return out;
               }
               if (auto committed = Exec(conn, "COMMIT", {}); !committed) {
                 return committed.failure();
               }
               return out;
             });
}

}  // namespace tmaster::controller::pqstore
