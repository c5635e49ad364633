#pragma once

#include <string>

#include "common/outcome.hpp"
#include "reconcilers/postgres/model.hpp"

namespace tmaster::postgres {

/// What applying one action did.
struct ApplyResult {
  int statements = 0;        ///< SQL statements sent
  std::string detail;        ///< e.g. `applied 0002_orders.sql, 0003_invoices.sql`; no secrets
};

/// The PostgreSQL side of one cluster. Implementations: the libpq adapter
/// (postgres_libpq.hpp) and the in-memory fake of the tests. Thread-safe: workers share one.
class PostgresGateway {
 public:
  virtual ~PostgresGateway() = default;

  /// Every role, database, comment, ACL, connection limit and session count of the cluster,
  /// read with one catalog query. Transient failure when the server cannot be reached.
  virtual Outcome<ObservedCluster> Observe() = 0;

  /// Applies one action. Failures are classified by SQLSTATE: connection and
  /// operator-intervention classes are transient; privilege, syntax and data errors stall.
  /// The message names the database or role and the step, never a password or DSN.
  virtual Outcome<ApplyResult> Apply(const Action& action) = 0;

  /// The server's `server_version`, asked with one light statement: whether the cluster answers
  /// now (placement and `tenantctl get clusters`, docs/placement.md). This default asks for the
  /// whole catalog and knows no version ("unknown"); the libpq adapter overrides it.
  virtual Outcome<std::string> ServerVersion() {
    Outcome<ObservedCluster> observed = Observe();
    if (!observed) return observed.failure();
    return std::string("unknown");
  }
};

}  // namespace tmaster::postgres
