// The libpq adapter against a real PostgreSQL 15 (tests/support/pg_server.hpp): the invariants of
// docs/architecture.md#postgresql-what-converged-means reached, kept (no DDL on a converged pass)
// and restored after drift, isolation between tenants, suspend/resume, migrations, hostile names,
// secrets kept out of failures, and failure classification. Every TEST_CASE uses its own workspace
// names, so they do not depend on order.

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "common/crypto.hpp"
#include "manifests/types.hpp"
#include "reconcilers/migrations/migrations.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "reconcilers/postgres/model.hpp"
#include "reconcilers/postgres/postgres_libpq.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster {
namespace {

using postgres::Action;
using postgres::DesiredTenant;
using postgres::LibpqGateway;
using testing::ConnectError;
using testing::Execute;
using testing::PgServer;
using testing::Query;
using testing::QueryValue;
using testing::Row;

const Secret kMasterKey("itest-master-key-not-a-real-one-0123456789");

PgServer& Server() { return PgServer::Shared(); }
std::string AdminDsn() { return Server().Dsn("postgres"); }

std::unique_ptr<LibpqGateway> MakeGateway(const std::string& dsn = AdminDsn()) {
  return postgres::MakeLibpqGateway("default", Secret(dsn), {});
}

/// A workspace `name` of product `erp`, shaped like the loader's defaults.
struct TenantSpec {
  std::string name;
  int connection_limit = 20;
  bool suspend = false;
  bool adopt = false;
  int rotation = 0;
  std::vector<std::string> extensions;
  std::vector<migrations::Migration> migrations;
};

TenantSpec Spec(std::string name, std::vector<std::string> extensions = {},
                std::vector<migrations::Migration> files = {}) {
  TenantSpec spec;
  spec.name = std::move(name);
  spec.extensions = std::move(extensions);
  spec.migrations = std::move(files);
  return spec;
}

std::string DatabaseOf(const std::string& name) { return "tenant_" + name; }
std::string RoleOf(const std::string& name) { return "user_" + name; }

DesiredTenant Desired(const TenantSpec& spec) {
  manifests::Product product;
  product.name = "erp";
  product.extensions = spec.extensions;
  manifests::Workspace workspace;
  workspace.name = spec.name;
  workspace.product = "erp";
  workspace.subdomain = spec.name;
  workspace.suspend = spec.suspend;
  workspace.database.cluster = "default";
  workspace.database.name = DatabaseOf(spec.name);
  workspace.database.owner = RoleOf(spec.name);
  workspace.database.connection_limit = spec.connection_limit;
  workspace.database.adopt = spec.adopt;
  workspace.database.password_rotation = spec.rotation;
  return postgres::BuildDesired(workspace, product, spec.migrations, kMasterKey);
}

/// What a reconcile of one workspace did, pass after pass, until its plan came back empty.
struct Converged {
  std::optional<Failure> failure;  ///< a failed Apply or Observe, or the plan's block
  int passes = 0;                  ///< plans made, the last one empty when converged
  std::vector<std::string> kinds;  ///< actions applied, in order
  [[nodiscard]] bool ok() const { return !failure; }
  [[nodiscard]] bool Did(const std::string& kind) const {
    return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
  }
};

Converged Converge(postgres::PostgresGateway& gateway, const DesiredTenant& desired,
                   int max_passes = 3) {
  Converged result;
  while (result.passes < max_passes) {
    Outcome<postgres::ObservedCluster> observed = gateway.Observe();
    if (!observed) {
      result.failure = observed.failure();
      return result;
    }
    postgres::Plan plan = postgres::MakePlan(desired, *observed);
    ++result.passes;
    if (plan.blocked) {
      result.failure = plan.blocked;
      return result;
    }
    if (plan.Empty()) return result;
    for (const Action& action : plan.actions) {
      Outcome<postgres::ApplyResult> applied = gateway.Apply(action);
      if (!applied) {
        result.failure = applied.failure();
        return result;
      }
      result.kinds.push_back(postgres::KindOf(action));
    }
  }
  result.failure = Failure::Stalled("NotConverged", "plan not empty after the passes allowed");
  return result;
}

postgres::Plan PlanNow(postgres::PostgresGateway& gateway, const DesiredTenant& desired) {
  Outcome<postgres::ObservedCluster> observed = gateway.Observe();
  REQUIRE_MESSAGE(observed.ok(), (observed.ok() ? "" : observed.failure().message));
  return postgres::MakePlan(desired, *observed);
}

std::vector<std::string> Kinds(const postgres::Plan& plan) {
  std::vector<std::string> kinds;
  for (const Action& action : plan.actions) kinds.push_back(postgres::KindOf(action));
  return kinds;
}

bool Has(const std::vector<std::string>& items, const std::string& item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

std::string Failed(const Converged& result) {
  return result.failure ? std::string(ToString(result.failure->kind)) + " " +
                              result.failure->reason + ": " + result.failure->message
                        : std::string("ok");
}

std::string RoleFact(const std::string& role, const std::string& column) {
  return QueryValue(AdminDsn(), "SELECT " + column + "::text FROM pg_authid WHERE rolname = $1",
                    {role});
}

std::string DatabaseFact(const std::string& database, const std::string& expression) {
  return QueryValue(AdminDsn(),
                    "SELECT (" + expression + ")::text FROM pg_database d WHERE datname = $1",
                    {database});
}

std::string TenantDsn(const DesiredTenant& desired, const std::string& database = "") {
  return Server().DsnAs(desired.role, desired.password.Reveal(),
                        database.empty() ? desired.database : database);
}

/// Migration files written to a temporary folder and loaded the way the operator loads them.
struct MigrationDir {
  testing::TempDir dir;
  void Write(const std::string& file, const std::string& sql) const { dir.Write(file, sql); }
  [[nodiscard]] std::vector<migrations::Migration> Load() const {
    Outcome<std::vector<migrations::Migration>> loaded = migrations::LoadDirectory(dir.path());
    REQUIRE_MESSAGE(loaded.ok(), (loaded.ok() ? "" : loaded.failure().message));
    return *loaded;
  }
};

void RequireConverged(const Converged& result) { REQUIRE_MESSAGE(result.ok(), Failed(result)); }

postgres::ReclaimTarget ReclaimOf(const std::string& name, manifests::ReclaimPolicy policy) {
  return {name, "default", DatabaseOf(name), RoleOf(name), policy};
}

/// Like Converge, for the reclaim plan of a removed workspace.
Converged Reclaim(postgres::PostgresGateway& gateway, const postgres::ReclaimTarget& target,
                  int max_passes = 3) {
  Converged result;
  while (result.passes < max_passes) {
    Outcome<postgres::ObservedCluster> observed = gateway.Observe();
    if (!observed) {
      result.failure = observed.failure();
      return result;
    }
    postgres::Plan plan = postgres::MakeReclaimPlan(target, *observed);
    ++result.passes;
    if (plan.blocked) {
      result.failure = plan.blocked;
      return result;
    }
    if (plan.Empty()) return result;
    for (const Action& action : plan.actions) {
      Outcome<postgres::ApplyResult> applied = gateway.Apply(action);
      if (!applied) {
        result.failure = applied.failure();
        return result;
      }
      result.kinds.push_back(postgres::KindOf(action));
    }
  }
  result.failure = Failure::Stalled("NotConverged", "reclaim plan not empty after the passes");
  return result;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("a fresh workspace converges: role, database, privileges, markers, extensions") {
  auto gateway = MakeGateway();
  const DesiredTenant desired = Desired(Spec("fresh", {"pg_trgm"}));

  const Converged result = Converge(*gateway, desired);
  RequireConverged(result);
  CHECK(result.passes == 2);  // one pass applies, the next plans nothing
  CHECK(result.Did("CreateRole"));
  CHECK(result.Did("CreateDatabase"));
  CHECK(result.Did("EnsureExtensions"));

  CHECK(RoleFact("user_fresh", "rolcanlogin") == "true");
  for (const char* flag :
       {"rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls"}) {
    CHECK_MESSAGE(RoleFact("user_fresh", flag) == "false", flag);
  }
  CHECK(RoleFact("user_fresh", "rolconnlimit") == "20");
  const std::string verifier = RoleFact("user_fresh", "rolpassword");
  CHECK(verifier.rfind("SCRAM-SHA-256$", 0) == 0);
  CHECK(postgres::ScramVerifierMatches(verifier, desired.password));
  const auto role_marker =
      postgres::Marker::Parse(RoleFact("user_fresh", "shobj_description(oid, 'pg_authid')"));
  REQUIRE(role_marker);
  CHECK(role_marker->workspace == "fresh");
  CHECK(role_marker->fields.at("pw") == postgres::PasswordMemo(desired.password, verifier));

  CHECK(DatabaseFact("tenant_fresh", "pg_get_userbyid(datdba)") == "user_fresh");
  CHECK(DatabaseFact("tenant_fresh", "pg_encoding_to_char(encoding)") == "UTF8");
  CHECK(DatabaseFact("tenant_fresh", "has_database_privilege('public', oid, 'CONNECT')") ==
        "false");
  CHECK(DatabaseFact("tenant_fresh", "has_database_privilege('public', oid, 'TEMPORARY')") ==
        "false");
  const auto db_marker = postgres::Marker::Parse(
      DatabaseFact("tenant_fresh", "shobj_description(oid, 'pg_database')"));
  REQUIRE(db_marker);
  CHECK(db_marker->workspace == "fresh");
  CHECK(db_marker->fields.at("state") == desired.state_digest);
  CHECK(QueryValue(Server().Dsn("tenant_fresh"),
                   "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'") == "1");

  // A fresh gateway (another replica) agrees that nothing is left to do.
  CHECK(PlanNow(*MakeGateway(), desired).Empty());
}

TEST_CASE("a converged pass sends the catalog query and nothing else: no DDL at all") {
  auto gateway = MakeGateway();
  const DesiredTenant desired = Desired(Spec("quiet", {"pg_trgm"}));
  testing::ResetStatementStats(AdminDsn());
  RequireConverged(Converge(*gateway, desired));
  // The gateway's own count agrees with what the server ran (no migrations here: a migration
  // file counts as one statement however many it holds).
  CHECK(testing::CountCalls(testing::ReadStatementStats(AdminDsn())) ==
        gateway->StatementsSent());

  testing::ResetStatementStats(AdminDsn());
  const std::int64_t before = gateway->StatementsSent();
  CHECK(PlanNow(*gateway, desired).Empty());
  const auto stats = testing::ReadStatementStats(AdminDsn());

  CHECK(gateway->StatementsSent() - before == 1);
  CHECK(testing::CountDdl(stats) == 0);
  CHECK(testing::CountCalls(stats) == 1);
  REQUIRE(stats.size() == 1);
  CHECK(stats.front().query.find("pg_authid") != std::string::npos);
  CHECK(stats.front().query.find("pg_database") != std::string::npos);
}

TEST_CASE("drift made by hand is repaired on the next pass") {
  auto gateway = MakeGateway();
  TenantSpec spec = Spec("drift");
  const DesiredTenant desired = Desired(spec);
  RequireConverged(Converge(*gateway, desired));
  const std::string admin = AdminDsn();

  SUBCASE("database owner changed") {
    Execute(admin,
            "DROP ROLE IF EXISTS drift_intruder; CREATE ROLE drift_intruder;"
            "ALTER DATABASE tenant_drift OWNER TO drift_intruder");
    CHECK(Has(Kinds(PlanNow(*gateway, desired)), "AlterDatabaseOwner"));
    RequireConverged(Converge(*gateway, desired));
    CHECK(DatabaseFact("tenant_drift", "pg_get_userbyid(datdba)") == "user_drift");
  }
  SUBCASE("CONNECT granted to PUBLIC") {
    Execute(admin, "GRANT CONNECT ON DATABASE tenant_drift TO PUBLIC");
    CHECK(Has(Kinds(PlanNow(*gateway, desired)), "RevokePublicAccess"));
    RequireConverged(Converge(*gateway, desired));
    CHECK(DatabaseFact("tenant_drift", "has_database_privilege('public', oid, 'CONNECT')") ==
          "false");
  }
  SUBCASE("TEMPORARY granted to PUBLIC") {
    Execute(admin, "GRANT TEMPORARY ON DATABASE tenant_drift TO PUBLIC");
    CHECK(Has(Kinds(PlanNow(*gateway, desired)), "RevokePublicAccess"));
    RequireConverged(Converge(*gateway, desired));
    CHECK(DatabaseFact("tenant_drift", "has_database_privilege('public', oid, 'TEMPORARY')") ==
          "false");
  }
  SUBCASE("connection limit changed") {
    Execute(admin, "ALTER ROLE user_drift CONNECTION LIMIT 99");
    CHECK(Has(Kinds(PlanNow(*gateway, desired)), "AlterRole"));
    RequireConverged(Converge(*gateway, desired));
    CHECK(RoleFact("user_drift", "rolconnlimit") == "20");
  }
  SUBCASE("attributes granted: SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS") {
    Execute(admin, "ALTER ROLE user_drift SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS");
    CHECK(Has(Kinds(PlanNow(*gateway, desired)), "AlterRole"));
    RequireConverged(Converge(*gateway, desired));
    for (const char* flag :
         {"rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls"}) {
      CHECK_MESSAGE(RoleFact("user_drift", flag) == "false", flag);
    }
  }
  SUBCASE("password changed by hand") {
    Execute(admin, "ALTER ROLE user_drift PASSWORD 'x'");
    CHECK_FALSE(ConnectError(TenantDsn(desired)).empty());
    CHECK(Has(Kinds(PlanNow(*gateway, desired)), "SetRolePassword"));
    RequireConverged(Converge(*gateway, desired));
    CHECK(ConnectError(TenantDsn(desired)).empty());
  }
  SUBCASE("password removed by hand") {
    Execute(admin, "ALTER ROLE user_drift PASSWORD NULL");
    CHECK(Has(Kinds(PlanNow(*gateway, desired)), "SetRolePassword"));
    RequireConverged(Converge(*gateway, desired));
    CHECK(ConnectError(TenantDsn(desired)).empty());
  }
  SUBCASE("NOLOGIN by hand") {
    Execute(admin, "ALTER ROLE user_drift NOLOGIN");
    CHECK_FALSE(ConnectError(TenantDsn(desired)).empty());
    CHECK(Has(Kinds(PlanNow(*gateway, desired)), "AlterRole"));
    RequireConverged(Converge(*gateway, desired));
    CHECK(RoleFact("user_drift", "rolcanlogin") == "true");
    CHECK(ConnectError(TenantDsn(desired)).empty());
  }
  SUBCASE("database dropped") {
    Execute(admin, "DROP DATABASE tenant_drift");
    CHECK(Has(Kinds(PlanNow(*gateway, desired)), "CreateDatabase"));
    RequireConverged(Converge(*gateway, desired));
    CHECK(DatabaseFact("tenant_drift", "pg_get_userbyid(datdba)") == "user_drift");
    CHECK(DatabaseFact("tenant_drift", "has_database_privilege('public', oid, 'CONNECT')") ==
          "false");
  }
  SUBCASE("role marker removed: refused, then taken back with adopt") {
    Execute(admin, "COMMENT ON ROLE user_drift IS NULL");
    const Converged refused = Converge(*gateway, desired);
    REQUIRE(refused.failure);
    CHECK(refused.failure->reason == "RoleNotOwned");
    CHECK(refused.kinds.empty());
    CHECK(RoleFact("user_drift", "shobj_description(oid, 'pg_authid')") == "<null>");

    spec.adopt = true;
    const DesiredTenant adopting = Desired(spec);
    const Converged adopted = Converge(*gateway, adopting);
    RequireConverged(adopted);
    CHECK(adopted.Did("SetRoleMarker"));
    const auto marker =
        postgres::Marker::Parse(RoleFact("user_drift", "shobj_description(oid, 'pg_authid')"));
    REQUIRE(marker);
    CHECK(marker->workspace == "drift");
  }
  // Whatever drifted, the desired state holds afterwards and a further pass is empty.
  CHECK(PlanNow(*gateway, desired).Empty());
  CHECK(ConnectError(TenantDsn(desired)).empty());
}

TEST_CASE("tenants are isolated: one tenant's role cannot connect to another's database") {
  auto gateway = MakeGateway();
  const DesiredTenant a = Desired(Spec("iso_a"));
  const DesiredTenant b = Desired(Spec("iso_b"));
  RequireConverged(Converge(*gateway, a));
  RequireConverged(Converge(*gateway, b));

  CHECK(QueryValue(AdminDsn(),
                   "SELECT has_database_privilege('user_iso_b', 'tenant_iso_a', "
                   "'CONNECT')") == "f");
  CHECK(QueryValue(AdminDsn(),
                   "SELECT has_database_privilege('user_iso_a', 'tenant_iso_b', "
                   "'CONNECT')") == "f");
  const std::string denied = ConnectError(TenantDsn(b, "tenant_iso_a"));
  CHECK(denied.find("permission denied") != std::string::npos);
  CHECK(ConnectError(TenantDsn(b)).empty());  // and yet its own database is open to it
  CHECK(ConnectError(TenantDsn(a)).empty());
}

TEST_CASE("the tenant role logs in over TCP with its derived password and creates tables") {
  auto gateway = MakeGateway();
  const DesiredTenant desired = Desired(Spec("login"));
  RequireConverged(Converge(*gateway, desired));

  testing::PgSession session(TenantDsn(desired));  // host=127.0.0.1: pg_hba asks for SCRAM
  CHECK(session.Run("CREATE TABLE invoices (id bigint PRIMARY KEY, total numeric)").empty());
  CHECK(session.Run("INSERT INTO invoices VALUES (1, 9.5)").empty());
  CHECK(QueryValue(Server().Dsn("tenant_login"),
                   "SELECT tableowner FROM pg_tables WHERE tablename = 'invoices'") ==
        "user_login");
  // A wrong password is refused: SCRAM is really checked.
  CHECK_FALSE(
      ConnectError(Server().DsnAs("user_login", "not-the-password", "tenant_login")).empty());
}

TEST_CASE("an unmarked existing database is refused until adopt: true") {
  auto gateway = MakeGateway();
  Execute(AdminDsn(), "CREATE DATABASE tenant_legacy");
  TenantSpec spec = Spec("legacy");

  const Converged refused = Converge(*gateway, Desired(spec));
  REQUIRE(refused.failure);
  CHECK(refused.failure->kind == FailureKind::kStalled);
  CHECK(refused.failure->reason == "DatabaseNotOwned");
  CHECK(refused.failure->message.find("tenant_legacy") != std::string::npos);
  CHECK(refused.kinds.empty());
  // Nothing touched: no role, the database as it was.
  CHECK(RoleFact("user_legacy", "rolname") == "<none>");
  CHECK(DatabaseFact("tenant_legacy", "pg_get_userbyid(datdba)") == "postgres");
  CHECK(DatabaseFact("tenant_legacy", "shobj_description(oid, 'pg_database')") == "<null>");
  CHECK(DatabaseFact("tenant_legacy", "has_database_privilege('public', oid, 'CONNECT')") ==
        "true");

  spec.adopt = true;
  const Converged adopted = Converge(*gateway, Desired(spec));
  RequireConverged(adopted);
  CHECK(adopted.Did("AlterDatabaseOwner"));
  CHECK(DatabaseFact("tenant_legacy", "pg_get_userbyid(datdba)") == "user_legacy");
  CHECK(DatabaseFact("tenant_legacy", "has_database_privilege('public', oid, 'CONNECT')") ==
        "false");
  const auto marker = postgres::Marker::Parse(
      DatabaseFact("tenant_legacy", "shobj_description(oid, 'pg_database')"));
  REQUIRE(marker);
  CHECK(marker->workspace == "legacy");
}

TEST_CASE("suspend closes logins and cuts open sessions; resume opens them again") {
  auto gateway = MakeGateway();
  TenantSpec spec = Spec("sleepy");
  const DesiredTenant awake = Desired(spec);
  RequireConverged(Converge(*gateway, awake));

  testing::PgSession open_session(TenantDsn(awake));
  REQUIRE(open_session.Run("SELECT 1").empty());

  spec.suspend = true;
  const DesiredTenant suspended = Desired(spec);
  const Converged paused = Converge(*gateway, suspended);
  RequireConverged(paused);
  CHECK(paused.Did("AlterRole"));
  CHECK(paused.Did("TerminateSessions"));
  CHECK(RoleFact("user_sleepy", "rolcanlogin") == "false");
  CHECK_FALSE(open_session.Run("SELECT 1").empty());  // the session was terminated
  CHECK(ConnectError(TenantDsn(awake)).find("not permitted to log in") != std::string::npos);
  // Nothing deleted.
  CHECK(DatabaseFact("tenant_sleepy", "pg_get_userbyid(datdba)") == "user_sleepy");

  spec.suspend = false;
  const Converged resumed = Converge(*gateway, Desired(spec));
  RequireConverged(resumed);
  CHECK(RoleFact("user_sleepy", "rolcanlogin") == "true");
  CHECK(ConnectError(TenantDsn(awake)).empty());
}

TEST_CASE("migrations run once, as the tenant role, recorded with their SHA-256") {
  auto gateway = MakeGateway();
  MigrationDir files;
  const std::string init = "CREATE TABLE customers (id bigserial PRIMARY KEY, name text);\n";
  const std::string orders =
      "CREATE TABLE orders (id bigserial PRIMARY KEY,\n"
      "  customer bigint REFERENCES customers(id));\n"
      "INSERT INTO customers (name) VALUES ('first');\n";
  files.Write("0001_init.sql", init);
  files.Write("0002_orders.sql", orders);
  const DesiredTenant desired = Desired(Spec("mig_once", {}, files.Load()));

  const Converged result = Converge(*gateway, desired);
  RequireConverged(result);
  CHECK(result.Did("ApplyMigrations"));
  const std::string tenant_db = Server().Dsn("tenant_mig_once");
  const std::vector<Row> ledger = Query(
      tenant_db,
      "SELECT version, file, checksum, duration_ms IS NOT NULL FROM tenant_master.schema_migrations"
      " ORDER BY version");
  REQUIRE(ledger.size() == 2);
  CHECK(ledger[0] == Row{"0001", "0001_init.sql", crypto::Sha256Hex(init), "t"});
  CHECK(ledger[1] == Row{"0002", "0002_orders.sql", crypto::Sha256Hex(orders), "t"});
  CHECK(QueryValue(tenant_db,
                   "SELECT string_agg(tableowner, ',') FROM pg_tables"
                   " WHERE tablename IN ('customers', 'orders')") == "user_mig_once,user_mig_once");
  CHECK(QueryValue(tenant_db, "SELECT count(*) FROM customers") == "1");
  // The ledger belongs to the operator: the tenant can add rows but not rewrite history.
  CHECK(QueryValue(tenant_db,
                   "SELECT pg_get_userbyid(relowner) FROM pg_class"
                   " WHERE oid = 'tenant_master.schema_migrations'::regclass") == "postgres");
  testing::PgSession tenant(TenantDsn(desired));
  CHECK_FALSE(tenant.Run("DELETE FROM tenant_master.schema_migrations").empty());

  // Asked again (a deep pass), nothing runs twice.
  Outcome<postgres::ApplyResult> again = gateway->Apply(postgres::ApplyMigrations{
      desired.database, desired.role, desired.password, desired.migrations});
  REQUIRE_MESSAGE(again.ok(), (again.ok() ? "" : again.failure().message));
  CHECK(again->detail == "no pending migrations");
  CHECK(QueryValue(tenant_db, "SELECT count(*) FROM tenant_master.schema_migrations") == "2");
  CHECK(QueryValue(tenant_db, "SELECT count(*) FROM customers") == "1");
  CHECK(PlanNow(*gateway, desired).Empty());
}

TEST_CASE("a changed applied migration stalls with MigrationChecksumMismatch, applying nothing") {
  auto gateway = MakeGateway();
  MigrationDir files;
  files.Write("0001_init.sql", "CREATE TABLE accounts (id int);\n");
  RequireConverged(Converge(*gateway, Desired(Spec("mig_sum", {}, files.Load()))));

  files.Write("0001_init.sql", "CREATE TABLE accounts (id bigint);\n");
  files.Write("0002_more.sql", "CREATE TABLE more_things (id int);\n");
  const DesiredTenant changed = Desired(Spec("mig_sum", {}, files.Load()));
  const Converged result = Converge(*gateway, changed);
  REQUIRE(result.failure);
  CHECK(result.failure->kind == FailureKind::kStalled);
  CHECK(result.failure->reason == "MigrationChecksumMismatch");
  CHECK(result.failure->message.find("0001_init.sql") != std::string::npos);
  const std::string tenant_db = Server().Dsn("tenant_mig_sum");
  CHECK(QueryValue(tenant_db, "SELECT count(*) FROM tenant_master.schema_migrations") == "1");
  CHECK(QueryValue(tenant_db, "SELECT to_regclass('more_things') IS NULL") == "t");
}

TEST_CASE("a broken migration stalls only its workspace and leaves no partial effect") {
  auto gateway = MakeGateway();
  MigrationDir bad_files;
  bad_files.Write("0001_init.sql", "CREATE TABLE kept (id int);\n");
  bad_files.Write("0002_orders.sql",
                  "CREATE TABLE half_done (id int);\n"
                  "INSERT INTO kept VALUES (1);\n"
                  "CREATE TABLE broken (id int;\n");
  const DesiredTenant bad = Desired(Spec("mig_bad", {}, bad_files.Load()));

  const Converged failed = Converge(*gateway, bad);
  REQUIRE(failed.failure);
  CHECK(failed.failure->kind == FailureKind::kStalled);
  CHECK(failed.failure->reason == "MigrationFailed");
  const std::string& message = failed.failure->message;
  CHECK_MESSAGE(
      message.rfind("migration 0002_orders.sql failed in database \"tenant_mig_bad\": ", 0) == 0,
      message);
  CHECK(message.find("syntax error") != std::string::npos);
  CHECK(message.find("line 3") != std::string::npos);
  CHECK(message.find(bad.password.Reveal()) == std::string::npos);

  const std::string tenant_db = Server().Dsn("tenant_mig_bad");
  CHECK(QueryValue(tenant_db, "SELECT to_regclass('kept') IS NOT NULL") == "t");
  CHECK(QueryValue(tenant_db, "SELECT to_regclass('half_done') IS NULL") == "t");
  CHECK(QueryValue(tenant_db, "SELECT count(*) FROM kept") == "0");
  CHECK(
      QueryValue(tenant_db, "SELECT string_agg(file, ',') FROM tenant_master.schema_migrations") ==
      "0001_init.sql");
  // Not recorded as done: the next pass tries again (and fails the same way).
  CHECK_FALSE(PlanNow(*gateway, bad).Empty());

  // Another workspace carries on.
  MigrationDir good_files;
  good_files.Write("0001_init.sql", "CREATE TABLE fine (id int);\n");
  const Converged good = Converge(*gateway, Desired(Spec("mig_good", {}, good_files.Load())));
  RequireConverged(good);
  CHECK(QueryValue(Server().Dsn("tenant_mig_good"), "SELECT to_regclass('fine') IS NOT NULL") ==
        "t");
}

TEST_CASE("hostile identifiers are escaped: objects get exactly those names, nothing else runs") {
  auto gateway = MakeGateway();
  const std::string admin = AdminDsn();
  const std::string roles_before = QueryValue(admin, "SELECT count(*) FROM pg_roles");
  const std::string databases_before = QueryValue(admin, "SELECT count(*) FROM pg_database");
  const std::vector<std::string> names = {
      "x\"; DROP DATABASE postgres; --", "Robert'); DROP TABLE students;--",
      "with spaces and 'quotes' and \"doubles\"",
      "host=127.0.0.1 dbname=postgres",  // must stay a name, never become conninfo
  };
  for (const std::string& name : names) {
    CAPTURE(name);
    const Secret password = postgres::DerivePassword(kMasterKey, "default", name, 0);
    const std::string marker = postgres::Marker{"hostile';--", {}}.Render();
    for (const Action& action : std::vector<Action>{
             postgres::CreateRole{name, true, 3, password, "hostile"},
             postgres::CreateDatabase{name, name, marker},
             postgres::AlterRole{name, true, 4},
             postgres::SetRoleMarker{name, marker},
             postgres::RevokePublicAccess{name},
             postgres::EnsureExtensions{name, {"pg_trgm"}},
             postgres::ApplyMigrations{name, name, password, {}},
             postgres::SetDatabaseMarker{name, marker},
         }) {
      Outcome<postgres::ApplyResult> applied = gateway->Apply(action);
      const std::string what =
          postgres::KindOf(action) + ": " + (applied.ok() ? "" : applied.failure().message);
      CHECK_MESSAGE(applied.ok(), what);
    }
    CHECK(QueryValue(admin, "SELECT count(*) FROM pg_roles WHERE rolname = $1", {name}) == "1");
    CHECK(QueryValue(admin, "SELECT rolconnlimit FROM pg_roles WHERE rolname = $1", {name}) == "4");
    CHECK(QueryValue(admin, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
                     {name}) == name);
    CHECK(QueryValue(admin,
                     "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                     " WHERE datname = $1",
                     {name}) == marker);
    // The role logs in to its oddly named database with its password, and the in-database
    // steps ran in that database (a name that looks like conninfo never became one).
    CHECK(ConnectError(Server().DsnAs(name, password.Reveal(), name)).empty());
    CHECK(QueryValue(Server().Dsn(name),
                     "SELECT count(*) FROM pg_extension"
                     " WHERE extname = 'pg_trgm'") == "1");
    CHECK(QueryValue(Server().Dsn(name),
                     "SELECT to_regclass('tenant_master.schema_migrations') IS NOT NULL") == "t");
  }
  CHECK(QueryValue(admin, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'") == "0");
  CHECK(QueryValue(admin, "SELECT to_regclass('tenant_master.schema_migrations') IS NULL") == "t");
  CHECK(std::stoi(QueryValue(admin, "SELECT count(*) FROM pg_roles")) ==
        std::stoi(roles_before) + static_cast<int>(names.size()));
  CHECK(std::stoi(QueryValue(admin, "SELECT count(*) FROM pg_database")) ==
        std::stoi(databases_before) + static_cast<int>(names.size()));
  CHECK(QueryValue(admin, "SELECT count(*) FROM pg_database WHERE datname = 'postgres'") == "1");

  // The observation reads the names back unchanged.
  Outcome<postgres::ObservedCluster> observed = gateway->Observe();
  REQUIRE(observed.ok());
  for (const std::string& name : names) {
    CHECK(observed->roles.count(name) == 1);
    CHECK(observed->databases.count(name) == 1);
  }
}

TEST_CASE("failure messages name the object and step and never carry a password or the DSN") {
  auto gateway = MakeGateway();
  const DesiredTenant desired = Desired(Spec("secretive"));
  RequireConverged(Converge(*gateway, desired));
  const std::string password = desired.password.Reveal();

  SUBCASE("creating a role that exists (classified as a concurrent change)") {
    Outcome<postgres::ApplyResult> again = gateway->Apply(
        postgres::CreateRole{desired.role, true, 20, desired.password, desired.workspace});
    REQUIRE_FALSE(again.ok());
    CHECK(again.failure().kind == FailureKind::kTransient);
    CHECK(again.failure().message.rfind("create role \"user_secretive\" on cluster \"default\": ",
                                        0) == 0);
    CHECK(again.failure().message.find("SQLSTATE 42710") != std::string::npos);
    CHECK(again.failure().message.find(password) == std::string::npos);
    CHECK(again.failure().message.find("SCRAM-SHA-256$") == std::string::npos);
  }
  SUBCASE("migrations with a password the role does not have") {
    const Secret wrong = postgres::DerivePassword(kMasterKey, "default", desired.role, 7);
    Outcome<postgres::ApplyResult> applied = gateway->Apply(
        postgres::ApplyMigrations{desired.database, desired.role, wrong, desired.migrations});
    REQUIRE_FALSE(applied.ok());
    CHECK(applied.failure().reason == "AuthenticationFailed");
    CHECK(applied.failure().message.find("tenant_secretive") != std::string::npos);
    CHECK(applied.failure().message.find(wrong.Reveal()) == std::string::npos);
    CHECK(applied.failure().message.find(password) == std::string::npos);
  }
  SUBCASE("an operator DSN with a wrong password") {
    const std::string dsn = Server().DsnAs("postgres", "wrong-admin-secret", "postgres");
    Outcome<postgres::ObservedCluster> observed = MakeGateway(dsn)->Observe();
    REQUIRE_FALSE(observed.ok());
    CHECK(observed.failure().kind == FailureKind::kStalled);
    CHECK(observed.failure().reason == "AuthenticationFailed");
    CHECK(observed.failure().message.find("cluster \"default\"") != std::string::npos);
    CHECK(observed.failure().message.find("wrong-admin-secret") == std::string::npos);
  }
  SUBCASE("an extension the server does not have") {
    Outcome<postgres::ApplyResult> applied =
        gateway->Apply(postgres::EnsureExtensions{desired.database, {"no_such_extension"}});
    REQUIRE_FALSE(applied.ok());
    CHECK(applied.failure().kind == FailureKind::kStalled);
    CHECK(applied.failure().reason == "ExtensionNotAvailable");
    CHECK(applied.failure().message.rfind(
              "install extensions in database \"tenant_secretive\" on cluster \"default\": ", 0) ==
          0);
    CHECK(applied.failure().message.find("no_such_extension") != std::string::npos);
  }
  SUBCASE("a DSN libpq cannot parse") {
    auto broken = MakeGateway("host=127.0.0.1 password=hunter2-secret dbname");
    Outcome<postgres::ObservedCluster> observed = broken->Observe();
    REQUIRE_FALSE(observed.ok());
    CHECK(observed.failure().reason == "InvalidDsn");
    CHECK(observed.failure().message.find("hunter2") == std::string::npos);
  }
  SUBCASE("a privilege error stalls") {
    Execute(AdminDsn(),
            "DROP ROLE IF EXISTS weak_operator;"
            "CREATE ROLE weak_operator LOGIN PASSWORD 'weak-operator-pw'");
    auto weak = MakeGateway(Server().DsnAs("weak_operator", "weak-operator-pw", "postgres"));
    Outcome<postgres::ApplyResult> created =
        weak->Apply(postgres::CreateDatabase{"tenant_never", "weak_operator", "m"});
    REQUIRE_FALSE(created.ok());
    CHECK(created.failure().kind == FailureKind::kStalled);
    CHECK(created.failure().reason == "InsufficientPrivilege");
    CHECK(created.failure().message.rfind(
              "create database \"tenant_never\" on cluster \"default\": ERROR: ", 0) == 0);
    CHECK(created.failure().message.find("weak-operator-pw") == std::string::npos);
  }
}

TEST_CASE("an operator role without superuser: pg_authid hidden, converges all the same") {
  Execute(AdminDsn(), "CREATE ROLE tm_operator LOGIN CREATEDB CREATEROLE PASSWORD 'operator-pw'");
  auto gateway = MakeGateway(Server().DsnAs("tm_operator", "operator-pw", "postgres"));
  MigrationDir files;
  files.Write("0001_init.sql", "CREATE TABLE things (id int);\n");
  const DesiredTenant desired = Desired(Spec("unprivileged", {"pg_trgm"}, files.Load()));

  const Converged result = Converge(*gateway, desired);
  RequireConverged(result);
  CHECK_FALSE(gateway->PasswordsVisible());
  Outcome<postgres::ObservedCluster> observed = gateway->Observe();
  REQUIRE(observed.ok());
  CHECK_FALSE(observed->passwords_visible);
  CHECK_FALSE(observed->roles.at("user_unprivileged").verifier.has_value());
  CHECK(DatabaseFact("tenant_unprivileged", "pg_get_userbyid(datdba)") == "user_unprivileged");
  CHECK(ConnectError(TenantDsn(desired)).empty());
  CHECK(QueryValue(Server().Dsn("tenant_unprivileged"),
                   "SELECT count(*) FROM tenant_master.schema_migrations") == "1");
}

TEST_CASE("workers share one gateway: concurrent reconciles through a small pool") {
  postgres::LibpqOptions options;
  options.pool_size = 2;
  auto gateway = postgres::MakeLibpqGateway("default", Secret(AdminDsn()), options);
  constexpr int kTenants = 6;
  std::vector<Converged> results(kTenants);
  std::vector<std::thread> workers;
  for (int worker = 0; worker < 3; ++worker) {
    workers.emplace_back([&, worker] {
      for (int i = worker; i < kTenants; i += 3) {
        results[static_cast<std::size_t>(i)] =
            Converge(*gateway, Desired(Spec("pool_" + std::to_string(i))));
      }
    });
  }
  for (auto& worker : workers) worker.join();
  for (const Converged& result : results) CHECK_MESSAGE(result.ok(), Failed(result));
  CHECK(QueryValue(AdminDsn(),
                   "SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant_pool_%'"
                   " AND NOT has_database_privilege('public', oid, 'CONNECT')") ==
        std::to_string(kTenants));
}

TEST_CASE("a restarted server is reconnected; a stopped one is a transient failure") {
  PgServer server;  // its own server: this test stops it
  auto gateway = postgres::MakeLibpqGateway("default", Secret(server.Dsn()), {});
  REQUIRE(gateway->Observe().ok());

  server.Restart();  // the pooled connection is now dead; the gateway notices and reconnects
  Outcome<postgres::ObservedCluster> after_restart = gateway->Observe();
  CHECK_MESSAGE(after_restart.ok(), (after_restart.ok() ? "" : after_restart.failure().message));

  server.Stop();
  Outcome<postgres::ObservedCluster> observed = gateway->Observe();
  REQUIRE_FALSE(observed.ok());
  CHECK(observed.failure().kind == FailureKind::kTransient);
  CHECK(observed.failure().message.find("cluster \"default\"") != std::string::npos);
  CHECK(observed.failure().message.find(server.password()) == std::string::npos);

  const DesiredTenant desired = Desired(Spec("offline"));
  Outcome<postgres::ApplyResult> applied = gateway->Apply(
      postgres::CreateRole{desired.role, true, -1, desired.password, desired.workspace});
  REQUIRE_FALSE(applied.ok());
  CHECK(applied.failure().kind == FailureKind::kTransient);
  CHECK(applied.failure().message.rfind("create role \"user_offline\" on cluster \"default\"", 0) ==
        0);
  CHECK(applied.failure().message.find(desired.password.Reveal()) == std::string::npos);
  Outcome<postgres::ApplyResult> migrated = gateway->Apply(
      postgres::ApplyMigrations{desired.database, desired.role, desired.password, {}});
  REQUIRE_FALSE(migrated.ok());
  CHECK(migrated.failure().kind == FailureKind::kTransient);
}

// --- reclaim: a removed workspace (issue 3 item 6) ------------------------------------------

TEST_CASE("reclaim Delete drops the database despite an open session, then the role") {
  auto gateway = MakeGateway();
  const DesiredTenant desired = Desired(Spec("doomed"));
  RequireConverged(Converge(*gateway, desired));
  testing::PgSession session(TenantDsn(desired));  // the tenant is logged in, in its database
  REQUIRE(session.Run("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)").empty());

  const Converged deleted =
      Reclaim(*gateway, ReclaimOf("doomed", manifests::ReclaimPolicy::kDelete));
  RequireConverged(deleted);
  CHECK(deleted.passes == 2);
  CHECK(deleted.Did("DropDatabase"));
  CHECK(deleted.Did("DropRole"));
  CHECK(DatabaseFact("tenant_doomed", "datname") == "<none>");
  CHECK(RoleFact("user_doomed", "rolname") == "<none>");
  CHECK_FALSE(session.Run("SELECT 1").empty());  // WITH (FORCE) ended it
  CHECK_FALSE(ConnectError(TenantDsn(desired)).empty());
  // The neighbours and the admin database are still there.
  CHECK(DatabaseFact("postgres", "datname") == "postgres");
}

TEST_CASE("reclaim Retain closes logins and ends sessions, and keeps the data") {
  auto gateway = MakeGateway();
  const TenantSpec spec = Spec("keeper");
  const DesiredTenant desired = Desired(spec);
  RequireConverged(Converge(*gateway, desired));
  testing::PgSession session(TenantDsn(desired));
  REQUIRE(session.Run("CREATE TABLE invoices (id int, total numeric)").empty());
  REQUIRE(session.Run("INSERT INTO invoices VALUES (1, 9.5), (2, 10)").empty());

  const Converged retained =
      Reclaim(*gateway, ReclaimOf("keeper", manifests::ReclaimPolicy::kRetain));
  RequireConverged(retained);
  CHECK(retained.Did("AlterRole"));
  CHECK(retained.Did("TerminateSessions"));
  CHECK(retained.Did("SetRoleMarker"));
  CHECK(RoleFact("user_keeper", "rolcanlogin") == "false");
  CHECK(RoleFact("user_keeper", "rolconnlimit") == "20");
  CHECK_FALSE(session.Run("SELECT 1").empty());
  CHECK(ConnectError(TenantDsn(desired)).find("not permitted to log in") != std::string::npos);
  const auto marker =
      postgres::Marker::Parse(RoleFact("user_keeper", "shobj_description(oid, 'pg_authid')"));
  REQUIRE(marker);
  CHECK(marker->fields.at("reclaim") == "retained");
  CHECK(marker->fields.contains("pw"));
  // The data, read as the admin.
  CHECK(QueryValue(Server().Dsn("tenant_keeper"), "SELECT sum(total) FROM invoices") == "19.5");
  CHECK(DatabaseFact("tenant_keeper", "pg_get_userbyid(datdba)") == "user_keeper");

  // The manifest comes back: the normal plan opens the role again and clears the record.
  const Converged back = Converge(*gateway, desired);
  RequireConverged(back);
  CHECK(back.passes == 2);
  CHECK(ConnectError(TenantDsn(desired)).empty());
  const auto cleared =
      postgres::Marker::Parse(RoleFact("user_keeper", "shobj_description(oid, 'pg_authid')"));
  REQUIRE(cleared);
  CHECK_FALSE(cleared->fields.contains("reclaim"));
  CHECK(QueryValue(TenantDsn(desired), "SELECT count(*) FROM invoices") == "2");
}

TEST_CASE("reclaim touches nothing that is not marked for the removed workspace") {
  auto gateway = MakeGateway();
  Execute(AdminDsn(), "CREATE ROLE user_stranger");
  Execute(AdminDsn(), "CREATE DATABASE tenant_stranger OWNER user_stranger");
  for (const auto policy : {manifests::ReclaimPolicy::kDelete, manifests::ReclaimPolicy::kRetain}) {
    const Converged refused = Reclaim(*gateway, ReclaimOf("stranger", policy));
    REQUIRE(refused.failure);
    CHECK(refused.failure->reason == "NotOwned");
    CHECK(refused.kinds.empty());
  }
  CHECK(DatabaseFact("tenant_stranger", "datname") == "tenant_stranger");
  CHECK(RoleFact("user_stranger", "rolname") == "user_stranger");
}

TEST_CASE("reclaim Delete stalls, naming what is left, when the role owns objects elsewhere") {
  auto gateway = MakeGateway();
  const DesiredTenant desired = Desired(Spec("sprawl"));
  RequireConverged(Converge(*gateway, desired));
  Execute(
      AdminDsn(),
      "CREATE TABLE sprawl_leftover (id int); ALTER TABLE sprawl_leftover OWNER TO user_sprawl");

  const Converged stuck = Reclaim(*gateway, ReclaimOf("sprawl", manifests::ReclaimPolicy::kDelete));
  REQUIRE(stuck.failure);
  CHECK(stuck.failure->kind == FailureKind::kStalled);
  CHECK(stuck.failure->reason == "RoleStillOwnsObjects");
  const std::string& message = stuck.failure->message;
  CAPTURE(message);
  CHECK(message.rfind("drop role \"user_sprawl\" on cluster \"default\": ", 0) == 0);
  CHECK(message.find("sprawl_leftover") != std::string::npos);  // the server's detail
  CHECK(message.find("REASSIGN OWNED") != std::string::npos);
  CHECK(message.find('\n') == std::string::npos);
  CHECK(stuck.Did("DropDatabase"));  // the database went first; nothing else was dropped
  CHECK(DatabaseFact("tenant_sprawl", "datname") == "<none>");
  CHECK(RoleFact("user_sprawl", "rolname") == "user_sprawl");
  CHECK(QueryValue(AdminDsn(), "SELECT to_regclass('sprawl_leftover') IS NOT NULL") == "t");

  // A human deals with the leftover; the next pass finishes.
  Execute(AdminDsn(), "DROP TABLE sprawl_leftover");
  RequireConverged(Reclaim(*gateway, ReclaimOf("sprawl", manifests::ReclaimPolicy::kDelete)));
  CHECK(RoleFact("user_sprawl", "rolname") == "<none>");
}

TEST_CASE("reclaim with hostile identifiers drops and closes exactly those objects") {
  auto gateway = MakeGateway();
  const std::string admin = AdminDsn();
  const std::string roles_before = QueryValue(admin, "SELECT count(*) FROM pg_roles");
  const std::string databases_before = QueryValue(admin, "SELECT count(*) FROM pg_database");
  // Not the names of the test above: both run on one server.
  const std::vector<std::string> names = {"rx\"; DROP DATABASE postgres; --",
                                          "reclaim: spaces, 'quotes' and \"doubles\"",
                                          "Robert'); DROP ROLE postgres;--"};
  for (const auto policy : {manifests::ReclaimPolicy::kRetain, manifests::ReclaimPolicy::kDelete}) {
    for (std::size_t i = 0; i < names.size(); ++i) {
      const std::string& name = names[i];
      CAPTURE(name);
      CAPTURE(std::string(manifests::ToString(policy)));
      // Workspace names are DNS labels (the loader checks), so only the object names are odd.
      const std::string workspace = "hostile-" + std::to_string(i);
      const Secret password = postgres::DerivePassword(kMasterKey, "default", name, 0);
      const std::string marker = postgres::Marker{workspace, {}}.Render();
      for (const Action& action : std::vector<Action>{
               postgres::CreateRole{name, true, 3, password, workspace},
               postgres::CreateDatabase{name, name, marker},
           }) {
        Outcome<postgres::ApplyResult> applied = gateway->Apply(action);
        REQUIRE_MESSAGE(applied.ok(), (applied.ok() ? "" : applied.failure().message));
      }
      testing::PgSession session(Server().DsnAs(name, password.Reveal(), name));
      REQUIRE(session.Run("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('x')").empty());

      const Converged reclaimed = Reclaim(*gateway, {workspace, "default", name, name, policy});
      RequireConverged(reclaimed);
      CHECK_FALSE(session.Run("SELECT 1").empty());
      CHECK_FALSE(ConnectError(Server().DsnAs(name, password.Reveal(), name)).empty());
      const bool kept = policy == manifests::ReclaimPolicy::kRetain;
      CHECK(QueryValue(admin, "SELECT count(*) FROM pg_roles WHERE rolname = $1", {name}) ==
            (kept ? "1" : "0"));
      CHECK(QueryValue(admin, "SELECT count(*) FROM pg_database WHERE datname = $1", {name}) ==
            (kept ? "1" : "0"));
      if (kept) {
        CHECK(QueryValue(Server().Dsn(name), "SELECT v FROM kept") == "x");
        CHECK(QueryValue(admin, "SELECT rolcanlogin::text FROM pg_roles WHERE rolname = $1",
                         {name}) == "false");
      }
    }
    // Leave no Retain leftovers for the Delete round (same names): delete them the same way.
    if (policy == manifests::ReclaimPolicy::kRetain) {
      for (std::size_t i = 0; i < names.size(); ++i) {
        RequireConverged(Reclaim(*gateway, {"hostile-" + std::to_string(i), "default", names[i],
                                            names[i], manifests::ReclaimPolicy::kDelete}));
      }
    }
  }
  CHECK(QueryValue(admin, "SELECT count(*) FROM pg_roles") == roles_before);
  CHECK(QueryValue(admin, "SELECT count(*) FROM pg_database") == databases_before);
  CHECK(QueryValue(admin, "SELECT count(*) FROM pg_database WHERE datname = 'postgres'") == "1");
  CHECK(QueryValue(admin, "SELECT count(*) FROM pg_roles WHERE rolname = 'postgres'") == "1");
}

TEST_CASE("the reclaim actions as a non-superuser operator (CREATEDB CREATEROLE)") {
  Execute(AdminDsn(), "CREATE ROLE tm_reclaimer LOGIN CREATEDB CREATEROLE PASSWORD 'reclaimer-pw'");
  auto gateway = MakeGateway(Server().DsnAs("tm_reclaimer", "reclaimer-pw", "postgres"));
  const DesiredTenant retained = Desired(Spec("weak_keep"));
  const DesiredTenant deleted = Desired(Spec("weak_drop"));
  RequireConverged(Converge(*gateway, retained));
  RequireConverged(Converge(*gateway, deleted));
  testing::PgSession session(TenantDsn(deleted));
  REQUIRE(session.Run("SELECT 1").empty());

  RequireConverged(Reclaim(*gateway, ReclaimOf("weak_keep", manifests::ReclaimPolicy::kRetain)));
  CHECK(RoleFact("user_weak_keep", "rolcanlogin") == "false");
  RequireConverged(Reclaim(*gateway, ReclaimOf("weak_drop", manifests::ReclaimPolicy::kDelete)));
  CHECK(DatabaseFact("tenant_weak_drop", "datname") == "<none>");
  CHECK(RoleFact("user_weak_drop", "rolname") == "<none>");
  CHECK_FALSE(session.Run("SELECT 1").empty());
}

// docs/placement.md: the cluster monitor's light check.
TEST_CASE("ServerVersion: the server's server_version with one statement; a closed port fails "
          "without the DSN in the message") {
  auto gateway = MakeGateway();
  const std::int64_t before = gateway->StatementsSent();
  Outcome<std::string> version = gateway->ServerVersion();
  REQUIRE_MESSAGE(version.ok(), (version.ok() ? "" : version.failure().message));
  CHECK(*version == QueryValue(AdminDsn(), "SHOW server_version"));
  CHECK(version->rfind("15", 0) == 0);
  CHECK(gateway->StatementsSent() == before + 1);

  // A port nothing listens on (the server's port + 1 is not a PostgreSQL of this test run).
  auto nowhere = postgres::MakeLibpqGateway(
      "nowhere",
      Secret("host=127.0.0.1 port=1 dbname=postgres user=x password=hunter2 connect_timeout=2"),
      {});
  Outcome<std::string> failed = nowhere->ServerVersion();
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.failure().kind == FailureKind::kTransient);
  CHECK(failed.failure().message.find("nowhere") != std::string::npos);
  CHECK(failed.failure().message.find("hunter2") == std::string::npos);
}

}  // namespace tmaster
