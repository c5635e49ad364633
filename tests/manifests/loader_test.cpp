// Manifest loading: the validation table (one SUBCASE per rule, each with its message, location
// and field path), cross-document rules, defaults and directory loading.
#include "manifests/loader.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "manifests/naming.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using tmaster::manifests::Diagnostic;
using tmaster::manifests::Fleet;
using tmaster::manifests::LoadOptions;
using tmaster::manifests::LoadPaths;
using tmaster::manifests::LoadText;
using tmaster::manifests::Mode;
using tmaster::manifests::ReclaimPolicy;
using tmaster::manifests::RejectedWorkspace;
using tmaster::manifests::Workspace;
using tmaster::testing::TempDir;

// erp offers both modes (so it needs a stack template); landing only shared.
constexpr const char* kProducts = R"(apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata:
  name: erp
spec:
  image: ghcr.io/acme/erp
  defaultVersion: "2.3.1"
  stackTemplate: stacks/erp.yml
  migrations: migrations/erp
  extensions: [pg_trgm]
---
apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata:
  name: landing
spec:
  image: ghcr.io/acme/landing
  defaultVersion: "1.0.0"
  modes: [shared]
)";

// A fleet folder: products.yaml, the erp template and migrations, and `ws.yaml`.
class FleetDir {
 public:
  FleetDir() {
    dir_.Write("products.yaml", kProducts);
    dir_.Write("stacks/erp.yml", "services: {app: {image: \"${TM_IMAGE}:${TM_VERSION}\"}}\n");
    dir_.Write("migrations/erp/0001_init.sql", "CREATE TABLE t (id int);\n");
  }
  Fleet Load(const std::string& workspaces, const LoadOptions& options = {}) const {
    dir_.Write("ws.yaml", workspaces);
    return LoadPaths({dir_.path()}, options);
  }
  [[nodiscard]] const TempDir& dir() const { return dir_; }
  [[nodiscard]] std::string WsFile() const { return (dir_.path() / "ws.yaml").string(); }

 private:
  TempDir dir_;
};

std::string Dump(const Fleet& fleet) {
  std::string out;
  for (const Diagnostic& d : fleet.diagnostics) out += d.Format() + "\n";
  return out;
}

const Diagnostic* FindDiagnostic(const Fleet& fleet, const std::string& field,
                                 const std::string& message) {
  for (const Diagnostic& d : fleet.diagnostics) {
    if (d.field == field && d.message.find(message) != std::string::npos) return &d;
  }
  return nullptr;
}

constexpr const char* kHead = R"(apiVersion: tenantmaster.io/v1alpha1
kind: Workspace
metadata:
  name: acme
spec:
  product: erp
)";  // lines 1-6

struct Row {
  const char* rule;
  std::string yaml;
  std::string field;  // expected field path
  int line;
  int column;
  std::string message;  // expected substring
  // The workspace's fate: rejected as InvalidManifest when it has a usable name; absent from
  // fleet.rejected when it has none (rejected_name empty).
  std::string rejected_name = "acme";
  std::optional<std::set<std::string>> clusters = std::nullopt;
};

std::vector<Row> Rows() {
  const std::string head = kHead;
  return {
      {"unknown field", head + "  mode: shared\n  color: blue\n", "spec.color", 8, 3,
       "unknown field \"color\""},
      {"unknown field at the top", head + "  mode: shared\nstatuz: {}\n", "statuz", 8, 1,
       "unknown field \"statuz\""},
      {"wrong type: quoted integer",
       head + "  mode: shared\n  database:\n    connectionLimit: \"20\"\n",
       "spec.database.connectionLimit", 9, 22, "must be integer, got string \"20\""},
      {"wrong type: yes is not a boolean", head + "  mode: shared\n  suspend: yes\n",
       "spec.suspend", 8, 12, "must be boolean, got string \"yes\" (use true or false)"},
      {"wrong type: unquoted version",
       head + "  mode: dedicated\n  dedicated:\n    endpoint: 1\n    version: 2.3\n",
       "spec.dedicated.version", 10, 14,
       "must be string, got number 2.3 (quote it to make it a string)"},
      {"wrong type: object expected, null given", head + "  mode: shared\n  database:\n",
       "spec.database", 8, 3, "must be object, got null"},
      {"bad enum", head + "  mode: private\n", "spec.mode", 7, 9,
       "must be one of \"shared\", \"dedicated\", got \"private\""},
      {"bad enum: reclaimPolicy", head + "  mode: shared\n  database:\n    reclaimPolicy: delete\n",
       "spec.database.reclaimPolicy", 9, 20,
       "must be one of \"Retain\", \"Delete\", got \"delete\""},
      {"bad pattern: database name", head + "  mode: shared\n  database:\n    name: Tenant-X\n",
       "spec.database.name", 9, 11, "must match ^[a-z_][a-z0-9_]*$, got \"Tenant-X\""},
      {"bad pattern: extension",
       head + "  mode: shared\n  database:\n    extensions: [ok, \"b c\"]\n",
       "spec.database.extensions[1]", 9, 22, "must match ^[a-z_][a-z0-9_-]*$, got \"b c\""},
      {"duplicate extension",
       head + "  mode: shared\n  database:\n    extensions: [unaccent, hstore, unaccent]\n",
       "spec.database.extensions[2]", 9, 36, "duplicate of spec.database.extensions[0]"},
      {"minimum: connectionLimit", head + "  mode: shared\n  database:\n    connectionLimit: -2\n",
       "spec.database.connectionLimit", 9, 22, "must be >= -1, got -2"},
      {"minimum: passwordRotation",
       head + "  mode: shared\n  database:\n    passwordRotation: -1\n",
       "spec.database.passwordRotation", 9, 23, "must be >= 0, got -1"},
      {"minimum: endpoint", head + "  mode: dedicated\n  dedicated: {endpoint: 0}\n",
       "spec.dedicated.endpoint", 8, 25, "must be >= 1, got 0"},
      {"minimum: keep", head + "  mode: shared\n  backup: {keep: 0}\n", "spec.backup.keep", 8, 18,
       "must be >= 1, got 0"},
      {"int32 range", head + "  mode: shared\n  database: {connectionLimit: 99999999999}\n",
       "spec.database.connectionLimit", 8, 31, "must fit in a 32-bit integer"},
      {"missing required: mode", head, "spec.mode", 6, 3, "required field is missing"},
      {"missing required: spec",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: acme\n", "spec",
       1, 1, "required field is missing"},
      {"missing required: metadata.name",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  labels: {a: "
       "b}\nspec:\n  product: erp\n  mode: shared\n",
       "metadata.name", 4, 3, "required field is missing", ""},
      // spec.dedicated.endpoint is optional since issue 10 (placed: docs/placement.md#endpoints).
      {"endpoint zero", head + "  mode: dedicated\n  dedicated:\n    endpoint: 0\n",
       "spec.dedicated.endpoint", 9, 15, "must be >= 1"},
      {"name too long",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: " +
           std::string(41, 'a') + "\nspec:\n  product: erp\n  mode: shared\n",
       "metadata.name", 4, 9, "must be at most 40 characters long, got 41", ""},
      {"name with upper case",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: Acme\nspec:\n  "
       "product: erp\n  mode: shared\n",
       "metadata.name", 4, 9, "must match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$, got \"Acme\"", ""},
      {"hostile name",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: \"a';drop table "
       "x;--\"\nspec:\n  product: erp\n  mode: shared\n",
       "metadata.name", 4, 9, "got \"a';drop table x;--\"", ""},
      {"hostile owner role",
       head + "  mode: shared\n  database:\n    owner: 'x\"; DROP ROLE postgres; --'\n",
       "spec.database.owner", 9, 12,
       "must match ^[a-z_][a-z0-9_]*$, got \"x\\\"; DROP ROLE postgres; --\""},
      {"hostile value is escaped", head + "  mode: shared\n  subdomain: \"a\\nb\"\n",
       "spec.subdomain", 8, 14, "got \"a\\nb\""},
      {"reserved subdomain", head + "  mode: shared\n  subdomain: www\n", "spec.subdomain", 8, 14,
       "subdomain \"www\" is reserved"},
      {"reserved subdomain by default",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: admin\nspec:\n  "
       "product: erp\n  mode: shared\n",
       "spec.subdomain", 4, 9, "subdomain \"admin\" is reserved (defaulted from metadata.name",
       "admin"},
      {"reserved database name by default",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: master\nspec:\n  "
       "product: erp\n  mode: shared\n",
       "spec.database.name", 4, 9, "database \"tenant_master\" is reserved", "master"},
      {"reserved role", head + "  mode: shared\n  database: {owner: pg_monitor}\n",
       "spec.database.owner", 8, 21, "role \"pg_monitor\" is reserved"},
      {"missing product",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: acme\nspec:\n  "
       "product: billing\n  mode: shared\n",
       "spec.product", 6, 12, "Product \"billing\" not found"},
      {"mode not allowed by product",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: acme\nspec:\n  "
       "product: landing\n  mode: dedicated\n  dedicated: {endpoint: 1}\n",
       "spec.mode", 7, 9,
       "Product \"landing\" does not offer the dedicated mode (its modes: shared)"},
      {"dedicated without mode dedicated", head + "  mode: shared\n  dedicated:\n    endpoint: 1\n",
       "spec.dedicated", 8, 3, "only allowed when spec.mode is dedicated"},
      {"mode dedicated without dedicated", head + "  mode: dedicated\n", "spec.dedicated", 7, 9,
       "required when spec.mode is dedicated"},
      {"env name",
       head + "  mode: dedicated\n  dedicated:\n    endpoint: 1\n    env: {\"1X\": a}\n",
       "spec.dedicated.env", 10, 11, "variable name \"1X\" must match ^[A-Za-z_][A-Za-z0-9_]*$"},
      {"env overrides the operator's",
       head + "  mode: dedicated\n  dedicated:\n    endpoint: 1\n    env:\n      DB_PASSWORD: x\n",
       "spec.dedicated.env[DB_PASSWORD]", 11, 7, "is set by the operator"},
      {"env value must be a string",
       head + "  mode: dedicated\n  dedicated:\n    endpoint: 1\n    env: {DEBUG: true}\n",
       "spec.dedicated.env[DEBUG]", 10, 18, "must be string, got boolean true (quote it"},
      {"bad cron", head + "  mode: shared\n  backup: {schedule: every day}\n",
       "spec.backup.schedule", 8, 22, "must match"},
      // The CRD's pattern accepts these; the cron parser (common/cron.hpp) does not.
      {"cron minute out of range", head + "  mode: shared\n  backup: {schedule: \"61 3 * * *\"}\n",
       "spec.backup.schedule", 8, 22, "minute field \"61\": 61 is out of range 0-59"},
      {"cron range backwards", head + "  mode: shared\n  backup:\n    schedule: \"0 22-2 * * *\"\n",
       "spec.backup.schedule", 9, 15, "hour field \"22-2\": range 22-2 runs backwards (22 > 2)"},
      {"cron never fires", head + "  mode: shared\n  backup: {schedule: \"0 0 31 2 *\", keep: 3}\n",
       "spec.backup.schedule", 8, 22, "day-of-month field \"31\""},
      {"cron unknown month name", head + "  mode: shared\n  backup: {schedule: \"0 0 1 foo *\"}\n",
       "spec.backup.schedule", 8, 22, "month field \"foo\""},
      {"unknown cluster", head + "  mode: shared\n  database: {cluster: eu}\n",
       "spec.database.cluster", 8, 23,
       "unknown cluster \"eu\" (the operator config defines: default)", "acme",
       std::set<std::string>{"default"}},
      {"placement beside a named cluster",
       head + "  mode: shared\n  database: {cluster: eu, placement: {clusterSelector: {region: eu}}}\n",
       "spec.database.placement", 8, 27,
       "only for a workspace without spec.database.cluster (it names cluster \"eu\")", "acme",
       std::set<std::string>{"eu"}},
      {"bad cluster selector key",
       head + "  mode: shared\n  database:\n    placement: {clusterSelector: {\"bad key!\": x}}\n",
       "spec.database.placement.clusterSelector[\"bad key!\"]", 9, 35,
       "invalid label key \"bad key!\"", "acme", std::set<std::string>{"eu"}},
      {"endpoint placement beside a named endpoint",
       head + "  mode: dedicated\n  dedicated:\n    endpoint: 2\n"
              "    placement: {endpointSelector: {kind: swarm}}\n",
       "spec.dedicated.placement", 10, 5,
       "only for a workspace without spec.dedicated.endpoint (it names endpoint 2)"},
      {"bad endpoint selector value",
       head + "  mode: dedicated\n  dedicated:\n    placement: {endpointSelector: {kind: \"a b\"}}\n",
       "spec.dedicated.placement.endpointSelector[kind]", 9, 42, "invalid label value \"a b\""},
      {"bad label key",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: acme\n  "
       "labels:\n    bad key!: x\nspec:\n  product: erp\n  mode: shared\n",
       "metadata.labels[\"bad key!\"]", 6, 5, "invalid label key \"bad key!\""},
      {"bad label value",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: acme\n  labels: "
       "{tier: \"not ok\"}\nspec:\n  product: erp\n  mode: shared\n",
       "metadata.labels[tier]", 5, 18, "invalid label value \"not ok\""},
      {"label value must be a string",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: acme\n  labels: "
       "{beta: true}\nspec:\n  product: erp\n  mode: shared\n",
       "metadata.labels[beta]", 5, 18, "must be string, got boolean true"},
      {"bad annotation key",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: acme\n  "
       "annotations: {\"-x\": y}\nspec:\n  product: erp\n  mode: shared\n",
       "metadata.annotations[-x]", 5, 17, "invalid annotation key \"-x\""},
      {"unknown metadata field",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: acme\n  uid: "
       "abc\nspec:\n  product: erp\n  mode: shared\n",
       "metadata.uid", 5, 3, "unknown field \"uid\" (metadata may hold only name"},
      {"duplicate field", head + "  mode: shared\n  mode: dedicated\n", "spec.mode", 8, 3,
       "duplicate field \"mode\""},
      {"unsupported tag", head + "  mode: !secret shared\n", "spec.mode", 7, 9,
       "unsupported YAML tag \"!secret\""},
      {"invalid YAML", head + "  mode: [shared\n", "", 7, 16,
       "invalid YAML: end of sequence flow not found"},
      {"invalid YAML, flow mapping", head + "  mode: shared\n  database: {name: x\n", "", 8, 21,
       "invalid YAML:"},
      {"unknown kind",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: acme\n", "kind", 2,
       7, "unknown kind \"Tenant\" (tenantmaster.io/v1alpha1 has Workspace and Product)", ""},
      {"unsupported version",
       "apiVersion: tenantmaster.io/v2\nkind: Workspace\nmetadata:\n  name: acme\nspec:\n  "
       "product: erp\n  mode: shared\n",
       "apiVersion", 1, 13, "unsupported apiVersion \"tenantmaster.io/v2\""},
      {"kind without apiVersion",
       "kind: Workspace\nmetadata:\n  name: acme\nspec:\n  product: erp\n  mode: shared\n",
       "apiVersion", 1, 1, "required field is missing"},
  };
}

}  // namespace

TEST_CASE("manifests: validation table") {
  FleetDir fleet_dir;
  for (const Row& row : Rows()) {
    SUBCASE(row.rule) {
      LoadOptions options;
      options.known_clusters = row.clusters;
      const Fleet fleet = fleet_dir.Load(row.yaml, options);
      INFO("diagnostics:\n" << Dump(fleet));
      const Diagnostic* found = FindDiagnostic(fleet, row.field, row.message);
      REQUIRE(found != nullptr);
      CHECK(found->severity == Diagnostic::Severity::kError);
      CHECK(found->where.file == fleet_dir.WsFile());
      CHECK(found->where.line == row.line);
      CHECK(found->where.column == row.column);
      CHECK(fleet.HasErrors());
      // The products stay valid whatever the workspace says, and the workspace is never valid.
      CHECK(fleet.products.size() == 2);
      CHECK(fleet.workspaces.empty());
      if (row.rejected_name.empty()) {
        CHECK(fleet.rejected.empty());
      } else {
        REQUIRE(fleet.rejected.size() == 1);
        CHECK(fleet.rejected[0].name == row.rejected_name);
        CHECK(fleet.rejected[0].reason == "InvalidManifest");
        CHECK(fleet.rejected[0].where.file == fleet_dir.WsFile());
        // The message is the first finding, formatted with its location.
        CHECK(fleet.rejected[0].message.rfind(fleet_dir.WsFile() + ":", 0) == 0);
      }
    }
  }
}

TEST_CASE("manifests: the base workspace of the table is valid") {
  // Guards the table: each row fails because of its own change, not because of the base.
  FleetDir fleet_dir;
  const Fleet fleet = fleet_dir.Load(std::string(kHead) + "  mode: shared\n");
  INFO(Dump(fleet));
  CHECK_FALSE(fleet.HasErrors());
  CHECK(fleet.diagnostics.empty());
  REQUIRE(fleet.workspaces.size() == 1);
  CHECK(fleet.rejected.empty());
}

TEST_CASE("manifests: valid backup schedules load as written") {
  // The other side of the table's cron rows: what the parser accepts passes (macros, names,
  // steps, lists, February 29, tabs), so the check refuses only schedules cron refuses.
  FleetDir fleet_dir;
  for (const char* schedule : {"@daily", "*/15 0-6 1,15 jan-jun mon-fri", "0 0 29 2 *",
                               "30 3 * * 7", "5 4 * * sun"}) {
    CAPTURE(schedule);
    const Fleet fleet = fleet_dir.Load(std::string(kHead) + "  mode: shared\n  backup: {schedule: \"" +
                                       schedule + "\", keep: 3}\n");
    INFO(Dump(fleet));
    CHECK(fleet.diagnostics.empty());
    REQUIRE(fleet.workspaces.size() == 1);
    CHECK(fleet.workspaces[0].backup.schedule == schedule);
    CHECK(fleet.workspaces[0].backup.keep == 3);
  }
}

TEST_CASE("manifests: another apiVersion is skipped with a notice; no apiVersion is skipped") {
  FleetDir fleet_dir;
  const Fleet fleet = fleet_dir.Load(
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n"
      "# a compose template kept beside the manifests\nservices:\n  web: {image: nginx}\n---\n" +
      std::string(kHead) + "  mode: shared\n");
  INFO(Dump(fleet));
  REQUIRE(fleet.diagnostics.size() == 1);
  const Diagnostic& notice = fleet.diagnostics[0];
  CHECK(notice.severity == Diagnostic::Severity::kNotice);
  CHECK(notice.where.line == 1);
  CHECK(notice.where.column == 13);
  CHECK(notice.field.empty());
  CHECK(notice.message == "skipped: apiVersion \"apps/v1\" is not a tenantmaster.io resource");
  CHECK_FALSE(fleet.HasErrors());
  REQUIRE(fleet.workspaces.size() == 1);
  CHECK(fleet.workspaces[0].name == "acme");
  CHECK(fleet.workspaces[0].where.line == 10);  // the `kind:` line of the third document
}

TEST_CASE("manifests: one bad document never stops the others") {
  TempDir dir;
  dir.Write("a/products.yaml", kProducts);
  dir.Write("a/stacks/erp.yml", "services: {}\n");
  dir.Mkdir("a/migrations/erp");
  dir.Write("b/broken.yaml", "apiVersion: [\n");
  dir.Write("c/ws.yml",
            "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: one}\n"
            "spec: {product: erp, mode: shared}\n"
            "---\n"
            "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: two\n"
            "spec:\n  product: erp\n  mode: [shared\n"
            "---\n"
            "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: three}\n"
            "spec: {product: erp, mode: shared, color: red}\n"
            "---\n"
            "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: four}\n"
            "spec: {product: landing, mode: shared}\n");
  const Fleet fleet = LoadPaths({dir.path()}, {});
  INFO(Dump(fleet));
  CHECK(fleet.products.size() == 2);
  std::vector<std::string> names;
  for (const Workspace& w : fleet.workspaces) names.push_back(w.name);
  CHECK(names == std::vector<std::string>{"one", "four"});
  // "two" does not parse but is still known by name: its last good spec must be kept.
  REQUIRE(fleet.rejected.size() == 2);
  CHECK(fleet.rejected[0].name == "two");
  CHECK(fleet.rejected[0].reason == "InvalidManifest");
  CHECK(fleet.rejected[0].where.line == 7);  // its `kind:` line
  CHECK(fleet.rejected[0].message.find("invalid YAML") != std::string::npos);
  CHECK(fleet.rejected[1].name == "three");
  CHECK(fleet.rejected[1].message.find("unknown field \"color\"") != std::string::npos);
  // Errors come in file order: b/broken.yaml before c/ws.yml.
  REQUIRE(fleet.diagnostics.size() == 3);
  CHECK(fleet.diagnostics[0].where.file == (dir.path() / "b/broken.yaml").string());
  CHECK(fleet.diagnostics[0].message.rfind("invalid YAML: ", 0) == 0);
  CHECK(fleet.diagnostics[0].where.line == 1);
  CHECK(fleet.diagnostics[1].where.line == 12);
  CHECK(fleet.diagnostics[2].field == "spec.color");
  CHECK(fleet.diagnostics[2].where.line == 17);
}

TEST_CASE("manifests: conflicts stall both workspaces") {
  struct Case {
    const char* rule;
    std::string second;  // the second workspace's document (file b.yaml)
    std::string field;
    int line;  // of the finding in b.yaml
    int column;
    std::string message_a;  // message on a.yaml's workspace, which names b.yaml
  };
  const std::string head_b =
      "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: other\nspec:\n"
      "  product: erp\n  mode: shared\n";
  const std::vector<Case> cases = {
      {"duplicate name",
       "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: acme\nspec:\n"
       "  product: erp\n  mode: shared\n  subdomain: acme2\n  database: {name: db2, owner: "
       "role2}\n",
       "metadata.name", 4, 9, "Workspace \"acme\" is also defined at "},
      {"duplicate subdomain", head_b + "  subdomain: acme\n", "spec.subdomain", 8, 14,
       "subdomain \"acme\" is also used by Workspace \"other\" at "},
      {"duplicate database name", head_b + "  database:\n    name: tenant_acme\n",
       "spec.database.name", 9, 11,
       "database \"tenant_acme\" is also used by Workspace \"other\" at "},
      {"duplicate owner role", head_b + "  database: {owner: user_acme}\n", "spec.database.owner",
       8, 21, "owner role \"user_acme\" is also used by Workspace \"other\" at "},
  };
  for (const Case& c : cases) {
    SUBCASE(c.rule) {
      TempDir dir;
      dir.Write("products.yaml", kProducts);
      dir.Write("stacks/erp.yml", "services: {}\n");
      dir.Mkdir("migrations/erp");
      const fs::path a = dir.Write("a.yaml", std::string(kHead) + "  mode: shared\n");
      const fs::path b = dir.Write("b.yaml", c.second);
      const Fleet fleet = LoadPaths({dir.path()}, {});
      INFO(Dump(fleet));
      CHECK(fleet.workspaces.empty());
      REQUIRE(fleet.rejected.size() == 2);
      for (const RejectedWorkspace& r : fleet.rejected) CHECK(r.reason == "Conflict");
      CHECK(fleet.rejected[0].where.file == a.string());
      CHECK(fleet.rejected[1].where.file == b.string());
      // a.yaml's message names b.yaml's line and the other way round.
      CHECK(fleet.rejected[0].message.find(c.message_a + b.string() + ":" +
                                           std::to_string(c.line)) != std::string::npos);
      CHECK(fleet.rejected[1].message.find(a.string() + ":") != std::string::npos);
      const Diagnostic* on_b = nullptr;
      for (const Diagnostic& d : fleet.diagnostics) {
        if (d.where.file == b.string() && d.field == c.field) on_b = &d;
      }
      REQUIRE(on_b != nullptr);
      CHECK(on_b->severity == Diagnostic::Severity::kError);
      CHECK(on_b->where.line == c.line);
      CHECK(on_b->where.column == c.column);
      CHECK(fleet.diagnostics.size() == 2);
    }
  }
}

TEST_CASE("manifests: an invalid workspace still claims its name") {
  FleetDir fleet_dir;
  const Fleet fleet = fleet_dir.Load(std::string(kHead) + "  mode: shared\n---\n" + kHead +
                                     "  mode: shared\n  color: red\n");
  INFO(Dump(fleet));
  CHECK(fleet.workspaces.empty());
  REQUIRE(fleet.rejected.size() == 2);
  CHECK(fleet.rejected[0].reason == "Conflict");
  CHECK(fleet.rejected[1].reason == "InvalidManifest");
}

TEST_CASE("manifests: defaults and naming") {
  FleetDir fleet_dir;
  const Fleet fleet = fleet_dir.Load(
      "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: my-shop\n"
      "  labels: {plan: free}\nspec:\n  product: erp\n  mode: dedicated\n  dedicated:\n"
      "    endpoint: 2\n    env: {LANGUAGE_CODE: no}\n"
      "---\n"
      "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: full\nspec:\n"
      "  product: erp\n  mode: shared\n  subdomain: shop\n  suspend: true\n  database:\n"
      "    cluster: eu\n    name: shop_db\n    owner: shop_owner\n    connectionLimit: 20\n"
      "    extensions: [unaccent]\n    reclaimPolicy: Delete\n    passwordRotation: 3\n"
      "    adopt: true\n  backup: {schedule: \"0 3 * * *\", keep: 30}\n");
  INFO(Dump(fleet));
  REQUIRE(fleet.diagnostics.empty());
  REQUIRE(fleet.workspaces.size() == 2);

  const Workspace& d = fleet.workspaces[0];
  CHECK(d.name == "my-shop");
  CHECK(d.labels == std::map<std::string, std::string>{{"plan", "free"}});
  CHECK(d.where.line == 2);
  CHECK(d.subdomain == "my-shop");
  CHECK(d.database.cluster.empty());  // omitted: placed by the controller (docs/placement.md)
  CHECK(d.database.cluster_placed);
  CHECK(d.database.cluster_selector.empty());
  CHECK(d.database.name == "tenant_my_shop");
  CHECK(d.database.owner == "user_my_shop");
  CHECK(d.database.connection_limit == -1);
  CHECK(d.database.reclaim_policy == ReclaimPolicy::kRetain);
  CHECK(d.database.password_rotation == 0);
  CHECK_FALSE(d.database.adopt);
  CHECK_FALSE(d.suspend);
  CHECK(d.backup.schedule.empty());
  CHECK(d.backup.keep == 7);
  CHECK(d.mode == Mode::kDedicated);
  REQUIRE(d.dedicated.has_value());
  CHECK(d.dedicated->endpoint == 2);
  CHECK_FALSE(d.dedicated->endpoint_placed);
  CHECK(d.dedicated->version == "2.3.1");  // the product's defaultVersion
  CHECK(d.dedicated->env == std::map<std::string, std::string>{{"LANGUAGE_CODE", "no"}});

  const Workspace& f = fleet.workspaces[1];
  CHECK(f.subdomain == "shop");
  CHECK(f.suspend);
  CHECK(f.database.cluster == "eu");
  CHECK(f.database.name == "shop_db");
  CHECK(f.database.owner == "shop_owner");
  CHECK(f.database.connection_limit == 20);
  CHECK(f.database.extensions == std::vector<std::string>{"unaccent"});
  CHECK(f.database.reclaim_policy == ReclaimPolicy::kDelete);
  CHECK(f.database.password_rotation == 3);
  CHECK(f.database.adopt);
  CHECK(f.backup.schedule == "0 3 * * *");
  CHECK(f.backup.keep == 30);
  CHECK_FALSE(f.dedicated.has_value());

  const tmaster::manifests::Product* erp = fleet.FindProduct("erp");
  REQUIRE(erp != nullptr);
  CHECK(erp->port == 8000);
  CHECK(erp->modes == std::vector<Mode>{Mode::kShared, Mode::kDedicated});
  CHECK(erp->extensions == std::vector<std::string>{"pg_trgm"});
  CHECK(erp->stack_template.is_absolute());
  CHECK(fs::equivalent(erp->stack_template, fleet_dir.dir().path() / "stacks/erp.yml"));
  CHECK(fs::equivalent(erp->migrations, fleet_dir.dir().path() / "migrations/erp"));
  const tmaster::manifests::Product* landing = fleet.FindProduct("landing");
  REQUIRE(landing != nullptr);
  CHECK(landing->modes == std::vector<Mode>{Mode::kShared});
  CHECK(landing->stack_template.empty());
  CHECK(landing->migrations.empty());
  CHECK(fleet.FindProduct("nope") == nullptr);
}

TEST_CASE("manifests: naming helpers") {
  using namespace tmaster::manifests;
  CHECK(DefaultDatabaseName("my-shop-2") == "tenant_my_shop_2");
  CHECK(DefaultOwnerRole("my-shop-2") == "user_my_shop_2");
  CHECK(IsDnsLabel("a"));
  CHECK(IsDnsLabel("a-1"));
  CHECK_FALSE(IsDnsLabel(""));
  CHECK_FALSE(IsDnsLabel("-a"));
  CHECK_FALSE(IsDnsLabel("a-"));
  CHECK_FALSE(IsDnsLabel("A"));
  CHECK_FALSE(IsDnsLabel("a_b"));
  CHECK(IsDnsLabel(std::string(40, 'x'), 40));
  CHECK_FALSE(IsDnsLabel(std::string(41, 'x'), 40));
  CHECK_FALSE(LabelKeyError("app.kubernetes.io/name").has_value());
  CHECK_FALSE(LabelKeyError("plan").has_value());
  CHECK(LabelKeyError("Bad_Prefix/x").has_value());
  CHECK(LabelKeyError("a/").has_value());
  CHECK(LabelKeyError(std::string(64, 'k')).has_value());
  CHECK_FALSE(LabelValueError("").has_value());
  CHECK_FALSE(LabelValueError("v1.2_x-y").has_value());
  CHECK(LabelValueError("-x").has_value());
  CHECK(LabelValueError(std::string(64, 'v')).has_value());
  CHECK(DefaultReservedSubdomains().size() == 13);
  CHECK(std::count(DefaultReservedSubdomains().begin(), DefaultReservedSubdomains().end(),
                   "portainer") == 1);
}

TEST_CASE("manifests: reserved subdomains come from the options when given") {
  FleetDir fleet_dir;
  LoadOptions options;
  options.reserved_subdomains = {"shop"};
  const std::string doc = std::string(kHead) + "  mode: shared\n  subdomain: ";
  CHECK(fleet_dir.Load(doc + "www\n", options).workspaces.size() == 1);  // www no longer reserved
  const Fleet fleet = fleet_dir.Load(doc + "shop\n", options);
  REQUIRE(FindDiagnostic(fleet, "spec.subdomain", "subdomain \"shop\" is reserved") != nullptr);
  CHECK(fleet.workspaces.empty());
}

TEST_CASE("manifests: product rules") {
  TempDir dir;
  dir.Write("stacks/erp.yml", "services: {}\n");
  dir.Write("migrations-file.sql", "SELECT 1;\n");
  const std::string head =
      "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: erp\nspec:\n"
      "  image: ghcr.io/acme/erp\n  defaultVersion: \"1.0\"\n";  // lines 1-7
  const std::string workspace =
      "---\napiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: acme}\n"
      "spec: {product: erp, mode: shared}\n";

  SUBCASE("stack template missing") {
    dir.Write("p.yaml", head + "  stackTemplate: stacks/nope.yml\n" + workspace);
    const Fleet fleet = LoadPaths({dir.path() / "p.yaml"}, {});
    const Diagnostic* d = FindDiagnostic(fleet, "spec.stackTemplate", "file not found: ");
    REQUIRE(d != nullptr);
    CHECK(d->message.find((dir.path() / "stacks/nope.yml").string()) != std::string::npos);
    CHECK(d->where.line == 8);
    CHECK(d->where.column == 18);
    CHECK(fleet.products.empty());
    // Its workspace is rejected, pointing at the product's errors.
    REQUIRE(fleet.rejected.size() == 1);
    CHECK(fleet.rejected[0].reason == "InvalidManifest");
    CHECK(fleet.rejected[0].message.find("Product \"erp\" is invalid (see the errors of its "
                                         "manifest at " +
                                         (dir.path() / "p.yaml").string() + ":4)") !=
          std::string::npos);
  }
  SUBCASE("migrations must be a directory") {
    dir.Write("p.yaml",
              head + "  stackTemplate: stacks/erp.yml\n  migrations: migrations-file.sql\n");
    const Fleet fleet = LoadPaths({dir.path() / "p.yaml"}, {});
    const Diagnostic* d = FindDiagnostic(fleet, "spec.migrations", "not a directory: ");
    REQUIRE(d != nullptr);
    CHECK(d->where.line == 9);
    CHECK(d->where.column == 15);
    CHECK(fleet.products.empty());
  }
  SUBCASE("migrations directory missing") {
    dir.Write("p.yaml", head + "  stackTemplate: stacks/erp.yml\n  migrations: migrations/erp\n");
    const Fleet fleet = LoadPaths({dir.path() / "p.yaml"}, {});
    REQUIRE(FindDiagnostic(fleet, "spec.migrations", "directory not found: ") != nullptr);
  }
  SUBCASE("dedicated mode needs a stack template") {
    dir.Write("p.yaml", head + workspace);
    const Fleet fleet = LoadPaths({dir.path() / "p.yaml"}, {});
    const Diagnostic* d = FindDiagnostic(fleet, "spec.stackTemplate",
                                         "required when the product offers the dedicated mode");
    REQUIRE(d != nullptr);
    CHECK(d->where.line == 6);
    CHECK(d->where.column == 3);
    CHECK(fleet.products.empty());
    CHECK(fleet.workspaces.empty());
  }
  SUBCASE("shared-only product needs no stack template") {
    dir.Write("p.yaml", head + "  modes: [shared]\n" + workspace);
    const Fleet fleet = LoadPaths({dir.path() / "p.yaml"}, {});
    INFO(Dump(fleet));
    CHECK(fleet.diagnostics.empty());
    CHECK(fleet.products.size() == 1);
    CHECK(fleet.workspaces.size() == 1);
  }
  SUBCASE("duplicate product names") {
    dir.Write("p.yaml",
              head + "  modes: [shared]\n---\n" + head + "  modes: [shared]\n" + workspace);
    const Fleet fleet = LoadPaths({dir.path() / "p.yaml"}, {});
    INFO(Dump(fleet));
    const std::string file = (dir.path() / "p.yaml").string();
    const Diagnostic* first = FindDiagnostic(fleet, "metadata.name",
                                             "Product \"erp\" is also defined at " + file + ":13");
    REQUIRE(first != nullptr);
    CHECK(first->where.line == 4);
    CHECK(FindDiagnostic(fleet, "metadata.name", "is also defined at " + file + ":4") != nullptr);
    CHECK(fleet.products.empty());
    CHECK(fleet.workspaces.empty());
    REQUIRE(fleet.rejected.size() == 1);
    CHECK(fleet.rejected[0].name == "acme");
  }
  SUBCASE("bad image and version") {
    dir.Write(
        "p.yaml",
        "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: erp\nspec:\n"
        "  image: \"ghcr.io/acme/erp:latest\"\n  defaultVersion: 2.3\n  modes: [shared, shared]\n"
        "  port: 70000\n");
    const Fleet fleet = LoadPaths({dir.path() / "p.yaml"}, {});
    INFO(Dump(fleet));
    CHECK(FindDiagnostic(fleet, "spec.image", "must match") != nullptr);
    CHECK(FindDiagnostic(fleet, "spec.defaultVersion", "must be string, got number 2.3") !=
          nullptr);
    CHECK(FindDiagnostic(fleet, "spec.modes[1]", "duplicate of spec.modes[0]") != nullptr);
    CHECK(FindDiagnostic(fleet, "spec.port", "must be <= 65535, got 70000") != nullptr);
    CHECK(fleet.products.empty());
  }
}

TEST_CASE("manifests: directory loading") {
  TempDir dir;
  dir.Write("fleet/products.yaml", kProducts);
  dir.Write("fleet/stacks/erp.yml", "services: {}\n");
  dir.Mkdir("fleet/migrations/erp");
  const std::string ws = "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: ";
  const std::string tail = "}\nspec: {product: landing, mode: shared}\n";
  dir.Write("fleet/z/deep/b.yml", ws + "bravo" + tail);
  dir.Write("fleet/z/a.yaml", ws + "alpha" + tail);
  dir.Write("fleet/m.yaml", ws + "mike" + tail);
  dir.Write("fleet/notes.txt", ws + "ignored-txt" + tail);
  dir.Write("fleet/.hidden/h.yaml", ws + "ignored-hidden" + tail);
  dir.Write("fleet/.swap.yaml", ws + "ignored-dotfile" + tail);

  SUBCASE("recursive, sorted by path, yaml and yml only, hidden entries skipped") {
    const Fleet fleet = LoadPaths({dir.path() / "fleet"}, {});
    INFO(Dump(fleet));
    CHECK(fleet.diagnostics.empty());
    std::vector<std::string> names;
    for (const Workspace& w : fleet.workspaces) names.push_back(w.name);
    CHECK(names == std::vector<std::string>{"mike", "alpha", "bravo"});
  }
  SUBCASE("a file named twice is read once") {
    const Fleet fleet = LoadPaths({dir.path() / "fleet", dir.path() / "fleet/m.yaml"}, {});
    INFO(Dump(fleet));
    CHECK(fleet.diagnostics.empty());
    CHECK(fleet.workspaces.size() == 3);
  }
  SUBCASE("a missing path is one error") {
    const fs::path missing = dir.path() / "nope";
    const Fleet fleet = LoadPaths({missing, dir.path() / "fleet"}, {});
    REQUIRE(fleet.diagnostics.size() == 1);
    CHECK(fleet.diagnostics[0].Format() == missing.string() + ": no such file or directory");
    CHECK(fleet.workspaces.size() == 3);
  }
}

TEST_CASE("manifests: LoadText resolves product paths against base_dir") {
  TempDir dir;
  dir.Write("stacks/erp.yml", "services: {}\n");
  dir.Mkdir("migrations/erp");
  const Fleet fleet = LoadText(std::string(kProducts) + "---\n" + kHead + "  mode: shared\n",
                               "<stdin>", dir.path(), {});
  INFO(Dump(fleet));
  CHECK(fleet.diagnostics.empty());
  REQUIRE(fleet.workspaces.size() == 1);
  CHECK(fleet.workspaces[0].where.file == "<stdin>");
  CHECK(fleet.workspaces[0].where.line == 22);
  const tmaster::manifests::Product* erp = fleet.FindProduct("erp");
  REQUIRE(erp != nullptr);
  CHECK(fs::equivalent(erp->stack_template, dir.path() / "stacks/erp.yml"));

  const Fleet elsewhere = LoadText(kProducts, "<stdin>", dir.path() / "nowhere", {});
  CHECK(FindDiagnostic(elsewhere, "spec.stackTemplate", "file not found") != nullptr);
}

TEST_CASE("manifests: Diagnostic::Format") {
  Diagnostic d{Diagnostic::Severity::kError, {"fleet/a.yaml", 7, 9}, "spec.mode", "bad"};
  CHECK(d.Format() == "fleet/a.yaml:7:9: spec.mode: bad");
  d.field.clear();
  CHECK(d.Format() == "fleet/a.yaml:7:9: bad");
  d.where.line = 0;
  CHECK(d.Format() == "fleet/a.yaml: bad");
  CHECK(std::string(tmaster::manifests::ToString(Mode::kDedicated)) == "dedicated");
  CHECK(std::string(tmaster::manifests::ToString(ReclaimPolicy::kDelete)) == "Delete");
}

TEST_CASE("manifests: a parse cache re-reads exactly the files that changed") {
  TempDir dir;
  dir.Write("fleet/products.yaml", kProducts);
  dir.Write("fleet/stacks/erp.yml", "services: {}\n");
  dir.Mkdir("fleet/migrations/erp");
  const auto workspace = [](const std::string& name, int limit) {
    return "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: " + name +
           "}\nspec: {product: erp, mode: shared, database: {connectionLimit: " +
           std::to_string(limit) + "}}\n";
  };
  dir.Write("fleet/a.yaml", workspace("alpha", 1));
  dir.Write("fleet/b.yaml", workspace("beta", 2));
  LoadOptions options;
  options.parse_cache = tmaster::manifests::MakeParseCache();
  const auto limits = [&](const Fleet& fleet) {
    std::map<std::string, int> out;
    for (const auto& w : fleet.workspaces) out[w.name] = w.database.connection_limit;
    return out;
  };
  const Fleet first = LoadPaths({dir.path() / "fleet"}, options);
  REQUIRE_FALSE(first.HasErrors());
  CHECK(limits(first) == std::map<std::string, int>{{"alpha", 1}, {"beta", 2}});
  // Unchanged files come from the cache with the same result; a rewritten file is read again,
  // even with the same size; a removed file is gone; a broken one is reported.
  const Fleet again = LoadPaths({dir.path() / "fleet"}, options);
  CHECK(limits(again) == limits(first));
  dir.Write("fleet/a.yaml", workspace("alpha", 7));
  fs::remove(dir.path() / "fleet" / "b.yaml");
  const Fleet changed = LoadPaths({dir.path() / "fleet"}, options);
  CHECK(limits(changed) == std::map<std::string, int>{{"alpha", 7}});
  dir.Write("fleet/a.yaml", "apiVersion: [\n");
  const Fleet broken = LoadPaths({dir.path() / "fleet"}, options);
  CHECK(broken.HasErrors());
  CHECK(broken.workspaces.empty());
}

TEST_CASE("manifests: a parse cache gives what a load without it gives") {
  TempDir dir;
  const fs::path root = dir.path() / "fleet";
  dir.Write("fleet/products.yaml", kProducts);
  dir.Write("fleet/stacks/erp.yml", "services: {}\n");
  dir.Mkdir("fleet/migrations/erp");
  const std::string head = "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: ";
  dir.Write("fleet/a.yaml", head + "{name: alpha}\nspec: {product: erp, mode: shared}\n");
  dir.Write("fleet/b.yaml", head + "{name: beta}\nspec: {product: erp, mode: shared}\n---\n" +
                                head + "{name: gamma}\nspec: {product: erp, mode: bogus}\n");
  dir.Write("fleet/c.yaml", head + "{name: alpha}\nspec: {product: landing, mode: shared}\n");
  dir.Write("fleet/d.yaml", "kind: Workspace\nmetadata:\n  name: delta\nspec: [\n");
  dir.Write("fleet/e.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n");
  dir.Write("fleet/f.yaml", head + "{name: www}\nspec: {product: landing, mode: shared}\n");
  // Everything a load tells, in order.
  const auto told = [](const Fleet& fleet) {
    std::string out;
    for (const Diagnostic& d : fleet.diagnostics) {
      out += (d.severity == Diagnostic::Severity::kError ? "E " : "N ") + d.Format() + "\n";
    }
    for (const RejectedWorkspace& r : fleet.rejected) {
      out += "R " + r.name + " " + r.where.file + ":" + std::to_string(r.where.line) + " " +
             r.reason + " " + r.message + "\n";
    }
    for (const Workspace& w : fleet.workspaces) {
      out += "W " + w.name + " " + w.product + " " + w.subdomain + " " + w.database.name + " " +
             w.database.owner + " " + w.where.file + ":" + std::to_string(w.where.line) + "\n";
    }
    for (const auto& p : fleet.products) out += "P " + p.name + " " + p.migrations.string() + "\n";
    return out;
  };
  LoadOptions cached;
  cached.parse_cache = tmaster::manifests::MakeParseCache();
  const auto same = [&] {
    const std::string plain = told(LoadPaths({root}, LoadOptions{}));
    CHECK(told(LoadPaths({root}, cached)) == plain);
    CHECK(told(LoadPaths({root}, cached)) == plain);  // from the cache
    return plain;
  };
  const std::string first = same();
  CHECK(first.find("R alpha") != std::string::npos);  // named twice: a conflict
  CHECK(first.find("R gamma") != std::string::npos);
  CHECK(first.find("R delta") != std::string::npos);
  CHECK(first.find("R www") != std::string::npos);  // a reserved subdomain
  CHECK(first.find("W beta") != std::string::npos);
  // Checks across files run again on cached files: alpha is no longer named twice.
  fs::remove(root / "c.yaml");
  const std::string second = same();
  CHECK(second.find("W alpha") != std::string::npos);
  // An unchanged product file is checked again: its migrations folder is gone.
  fs::remove_all(root / "migrations");
  const std::string third = same();
  CHECK(third.find("W alpha") == std::string::npos);
  CHECK(third.find("migrations") != std::string::npos);
}

TEST_CASE("manifests: product paths stay inside the source folder") {
  TempDir dir;
  const fs::path root = dir.path() / "fleet";
  dir.Write("fleet/stacks/erp.yml", "services: {}\n");
  dir.Mkdir("fleet/migrations/erp");
  dir.Write("outside/key", "k3y-never-read\n");
  dir.Mkdir("outside/migrations");
  const std::string head =
      "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: erp\nspec:\n"
      "  image: ghcr.io/acme/erp\n  defaultVersion: \"1.0\"\n  modes: [shared]\n";  // lines 1-8
  const std::string file = (root / "products/p.yaml").string();
  const std::string rule =
      "path must be relative and stay inside the source folder " + root.string() + "; ";
  // The single error of `field`, as `line:column: message`.
  const auto error_of = [&](const Fleet& fleet, const std::string& field) {
    INFO(Dump(fleet));
    std::string found;
    for (const Diagnostic& d : fleet.diagnostics) {
      if (d.field != field) continue;
      CHECK(d.where.file == file);
      found += std::to_string(d.where.line) + ":" + std::to_string(d.where.column) + ": " +
               d.message;
    }
    CHECK(fleet.products.empty());
    CHECK(found.find("k3y") == std::string::npos);
    return found;
  };

  SUBCASE("absolute") {
    dir.Write("fleet/products/p.yaml", head + "  migrations: " + (root / "migrations/erp").string() +
                                           "\n  stackTemplate: /etc/passwd\n");
    const Fleet fleet = LoadPaths({root}, {});
    CHECK(error_of(fleet, "spec.migrations") ==
          "9:15: " + rule + "\"" + (root / "migrations/erp").string() + "\" is absolute");
    CHECK(error_of(fleet, "spec.stackTemplate") == "10:18: " + rule + "\"/etc/passwd\" is absolute");
  }
  SUBCASE("'..' above the root") {
    dir.Write("fleet/products/p.yaml",
              head + "  migrations: ../../outside/migrations\n  stackTemplate: ../../outside/key\n");
    const Fleet fleet = LoadPaths({root}, {});
    CHECK(error_of(fleet, "spec.migrations") ==
          "9:15: " + rule + "\"../../outside/migrations\" leads out of it");
    CHECK(error_of(fleet, "spec.stackTemplate") ==
          "10:18: " + rule + "\"../../outside/key\" leads out of it");
  }
  SUBCASE("'..' that stays inside is fine") {
    dir.Write("fleet/products/p.yaml",
              head + "  migrations: ../migrations/erp\n  stackTemplate: ../stacks/erp.yml\n");
    const Fleet fleet = LoadPaths({root}, {});
    INFO(Dump(fleet));
    CHECK(fleet.diagnostics.empty());
    REQUIRE(fleet.products.size() == 1);
    CHECK(fleet.products[0].root == root);
    CHECK(fleet.products[0].migrations == root / "migrations/erp");
  }
  SUBCASE("a symbolic link leading out, for either field") {
    fs::create_symlink(dir.path() / "outside/migrations", root / "migrations/linked");
    fs::create_symlink("../../outside/key", root / "stacks/linked.yml");
    dir.Write("fleet/products/p.yaml",
              head + "  migrations: ../migrations/linked\n  stackTemplate: ../stacks/linked.yml\n");
    const Fleet fleet = LoadPaths({root}, {});
    CHECK(error_of(fleet, "spec.migrations") ==
          "9:15: " + rule +
              "\"../migrations/linked\" leads out of it through a symbolic link (not followed)");
    CHECK(error_of(fleet, "spec.stackTemplate") ==
          "10:18: " + rule +
              "\"../stacks/linked.yml\" leads out of it through a symbolic link (not followed)");
  }
  SUBCASE("LoadOptions.root bounds a folder loaded beneath it") {
    dir.Write("fleet/products/p.yaml", head + "  stackTemplate: ../stacks/erp.yml\n");
    LoadOptions options;
    options.root = root / "products";
    const Fleet fleet = LoadPaths({root / "products"}, options);
    CHECK(error_of(fleet, "spec.stackTemplate") ==
          "9:18: path must be relative and stay inside the source folder " +
              (root / "products").string() + "; \"../stacks/erp.yml\" leads out of it");
  }
  SUBCASE("a manifest that is a symbolic link out of the folder is not read") {
    dir.Write("outside/evil.yaml", "k3y-never-read\n");
    fs::create_symlink(dir.path() / "outside/evil.yaml", root / "evil.yaml");
    const Fleet fleet = LoadPaths({root}, {});
    REQUIRE(fleet.diagnostics.size() == 1);
    CHECK(fleet.diagnostics[0].message ==
          "cannot read file: it leads out of the source folder " + root.string() +
              " through a symbolic link (not followed)");
  }
}

TEST_CASE("manifests: ignoreMissingMigrations") {
  TempDir dir;
  const std::string head =
      "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: erp\nspec:\n"
      "  image: ghcr.io/acme/erp\n  defaultVersion: \"1.0\"\n  modes: [shared]\n";
  dir.Write("a/p.yaml", head + "  ignoreMissingMigrations: true\n");
  dir.Write("b/p.yaml", head);
  dir.Write("c/p.yaml", head + "  ignoreMissingMigrations: yes\n");
  const Fleet on = LoadPaths({dir.path() / "a"}, {});
  REQUIRE(on.products.size() == 1);
  CHECK(on.products[0].ignore_missing_migrations);
  const Fleet off = LoadPaths({dir.path() / "b"}, {});
  REQUIRE(off.products.size() == 1);
  CHECK_FALSE(off.products[0].ignore_missing_migrations);
  const Fleet bad = LoadPaths({dir.path() / "c"}, {});
  CHECK(bad.products.empty());
  CHECK(FindDiagnostic(bad, "spec.ignoreMissingMigrations", "") != nullptr);
}

// Runs `body` in a child process and says whether it finished within `seconds`: a hang of the
// parser fails the test instead of blocking the suite.
static bool FinishesWithin(int seconds, const std::function<void()>& body) {
  const pid_t child = fork();
  if (child == 0) {
    body();
    _exit(0);
  }
  for (int waited_ms = 0; waited_ms < seconds * 1000; waited_ms += 10) {
    int status = 0;
    if (waitpid(child, &status, WNOHANG) == child) {
      return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    usleep(10'000);
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  return false;
}

TEST_CASE("manifests: a ',' after a document's node is an error at its place, not a hang") {
  // yaml-cpp 0.7's LoadAll loops forever on these (docs/decisions.md, "Hardening II").
  const std::vector<std::pair<std::string, int>> cases = {
      {",\n", 1},
      {"[a],\n", 1},
      {"- a\n,\n", 2},
      {"--- ,\n", 1},
      {std::string(kHead) + "  mode: shared\n---\n[a],\n", 9},
  };
  for (const auto& [text, line] : cases) {
    CAPTURE(text);
    if (!FinishesWithin(10, [&text] { (void)LoadText(text, "w.yaml", ".", {}); })) {
      FAIL_CHECK("LoadText did not finish within 10 s");
      continue;
    }
    const Fleet fleet = LoadText(text, "w.yaml", ".", {});
    bool found = false;
    for (const Diagnostic& d : fleet.diagnostics) {
      if (d.message.find("invalid YAML: unexpected text after the document's node") == 0 &&
          d.where.file == "w.yaml" && d.where.line == line) {
        found = true;
      }
    }
    INFO(Dump(fleet));
    CHECK(found);
  }
  // The documents before the bad one still load.
  TempDir dir;
  dir.Write("stacks/erp.yml", "services: {}\n");
  dir.Mkdir("migrations/erp");
  const std::string text = std::string(kProducts) + "---\n" + kHead + "  mode: shared\n---\n,\n";
  REQUIRE(FinishesWithin(10, [&] { (void)LoadText(text, "w.yaml", dir.path(), {}); }));
  const Fleet fleet = LoadText(text, "w.yaml", dir.path(), {});
  INFO(Dump(fleet));
  CHECK(fleet.products.size() == 2);
  CHECK(fleet.workspaces.size() == 1);
  CHECK(fleet.diagnostics.size() == 1);
}

TEST_CASE("loader: a dedicated workspace without an endpoint is placed, with its selector") {
  FleetDir fleet_dir;
  const Fleet fleet = fleet_dir.Load(std::string(kHead) +
                                     "  mode: dedicated\n  dedicated:\n"
                                     "    placement: {endpointSelector: {kind: swarm, region: eu}}\n");
  INFO(Dump(fleet));
  REQUIRE(fleet.diagnostics.empty());
  REQUIRE(fleet.workspaces.size() == 1);
  const Workspace& w = fleet.workspaces[0];
  REQUIRE(w.dedicated.has_value());
  CHECK(w.dedicated->endpoint_placed);
  CHECK(w.dedicated->endpoint == 0);
  CHECK(w.dedicated->endpoint_selector ==
        std::map<std::string, std::string>{{"kind", "swarm"}, {"region", "eu"}});
}
