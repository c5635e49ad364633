// End to end (issue 11, item 1): the built tenant-operator --once on a fleet whose manifests try
// to reach the master key, through a symbolic link and through `..`, against a private
// PostgreSQL. Nothing of the key may appear in the output, the log or PostgreSQL's log, and no
// migration may run.
#include <doctest/doctest.h>

#include <filesystem>
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

constexpr const char* kProducts = R"(apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata:
  name: linked
spec:
  image: ghcr.io/acme/linked
  defaultVersion: "1.0"
  modes: [shared]
  migrations: migrations/x
---
apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata:
  name: climber
spec:
  image: ghcr.io/acme/climber
  defaultVersion: "1.0"
  modes: [shared]
  migrations: ../../outside
)";

constexpr const char* kWorkspaces = R"(apiVersion: tenantmaster.io/v1alpha1
kind: Workspace
metadata:
  name: leak
spec:
  product: linked
  mode: shared
---
apiVersion: tenantmaster.io/v1alpha1
kind: Workspace
metadata:
  name: climb
spec:
  product: climber
  mode: shared
)";

}  // namespace

TEST_CASE("e2e: a symlink or '..' toward the master key reads nothing of it, runs nothing") {
  PgServer& pg = PgServer::Shared();
  TempDir dir;
  // A recognisable random key: 48 hex characters.
  const std::string key = tmaster::crypto::Sha256Hex(tmaster::crypto::RandomBytes(32)).substr(0, 48);
  const fs::path key_file = dir.Write("etc/secrets/master-key", key);
  dir.Write("etc/outside/0001_init.sql", key + "\n");  // where `..` would lead
  dir.Write("etc/fleet/products/products.yaml", kProducts);
  dir.Write("etc/fleet/workspaces.yaml", kWorkspaces);
  dir.Mkdir("etc/fleet/products/migrations/x");
  fs::create_symlink(key_file, dir.path() / "etc/fleet/products/migrations/x/0001_init.sql");
  const std::string config = dir.Write("etc/operator.yaml",
                                       "baseDomain: example.test\n"
                                       "masterKeyFile: secrets/master-key\n"
                                       "clusters:\n"
                                       "  - name: default\n"
                                       "    dsnEnv: E2E_PG_DSN\n"
                                       "sources:\n"
                                       "  - name: fleet\n"
                                       "    directory: fleet\n");

  const ProcessResult run =
      RunProcess({kOperator, "--config", config, "--once"}, {{"E2E_PG_DSN", pg.Dsn()}});
  CAPTURE(run.out);
  CAPTURE(run.err);
  CHECK(run.exit_code == 1);
  const std::string everything = run.out + run.err + pg.Log();
  for (std::size_t i = 0; i + 12 <= key.size(); i += 6) {
    CHECK(everything.find(key.substr(i, 12)) == std::string::npos);
  }

  // The link: the workspace stalls naming the file; the `..`: a validation error naming the field
  // with file:line:column, and its workspace is rejected.
  const std::string leak = LineStartingWith(run.out, "leak ");
  CHECK(leak.find("Stalled") != std::string::npos);
  CHECK(leak.find("InvalidMigrations") != std::string::npos);
  CHECK(leak.find("migration file products/migrations/x/0001_init.sql leaves the source folder") !=
        std::string::npos);
  const std::string products = (dir.path() / "etc/fleet/products/products.yaml").string();
  CHECK(run.out.find(products + ":19:15: spec.migrations: path must be relative and stay inside "
                                "the source folder") != std::string::npos);
  const std::string climb = LineStartingWith(run.out, "climb ");
  CHECK(climb.find("Stalled") != std::string::npos);

  // Nothing ran: neither database exists, so no migration (and no key) reached PostgreSQL.
  CHECK(QueryValue(pg.Dsn(), "SELECT count(*) FROM pg_database WHERE datname IN "
                             "('tenant_leak', 'tenant_climb')") == "0");
}
