// End to end (issue 11, items 4, 8, 9, 10): the built tenant-operator --once against a private
// PostgreSQL. Adopt refuses what it must never take over and changes nothing; a workspace's
// identity (database name, owner, product, cluster) is fixed once it converged and an edit stalls
// ImmutableField with the tenant's rows where they were; a database marker forged by the tenant
// makes the pass look inside; an applied migration deleted from the product stalls
// MigrationMissing. Each workspace has names of its own: the server is shared by the test cases.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/secret.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tmaster::testing;

const std::string kOperator = std::string(TM_BINARY_DIR) + "/tenant-operator";
const std::string kMasterKey = "identity-e2e-master-key-0123456789abcdef";

// A fleet of its own: products `shop` (migrations/shop) and `crm` (no migrations), and the
// workspaces a test writes into workspaces.yaml.
struct Fleet {
  TempDir dir;

  Fleet() {
    dir.Write("fleet/products.yaml",
              "apiVersion: tenantmaster.io/v1alpha1\n"
              "kind: Product\n"
              "metadata:\n"
              "  name: shop\n"
              "spec:\n"
              "  image: ghcr.io/acme/shop\n"
              "  defaultVersion: \"1.0.0\"\n"
              "  migrations: migrations/shop\n"
              "  modes: [shared]\n"
              "---\n"
              "apiVersion: tenantmaster.io/v1alpha1\n"
              "kind: Product\n"
              "metadata:\n"
              "  name: crm\n"
              "spec:\n"
              "  image: ghcr.io/acme/crm\n"
              "  defaultVersion: \"1.0.0\"\n"
              "  modes: [shared]\n");
    dir.Write("fleet/migrations/shop/0001_items.sql",
              "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\n");
  }

  [[nodiscard]] std::string Path(const std::string& relative) const {
    return (dir.path() / "fleet" / relative).string();
  }

  /// One shared workspace; `database` lines go under `spec.database`.
  void Workspace(const std::string& name, const std::string& product,
                 const std::string& database) const {
    dir.Write("fleet/workspaces.yaml", "apiVersion: tenantmaster.io/v1alpha1\n"
                                       "kind: Workspace\n"
                                       "metadata:\n"
                                       "  name: " + name + "\n"
                                       "spec:\n"
                                       "  product: " + product + "\n"
                                       "  mode: shared\n"
                                       "  database:\n" + database);
  }

  /// The operator's config: cluster `default` (E2E_PG_DSN) and, with `second`, `eu`
  /// (E2E_PG2_DSN).
  [[nodiscard]] std::string Config(bool second = false) const {
    std::string clusters =
        "clusters:\n"
        "  - name: default\n"
        "    dsnEnv: E2E_PG_DSN\n";
    if (second) clusters += "  - name: eu\n    dsnEnv: E2E_PG2_DSN\n";
    return dir.Write("operator.yaml", "baseDomain: example.test\n"
                                      "masterKeyEnv: E2E_MASTER_KEY\n" +
                                          clusters +
                                          "sources:\n"
                                          "  - name: fleet\n"
                                          "    directory: " + Path("") + "\n")
        .string();
  }
};

std::map<std::string, std::string> Env(const std::string& dsn, const std::string& dsn2 = "") {
  std::map<std::string, std::string> env{{"E2E_MASTER_KEY", kMasterKey}, {"E2E_PG_DSN", dsn}};
  if (!dsn2.empty()) env["E2E_PG2_DSN"] = dsn2;
  return env;
}

ProcessResult Once(const Fleet& fleet, const std::map<std::string, std::string>& env,
                   bool second = false, bool dry_run = false) {
  std::vector<std::string> argv = {kOperator, "--config", fleet.Config(second), "--once"};
  if (dry_run) argv.emplace_back("--dry-run");
  return RunProcess(argv, env);
}

std::string LineOf(const ProcessResult& r, const std::string& workspace) {
  return LineStartingWith(r.out, workspace + " ");
}

long Count(const std::string& dsn, const std::string& sql) {
  return std::stol(QueryValue(dsn, sql));
}

// The roles and tenant databases of the server: nothing may appear when a workspace stalls.
struct Census {
  long roles = 0;
  long databases = 0;
  static Census Of(const PgServer& pg) {
    return {Count(pg.Dsn(), "SELECT count(*) FROM pg_roles"),
            Count(pg.Dsn(), "SELECT count(*) FROM pg_database")};
  }
  bool operator==(const Census&) const = default;
};

std::string DatabaseComment(const PgServer& pg, const std::string& database) {
  return QueryValue(pg.Dsn(),
                    "SELECT coalesce(shobj_description(oid, 'pg_database'), '<none>') "
                    "FROM pg_database WHERE datname = $1",
                    {database});
}

std::string TenantPassword(const std::string& cluster, const std::string& role) {
  return tmaster::postgres::DerivePassword(tmaster::Secret(kMasterKey), cluster, role, 0).Reveal();
}

}  // namespace

TEST_CASE("e2e identity: adopt refuses a superuser, the operator's own role and postgres") {
  PgServer& pg = PgServer::Shared();
  Fleet fleet;
  // The operator logs in as a role of its own, so that adopting it is a question for the planner
  // (the validator already reserves the name `postgres`).
  Execute(pg.Dsn(),
          "DO $$ BEGIN\n"
          "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tm_operator') THEN\n"
          "    CREATE ROLE tm_operator SUPERUSER LOGIN PASSWORD 'tm-operator-pass';\n"
          "  END IF;\n"
          "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'legacy_admin') THEN\n"
          "    CREATE ROLE legacy_admin SUPERUSER LOGIN PASSWORD 'legacy-admin-pass';\n"
          "  END IF;\n"
          "END $$");
  const std::string operator_dsn = pg.DsnAs("tm_operator", "tm-operator-pass", "postgres");
  const auto password_of = [&pg](const std::string& role) {
    return QueryValue(pg.Dsn(), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", {role});
  };
  const std::string legacy_before = password_of("legacy_admin");
  const std::string operator_before = password_of("tm_operator");
  const std::string postgres_comment = DatabaseComment(pg, "postgres");
  const Census before = Census::Of(pg);

  std::string name;
  std::string reason;
  std::string says;
  SUBCASE("a superuser") {
    name = "adopt-superuser";
    fleet.Workspace(name, "crm",
                    "    name: tenant_adopt_superuser\n"
                    "    owner: legacy_admin\n"
                    "    adopt: true\n");
    reason = "AdoptRefused";
    says = "role \"legacy_admin\" on cluster \"default\" is a superuser";
  }
  SUBCASE("the operator's own role") {
    name = "adopt-operator";
    fleet.Workspace(name, "crm",
                    "    name: tenant_adopt_operator\n"
                    "    owner: tm_operator\n"
                    "    adopt: true\n");
    reason = "AdoptRefused";
    says = "role \"tm_operator\" on cluster \"default\" is the operator's own role";
  }
  SUBCASE("database postgres") {
    name = "adopt-postgres";
    fleet.Workspace(name, "crm",
                    "    name: postgres\n"
                    "    owner: user_adopt_postgres\n"
                    "    adopt: true\n");
    reason = "InvalidManifest";  // refused by the validator before any plan
    says = "\"postgres\"";
  }
  const ProcessResult r = Once(fleet, Env(operator_dsn));
  CAPTURE(r.out);
  CAPTURE(r.err);
  CHECK(r.exit_code == 1);
  const std::string line = LineOf(r, name);
  CHECK(line.find(" Stalled ") != std::string::npos);
  CHECK(line.find(reason) != std::string::npos);
  CHECK(r.out.find(says) != std::string::npos);

  // Nothing changed: still superusers, the same passwords, no marker, nothing created.
  CHECK(QueryValue(pg.Dsn(), "SELECT rolsuper FROM pg_roles WHERE rolname = 'legacy_admin'") ==
        "t");
  CHECK(QueryValue(pg.Dsn(), "SELECT rolsuper FROM pg_roles WHERE rolname = 'tm_operator'") ==
        "t");
  CHECK(password_of("legacy_admin") == legacy_before);
  CHECK(password_of("tm_operator") == operator_before);
  CHECK(QueryValue(pg.Dsn(), "SELECT coalesce(shobj_description(oid, 'pg_authid'), '<none>') "
                             "FROM pg_roles WHERE rolname = 'legacy_admin'") == "<none>");
  CHECK(DatabaseComment(pg, "postgres") == postgres_comment);
  CHECK(Census::Of(pg) == before);
}

TEST_CASE("e2e identity: an identity edit on a workspace holding rows stalls ImmutableField") {
  PgServer& pg = PgServer::Shared();
  Fleet fleet;
  const std::string original =
      "    name: tenant_keeper\n"
      "    owner: user_keeper\n";
  fleet.Workspace("keeper", "shop", original);
  const ProcessResult first = Once(fleet, Env(pg.Dsn()));
  CAPTURE(first.out);
  REQUIRE(first.exit_code == 0);
  // Rows written by the tenant itself, with its own login (once: each SUBCASE runs this again).
  Execute(pg.DsnAs("user_keeper", TenantPassword("default", "user_keeper"), "tenant_keeper"),
          "INSERT INTO items (name) SELECT n FROM unnest(ARRAY['anvil', 'hammer', 'tongs']) n "
          "WHERE NOT EXISTS (SELECT FROM items)");
  REQUIRE(QueryValue(pg.Dsn("tenant_keeper"), "SELECT count(*) FROM items") == "3");
  const Census before = Census::Of(pg);
  const std::string marker_before = DatabaseComment(pg, "tenant_keeper");

  std::string field;
  bool second_cluster = false;
  PgServer* eu = nullptr;
  std::unique_ptr<PgServer> eu_server;
  SUBCASE("spec.database.name") {
    fleet.Workspace("keeper", "shop",
                    "    name: tenant_keeper_v2\n"
                    "    owner: user_keeper\n");
    field = "spec.database.name was \"tenant_keeper\" and is now \"tenant_keeper_v2\"";
  }
  SUBCASE("spec.database.owner") {
    fleet.Workspace("keeper", "shop",
                    "    name: tenant_keeper\n"
                    "    owner: user_keeper_v2\n");
    field = "spec.database.owner was \"user_keeper\" and is now \"user_keeper_v2\"";
  }
  SUBCASE("spec.product") {
    fleet.Workspace("keeper", "crm", original);
    field = "spec.product was \"shop\" and is now \"crm\"";
  }
  SUBCASE("spec.database.cluster (a second PostgreSQL server)") {
    eu_server = std::make_unique<PgServer>();
    eu = eu_server.get();
    second_cluster = true;
    fleet.Workspace("keeper", "shop", original + "    cluster: eu\n");
    field = "spec.database.cluster was \"default\" and is now \"eu\"";
  }
  const auto env = Env(pg.Dsn(), eu != nullptr ? eu->Dsn() : "");
  const ProcessResult r = Once(fleet, env, second_cluster);
  CAPTURE(r.out);
  CAPTURE(r.err);
  CHECK(r.exit_code == 1);
  const std::string line = LineOf(r, "keeper");
  CHECK(line.find(" Stalled ") != std::string::npos);
  CHECK(line.find("ImmutableField") != std::string::npos);
  CHECK(r.out.find(field) != std::string::npos);
  CHECK(r.out.find("database \"tenant_keeper\" on cluster \"default\" holds its data") !=
        std::string::npos);
  CHECK(r.out.find(kMasterKey) == std::string::npos);

  // The rows are where they were; no database or role appeared anywhere; nothing was rewritten.
  CHECK(QueryValue(pg.Dsn("tenant_keeper"), "SELECT count(*) FROM items") == "3");
  CHECK(Census::Of(pg) == before);
  CHECK(DatabaseComment(pg, "tenant_keeper") == marker_before);
  CHECK(QueryValue(pg.Dsn(), "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'user_keeper'") ==
        "t");
  if (eu != nullptr) {
    CHECK(QueryValue(eu->Dsn(), "SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant%'") ==
          "0");
    CHECK(QueryValue(eu->Dsn(), "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'user%'") ==
          "0");
  }

  // The old values back: converged, and the rows are still there.
  fleet.Workspace("keeper", "shop", original);
  const ProcessResult back = Once(fleet, env, second_cluster);
  CAPTURE(back.out);
  CHECK(back.exit_code == 0);
  CHECK(LineOf(back, "keeper").find(" Ready ") != std::string::npos);
  CHECK(QueryValue(pg.Dsn("tenant_keeper"), "SELECT count(*) FROM items") == "3");
}

TEST_CASE("e2e identity: a database marker forged by the tenant makes the pass look inside") {
  PgServer& pg = PgServer::Shared();
  Fleet fleet;
  fleet.Workspace("forger", "shop",
                  "    name: tenant_forger\n"
                  "    owner: user_forger\n");
  REQUIRE(Once(fleet, Env(pg.Dsn())).exit_code == 0);

  // The product gains a migration. The dry run shows the digest the marker will record.
  fleet.dir.Write("fleet/migrations/shop/0002_orders.sql", "CREATE TABLE orders (id int);\n");
  const ProcessResult dry = Once(fleet, Env(pg.Dsn()), false, true);
  CAPTURE(dry.out);
  const auto at = dry.out.find("(migration 0002, state ");
  REQUIRE(at != std::string::npos);
  const std::string digest = dry.out.substr(at + 23, 16);

  // The tenant owns its database: it rewrites the marker to claim that state, without our
  // signature (which it cannot compute).
  std::string marker = DatabaseComment(pg, "tenant_forger");
  REQUIRE(marker.find(";state=") != std::string::npos);
  std::string forged = "tenant-master:workspace=forger;cluster=default;migration=0002;owner="
                       "user_forger;product=shop;state=" + digest;
  Execute(pg.DsnAs("user_forger", TenantPassword("default", "user_forger"), "tenant_forger"),
          "COMMENT ON DATABASE tenant_forger IS '" + forged + "'");
  REQUIRE(DatabaseComment(pg, "tenant_forger") == forged);

  const ProcessResult r = Once(fleet, Env(pg.Dsn()));
  CAPTURE(r.out);
  CHECK(r.exit_code == 0);
  CHECK(LineOf(r, "forger").find(" Ready ") != std::string::npos);
  CHECK(QueryValue(pg.Dsn("tenant_forger"),
                   "SELECT count(*) FROM pg_tables WHERE tablename = 'orders'") == "1");
  CHECK(QueryValue(pg.Dsn("tenant_forger"),
                   "SELECT count(*) FROM tenant_master.schema_migrations") == "2");
  // The marker is ours again, signed.
  CHECK(DatabaseComment(pg, "tenant_forger").find(";sig=") != std::string::npos);
}

TEST_CASE("e2e identity: the only applied migration deleted from the product stalls") {
  PgServer& pg = PgServer::Shared();
  Fleet fleet;
  fleet.Workspace("forgetful", "shop",
                  "    name: tenant_forgetful\n"
                  "    owner: user_forgetful\n");
  REQUIRE(Once(fleet, Env(pg.Dsn())).exit_code == 0);
  const std::string marker_before = DatabaseComment(pg, "tenant_forgetful");
  fs::remove(fleet.Path("migrations/shop/0001_items.sql"));

  for (int pass = 0; pass < 2; ++pass) {
    CAPTURE(pass);
    const ProcessResult r = Once(fleet, Env(pg.Dsn()));
    CAPTURE(r.out);
    CHECK(r.exit_code == 1);
    const std::string line = LineOf(r, "forgetful");
    CHECK(line.find(" Stalled ") != std::string::npos);
    CHECK(line.find("MigrationMissing") != std::string::npos);
    CHECK(line.find("0001_items.sql") != std::string::npos);
    // The marker keeps the state it had: the workspace is not called converged.
    CHECK(DatabaseComment(pg, "tenant_forgetful") == marker_before);
    CHECK(QueryValue(pg.Dsn("tenant_forgetful"),
                     "SELECT count(*) FROM tenant_master.schema_migrations") == "1");
  }
}
