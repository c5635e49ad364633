#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <string>

#include "common/secret.hpp"
#include "reconcilers/postgres/gateway.hpp"

namespace tmaster::postgres {

struct LibpqOptions {
  /// Admin connections kept open to the cluster's DSN database; callers beyond it wait.
  int pool_size = 4;
  /// libpq `connect_timeout` of every connection (admin, in-database, tenant role).
  std::chrono::seconds connect_timeout{10};
};

/// The libpq adapter of `PostgresGateway` for one cluster
/// (docs/architecture.md#postgresql-what-converged-means). Thread-safe.
///
/// Admin connections go to the DSN's database (`postgres` when the DSN names none or names a
/// template database). `Observe` is one catalog query on one pooled connection; `Apply` renders
/// one action with `PQescapeIdentifier` / `PQescapeLiteral` / parameters. In-database actions
/// open a short-lived connection to the tenant database: `EnsureExtensions` as the admin,
/// `ApplyMigrations` as the tenant role itself (same host and port as the DSN), so a migration
/// can never do more than the tenant may.
///
/// Failures: connection, operator-intervention, resource and rollback SQLSTATE classes (08, 57,
/// 53, 40, 55P03) are Transient; privilege, syntax and data errors (42, 22, 23, 2B, ...) are
/// Stalled with a CamelCase reason. Messages name the step, the database or role and the
/// cluster, never a password or the DSN.
class LibpqGateway : public PostgresGateway {
 public:
  /// SQL statements sent by this gateway since it was made, over all its connections (a
  /// multi-statement string counts each statement). For tests and the benchmark.
  [[nodiscard]] virtual std::int64_t StatementsSent() const = 0;
  /// False once the catalog query found `pg_authid` unreadable (SQLSTATE 42501) and fell back to
  /// `pg_roles`: password drift is then judged by the role marker alone.
  [[nodiscard]] virtual bool PasswordsVisible() const = 0;
};

/// The host and port a DSN points at (libpq's defaults when it names none: `localhost`, 5432);
/// nullopt when libpq cannot parse it. Dedicated stacks get them as DB_HOST / DB_PORT unless the
/// cluster config says otherwise.
std::optional<std::pair<std::string, int>> DsnHostPort(const Secret& dsn);

/// Makes the gateway of cluster `cluster` (the name appears in messages) reached through `dsn`, a
/// libpq conninfo string or URI. Nothing connects until the first call. A DSN that libpq cannot
/// parse makes every call fail Stalled `InvalidDsn` (without echoing the DSN).
std::unique_ptr<LibpqGateway> MakeLibpqGateway(std::string cluster, Secret dsn,
                                               LibpqOptions options = {});

}  // namespace tmaster::postgres
