// Product.spec.sharedRuntime (issue 17 item 4): read, confined like spec.stackTemplate, and only
// on a product that offers the shared mode. Each error names file:line:column and the field.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "manifests/loader.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using tmaster::manifests::Diagnostic;
using tmaster::manifests::Fleet;
using tmaster::manifests::LoadPaths;
using tmaster::testing::TempDir;

// Lines 1-9; `sharedRuntime:` is written on line 10, its fields on 11 and 12.
const std::string kHead =
    "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: erp\nspec:\n"
    "  image: ghcr.io/acme/erp\n  defaultVersion: \"1.0\"\n  stackTemplate: stacks/erp.yml\n";

std::string Dump(const Fleet& fleet) {
  std::string out;
  for (const Diagnostic& d : fleet.diagnostics) out += d.Format() + "\n";
  return out;
}

// The errors of `field`, as `file:line:column: field: message` lines.
std::string ErrorsOf(const Fleet& fleet, const std::string& field) {
  std::string out;
  for (const Diagnostic& d : fleet.diagnostics) {
    if (d.field == field) out += d.Format() + "\n";
  }
  return out;
}

class ProductDir {
 public:
  ProductDir() {
    dir_.Write("fleet/stacks/erp.yml", "services: {app: {}}\n");
    dir_.Write("fleet/stacks/erp-shared.yml", "services: {app: {}}\n");
    dir_.Write("outside/runtime.yml", "services: {app: {image: s3cr3t}}\n");
  }
  Fleet Load(const std::string& modes, const std::string& runtime) const {
    dir_.Write("fleet/p.yaml", kHead + modes + "  sharedRuntime:\n" + runtime);
    return LoadPaths({root()}, {});
  }
  [[nodiscard]] fs::path root() const { return dir_.path() / "fleet"; }
  [[nodiscard]] std::string file() const { return (root() / "p.yaml").string(); }

 private:
  TempDir dir_;
};

}  // namespace

TEST_CASE("manifests: spec.sharedRuntime") {
  ProductDir dir;
  const std::string modes = "  modes: [shared, dedicated]\n";  // line 9

  SUBCASE("valid: template resolved beneath the source, endpoint read") {
    const Fleet fleet =
        dir.Load(modes, "    stackTemplate: stacks/erp-shared.yml\n    endpoint: 3\n");
    INFO(Dump(fleet));
    CHECK(fleet.diagnostics.empty());
    REQUIRE(fleet.products.size() == 1);
    REQUIRE(fleet.products[0].shared_runtime.has_value());
    CHECK(fleet.products[0].shared_runtime->endpoint == 3);
    CHECK(fleet.products[0].shared_runtime->stack_template ==
          dir.root() / "stacks/erp-shared.yml");
  }
  SUBCASE("absent: no shared runtime") {
    TempDir plain;
    plain.Write("stacks/erp.yml", "services: {app: {}}\n");
    plain.Write("p.yaml", kHead);
    const Fleet without = LoadPaths({plain.path()}, {});
    INFO(Dump(without));
    REQUIRE(without.products.size() == 1);
    CHECK_FALSE(without.products[0].shared_runtime.has_value());
  }
  SUBCASE("endpoint 0 and a quoted endpoint are refused") {
    Fleet fleet = dir.Load(modes, "    stackTemplate: stacks/erp-shared.yml\n    endpoint: 0\n");
    CHECK(ErrorsOf(fleet, "spec.sharedRuntime.endpoint") ==
          dir.file() + ":12:15: spec.sharedRuntime.endpoint: must be >= 1, got 0\n");
    CHECK(fleet.products.empty());
    fleet = dir.Load(modes, "    stackTemplate: stacks/erp-shared.yml\n    endpoint: \"2\"\n");
    CHECK(ErrorsOf(fleet, "spec.sharedRuntime.endpoint").find(
              ":12:15: spec.sharedRuntime.endpoint: must be integer, got string") !=
          std::string::npos);
    CHECK(fleet.products.empty());
  }
  SUBCASE("both fields are required, and no other field is allowed") {
    Fleet fleet = dir.Load(modes, "    endpoint: 1\n    port: 9000\n");
    INFO(Dump(fleet));
    CHECK(ErrorsOf(fleet, "spec.sharedRuntime.stackTemplate") ==
          dir.file() + ":11:5: spec.sharedRuntime.stackTemplate: required field is missing\n");
    CHECK(ErrorsOf(fleet, "spec.sharedRuntime.port") ==
          dir.file() + ":12:5: spec.sharedRuntime.port: unknown field \"port\"\n");
    CHECK(fleet.products.empty());
  }
  SUBCASE("a template outside the source folder is refused, never read") {
    const Fleet fleet =
        dir.Load(modes, "    stackTemplate: ../outside/runtime.yml\n    endpoint: 1\n");
    const std::string errors = ErrorsOf(fleet, "spec.sharedRuntime.stackTemplate");
    CHECK(errors == dir.file() + ":11:20: spec.sharedRuntime.stackTemplate: path must be " +
                        "relative and stay inside the source folder " + dir.root().string() +
                        "; \"../outside/runtime.yml\" leads out of it\n");
    CHECK(Dump(fleet).find("s3cr3t") == std::string::npos);
    CHECK(fleet.products.empty());
  }
  SUBCASE("a symbolic link leading out is refused") {
    fs::create_symlink(dir.root() / "../outside/runtime.yml", dir.root() / "stacks/link.yml");
    const Fleet fleet = dir.Load(modes, "    stackTemplate: stacks/link.yml\n    endpoint: 1\n");
    CHECK(ErrorsOf(fleet, "spec.sharedRuntime.stackTemplate")
              .find("leads out of it through a symbolic link (not followed)") !=
          std::string::npos);
    CHECK(fleet.products.empty());
  }
  SUBCASE("an absolute or missing template is refused") {
    Fleet fleet = dir.Load(modes, "    stackTemplate: /etc/passwd\n    endpoint: 1\n");
    CHECK(ErrorsOf(fleet, "spec.sharedRuntime.stackTemplate").find("\"/etc/passwd\" is absolute") !=
          std::string::npos);
    fleet = dir.Load(modes, "    stackTemplate: stacks/nope.yml\n    endpoint: 1\n");
    CHECK(ErrorsOf(fleet, "spec.sharedRuntime.stackTemplate").find("file not found: ") !=
          std::string::npos);
    CHECK(fleet.products.empty());
  }
  SUBCASE("a product without the shared mode may not declare it") {
    const Fleet fleet = dir.Load("  modes: [dedicated]\n",
                                 "    stackTemplate: stacks/erp-shared.yml\n    endpoint: 1\n");
    CHECK(ErrorsOf(fleet, "spec.sharedRuntime") ==
          dir.file() + ":10:3: spec.sharedRuntime: only allowed when the product offers the " +
                         "shared mode (spec.modes has no shared)\n");
    CHECK(fleet.products.empty());
  }
}
