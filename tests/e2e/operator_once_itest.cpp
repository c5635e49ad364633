// End to end: the built tenant-operator and tenantctl, run as a user would, on examples/, against
// a private PostgreSQL started by this test binary.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
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

/// The operator's config in `dir`: stacks in `dir`/deployments (the directory backend's
/// default), bindings in `dir`/bindings (the examples' erp declares a shared runtime, which
/// mounts them) unless `bindings` is false.
std::string WriteConfig(const TempDir& dir, const std::string& fleet, bool bindings = true) {
  return dir.Write("operator.yaml",
                   "baseDomain: example.test\n"
                   "masterKeyEnv: E2E_MASTER_KEY\n"
                   "clusters:\n"
                   "  - name: default\n"
                   "    dsnEnv: E2E_PG_DSN\n"
                   "sources:\n"
                   "  - name: fleet\n"
                   "    directory: " + fleet + "\n" +
                   (bindings ? "bindings:\n  dir: " + (dir.path() / "bindings").string() + "\n"
                             : std::string()) +
                   "reconcile:\n"
                   "  workers: 3\n");
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The folder of the erp shared runtime's stack in the directory backend.
fs::path RuntimeStack(const TempDir& dir) { return dir.path() / "deployments" / "shared-erp"; }

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
    // The erp shared runtime is planned after the workspaces, and nothing is written.
    CHECK(LineStartingWith(dry.out, "erp ").find(" Progressing  DryRun ") != std::string::npos);
    CHECK(dry.out.find("    + create stack \"tm-shared-erp\" (endpoint 1) with its compose file") !=
          std::string::npos);
    CHECK(dry.out.find("1 shared runtimes, 1 ready") != std::string::npos);
    CHECK_FALSE(fs::exists(RuntimeStack(dir)));
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
    const std::string runtime = LineStartingWith(first.out, "erp ");
    CAPTURE(runtime);
    CHECK(runtime.find(" Ready ") != std::string::npos);
    CHECK(runtime.find(" Reconciled ") != std::string::npos);
    CHECK(runtime.find("stack \"tm-shared-erp\" on endpoint 1 converged with 1 action") !=
          std::string::npos);
    CHECK(first.out.find("1 shared runtimes, 1 ready") != std::string::npos);
    CHECK(ReadFile(RuntimeStack(dir) / "stack.meta").find("endpoint=1") != std::string::npos);
    CHECK(ReadFile(RuntimeStack(dir) / "docker-compose.yml")
              .find((dir.path() / "bindings" / "erp").string() + ":/bindings:ro") !=
          std::string::npos);
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
    CHECK(LineStartingWith(second.out, "erp ").find(" Ready  UpToDate ") != std::string::npos);
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

TEST_CASE("e2e: --once keeps the erp shared runtime while a source is invalid, removes it when erp "
          "drops it") {
  PgServer& pg = PgServer::Shared();
  TempDir dir;
  TempDir fleet;
  fs::copy(kFleet, fleet.path(), fs::copy_options::recursive);
  const std::string config = WriteConfig(dir, fleet.path());
  const ProcessResult first = RunProcess({kOperator, "--config", config, "--once"}, Env(pg));
  CAPTURE(first.out);
  CAPTURE(first.err);
  REQUIRE(first.exit_code == 0);
  REQUIRE(fs::exists(RuntimeStack(dir) / "docker-compose.yml"));

  // erp no longer declares a runtime, and another document is broken: nothing is removed.
  std::string products = ReadFile(fs::path(fleet.path()) / "products.yaml");
  const std::size_t at = products.find("  # One stack, tm-shared-erp");
  const std::size_t end = products.find("---", at);
  REQUIRE(at != std::string::npos);
  REQUIRE(end != std::string::npos);
  products.erase(at, end - at);
  REQUIRE(products.find("sharedRuntime") == std::string::npos);
  fleet.Write("products.yaml", products);
  fleet.Write("workspaces/broken.yaml",
              "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: broken\n"
              "spec:\n  product: erp\n  mode: sideways\n");
  const ProcessResult kept = RunProcess({kOperator, "--config", config, "--once"}, Env(pg));
  CAPTURE(kept.out);
  CHECK(kept.exit_code == 1);
  CHECK(kept.out.find("deleted: delete stack \"tm-shared-erp\"") == std::string::npos);
  CHECK(fs::exists(RuntimeStack(dir) / "docker-compose.yml"));

  // Every document valid again: the stale runtime goes, said on its own line.
  fs::remove(fs::path(fleet.path()) / "workspaces/broken.yaml");
  const ProcessResult pruned = RunProcess({kOperator, "--config", config, "--once"}, Env(pg));
  CAPTURE(pruned.out);
  CAPTURE(pruned.err);
  CHECK(pruned.exit_code == 0);
  CHECK(pruned.out.find("deleted: delete stack \"tm-shared-erp\"") != std::string::npos);
  CHECK(pruned.out.find("(product \"erp\" declares no shared runtime on endpoint 1)") !=
        std::string::npos);
  CHECK(pruned.out.find("0 shared runtimes, 0 ready") != std::string::npos);
  CHECK_FALSE(fs::exists(RuntimeStack(dir)));
  // A dedicated workspace's stack is never taken for a runtime.
  CHECK(fs::exists(dir.path() / "deployments" / "acme" / "docker-compose.yml"));
}

TEST_CASE("e2e: --once without bindings.dir stalls the erp shared runtime and exits 1") {
  PgServer& pg = PgServer::Shared();
  TempDir dir;
  const std::string config = WriteConfig(dir, kFleet, /*bindings=*/false);
  const ProcessResult r = RunProcess({kOperator, "--config", config, "--once"}, Env(pg));
  CAPTURE(r.out);
  CAPTURE(r.err);
  CHECK(r.exit_code == 1);
  for (const char* name : kExampleWorkspaces) {
    const std::string line = LineOf(r.out, name);
    CAPTURE(line);
    CHECK(line.find(" Stalled ") == std::string::npos);
  }
  const std::string runtime = LineStartingWith(r.out, "erp ");
  CAPTURE(runtime);
  CHECK(runtime.find(" Stalled  BindingsNotConfigured ") != std::string::npos);
  CHECK(runtime.find("no bindings.dir") != std::string::npos);
  CHECK(r.out.find("1 shared runtimes, 0 ready") != std::string::npos);
  CHECK_FALSE(fs::exists(RuntimeStack(dir)));
}
