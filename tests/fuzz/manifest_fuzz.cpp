// Fuzz target: the manifest loader and validator (manifests/loader.hpp LoadText), as
// `tenantctl validate -f -` and the API feed it. The input is the YAML text, as is; relative
// product paths resolve against the examples' fleet (examples/fleet), so `stackTemplate` and
// `migrations` can name real files and folders, and must stay beneath it.
//
// Properties beyond "no crash, no exception, no sanitizer report", from the contract of Fleet
// (manifests/types.hpp: valid objects are complete):
//  - every valid workspace names a product of the fleet that allows its mode, and has
//    `dedicated` exactly when its mode is dedicated; workspace names are unique;
//  - every product's `stackTemplate` and `migrations` are absolute and lexically beneath its root;
//  - every diagnostic formats, and names the file it was given.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>

#include "manifests/loader.hpp"
#include "manifests/types.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

namespace fs = std::filesystem;
namespace manifests = tmaster::manifests;
using tmaster::fuzz::Require;

constexpr const char* kFileName = "fuzz.yaml";

bool LexicallyBeneath(const fs::path& path, const fs::path& root) {
  const fs::path relative = path.lexically_normal().lexically_relative(root.lexically_normal());
  return !relative.empty() && *relative.begin() != "..";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fs::path fleet = fs::path(TM_FUZZ_SOURCE_DIR) / "examples" / "fleet";
  manifests::LoadOptions options;
  options.root = fleet;
  options.known_clusters = std::set<std::string>{"default", "replica"};
  const manifests::Fleet loaded =
      manifests::LoadText(tmaster::fuzz::AsText(data, size), kFileName, fleet, options);

  std::set<std::string> names;
  for (const auto& workspace : loaded.workspaces) {
    Require(names.insert(workspace.name).second, "workspace names are unique");
    const manifests::Product* product = loaded.FindProduct(workspace.product);
    Require(product != nullptr, "a valid workspace names a product of the fleet");
    Require(std::find(product->modes.begin(), product->modes.end(), workspace.mode) !=
                product->modes.end(),
            "a valid workspace's product allows its mode");
    Require(workspace.dedicated.has_value() == (workspace.mode == manifests::Mode::kDedicated),
            "`dedicated` is present exactly for a dedicated workspace");
    Require(workspace.where.file == kFileName, "a workspace names the file it came from");
  }
  for (const auto& product : loaded.products) {
    for (const fs::path* path : {&product.stack_template, &product.migrations}) {
      if (path->empty()) continue;
      Require(path->is_absolute(), "a product's paths are absolute");
      Require(LexicallyBeneath(*path, product.root), "a product's paths stay beneath its root");
    }
  }
  for (const auto& diagnostic : loaded.diagnostics) {
    Require(!diagnostic.Format().empty(), "a diagnostic formats");
    Require(diagnostic.where.file.empty() || diagnostic.where.file == kFileName,
            "a diagnostic names the file it was given");
  }
  return 0;
}
