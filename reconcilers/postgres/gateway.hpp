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
};

}  // namespace tmaster::postgres
