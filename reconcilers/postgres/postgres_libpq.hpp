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
  /// `statement_timeout` of the admin sessions (the pool and the in-database ones): a statement
  /// still running after it is cancelled by the server, Transient `StatementTimeout`.
  std::chrono::milliseconds statement_timeout{std::chrono::seconds(30)};
  /// `lock_timeout` of every session, the migrations' included: a lock wait longer than this
  /// (a tenant's open transaction holding its table or its database) fails Transient
  /// `LockTimeout`, and the workspace is retried with backoff instead of hanging a worker.
  std::chrono::milliseconds lock_timeout{std::chrono::seconds(5)};
  /// `statement_timeout` of the tenant-role session that runs migrations.
  std::chrono::milliseconds migration_timeout{std::chrono::minutes(15)};
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
/// Sessions (docs/architecture.md#postgresql-what-converged-means): every connection starts with
/// `statement_timeout` and `lock_timeout` set through libpq's `options` (the migration session's
/// statement_timeout is `migration_timeout`); admin sessions also pin
/// `search_path=pg_catalog,tenant_master`, which a tenant's `ALTER DATABASE ... SET` cannot
/// override. The schemas the adapter creates in a tenant database, `tenant_master` (the
/// migrations ledger) and `extensions`, must be owned by the operator's role: one the tenant
/// made first stalls `LedgerNotOwned` / `ExtensionSchemaNotOwned` and is never used. Extensions
/// are created `WITH SCHEMA extensions` (the tenant role gets USAGE, never CREATE), and the
/// database's search_path becomes `"$user", public, extensions` so the tenant finds them.
///
/// Failures: connection, operator-intervention, resource and rollback SQLSTATE classes (08, 57,
/// 53, 40) are Transient; `55P03` is Transient `LockTimeout` and `57014` Transient
/// `StatementTimeout`, with a message naming the timeout and its value; privilege, syntax and
/// data errors (42, 22, 23, 2B, ...) are Stalled with a CamelCase reason. Messages name the
/// step, the database or role and the cluster, never a password or the DSN. A failed migration
/// says SQLSTATE, condition name, file, line and column, and the server's message with every
/// double-quoted fragment replaced by `"…"` (the file's text is never echoed).
class LibpqGateway : public PostgresGateway {
 public:
  /// SQL statements sent by this gateway since it was made, over all its connections (a
  /// multi-statement string counts each statement). For tests and the benchmark.
  [[nodiscard]] virtual std::int64_t StatementsSent() const = 0;
  /// False once the catalog query found `pg_authid` unreadable (SQLSTATE 42501) and fell back to
  /// `pg_roles`: password drift is then judged by the role marker alone.
  [[nodiscard]] virtual bool PasswordsVisible() const = 0;
  /// Shutdown: sends a cancel request (PQcancel) for every statement in flight on any of the
  /// gateway's connections; from then on every call fails at once, Transient `ShuttingDown`,
  /// without connecting. Thread-safe; meant to be called once, from another thread than the
  /// blocked callers, which return within a round trip.
  virtual void CancelAll() = 0;
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
