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
