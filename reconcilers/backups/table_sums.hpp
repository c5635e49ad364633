#pragma once

// What a move compares on both sides before it switches a workspace to its copy
// (docs/moves.md#verify): each user table's row count and an order-free digest of its rows,
// read as the cluster's admin in a session whose search_path is pg_catalog alone, every function
// schema-qualified, so nothing a tenant defined in its database runs or is resolved instead.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/outcome.hpp"
#include "common/secret.hpp"

namespace tmaster::backups {

/// One table's rows: how many, and two sums of the first 60 and the next 60 bits of each row's
/// md5 (of the row as text): equal multisets of rows give equal sums, whatever their order.
struct TableSum {
  std::int64_t rows = 0;
  std::string digest;  ///< `<sum1>:<sum2>` as PostgreSQL prints the numerics

  friend bool operator==(const TableSum&, const TableSum&) = default;
};

/// By schema-qualified name as text (`public.orders`, unquoted), like TableRows.
using TableSums = std::map<std::string, TableSum>;

/// Counts and digests every user table of `database` (ordinary tables and partitions, `FROM
/// ONLY`, outside the system schemas and not part of an extension; the migrations ledger
/// included) in one REPEATABLE READ, READ ONLY transaction. `statement_timeout` bounds each
/// table's statement. Failures as pq::Connect and the statements classify them, the message
/// naming the database and the table.
Outcome<TableSums> SumTables(const Secret& admin_dsn, const std::string& database,
                             std::chrono::milliseconds statement_timeout);

/// Pure: nullopt when both sides hold the same tables with the same counts and digests; else
/// every difference, `public.orders: 1200 rows on the source, 1199 on the target`, a table
/// missing on one side, or `public.orders: same count (1200), different rows`, joined by "; ".
std::optional<std::string> CompareTableSums(const TableSums& source, const TableSums& target);

/// Pure: `12 tables, 104233 rows, digests equal` for what a verification compared.
std::string DescribeTableSums(const TableSums& sums);

}  // namespace tmaster::backups
