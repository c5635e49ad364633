// The JSON form of specs: stable, defaulted, and readable back for deletion.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "common/crypto.hpp"
#include "controller/store/spec_json.hpp"
#include "manifests/loader.hpp"
#include "reconcilers/migrations/migrations.hpp"
#include "reconcilers/stacks/render.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using namespace tmaster;

manifests::Fleet Load(const std::string& text) {
  manifests::LoadOptions options;
  options.known_clusters = std::set<std::string>{"default"};
  manifests::Fleet fleet =
      manifests::LoadText(text, "test.yaml", TM_SOURCE_DIR "/examples/fleet", options);
  for (const auto& d : fleet.diagnostics) MESSAGE(d.Format());
  return fleet;
}

constexpr const char* kProduct = R"(apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata: {name: erp}
spec:
  image: ghcr.io/example/erp
  defaultVersion: "1.0"
  stackTemplate: stacks/erp.yml
)";

std::string Workspace(const std::string& extra_database, const std::string& tail = "",
                      bool dedicated = false) {
  return std::string(kProduct) + R"(---
apiVersion: tenantmaster.io/v1alpha1
kind: Workspace
metadata:
  name: acme
  labels: {tier: gold}
spec:
  product: erp
)" + std::string(dedicated ? "" : "  mode: shared\n") + R"(  database:
    cluster: default
)" + extra_database + tail;
}

}  // namespace

TEST_CASE("spec json: defaults are filled in and the manifest shape is kept") {
  const manifests::Fleet fleet = Load(Workspace(""));
  REQUIRE_FALSE(fleet.HasErrors());
  REQUIRE(fleet.workspaces.size() == 1);
  const std::string json = controller::WorkspaceToJson(fleet.workspaces[0]);
  CHECK(json.find(R"("apiVersion":"tenantmaster.io/v1alpha1")") != std::string::npos);
  CHECK(json.find(R"("kind":"Workspace")") != std::string::npos);
  CHECK(json.find(R"("labels":{"tier":"gold"})") != std::string::npos);
  CHECK(json.find(R"("name":"tenant_acme")") != std::string::npos);
  CHECK(json.find(R"("owner":"user_acme")") != std::string::npos);
  CHECK(json.find(R"("reclaimPolicy":"Retain")") != std::string::npos);
}

TEST_CASE("spec json: equal meaning, equal digest; a changed field, a changed digest") {
  const manifests::Fleet plain = Load(Workspace(""));
  // The same spec written differently: explicit defaults, another key order.
  const manifests::Fleet explicit_defaults =
      Load(Workspace("    reclaimPolicy: Retain\n    name: tenant_acme\n"));
  const manifests::Fleet changed = Load(Workspace("    connectionLimit: 7\n"));
  REQUIRE_FALSE(plain.HasErrors());
  REQUIRE_FALSE(explicit_defaults.HasErrors());
  REQUIRE_FALSE(changed.HasErrors());
  const std::string a = controller::WorkspaceToJson(plain.workspaces[0]);
  CHECK(a == controller::WorkspaceToJson(explicit_defaults.workspaces[0]));
  CHECK(a != controller::WorkspaceToJson(changed.workspaces[0]));
}

TEST_CASE("spec json: the reclaim spec reads back what deletion needs") {
  const manifests::Fleet fleet = Load(Workspace("    reclaimPolicy: Delete\n"));
  REQUIRE_FALSE(fleet.HasErrors());
  const Outcome<controller::ReclaimSpec> spec =
      controller::ReclaimSpecFromJson(controller::WorkspaceToJson(fleet.workspaces[0]));
  REQUIRE(spec);
  CHECK(spec->workspace == "acme");
  CHECK(spec->cluster == "default");
  CHECK(spec->database == "tenant_acme");
  CHECK(spec->role == "user_acme");
  CHECK(spec->policy == manifests::ReclaimPolicy::kDelete);
  CHECK_FALSE(spec->endpoint);
}

TEST_CASE("spec json: a dedicated workspace's endpoint comes back") {
  const manifests::Fleet fleet = Load(Workspace("", "  mode: dedicated\n  dedicated: {endpoint: 3}\n", true));
  REQUIRE_FALSE(fleet.HasErrors());
  const auto spec = controller::ReclaimSpecFromJson(controller::WorkspaceToJson(fleet.workspaces[0]));
  REQUIRE(spec);
  REQUIRE(spec->endpoint);
  CHECK(*spec->endpoint == 3);
}

TEST_CASE("spec json: a placed stack's spec names no endpoint, and keeps its selector") {
  const manifests::Fleet fleet = Load(Workspace(
      "", "  mode: dedicated\n  dedicated: {placement: {endpointSelector: {kind: swarm}}}\n", true));
  REQUIRE_FALSE(fleet.HasErrors());
  const std::string json = controller::WorkspaceToJson(fleet.workspaces[0]);
  CHECK(json.find("\"endpoint\"") == std::string::npos);
  CHECK(json.find(R"("placement":{"endpointSelector":{"kind":"swarm"}})") != std::string::npos);
  const auto spec = controller::ReclaimSpecFromJson(json);
  REQUIRE(spec);
  CHECK_FALSE(spec->endpoint);  // deletion takes the stored stack endpoint
  // Read back as a manifest (the API's own workspaces are), it is placed again, not endpoint 0.
  const manifests::Fleet again = Load(std::string(kProduct) + "---\n" + json + "\n");
  REQUIRE_FALSE(again.HasErrors());
  CHECK(again.workspaces[0].dedicated->endpoint_placed);
}

// A version defaulted from the product follows the product's revisions (docs/rollouts.md): read
// back after a restart (the API's own workspaces are), it must still be the product's, not a
// version the manifest names, which would take the workspace out of its product's rollouts.
TEST_CASE("spec json: a defaulted dedicated version is not stored; a named one is") {
  const manifests::Fleet fleet =
      Load(Workspace("", "  mode: dedicated\n  dedicated: {endpoint: 3}\n", true));
  REQUIRE_FALSE(fleet.HasErrors());
  REQUIRE(fleet.workspaces[0].dedicated->version_defaulted);
  const std::string json = controller::WorkspaceToJson(fleet.workspaces[0]);
  CHECK(json.find("\"version\"") == std::string::npos);
  const manifests::Fleet again = Load(std::string(kProduct) + "---\n" + json + "\n");
  REQUIRE_FALSE(again.HasErrors());
  CHECK(again.workspaces[0].dedicated->version_defaulted);
  CHECK(again.workspaces[0].dedicated->version == "1.0");
  CHECK(controller::WorkspaceToJson(again.workspaces[0]) == json);  // a fixed point

  const manifests::Fleet named = Load(
      Workspace("", "  mode: dedicated\n  dedicated: {endpoint: 3, version: \"0.9\"}\n", true));
  REQUIRE_FALSE(named.HasErrors());
  const std::string named_json = controller::WorkspaceToJson(named.workspaces[0]);
  CHECK(named_json.find(R"("version":"0.9")") != std::string::npos);
  const manifests::Fleet named_again = Load(std::string(kProduct) + "---\n" + named_json + "\n");
  REQUIRE_FALSE(named_again.HasErrors());
  CHECK_FALSE(named_again.workspaces[0].dedicated->version_defaulted);
  CHECK(named_again.workspaces[0].dedicated->version == "0.9");
}

TEST_CASE("spec json: a damaged stored spec is a Stalled failure naming the field") {
  const auto not_json = controller::ReclaimSpecFromJson("{oops");
  REQUIRE_FALSE(not_json);
  CHECK(not_json.failure().reason == "InvalidStoredSpec");
  const auto no_policy = controller::ReclaimSpecFromJson(
      R"({"metadata":{"name":"acme"},"spec":{"database":{"cluster":"default","name":"d","owner":"o"}}})");
  REQUIRE_FALSE(no_policy);
  CHECK(no_policy.failure().kind == FailureKind::kStalled);
  CHECK(no_policy.failure().message.find("spec.database.reclaimPolicy") != std::string::npos);
  CHECK(no_policy.failure().message.find("acme") != std::string::npos);
}

TEST_CASE("product digest: a new migration file or a changed template changes it") {
  testing::TempDir dir;
  dir.Write("migrations/0001_init.sql", "CREATE TABLE t (id int);\n");
  dir.Write("stack.yml", "services: {}\n");
  manifests::Product product;
  product.name = "erp";
  product.image = "img";
  product.migrations = (dir.path() / "migrations").string();
  product.stack_template = (dir.path() / "stack.yml").string();
  // What a sync reads once per product, then digests.
  const auto digest = [&] {
    return controller::ProductDigest(product, migrations::LoadDirectory(product.migrations),
                                     stacks::ReadStackTemplate(product));
  };
  const std::string first = digest();
  CHECK(first == digest());
  dir.Write("migrations/0002_more.sql", "CREATE TABLE u (id int);\n");
  const std::string second = digest();
  CHECK(second != first);
  dir.Write("stack.yml", "services: {app: {}}\n");
  CHECK(digest() != second);
}

TEST_CASE("product digest: ignoreMissingMigrations changes it, so its workspaces are passed again") {
  manifests::Product product;
  product.name = "erp";
  product.image = "img";
  const std::vector<migrations::Migration> none;
  const std::string strict = controller::ProductDigest(product, none, std::string());
  product.ignore_missing_migrations = true;
  const std::string lenient = controller::ProductDigest(product, none, std::string());
  CHECK(lenient != strict);
  product.ignore_missing_migrations = false;
  CHECK(controller::ProductDigest(product, none, std::string()) == strict);
}
