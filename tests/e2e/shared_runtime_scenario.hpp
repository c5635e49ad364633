#pragma once

// The life of the examples' erp shared runtime, `tm-shared-erp`, driven through
// ConvergeSharedRuntimes against a real stack backend (the directory backend in
// tests/e2e/shared_runtime_itest.cpp, the Portainer adapter against portainer-sim in
// tests/reconcilers/stacks/portainer_http_itest.cpp): created once; a second call lists once and
// writes nothing; a restart without a ledger reads the file once and writes nothing; a template
// change is one update; a product that drops sharedRuntime keeps its stack until the caller
// allows pruning, then loses it.

#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "controller/workspace/shared_runtime.hpp"
#include "manifests/config.hpp"
#include "manifests/loader.hpp"
#include "reconcilers/stacks/gateway.hpp"
#include "reconcilers/stacks/ledger.hpp"
#include "tests/support/example_fleet.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster::testing {

/// Forwards to a real gateway and counts its calls.
class CountingGateway : public stacks::StackGateway {
 public:
  explicit CountingGateway(stacks::StackGateway& real) : real_(real) {}
  Outcome<std::vector<stacks::ObservedStack>> List(int endpoint) override {
    ++lists;
    return real_.List(endpoint);
  }
  Outcome<std::string> File(const stacks::ObservedStack& stack) override {
    ++files;
    return real_.File(stack);
  }
  Outcome<stacks::ApplyResult> Apply(const stacks::Action& action) override {
    ++applies;
    return real_.Apply(action);
  }
  Outcome<stacks::EndpointInfo> Inspect(int endpoint) override { return real_.Inspect(endpoint); }
  void Reset() { lists = files = applies = 0; }

  std::atomic<int> lists{0};
  std::atomic<int> files{0};
  std::atomic<int> applies{0};

 private:
  stacks::StackGateway& real_;
};

inline std::string RuntimeReport(const controller::SharedRuntimeReport& report) {
  std::string out;
  for (const auto& r : report.runtimes) {
    out += r.product + " " + r.reason + " " + r.message + "\n";
    for (const auto& line : r.applied) out += "  applied " + line + "\n";
  }
  for (const auto& line : report.pruned) out += "pruned " + line + "\n";
  if (report.prune_failed) out += "prune failed: " + report.prune_failed->message + "\n";
  return out;
}

/// The scenario, against `backend` (empty of stacks named tm-shared-*).
inline void SharedRuntimeLifecycle(stacks::StackGateway& backend) {
  namespace fs = std::filesystem;
  TempDir dir;
  for (const auto& [path, text] : ExampleProductFiles()) dir.Write("fleet/" + path, text);
  const fs::path bindings = dir.path() / "bindings";
  fs::create_directories(bindings / "erp");
  const auto load = [&] {
    const manifests::Fleet fleet = manifests::LoadPaths({dir.path() / "fleet"}, {});
    for (const auto& d : fleet.diagnostics) FAIL_CHECK(d.Format());
    return fleet.products;
  };
  std::vector<manifests::Product> products = load();
  manifests::Config config;
  config.stacks.edge_network = "edge";
  config.stacks.cert_resolver = "le";
  config.bindings = manifests::BindingsConfig{bindings, ""};
  CountingGateway gateway(backend);
  stacks::StackLedger ledger;
  controller::StacksContext context;
  context.gateway = &gateway;
  context.ledger = &ledger;
  context.config = &config;
  const auto run = [&](bool prune = false) {
    controller::SharedRuntimeOptions options;
    options.prune = prune;
    return controller::ConvergeSharedRuntimes(products, context, options);
  };
  const auto find = [&]() -> std::optional<stacks::ObservedStack> {
    auto listed = backend.List(1);
    REQUIRE(listed.ok());
    for (const auto& stack : *listed) {
      if (stack.name == "tm-shared-erp") return stack;
    }
    return std::nullopt;
  };

  // Created once.
  controller::SharedRuntimeReport first = run();
  INFO(RuntimeReport(first));
  REQUIRE(first.runtimes.size() == 1);
  CHECK(first.runtimes[0].ready);
  CHECK(first.runtimes[0].applied_kinds == std::vector<std::string>{"CreateStack"});
  const std::optional<stacks::ObservedStack> created = find();
  REQUIRE(created.has_value());
  CHECK(created->status == 1);
  CHECK(created->workspace.empty());  // no TM_WORKSPACE: no workspace's orphan
  bool binding_root = false;
  for (const auto& var : created->env) {
    CHECK(var.name != "DB_PASSWORD");
    CHECK(var.name != "DATABASE_URL");
    if (var.name == "SERVICE_BINDING_ROOT") binding_root = var.value == "/bindings";
  }
  CHECK(binding_root);
  auto file = backend.File(*created);
  REQUIRE(file.ok());
  CHECK(file->find((bindings / "erp").string() + ":/bindings:ro") != std::string::npos);
  CHECK(file->find("tm-shared-erp") != std::string::npos);

  // Unchanged: one list, no file read, no write.
  gateway.Reset();
  controller::SharedRuntimeReport second = run();
  INFO(RuntimeReport(second));
  CHECK(second.runtimes[0].ready);
  CHECK(second.runtimes[0].applied.empty());
  CHECK(gateway.lists == 1);
  CHECK(gateway.files == 0);
  CHECK(gateway.applies == 0);

  // A restart without the ledger: the file is read once, nothing is written; then no read.
  ledger.Restore({});
  for (const auto& [key, entry] : ledger.Snapshot()) ledger.Erase(key);
  gateway.Reset();
  CHECK(run().runtimes[0].applied.empty());
  CHECK(gateway.files == 1);
  CHECK(gateway.applies == 0);
  gateway.Reset();
  CHECK(run().runtimes[0].applied.empty());
  CHECK(gateway.files == 0);

  // The template changes: one update, carrying the new file.
  dir.Write("fleet/stacks/erp-shared.yml",
            "services:\n  app:\n    image: tenant-master/example-runtime:local\n"
            "    command: [example-runtime, --bindings, /bindings, --listen, "
            "\"0.0.0.0:${TM_PORT}\"]\n    restart: always\n");
  products = load();
  gateway.Reset();
  controller::SharedRuntimeReport updated = run();
  INFO(RuntimeReport(updated));
  CHECK(updated.runtimes[0].ready);
  CHECK(updated.runtimes[0].applied_kinds == std::vector<std::string>{"UpdateStack"});
  const std::optional<stacks::ObservedStack> after = find();
  REQUIRE(after.has_value());
  CHECK(after->id == created->id);
  auto new_file = backend.File(*after);
  REQUIRE(new_file.ok());
  CHECK(new_file->find("restart: always") != std::string::npos);
  gateway.Reset();
  CHECK(run().runtimes[0].applied.empty());
  CHECK(gateway.applies == 0);

  // The product drops sharedRuntime: kept while the caller does not allow pruning, then removed.
  dir.Write("fleet/products.yaml",
            [&] {
              std::string text = ExampleProductFiles().at("products.yaml");
              const std::string block =
                  "  sharedRuntime:\n    stackTemplate: stacks/erp-shared.yml\n    endpoint: 1\n";
              const std::size_t at = text.find(block);
              REQUIRE(at != std::string::npos);
              return text.erase(at, block.size());
            }());
  products = load();
  controller::SharedRuntimeReport kept = run(/*prune=*/false);
  CHECK(kept.runtimes.empty());
  CHECK(kept.pruned.empty());
  CHECK(find().has_value());
  controller::SharedRuntimeReport removed = run(/*prune=*/true);
  INFO(RuntimeReport(removed));
  CHECK(removed.pruned.size() == 1);
  CHECK_FALSE(removed.prune_failed.has_value());
  CHECK_FALSE(find().has_value());
  gateway.Reset();
  controller::SharedRuntimeReport quiet = run(/*prune=*/true);
  CHECK(quiet.pruned.empty());
  CHECK(gateway.applies == 0);
}

}  // namespace tmaster::testing
