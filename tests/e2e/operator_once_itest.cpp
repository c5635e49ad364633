// End to end: the built tenant-operator and tenantctl, run as a user would, on examples/, against
// a private PostgreSQL started by this test binary.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <string>

#include "tests/support/pg_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tmaster::testing;

const std::string kOperator = std::string(TM_BINARY_DIR) + "/tenant-operator";
const std::string kCtl = std::string(TM_BINARY_DIR) + "/tenantctl";
const std::string kFleet = std::string(TM_SOURCE_DIR) + "/examples/fleet";
const std::string kMasterKey = "e2e-master-key-0123456789abcdef0123456789";

const char* const kExampleWorkspaces[] = {"acme", "bodega-lima", "ferreteria-norte", "kitagli",
                                          "lavanderia-express", "surgir", "tienda-sol"};

std::string WriteConfig(const TempDir& dir, const std::string& fleet) {
  return dir.Write("operator.yaml",
                   "baseDomain: example.test\n"
                   "masterKeyEnv: E2E_MASTER_KEY\n"
                   "clusters:\n"
                   "  - name: default\n"
                   "    dsnEnv: E2E_PG_DSN\n"
                   "sources:\n"
                   "  - name: fleet\n"
                   "    directory: " + fleet + "\n"
                   "reconcile:\n"
                   "  workers: 3\n");
}

std::map<std::string, std::string> Env(const PgServer& pg) {
  return {{"E2E_MASTER_KEY", kMasterKey}, {"E2E_PG_DSN", pg.Dsn()}};
}

/// The line the report prints for `workspace`, or empty.
std::string LineOf(const std::string& out, const std::string& workspace) {
  return LineStartingWith(out, workspace + " ");
}

}  // namespace

TEST_CASE("e2e: tenantctl validates the examples and rejects a broken manifest with its location") {
  const ProcessResult ok = RunProcess({kCtl, "validate", "-f", kFleet});
  CAPTURE(ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.find("valid: 4 product(s), 7 workspace(s)") != std::string::npos);

  const std::string broken =
      "apiVersion: tenantmaster.io/v1alpha1\n"
      "kind: Workspace\n"
      "metadata:\n"
      "  name: broken\n"
      "spec:\n"
      "  product: erp\n"
      "  mode: shared\n"
      "  database:\n"
      "    connectionLimit: twenty\n";
  const ProcessResult bad = RunProcess({kCtl, "validate", "-f", "-"}, {}, broken);
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("<stdin>:9:22: spec.database.connectionLimit:") != std::string::npos);

  const ProcessResult version = RunProcess({kCtl, "version"});
  CHECK(version.exit_code == 0);
  CHECK(version.out.rfind("tenantctl ", 0) == 0);
}

TEST_CASE("e2e: tenant-operator --once converges the examples, and the second pass sends no DDL") {
  PgServer& pg = PgServer::Shared();
  TempDir dir;
  const std::string config = WriteConfig(dir, kFleet);

  SUBCASE("a missing secret is a start-up error naming the variable") {
    const ProcessResult r = RunProcess({kOperator, "--config", config, "--once"},
                                       {{"E2E_PG_DSN", pg.Dsn()}});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("E2E_MASTER_KEY") != std::string::npos);
  }

  SUBCASE("dry run, converge, converge again") {
    const ProcessResult dry =
        RunProcess({kOperator, "--config", config, "--once", "--dry-run"}, Env(pg));
    CAPTURE(dry.out);
    CAPTURE(dry.err);
    CHECK(dry.exit_code == 0);
    CHECK(dry.out.find("+ create database \"tenant_acme\"") != std::string::npos);
    CHECK(QueryValue(pg.Dsn(), "SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant\\_%'") ==
          "0");

    const ProcessResult first = RunProcess({kOperator, "--config", config, "--once"}, Env(pg));
    CAPTURE(first.out);
    CAPTURE(first.err);
    CHECK(first.exit_code == 0);
    for (const char* name : kExampleWorkspaces) {
      const std::string line = LineOf(first.out, name);
      CAPTURE(line);
      CHECK((line.find(" Ready ") != std::string::npos ||
             line.find(" Suspended ") != std::string::npos));
    }
    CHECK(first.out.find(kMasterKey) == std::string::npos);
    CHECK(first.err.find(pg.password()) == std::string::npos);
    CHECK(QueryValue(pg.Dsn(),
                     "SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant\\_%' AND "
                     "shobj_description(oid, 'pg_database') LIKE 'tenant-master:workspace=%'") ==
          "7");
    CHECK(QueryValue(pg.Dsn("tenant_acme"),
                     "SELECT count(*) FROM tenant_master.schema_migrations") == "3");
    CHECK(QueryValue(pg.Dsn("tenant_acme"),
                     "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension "
                     "WHERE extname <> 'plpgsql'") == "pg_trgm,unaccent");
    CHECK(QueryValue(pg.Dsn(), "SELECT rolcanlogin FROM pg_roles WHERE rolname = "
                               "'user_lavanderia_express'") == "f");

    ResetStatementStats(pg.Dsn());
    const ProcessResult second = RunProcess({kOperator, "--config", config, "--once"}, Env(pg));
    CAPTURE(second.out);
    CHECK(second.exit_code == 0);
    for (const char* name : kExampleWorkspaces) {
      const std::string line = LineOf(second.out, name);
      CAPTURE(line);
      CHECK((line.find(" UpToDate ") != std::string::npos ||
             line.find(" Suspended ") != std::string::npos));
    }
    // One cluster, so one catalog query and nothing else (README: "one catalog query per
    // cluster and nothing else").
    const auto stats = ReadStatementStats(pg.Dsn());
    CHECK(CountDdl(stats) == 0);
    CHECK(CountCalls(stats) == 1);
    REQUIRE(stats.size() == 1);
    CHECK(stats.front().query.find("pg_database") != std::string::npos);
    CHECK(stats.front().query.find("pg_authid") != std::string::npos);

    SUBCASE("a manifest made invalid stalls only its workspace and touches nothing") {
      TempDir fleet;
      fs::copy(kFleet, fleet.path(), fs::copy_options::recursive);
      fleet.Write("workspaces/kitagli.yaml",
                  "apiVersion: tenantmaster.io/v1alpha1\n"
                  "kind: Workspace\n"
                  "metadata:\n"
                  "  name: kitagli\n"
                  "spec:\n"
                  "  product: landing\n"
                  "  mode: sideways\n");
      fs::remove(fs::path(fleet.path()) / "workspaces/shared.yaml");
      fleet.Write("workspaces/shared.yaml", "");
      const std::string broken_config = WriteConfig(dir, fleet.path());
      const ProcessResult r = RunProcess({kOperator, "--config", broken_config, "--once"}, Env(pg));
      CAPTURE(r.out);
      CHECK(r.exit_code == 1);
      CHECK(r.out.find("kitagli.yaml:7:9: spec.mode:") != std::string::npos);
      CHECK(LineOf(r.out, "kitagli").find("Stalled") != std::string::npos);
      CHECK(LineOf(r.out, "acme").find("UpToDate") != std::string::npos);
      // bodega-lima, surgir and tienda-sol lost their manifests: orphans, listed and kept.
      CHECK(r.out.find("orphan: database \"tenant_surgir\"") != std::string::npos);
      CHECK(r.out.find("orphan: database \"tenant_kitagli\"") == std::string::npos);
      CHECK(QueryValue(pg.Dsn(), "SELECT count(*) FROM pg_database WHERE datname LIKE "
                                 "'tenant\\_%'") == "7");
    }
  }
}

TEST_CASE("e2e: --deep verifies inside every database and repairs a dropped extension") {
  PgServer& pg = PgServer::Shared();
  TempDir dir;
  const std::string config = WriteConfig(dir, kFleet);
  REQUIRE(RunProcess({kOperator, "--config", config, "--once"}, Env(pg)).exit_code == 0);
  Execute(pg.Dsn("tenant_tienda_sol"), "DROP EXTENSION unaccent");

  const ProcessResult shallow = RunProcess({kOperator, "--config", config, "--once"}, Env(pg));
  CHECK(shallow.exit_code == 0);
  CHECK(QueryValue(pg.Dsn("tenant_tienda_sol"),
                   "SELECT count(*) FROM pg_extension WHERE extname = 'unaccent'") == "0");

  const ProcessResult deep =
      RunProcess({kOperator, "--config", config, "--once", "--deep"}, Env(pg));
  CAPTURE(deep.out);
  CHECK(deep.exit_code == 0);
  CHECK(QueryValue(pg.Dsn("tenant_tienda_sol"),
                   "SELECT count(*) FROM pg_extension WHERE extname = 'unaccent'") == "1");
}
