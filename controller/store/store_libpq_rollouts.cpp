#include <set>
#include <string>
#include <utility>

#include "common/text.hpp"
#include "controller/store/store_libpq_internal.hpp"

// Product revisions and rollouts (schema v10, tm_product_revisions and tm_rollouts;
// docs/rollouts.md): revisions numbered per product in one statement, a rollout written only over
// the version it was read at.

namespace tmaster::controller::pqstore {
namespace {

constexpr std::string_view kRevisionColumns =
    "SELECT product, number, digest, spec_json, extract(epoch FROM created_at)::bigint"
    " FROM tm_product_revisions";
// The next number and the insert in one statement; a digest seen before inserts nothing. Two
// writers of different digests at once collide on the primary key: the loser retries.
constexpr std::string_view kRecordRevision =
    "INSERT INTO tm_product_revisions (product, number, digest, spec_json, created_at)"
    " SELECT $1, coalesce(max(number), 0) + 1, $2, $3, to_timestamp($4::bigint)"
    " FROM tm_product_revisions WHERE product = $1"
    " ON CONFLICT (product, digest) DO NOTHING";
// Older than the `history` newest, and not kept; the newest always stays, so the next number
// (max + 1) is never one that was used before.
constexpr std::string_view kPruneRevisions =
    "WITH gone AS (DELETE FROM tm_product_revisions WHERE product = $1"
    " AND number <= (SELECT max(number) FROM tm_product_revisions WHERE product = $1) - $2::int"
    " AND NOT (number = ANY($3::int[])) RETURNING 1)"
    " SELECT count(*) FROM gone";
constexpr std::string_view kRolloutColumns =
    "SELECT product, version, state_json, extract(epoch FROM updated_at)::bigint FROM tm_rollouts";
constexpr std::string_view kInsertRollout =
    "INSERT INTO tm_rollouts (product, version, state_json, updated_at)"
    " VALUES ($1, 1, $2, to_timestamp($3::bigint)) ON CONFLICT (product) DO NOTHING";
constexpr std::string_view kUpdateRollout =
    "UPDATE tm_rollouts SET version = version + 1, state_json = $3,"
    " updated_at = to_timestamp($4::bigint) WHERE product = $1 AND version = $2::bigint";

Outcome<StoredRevision> RevisionAt(PGresult* res, int row) {
  const auto number = ParseInt(PQgetvalue(res, row, 1));
  const auto created = ParseInt(PQgetvalue(res, row, 4));
  if (!number || !created || *number < 1 || *number > 2147483647) {
    return BadValue("tm_product_revisions");
  }
  StoredRevision revision;
  revision.product = PQgetvalue(res, row, 0);
  revision.number = static_cast<int>(*number);
  revision.digest = PQgetvalue(res, row, 2);
  revision.spec_json = PQgetvalue(res, row, 3);
  revision.created_unix = *created;
  return revision;
}

Outcome<StoredRollout> RolloutAt(PGresult* res, int row) {
  const auto version = ParseInt(PQgetvalue(res, row, 1));
  const auto updated = ParseInt(PQgetvalue(res, row, 3));
  if (!version || !updated) return BadValue("tm_rollouts");
  StoredRollout rollout;
  rollout.product = PQgetvalue(res, row, 0);
  rollout.version = *version;
  rollout.state_json = PQgetvalue(res, row, 2);
  rollout.updated_unix = *updated;
  return rollout;
}

}  // namespace

Outcome<StoredRevision> LibpqStore::RecordRevision(const std::string& product,
                                                   const std::string& digest,
                                                   const std::string& spec_json,
                                                   std::int64_t now_unix) {
  if (std::optional<Failure> bad = CheckRevisionRecord(product, digest)) return *bad;
  return Run("record a revision of product " + Quoted(product),
             [&](PGconn* conn) -> Outcome<StoredRevision> {
               for (int attempt = 0;; ++attempt) {
                 auto inserted =
                     Exec(conn, kRecordRevision, {product, digest, spec_json, std::to_string(now_unix)});
                 // A concurrent writer took the number: the next attempt takes the one after.
                 if (!inserted && attempt < 3 &&
                     inserted.failure().message.find("SQLSTATE 23505") != std::string::npos) {
                   continue;
                 }
                 if (!inserted) return inserted.failure();
                 auto found = Exec(conn,
                                   std::string(kRevisionColumns) +
                                       " WHERE product = $1 AND digest = $2",
                                   {product, digest});
                 if (!found) return found.failure();
                 auto revision = ReadOptional<StoredRevision>(found->get(), RevisionAt);
                 if (!revision) return revision.failure();
                 if (!*revision) return BadValue("tm_product_revisions");
                 return **revision;
               }
             });
}

Outcome<std::vector<StoredRevision>> LibpqStore::ListRevisions(const std::string& product) {
  return Run("list the revisions of product " + Quoted(product),
             [&](PGconn* conn) -> Outcome<std::vector<StoredRevision>> {
               auto result = Exec(conn,
                                  std::string(kRevisionColumns) +
                                      " WHERE product = $1 ORDER BY number",
                                  {product});
               if (!result) return result.failure();
               return ReadRows<StoredRevision>(result->get(), RevisionAt);
             });
}

Outcome<int> LibpqStore::PruneRevisions(const std::string& product, int history,
                                        const std::set<int>& keep) {
  if (std::optional<Failure> bad = CheckRevisionPrune(product, history)) return *bad;
  std::string kept = "{";
  for (const int number : keep) kept += (kept.size() > 1 ? "," : "") + std::to_string(number);
  kept += "}";
  return Run("prune the revisions of product " + Quoted(product),
             [&](PGconn* conn) -> Outcome<int> {
               auto result =
                   Exec(conn, kPruneRevisions, {product, std::to_string(history), kept});
               if (!result) return result.failure();
               const auto count = ParseInt(PQgetvalue(result->get(), 0, 0));
               if (!count) return BadValue("tm_product_revisions");
               return static_cast<int>(*count);
             });
}

Outcome<std::optional<StoredRollout>> LibpqStore::GetRollout(const std::string& product) {
  return Run("read the rollout of product " + Quoted(product),
             [&](PGconn* conn) -> Outcome<std::optional<StoredRollout>> {
               auto result =
                   Exec(conn, std::string(kRolloutColumns) + " WHERE product = $1", {product});
               if (!result) return result.failure();
               return ReadOptional<StoredRollout>(result->get(), RolloutAt);
             });
}

Outcome<std::optional<std::int64_t>> LibpqStore::PutRollout(const std::string& product,
                                                            std::int64_t expected_version,
                                                            const std::string& state_json,
                                                            std::int64_t now_unix) {
  if (std::optional<Failure> bad = CheckRolloutWrite(product, expected_version)) return *bad;
  return Run("write the rollout of product " + Quoted(product),
             [&](PGconn* conn) -> Outcome<std::optional<std::int64_t>> {
               auto result =
                   expected_version == 0
                       ? Exec(conn, kInsertRollout, {product, state_json, std::to_string(now_unix)})
                       : Exec(conn, kUpdateRollout,
                              {product, std::to_string(expected_version), state_json,
                               std::to_string(now_unix)});
               if (!result) return result.failure();
               if (std::string_view(PQcmdTuples(result->get())) == "0") {
                 return std::optional<std::int64_t>();
               }
               return std::optional<std::int64_t>(expected_version + 1);
             });
}

Outcome<std::vector<StoredRollout>> LibpqStore::ListRollouts() {
  return Run("list rollouts", [&](PGconn* conn) -> Outcome<std::vector<StoredRollout>> {
    auto result = Exec(conn, std::string(kRolloutColumns) + " ORDER BY product COLLATE \"C\"", {});
    if (!result) return result.failure();
    return ReadRows<StoredRollout>(result->get(), RolloutAt);
  });
}

}  // namespace tmaster::controller::pqstore
