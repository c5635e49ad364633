#include "reconcilers/backups/table_sums.hpp"

#include <array>
#include <cstdlib>
#include <set>
#include <string_view>
#include <vector>

#include "common/pq/dsn.hpp"
#include "common/pq/session.hpp"
#include "common/pq_handles.hpp"
#include "common/scrub.hpp"
#include "common/text.hpp"

namespace tmaster::backups {
namespace {

// The tables CountRows (backup_tools.cpp) counts at dump time, the same way: a move compares what
// the dump held with what both sides hold.
constexpr std::string_view kTables = R"sql(
SELECT n.nspname, c.relname FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r'
   AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                      AND d.deptype = 'e')
 ORDER BY 1, 2)sql";

std::string Escaped(PGconn* conn, const std::string& name) {
  const pq::Text escaped(PQescapeIdentifier(conn, name.data(), name.size()));
  return escaped ? std::string(escaped.get()) : std::string();
}

Failure Named(Failure failure, const std::string& what) {
  failure.message = what + ": " + failure.message;
  return failure;
}

}  // namespace

Outcome<TableSums> SumTables(const Secret& admin_dsn, const std::string& database,
                             std::chrono::milliseconds statement_timeout) {
  Scrubber scrub;
  scrub.Add(admin_dsn);
  if (const auto parts = pq::ParseDsn(admin_dsn)) scrub.Add(parts->password);
  const std::string what = "sum the tables of database " + Quoted(database);
  // Set at connection time: the database's owner cannot change them for this session.
  const std::string options =
      pq::SessionOptions(statement_timeout, std::chrono::seconds(30), "pg_catalog");
  const std::array<pq::ConnectParam, 2> params{
      pq::ConnectParam{"options", options.c_str()},
      pq::ConnectParam{"application_name", "tenant-master-move"}};
  auto conn = pq::Connect(admin_dsn, database, params, scrub, "the cluster's admin connection");
  if (!conn) return Named(conn.failure(), what);
  PGconn* session = conn->get();
  const std::vector<std::string> none;
  if (auto begun = pq::ExecParams(session, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                                  none, scrub);
      !begun) {
    return Named(begun.failure(), what);
  }
  auto tables = pq::ExecParams(session, kTables, none, scrub);
  if (!tables) return Named(tables.failure(), what);
  TableSums sums;
  const PGresult* list = tables->get();
  for (int i = 0; i < PQntuples(list); ++i) {
    const std::string schema = PQgetvalue(list, i, 0);
    const std::string table = PQgetvalue(list, i, 1);
    const std::string name = schema + "." + table;
    // Two 60-bit slices of each row's md5, summed as numeric: order-free, and a duplicated row
    // counts twice. Built-in casts only (a tenant cannot add a cast between built-in types).
    const std::string sql =
        "SELECT pg_catalog.count(*)::text,"
        " COALESCE(pg_catalog.sum(('x' || pg_catalog.substr(h, 1, 15))::bit(60)::bigint::numeric),"
        " 0)::text || ':' ||"
        " COALESCE(pg_catalog.sum(('x' || pg_catalog.substr(h, 16, 15))::bit(60)::bigint::numeric),"
        " 0)::text"
        " FROM (SELECT pg_catalog.md5(t::text) AS h FROM ONLY " +
        Escaped(session, schema) + "." + Escaped(session, table) + " AS t) AS rows";
    auto summed = pq::ExecParams(session, sql, none, scrub);
    if (!summed) return Named(summed.failure(), what + ", table " + Quoted(name));
    TableSum& sum = sums[name];
    sum.rows = std::strtoll(PQgetvalue(summed->get(), 0, 0), nullptr, 10);
    sum.digest = PQgetvalue(summed->get(), 0, 1);
  }
  (void)pq::ExecParams(session, "COMMIT", none, scrub);
  return sums;
}

std::optional<std::string> CompareTableSums(const TableSums& source, const TableSums& target) {
  std::set<std::string> names;
  for (const auto& [name, sum] : source) names.insert(name);
  for (const auto& [name, sum] : target) names.insert(name);
  std::vector<std::string> differences;
  for (const std::string& name : names) {
    const auto from = source.find(name);
    const auto to = target.find(name);
    if (from == source.end()) {
      differences.push_back(name + ": only on the target");
    } else if (to == target.end()) {
      differences.push_back(name + ": missing on the target");
    } else if (from->second.rows != to->second.rows) {
      differences.push_back(name + ": " + std::to_string(from->second.rows) +
                            " rows on the source, " + std::to_string(to->second.rows) +
                            " on the target");
    } else if (from->second.digest != to->second.digest) {
      differences.push_back(name + ": same count (" + std::to_string(from->second.rows) +
                            "), different rows");
    }
  }
  if (differences.empty()) return std::nullopt;
  return Join(differences, "; ");
}

std::string DescribeTableSums(const TableSums& sums) {
  std::int64_t rows = 0;
  for (const auto& [name, sum] : sums) rows += sum.rows;
  return std::to_string(sums.size()) + (sums.size() == 1 ? " table, " : " tables, ") +
         std::to_string(rows) + (rows == 1 ? " row" : " rows") + ", digests equal";
}

}  // namespace tmaster::backups
