// Every file in examples/ parses, validates and plans (docs/architecture.md#tests).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <variant>

#include "manifests/config.hpp"
#include "manifests/loader.hpp"
#include "reconcilers/migrations/migrations.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "reconcilers/postgres/model.hpp"
#include "reconcilers/stacks/render.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tmaster;

const fs::path kExamples = fs::path(TM_SOURCE_DIR) / "examples";

}  // namespace

TEST_CASE("examples: the quick-start config is valid") {
  const manifests::ConfigResult result = manifests::LoadConfig(kExamples / "config.yaml");
  for (const auto& e : result.errors) FAIL_CHECK(e.Format());
  REQUIRE(result.errors.empty());
  CHECK(result.config.clusters.size() == 1);
  CHECK(result.config.clusters[0].dsn.env == "TM_PG_DSN");
  REQUIRE(result.config.sources.size() == 1);
  REQUIRE(result.config.sources[0].directory.has_value());
  CHECK(fs::equivalent(*result.config.sources[0].directory, kExamples / "fleet"));
  CHECK(result.config.stacks.backend == "directory");
  // The erp shared runtime mounts the bindings: the quick start writes them beside its stacks.
  REQUIRE(result.config.bindings.has_value());
  CHECK(result.config.bindings->dir.lexically_normal() ==
        (kExamples / ".." / ".run" / "bindings").lexically_normal());
  CHECK(result.config.bindings->dir.parent_path() == result.config.stacks.directory.parent_path());
}

TEST_CASE("examples: every manifest validates, names the four products, and plans") {
  manifests::LoadOptions options;
  options.known_clusters = std::set<std::string>{"default"};
  const manifests::Fleet fleet = manifests::LoadPaths({kExamples / "fleet"}, options);
  for (const auto& d : fleet.diagnostics) FAIL_CHECK(d.Format());
  REQUIRE_FALSE(fleet.HasErrors());
  CHECK(fleet.rejected.empty());

  std::set<std::string> products;
  for (const auto& p : fleet.products) products.insert(p.name);
  CHECK(products == std::set<std::string>{"ecommerce", "erp", "inventory", "landing"});
  REQUIRE(fleet.workspaces.size() >= 6);
  const bool has_dedicated = std::any_of(fleet.workspaces.begin(), fleet.workspaces.end(),
      [](const auto& w) { return w.mode == manifests::Mode::kDedicated && w.dedicated; });
  const bool has_shared = std::any_of(fleet.workspaces.begin(), fleet.workspaces.end(),
      [](const auto& w) { return w.mode == manifests::Mode::kShared; });
  CHECK(has_dedicated);
  CHECK(has_shared);

  const Secret master_key("an-example-master-key-of-32-bytes!!");
  const postgres::ObservedCluster empty;
  for (const auto& workspace : fleet.workspaces) {
    CAPTURE(workspace.name);
    const manifests::Product* product = fleet.FindProduct(workspace.product);
    REQUIRE(product != nullptr);
    const auto loaded = migrations::LoadDirectory(product->migrations);
    REQUIRE(loaded.ok());
    CHECK_FALSE(loaded->empty());
    const postgres::DesiredTenant desired =
        postgres::BuildDesired(workspace, *product, *loaded, master_key);
    const postgres::Plan plan = postgres::MakePlan(desired, empty);
    CHECK_FALSE(plan.blocked.has_value());
    REQUIRE_FALSE(plan.actions.empty());
    CHECK(std::holds_alternative<postgres::CreateRole>(plan.actions.front()));
    const bool creates_database = std::any_of(plan.actions.begin(), plan.actions.end(),
        [](const auto& a) { return std::holds_alternative<postgres::CreateDatabase>(a); });
    CHECK(creates_database);
    // A suspended workspace gets no in-database steps; the others get their migrations.
    const bool migrates = std::any_of(plan.actions.begin(), plan.actions.end(),
        [](const auto& a) { return std::holds_alternative<postgres::ApplyMigrations>(a); });
    CHECK(migrates == !workspace.suspend);
  }
}

TEST_CASE("examples: the erp product's shared runtime builds its stack") {
  manifests::LoadOptions options;
  options.known_clusters = std::set<std::string>{"default"};
  const manifests::Fleet fleet = manifests::LoadPaths({kExamples / "fleet"}, options);
  REQUIRE_FALSE(fleet.HasErrors());
  const manifests::Product* erp = fleet.FindProduct("erp");
  REQUIRE(erp != nullptr);
  REQUIRE(erp->shared_runtime.has_value());
  CHECK(erp->shared_runtime->endpoint == 1);
  CHECK(erp->shared_runtime->stack_template == kExamples / "fleet" / "stacks" / "erp-shared.yml");
  manifests::Product as_template = *erp;
  as_template.stack_template = erp->shared_runtime->stack_template;
  const auto text = stacks::ReadStackTemplate(as_template);
  REQUIRE(text.ok());
  const manifests::ConfigResult config = manifests::LoadConfig(kExamples / "config.yaml");
  REQUIRE(config.errors.empty());
  const auto stack =
      stacks::BuildSharedRuntimeStack(*erp, config.config, "/srv/tenant-master/bindings", *text);
  REQUIRE(stack.ok());
  CHECK(stack->name == "tm-shared-erp");
  CHECK(stack->file.find("/srv/tenant-master/bindings/erp:/bindings:ro") != std::string::npos);
  CHECK(stack->file.find("--bindings") != std::string::npos);
  CHECK(stack->file.find("0.0.0.0:${TM_PORT}") != std::string::npos);
  CHECK(stack->file.find("tm-shared-erp") != std::string::npos);
  // Only erp declares one.
  int declaring = 0;
  for (const auto& product : fleet.products) declaring += product.shared_runtime ? 1 : 0;
  CHECK(declaring == 1);
}
