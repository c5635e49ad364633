// End to end (issue 11, items 1, 6 and 7): the built tenant-operator --once against a private
// PostgreSQL, on fleets whose manifests try to reach the master key or run what they must not:
//   - a migration that is a symbolic link to the master key file (outside the fleet folder);
//   - a product whose `spec.migrations` climbs out with `..`, one whose `spec.stackTemplate` is
//     absolute (/etc/passwd);
//   - a 2 MiB migration (over reconcile.maxMigrationSize, 1 MiB by default) and a migration with
//     a COMMIT between two CREATE TABLEs.
// Nothing of the key (or of /etc/passwd) may appear in stdout, stderr (the operator's log: spdlog
// writes there) or PostgreSQL's server log (PgServer::Log(), which keeps every ERROR with its
// STATEMENT, so a key run as SQL would be there), and nothing may run or be created for those
// workspaces. Each case has a fleet folder and workspace names of its own: the server is shared by
// the test cases.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "common/crypto.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tmaster::testing;

const std::string kOperator = std::string(TM_BINARY_DIR) + "/tenant-operator";

// A fresh folder holding the master key in secrets/master-key (outside the fleet), the fleet in
// fleet/ and the operator's config beside them. The key is recognisable and random per fleet:
// "KEY-" and 40 hex characters.
struct Fleet {
  TempDir dir;
  std::string key =
      "KEY-" + tmaster::crypto::Sha256Hex(tmaster::crypto::RandomBytes(32)).substr(0, 40);
  fs::path key_file = dir.Write("secrets/master-key", key);

  /// Writes `relative` beneath fleet/ and returns its full path.
  fs::path Write(const std::string& relative, const std::string& text) const {
    return dir.Write("fleet/" + relative, text);
  }

  [[nodiscard]] ProcessResult Once(const PgServer& pg) const {
    const fs::path config = dir.Write("operator.yaml",
                                      "baseDomain: example.test\n"
                                      "masterKeyFile: secrets/master-key\n"
                                      "clusters:\n"
                                      "  - name: default\n"
                                      "    dsnEnv: E2E_PG_DSN\n"
                                      "sources:\n"
                                      "  - name: fleet\n"
                                      "    directory: fleet\n");
    return RunProcess({kOperator, "--config", config.string(), "--once"},
                      {{"E2E_PG_DSN", pg.Dsn()}});
  }
};

// A product offering the shared mode; `extra` lines go under `spec` (indented two spaces).
std::string Product(const std::string& name, const std::string& extra) {
  return "apiVersion: tenantmaster.io/v1alpha1\n"
         "kind: Product\n"
         "metadata:\n"
         "  name: " +
         name +
         "\n"
         "spec:\n"
         "  image: ghcr.io/acme/" +
         name +
         "\n"
         "  defaultVersion: \"1.0\"\n"
         "  modes: [shared]\n" +
         extra;
}

std::string Workspace(const std::string& name, const std::string& product) {
  return "apiVersion: tenantmaster.io/v1alpha1\n"
         "kind: Workspace\n"
         "metadata:\n"
         "  name: " +
         name +
         "\n"
         "spec:\n"
         "  product: " +
         product +
         "\n"
         "  mode: shared\n";
}

// No 12-character window of `secret` (every 4th offset) occurs in `text`: neither the whole nor a
// piece of it (a message cut at some width, or quoted in part).
void CheckNoTraceOf(const std::string& secret, const std::string& text, const std::string& where) {
  CAPTURE(where);
  for (std::size_t i = 0; i + 12 <= secret.size(); i += 4) {
    const std::string piece = secret.substr(i, 12);
    CAPTURE(piece);
    CHECK(text.find(piece) == std::string::npos);
  }
}

void CheckNoTraceOf(const std::string& secret, const ProcessResult& run, const PgServer& pg) {
  CheckNoTraceOf(secret, run.out, "stdout");
  CheckNoTraceOf(secret, run.err, "stderr (the log)");
  CheckNoTraceOf(secret, pg.Log(), "PostgreSQL's server log");
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool DatabaseExists(const PgServer& pg, const std::string& database) {
  return QueryValue(pg.Dsn(), "SELECT count(*) FROM pg_database WHERE datname = $1", {database}) !=
         "0";
}

bool RoleExists(const PgServer& pg, const std::string& role) {
  return QueryValue(pg.Dsn(), "SELECT count(*) FROM pg_roles WHERE rolname = $1", {role}) != "0";
}

// The tables of `database` named in `names` (a SQL array literal), counted; 0 when the database
// does not exist.
long TablesIn(const PgServer& pg, const std::string& database, const std::string& names) {
  if (!DatabaseExists(pg, database)) return 0;
  return std::stol(QueryValue(pg.Dsn(database),
                              "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname = "
                              "ANY($1::text[])",
                              {names}));
}

// Rows of the migration ledger of `database`: 0 when the database or the ledger does not exist.
long LedgerRows(const PgServer& pg, const std::string& database) {
  if (!DatabaseExists(pg, database)) return 0;
  if (QueryValue(pg.Dsn(database),
                 "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                 "WHERE n.nspname = 'tenant_master' AND c.relname = 'schema_migrations'") == "0") {
    return 0;
  }
  return std::stol(
      QueryValue(pg.Dsn(database), "SELECT count(*) FROM tenant_master.schema_migrations"));
}

}  // namespace

TEST_CASE("e2e confinement: a migration linked to the master key file reads nothing of it") {
  PgServer& pg = PgServer::Shared();
  Fleet fleet;
  fleet.Write("products.yaml", Product("linked", "  migrations: migrations/x\n") + "---\n" +
                                   Product("plain", "  migrations: migrations/plain\n"));
  fleet.Write("workspaces.yaml",
              Workspace("leak", "linked") + "---\n" + Workspace("calm", "plain"));
  fleet.Write("migrations/plain/0001_notes.sql", "CREATE TABLE notes (id int);\n");
  fs::create_directories(fleet.dir.path() / "fleet/migrations/x");
  fs::create_symlink(fleet.key_file, fleet.dir.path() / "fleet/migrations/x/0001_init.sql");

  const ProcessResult run = fleet.Once(pg);
  CAPTURE(run.out);
  CAPTURE(run.err);
  CHECK(run.exit_code == 1);  // one workspace is not Ready
  CheckNoTraceOf(fleet.key, run, pg);

  // The workspace stalls naming the file, not its content; its neighbour converges.
  const std::string leak = LineStartingWith(run.out, "leak ");
  CHECK(Contains(leak, "Stalled"));
  CHECK(Contains(leak, "InvalidMigrations"));
  CHECK(Contains(leak, "migration file migrations/x/0001_init.sql leaves the source folder"));
  CHECK(Contains(LineStartingWith(run.out, "calm "), "Ready"));
  CHECK(TablesIn(pg, "tenant_calm", "{notes}") == 1);  // the pass did reach PostgreSQL

  // Nothing was run for it: no database, no role, so no migration (and no key) was sent.
  CHECK_FALSE(DatabaseExists(pg, "tenant_leak"));
  CHECK_FALSE(RoleExists(pg, "user_leak"));
  CHECK(LedgerRows(pg, "tenant_leak") == 0);

  // The neighbour's database and role would be orphans in the other cases' reports.
  Execute(pg.Dsn(), "DROP DATABASE IF EXISTS tenant_calm");
  Execute(pg.Dsn(), "DROP ROLE IF EXISTS user_calm");
}

TEST_CASE("e2e confinement: '..' out of the fleet and an absolute stackTemplate are rejected") {
  PgServer& pg = PgServer::Shared();
  Fleet fleet;
  // Where `..` would lead: a folder beside the fleet holding a migration made of the key.
  fleet.dir.Write("outside/0001_init.sql", fleet.key + "\n");
  // products/products.yaml: `../../outside` from products/ leaves fleet/ (line 9, column 15);
  // the second document's stackTemplate is on line 19 (10 + 9), its value at column 18.
  const fs::path products = fleet.Write(
      "products/products.yaml", Product("climber", "  migrations: ../../outside\n") + "---\n" +
                                    Product("templated", "  stackTemplate: /etc/passwd\n"));
  fleet.Write("workspaces.yaml",
              Workspace("climb", "climber") + "---\n" + Workspace("tpl", "templated"));

  const ProcessResult run = fleet.Once(pg);
  CAPTURE(run.out);
  CAPTURE(run.err);
  CHECK(run.exit_code == 1);
  CheckNoTraceOf(fleet.key, run, pg);
  // Nothing of /etc/passwd either (its first line, e.g. root:x:0:0:...).
  std::string passwd_line;
  std::getline(std::ifstream("/etc/passwd"), passwd_line);
  REQUIRE(passwd_line.size() >= 12);
  CheckNoTraceOf(passwd_line, run.out + run.err, "output (/etc/passwd)");

  // Each document is rejected at its field, with file:line:column.
  CHECK(Contains(run.out, products.string() + ":9:15: spec.migrations: path must be relative and "
                                              "stay inside the source folder"));
  CHECK(Contains(run.out, products.string() + ":19:18: spec.stackTemplate: path must be relative "
                                              "and stay inside the source folder"));
  CHECK(Contains(run.out, "\"/etc/passwd\" is absolute"));
  CHECK(Contains(LineStartingWith(run.out, "climb "), "Stalled"));
  CHECK(Contains(LineStartingWith(run.out, "tpl "), "Stalled"));

  // Nothing is created for their workspaces.
  for (const char* workspace : {"climb", "tpl"}) {
    CAPTURE(workspace);
    CHECK_FALSE(DatabaseExists(pg, std::string("tenant_") + workspace));
    CHECK_FALSE(RoleExists(pg, std::string("user_") + workspace));
  }
}

TEST_CASE("e2e confinement: a 2 MiB migration is refused unread") {
  PgServer& pg = PgServer::Shared();
  Fleet fleet;
  fleet.Write("products.yaml", Product("bulky", "  migrations: migrations/bulky\n"));
  fleet.Write("workspaces.yaml", Workspace("huge", "bulky"));
  // Valid SQL that would leave a table behind, padded with comments to 2 MiB.
  std::string sql = "CREATE TABLE bulk_marker (id int);\n";
  const std::string padding = "-- " + std::string(60, 'p') + "\n";
  while (sql.size() < 2 * 1024 * 1024) sql += padding;
  fleet.Write("migrations/bulky/0001_bulk.sql", sql);

  const ProcessResult run = fleet.Once(pg);
  CAPTURE(run.out);
  CAPTURE(run.err);
  CHECK(run.exit_code == 1);
  CheckNoTraceOf(fleet.key, run, pg);
  const std::string huge = LineStartingWith(run.out, "huge ");
  CHECK(Contains(huge, "Stalled"));
  CHECK(Contains(huge, "MigrationTooLarge"));
  CHECK(Contains(huge, "migrations/bulky/0001_bulk.sql"));
  CHECK(Contains(huge, "it was not read"));
  // No database change from that file.
  CHECK(TablesIn(pg, "tenant_huge", "{bulk_marker}") == 0);
  CHECK(LedgerRows(pg, "tenant_huge") == 0);
}

TEST_CASE("e2e confinement: a COMMIT inside a migration is refused and no table is created") {
  PgServer& pg = PgServer::Shared();
  Fleet fleet;
  fleet.Write("products.yaml", Product("splitter", "  migrations: migrations/split\n"));
  fleet.Write("workspaces.yaml", Workspace("split", "splitter"));
  fleet.Write("migrations/split/0001_split.sql",
              "CREATE TABLE split_first (id int);\n"
              "COMMIT;\n"
              "CREATE TABLE split_second (id int);\n");

  const ProcessResult run = fleet.Once(pg);
  CAPTURE(run.out);
  CAPTURE(run.err);
  CHECK(run.exit_code == 1);
  CheckNoTraceOf(fleet.key, run, pg);
  const std::string split = LineStartingWith(run.out, "split ");
  CHECK(Contains(split, "Stalled"));
  CHECK(Contains(split, "MigrationInvalid"));
  CHECK(Contains(split, "migration migrations/split/0001_split.sql line 2, column 1: COMMIT"));
  // Neither table exists, and nothing was recorded.
  CHECK(TablesIn(pg, "tenant_split", "{split_first,split_second}") == 0);
  CHECK(LedgerRows(pg, "tenant_split") == 0);
}
