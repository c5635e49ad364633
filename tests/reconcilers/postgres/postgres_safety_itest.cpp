// The libpq adapter's safety against a tenant (issue 11; postgres_libpq.hpp), on a real
// PostgreSQL 15: timeouts on every session (a tenant holding a lock, a migration that runs too
// long), CancelAll on shutdown, admin sessions whose search_path a tenant cannot change, the
// operator's own schemas (`tenant_master`, `extensions`) never taken from a tenant, extensions
// in a schema the tenant cannot write, migration errors that do not echo the file, and the
// observation of the operator's role and of roles with privileged memberships. Every TEST_CASE
// has its own workspace names, so they do not depend on order.

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.hpp"
#include "manifests/types.hpp"
#include "reconcilers/migrations/migrations.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "reconcilers/postgres/model.hpp"
#include "reconcilers/postgres/postgres_libpq.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/pg_server.hpp"

namespace tmaster {
namespace {

using namespace std::chrono_literals;
using postgres::DesiredTenant;
using postgres::LibpqGateway;
using testing::Execute;
using testing::PgServer;
using testing::PgSession;
using testing::QueryValue;
using SteadyClock = std::chrono::steady_clock;

const Secret kMasterKey("safety-itest-master-key-not-a-real-one-0123456789");

std::string AdminDsn() { return PgServer::Shared().Dsn("postgres"); }

std::unique_ptr<LibpqGateway> MakeGateway(postgres::LibpqOptions options = {}) {
  return postgres::MakeLibpqGateway("default", Secret(AdminDsn()), options);
}

/// Short timeouts, so a blocked call fails in about a second.
postgres::LibpqOptions Short() {
  postgres::LibpqOptions options;
  options.statement_timeout = 5s;
  options.lock_timeout = 1s;
  options.migration_timeout = 5s;
  return options;
}

migrations::Migration Mig(const std::string& file, const std::string& sql) {
  return {file.substr(0, 4), file, crypto::Sha256Hex(sql), std::make_shared<std::string>(sql)};
}

DesiredTenant Desired(const std::string& name, std::vector<std::string> extensions = {},
                      std::vector<migrations::Migration> files = {}) {
  manifests::Product product;
  product.name = "erp";
  product.extensions = std::move(extensions);
  manifests::Workspace workspace;
  workspace.name = name;
  workspace.product = "erp";
  workspace.subdomain = name;
  workspace.database.cluster = "default";
  workspace.database.name = "tenant_" + name;
  workspace.database.owner = "user_" + name;
  workspace.database.connection_limit = 20;
  return postgres::BuildDesired(workspace, product, files, kMasterKey);
}

std::string Describe(const Failure& failure) {
  return std::string(ToString(failure.kind)) + " " + failure.reason + ": " + failure.message;
}

/// Plans and applies until the plan is empty; the first failure, if any.
std::optional<Failure> Converge(postgres::PostgresGateway& gateway, const DesiredTenant& desired) {
  for (int pass = 0; pass < 3; ++pass) {
    Outcome<postgres::ObservedCluster> observed = gateway.Observe();
    if (!observed) return observed.failure();
    postgres::Plan plan = postgres::MakePlan(desired, *observed);
    if (plan.blocked) return plan.blocked;
    if (plan.Empty()) return std::nullopt;
    for (const postgres::Action& action : plan.actions) {
      Outcome<postgres::ApplyResult> applied = gateway.Apply(action);
      if (!applied) return applied.failure();
    }
  }
  return Failure::Stalled("NotConverged", "plan not empty after three passes");
}

void RequireConverged(postgres::PostgresGateway& gateway, const DesiredTenant& desired) {
  const std::optional<Failure> failure = Converge(gateway, desired);
  REQUIRE_MESSAGE(!failure, (failure ? Describe(*failure) : ""));
}

std::string TenantDsn(const DesiredTenant& desired) {
  return PgServer::Shared().DsnAs(desired.role, desired.password.Reveal(), desired.database);
}

std::string InDatabase(const DesiredTenant& desired) {
  return PgServer::Shared().Dsn(desired.database);
}

postgres::ApplyMigrations MigrationsOf(const DesiredTenant& desired) {
  return {desired.database, desired.role, desired.password, desired.migrations};
}

/// Runs `call` on another thread; its outcome when it ends within `limit`, else nullopt (the
/// caller unblocks it, then the future is waited for by its destructor).
template <class Call>
auto Within(std::chrono::milliseconds limit, Call call)
    -> std::pair<std::future<decltype(call())>, bool> {
  std::future<decltype(call())> done = std::async(std::launch::async, call);
  const bool in_time = done.wait_for(limit) == std::future_status::ready;
  return {std::move(done), in_time};
}

long MillisSince(SteadyClock::time_point start) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start).count());
}

// --- timeouts ---------------------------------------------------------------------------------

TEST_CASE("a tenant holding a lock on its table makes the migration fail LockTimeout in time") {
  auto gateway = MakeGateway(Short());
  DesiredTenant desired = Desired("lock_table", {}, {Mig("0001_t.sql", "CREATE TABLE t (id int);")});
  RequireConverged(*gateway, desired);

  PgSession tenant(TenantDsn(desired));
  REQUIRE(tenant.Run("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE") == "");
  desired.migrations.push_back(Mig("0002_x.sql", "ALTER TABLE t ADD COLUMN x int;"));
  const auto start = SteadyClock::now();
  auto [done, in_time] = Within(6s, [&] { return gateway->Apply(MigrationsOf(desired)); });
  const long elapsed = MillisSince(start);
  static_cast<void>(tenant.Run("ROLLBACK"));  // unblocks a call that did not time out
  REQUIRE_MESSAGE(in_time, "the migration waited on the tenant's lock for over 6 s");
  const Outcome<postgres::ApplyResult> applied = done.get();
  REQUIRE_FALSE(applied.ok());
  CHECK_MESSAGE(applied.failure().kind == FailureKind::kTransient, Describe(applied.failure()));
  CHECK(applied.failure().reason == "LockTimeout");
  CHECK(applied.failure().message.find("lock_timeout (1s)") != std::string::npos);
  CHECK(applied.failure().message.find("tenant_lock_table") != std::string::npos);
  CHECK(applied.failure().message.find("0002_x.sql") != std::string::npos);
  CHECK(elapsed < 4000);
  // Nothing of 0002 was applied, and with the lock gone the next try succeeds.
  CHECK(QueryValue(InDatabase(desired), "SELECT count(*) FROM tenant_master.schema_migrations") ==
        "1");
  CHECK(gateway->Apply(MigrationsOf(desired)).ok());
}

TEST_CASE("a tenant's open COMMENT ON DATABASE makes the database marker fail LockTimeout") {
  auto gateway = MakeGateway(Short());
  const DesiredTenant desired = Desired("lock_database");
  RequireConverged(*gateway, desired);

  PgSession tenant(TenantDsn(desired));
  REQUIRE(tenant.Run("BEGIN; COMMENT ON DATABASE tenant_lock_database IS 'mine'") == "");
  auto [done, in_time] = Within(6s, [&] {
    return gateway->Apply(postgres::SetDatabaseMarker{desired.database, "tenant-master:workspace=x"});
  });
  static_cast<void>(tenant.Run("ROLLBACK"));
  REQUIRE_MESSAGE(in_time, "the admin statement waited on the tenant's lock for over 6 s");
  const Outcome<postgres::ApplyResult> applied = done.get();
  REQUIRE_FALSE(applied.ok());
  CHECK(applied.failure().kind == FailureKind::kTransient);
  CHECK_MESSAGE(applied.failure().reason == "LockTimeout", Describe(applied.failure()));
  CHECK(applied.failure().message.find("lock_timeout (1s) passed waiting for a lock") !=
        std::string::npos);
  CHECK(applied.failure().message.find("database \"tenant_lock_database\"") != std::string::npos);
}

TEST_CASE("a migration that runs longer than migration_timeout fails StatementTimeout") {
  postgres::LibpqOptions options = Short();
  options.migration_timeout = 1s;
  auto gateway = MakeGateway(options);
  const DesiredTenant desired =
      Desired("slow_migration", {}, {Mig("0001_slow.sql", "SELECT pg_sleep(4);")});
  const auto start = SteadyClock::now();
  const std::optional<Failure> failure = Converge(*gateway, desired);
  REQUIRE(failure);
  CHECK_MESSAGE(failure->kind == FailureKind::kTransient, Describe(*failure));
  CHECK(failure->reason == "StatementTimeout");
  CHECK(failure->message.find("migration_timeout (1s)") != std::string::npos);
  CHECK(failure->message.find("0001_slow.sql") != std::string::npos);
  CHECK(MillisSince(start) < 4000);
}

TEST_CASE("CancelAll ends a blocked call within a second, and every later call fails at once") {
  postgres::LibpqOptions options;  // the defaults: nothing times out within the test
  auto gateway = MakeGateway(options);
  DesiredTenant desired = Desired("cancel_all");
  RequireConverged(*gateway, desired);
  desired.migrations = {Mig("0001_sleep.sql", "SELECT pg_sleep(60);")};

  auto done = std::async(std::launch::async, [&] { return gateway->Apply(MigrationsOf(desired)); });
  REQUIRE(testing::Eventually(
      [&] {
        return QueryValue(AdminDsn(),
                          "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
                          " AND query LIKE '%pg_sleep(60)%' AND state = 'active'",
                          {desired.database}) == "1";
      },
      10s));
  const auto start = SteadyClock::now();
  gateway->CancelAll();
  REQUIRE(done.wait_for(1s) == std::future_status::ready);
  const Outcome<postgres::ApplyResult> applied = done.get();
  REQUIRE_FALSE(applied.ok());
  CHECK(applied.failure().kind == FailureKind::kTransient);
  CHECK_MESSAGE(applied.failure().reason == "ShuttingDown", Describe(applied.failure()));
  CHECK(MillisSince(start) < 1000);

  const Outcome<postgres::ObservedCluster> observed = gateway->Observe();
  REQUIRE_FALSE(observed.ok());
  CHECK(observed.failure().reason == "ShuttingDown");
  const Outcome<postgres::ApplyResult> later =
      gateway->Apply(postgres::RevokePublicAccess{desired.database});
  REQUIRE_FALSE(later.ok());
  CHECK(later.failure().reason == "ShuttingDown");
}

// --- search_path and the operator's schemas --------------------------------------------------

TEST_CASE("admin sessions keep their search_path when the tenant sets its database's") {
  auto gateway = MakeGateway(Short());
  DesiredTenant desired = Desired("search_path");
  RequireConverged(*gateway, desired);
  // The tenant puts its own schema first (and pg_catalog after it, so its names win) and
  // shadows the type `text` with a domain of its own.
  Execute(TenantDsn(desired),
          "CREATE SCHEMA evil;"
          "CREATE DOMAIN evil.text AS pg_catalog.varchar;"
          "ALTER DATABASE tenant_search_path SET search_path = evil, pg_catalog, public");
  desired.migrations = {Mig("0001_t.sql", "CREATE TABLE t (id int);")};
  Outcome<postgres::ApplyResult> applied = gateway->Apply(MigrationsOf(desired));
  REQUIRE_MESSAGE(applied.ok(), (applied.ok() ? "" : Describe(applied.failure())));
  // The ledger the admin session created uses the server's text, not the tenant's domain.
  CHECK(QueryValue(InDatabase(desired),
                   "SELECT n.nspname || '.' || t.typname FROM pg_catalog.pg_attribute a"
                   " JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
                   " JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
                   " WHERE a.attrelid = 'tenant_master.schema_migrations'::pg_catalog.regclass"
                   " AND a.attname = 'version'") == "pg_catalog.text");
}

TEST_CASE("a ledger schema the tenant made first stalls LedgerNotOwned and is never used") {
  auto gateway = MakeGateway(Short());
  DesiredTenant desired = Desired("ledger_trap");
  RequireConverged(*gateway, desired);
  Execute(TenantDsn(desired), "CREATE SCHEMA tenant_master");
  desired.migrations = {Mig("0001_t.sql", "CREATE TABLE t (id int);")};
  const Outcome<postgres::ApplyResult> applied = gateway->Apply(MigrationsOf(desired));
  REQUIRE_FALSE(applied.ok());
  CHECK(applied.failure().kind == FailureKind::kStalled);
  CHECK_MESSAGE(applied.failure().reason == "LedgerNotOwned", Describe(applied.failure()));
  CHECK(applied.failure().message.find("user_ledger_trap") != std::string::npos);
  // Nothing was created in the tenant's schema and no migration ran.
  CHECK(QueryValue(InDatabase(desired),
                   "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                   " WHERE n.nspname = 'tenant_master'") == "0");
  CHECK(QueryValue(InDatabase(desired), "SELECT to_regclass('public.t') IS NULL") == "t");
}

TEST_CASE("extensions go into the operator's schema extensions, usable but not writable by "
          "the tenant") {
  auto gateway = MakeGateway(Short());
  const DesiredTenant desired =
      Desired("extensions_home", {"pg_trgm"},
              {Mig("0001_names.sql",
                   "CREATE TABLE names (n text);\n"
                   "CREATE INDEX names_trgm ON names USING gin (n gin_trgm_ops);\n"
                   "INSERT INTO names SELECT 'x' WHERE similarity('word', 'words') > 0.3;")});
  // Before the operator's first in-database pass, the tenant points its database's search_path
  // at a schema of its own: without an explicit schema, CREATE EXTENSION would install there.
  DesiredTenant bare = desired;
  bare.extensions.clear();
  bare.migrations.clear();
  RequireConverged(*gateway, bare);
  Execute(TenantDsn(desired),
          "CREATE SCHEMA mine; ALTER DATABASE tenant_extensions_home SET search_path = mine");
  postgres::EnsureExtensions ensure{desired.database, desired.extensions, desired.role};
  Outcome<postgres::ApplyResult> ensured = gateway->Apply(ensure);
  REQUIRE_MESSAGE(ensured.ok(), (ensured.ok() ? "" : Describe(ensured.failure())));
  const std::string db = InDatabase(desired);
  CHECK(QueryValue(db, "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n"
                       " ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'") == "extensions");
  CHECK(QueryValue(db, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace"
                       " WHERE nspname = 'extensions'") == "postgres");
  CHECK(QueryValue(db, "SELECT has_schema_privilege('user_extensions_home', 'extensions',"
                       " 'USAGE')") == "t");
  CHECK(QueryValue(db, "SELECT has_schema_privilege('user_extensions_home', 'extensions',"
                       " 'CREATE')") == "f");
  // The tenant finds the functions unqualified: a migration using similarity() and the
  // operator class runs as the tenant role.
  Outcome<postgres::ApplyResult> applied = gateway->Apply(MigrationsOf(desired));
  REQUIRE_MESSAGE(applied.ok(), (applied.ok() ? "" : Describe(applied.failure())));
  CHECK(QueryValue(db, "SELECT count(*) FROM names") == "1");
  // A second pass changes nothing.
  Outcome<postgres::ApplyResult> again = gateway->Apply(ensure);
  REQUIRE(again.ok());
  CHECK(again->detail == "extensions already present");
}

TEST_CASE("an extension already installed elsewhere stays where it is") {
  auto gateway = MakeGateway(Short());
  const DesiredTenant desired = Desired("extensions_old", {"unaccent"});
  DesiredTenant bare = desired;
  bare.extensions.clear();
  RequireConverged(*gateway, bare);
  Execute(InDatabase(desired), "CREATE EXTENSION unaccent SCHEMA public");
  RequireConverged(*gateway, desired);
  CHECK(QueryValue(InDatabase(desired),
                   "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n"
                   " ON n.oid = e.extnamespace WHERE e.extname = 'unaccent'") == "public");
}

TEST_CASE("a schema extensions the tenant made first stalls ExtensionSchemaNotOwned") {
  auto gateway = MakeGateway(Short());
  const DesiredTenant desired = Desired("extensions_trap", {"pg_trgm"});
  DesiredTenant bare = desired;
  bare.extensions.clear();
  RequireConverged(*gateway, bare);
  Execute(TenantDsn(desired), "CREATE SCHEMA extensions");
  const Outcome<postgres::ApplyResult> ensured =
      gateway->Apply(postgres::EnsureExtensions{desired.database, desired.extensions, desired.role});
  REQUIRE_FALSE(ensured.ok());
  CHECK(ensured.failure().kind == FailureKind::kStalled);
  CHECK_MESSAGE(ensured.failure().reason == "ExtensionSchemaNotOwned", Describe(ensured.failure()));
  CHECK(QueryValue(InDatabase(desired),
                   "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'") == "0");
}

// --- migration errors -------------------------------------------------------------------------

TEST_CASE("a failed migration names SQLSTATE, condition, file, line and column, never its text") {
  auto gateway = MakeGateway(Short());
  const std::string secret = "sk_live_4f9a8b7c6d5e";
  const DesiredTenant syntax =
      Desired("error_syntax", {}, {Mig("0001_key.sql", "-- header\n  " + secret + " is the key\n")});
  std::optional<Failure> failure = Converge(*gateway, syntax);
  REQUIRE(failure);
  CHECK(failure->reason == "MigrationFailed");
  CHECK(failure->message.find(secret) == std::string::npos);
  CHECK_MESSAGE(failure->message.find("syntax error at or near \"\u2026\"") != std::string::npos,
                failure->message);
  CHECK(failure->message.find("SQLSTATE 42601 syntax_error") != std::string::npos);
  CHECK(failure->message.find("0001_key.sql") != std::string::npos);
  CHECK(failure->message.find("line 2, column 3") != std::string::npos);

  const DesiredTenant relation =
      Desired("error_relation", {}, {Mig("0001_q.sql", "SELECT * FROM \"" + secret + "\";")});
  failure = Converge(*gateway, relation);
  REQUIRE(failure);
  CHECK(failure->message.find(secret) == std::string::npos);
  CHECK_MESSAGE(failure->message.find("relation \"\u2026\" does not exist") != std::string::npos,
                failure->message);
  CHECK(failure->message.find("42P01 undefined_table") != std::string::npos);
}

TEST_CASE("migrations read strings as the lexer does, whatever the tenant sets on its database") {
  auto gateway = MakeGateway(Short());
  DesiredTenant desired = Desired("scs_pinned");
  RequireConverged(*gateway, desired);
  // The owner turns standard_conforming_strings off for its database: `'a\'` would then be an
  // unterminated string, and a COMMIT after it would be hidden from the lexer.
  Execute(TenantDsn(desired),
          "ALTER DATABASE tenant_scs_pinned SET standard_conforming_strings = off");
  desired = Desired("scs_pinned", {},
                    {Mig("0001_backslash.sql",
                         "CREATE TABLE notes (s text DEFAULT 'a\\');\nINSERT INTO notes DEFAULT VALUES;")});
  RequireConverged(*gateway, desired);
  CHECK(QueryValue(InDatabase(desired), "SELECT s FROM notes") == "a\\");
}

TEST_CASE("ignoreMissingMigrations: a recorded version gone from the product is skipped") {
  auto gateway = MakeGateway(Short());
  const DesiredTenant first =
      Desired("ignore_missing", {}, {Mig("0001_a.sql", "CREATE TABLE a (id int);")});
  RequireConverged(*gateway, first);
  DesiredTenant later =
      Desired("ignore_missing", {}, {Mig("0002_b.sql", "CREATE TABLE b (id int);")});
  std::optional<Failure> failure = Converge(*gateway, later);
  REQUIRE(failure);
  CHECK(failure->reason == "MigrationMissing");
  later.ignore_missing_migrations = true;
  RequireConverged(*gateway, later);
  CHECK(QueryValue(InDatabase(later), "SELECT count(*) FROM tenant_master.schema_migrations") ==
        "2");
}

TEST_CASE("a role's marker written with its password names its database") {
  auto gateway = MakeGateway(Short());
  const DesiredTenant desired = Desired("role_marker");
  RequireConverged(*gateway, desired);
  const std::string comment = QueryValue(
      AdminDsn(), "SELECT pg_catalog.shobj_description(oid, 'pg_authid') FROM pg_roles"
                  " WHERE rolname = 'user_role_marker'");
  CHECK_MESSAGE(comment.find(";database=tenant_role_marker;") != std::string::npos, comment);
  CHECK(comment.find(";pw=") != std::string::npos);
}

// --- observation ------------------------------------------------------------------------------

TEST_CASE("the catalog query names the operator's role and flags privileged memberships") {
  Execute(AdminDsn(),
          "CREATE ROLE obs_boss SUPERUSER NOLOGIN; CREATE ROLE obs_mid NOLOGIN;"
          "CREATE ROLE obs_leaf LOGIN; GRANT obs_boss TO obs_mid; GRANT obs_mid TO obs_leaf;"
          "CREATE ROLE obs_files LOGIN; GRANT pg_read_server_files TO obs_files;"
          "CREATE ROLE obs_maker NOLOGIN CREATEROLE; CREATE ROLE obs_under LOGIN;"
          "GRANT obs_maker TO obs_under;"
          "CREATE ROLE obs_monitor LOGIN; GRANT pg_monitor TO obs_monitor;"
          "CREATE ROLE obs_plain LOGIN");
  auto gateway = MakeGateway(Short());
  const Outcome<postgres::ObservedCluster> observed = gateway->Observe();
  REQUIRE(observed.ok());
  CHECK(observed->operator_role == "postgres");
  const auto privileged = [&](const std::string& role) {
    const auto found = observed->roles.find(role);
    REQUIRE_MESSAGE(found != observed->roles.end(), role);
    return found->second.privileged_member;
  };
  CHECK(privileged("obs_leaf"));  // through obs_mid, a member of a superuser role
  CHECK(privileged("obs_files"));
  CHECK(privileged("obs_under"));
  CHECK_FALSE(privileged("obs_monitor"));
  CHECK_FALSE(privileged("obs_plain"));
  CHECK(privileged("obs_mid"));  // a member of obs_boss directly
}

}  // namespace
}  // namespace tmaster
