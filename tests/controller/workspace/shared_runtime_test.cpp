// ConvergeSharedRuntimes against the in-memory stack gateway: created once, a second call
// writes nothing and reads no file, a template change is one update, a product that drops
// sharedRuntime loses its stack only when pruning is allowed, and what is not ours is never
// touched.

#include "controller/workspace/shared_runtime.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "manifests/config.hpp"
#include "manifests/types.hpp"
#include "reconcilers/stacks/ledger.hpp"
#include "tests/support/fake_stacks.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster::controller {
namespace {

using testing::FakeStacks;
using testing::TempDir;

constexpr const char* kTemplate =
    "services:\n  app:\n    image: ${TM_IMAGE}:${TM_VERSION}\n"
    "    command: [example-runtime, --bindings, /bindings, --listen, \"0.0.0.0:${TM_PORT}\"]\n";

struct World {
  TempDir dir;
  FakeStacks gateway;
  stacks::StackLedger ledger;
  manifests::Config config;
  std::vector<manifests::Product> products;

  World() {
    dir.Write("fleet/stacks/erp-shared.yml", kTemplate);
    config.stacks.edge_network = "edge";
    config.bindings = manifests::BindingsConfig{dir.path() / "bindings", ""};
    manifests::Product erp;
    erp.name = "erp";
    erp.image = "ghcr.io/acme/erp";
    erp.default_version = "2.3.1";
    erp.root = dir.path() / "fleet";
    erp.shared_runtime = manifests::SharedRuntimeSpec{dir.path() / "fleet/stacks/erp-shared.yml", 1};
    manifests::Product landing;  // no shared runtime
    landing.name = "landing";
    landing.image = "ghcr.io/acme/landing";
    landing.default_version = "1.0";
    products = {erp, landing};
  }

  [[nodiscard]] StacksContext Context() {
    StacksContext context;
    context.gateway = &gateway;
    context.ledger = &ledger;
    context.config = &config;
    return context;
  }

  SharedRuntimeReport Run(SharedRuntimeOptions options = {}) {
    return ConvergeSharedRuntimes(products, Context(), options);
  }
};

SharedRuntimeOptions Options(bool prune, bool dry_run = false, std::set<int> endpoints = {}) {
  SharedRuntimeOptions options;
  options.prune = prune;
  options.dry_run = dry_run;
  options.endpoints = std::move(endpoints);
  return options;
}

std::string Dump(const SharedRuntimeReport& report) {
  std::string out;
  for (const auto& r : report.runtimes) out += r.product + " " + r.reason + " " + r.message + "\n";
  if (report.prune_failed) out += "prune: " + report.prune_failed->message + "\n";
  return out;
}

}  // namespace

TEST_CASE("shared runtime: created once, then a pass writes nothing and reads no file") {
  World w;
  SharedRuntimeReport first = w.Run();
  INFO(Dump(first));
  REQUIRE(first.runtimes.size() == 1);  // landing declares none
  CHECK(first.runtimes[0].ready);
  CHECK(first.runtimes[0].applied_kinds == std::vector<std::string>{"CreateStack"});
  const auto stored = w.gateway.Find(1, "tm-shared-erp");
  REQUIRE(stored.has_value());
  CHECK(stored->file.find((w.dir.path() / "bindings/erp").string() + ":/bindings:ro") !=
        std::string::npos);
  CHECK(stored->stack.workspace.empty());  // no TM_WORKSPACE: never a workspace's orphan
  CHECK(w.ledger.Get(SharedRuntimeLedgerKey(1, "erp")).has_value());

  w.gateway.ResetCounts();
  SharedRuntimeReport second = w.Run();
  INFO(Dump(second));
  CHECK(second.runtimes[0].ready);
  CHECK(second.runtimes[0].applied.empty());
  CHECK(second.runtimes[0].message == "stack \"tm-shared-erp\" on endpoint 1 up to date");
  CHECK(w.gateway.ApplyCalls() == 0);
  CHECK(w.gateway.FileCalls() == 0);
  CHECK(w.gateway.ListCalls() == 1);
}

TEST_CASE("shared runtime: a template or version change is one update") {
  World w;
  REQUIRE(w.Run().AllReady());
  SUBCASE("template") {
    w.dir.Write("fleet/stacks/erp-shared.yml", std::string(kTemplate) + "    restart: always\n");
  }
  SUBCASE("defaultVersion") { w.products[0].default_version = "2.4.0"; }
  SharedRuntimeReport report = w.Run();
  INFO(Dump(report));
  CHECK(report.runtimes[0].ready);
  CHECK(report.runtimes[0].applied_kinds == std::vector<std::string>{"UpdateStack"});
  CHECK(w.Run().runtimes[0].applied.empty());
}

TEST_CASE("shared runtime: a product that drops sharedRuntime loses its stack only on prune") {
  World w;
  REQUIRE(w.Run().AllReady());
  w.products[0].shared_runtime.reset();
  SharedRuntimeReport kept = w.Run();  // the caller did not read the fleet completely
  CHECK(kept.runtimes.empty());
  CHECK(kept.pruned.empty());
  CHECK(w.gateway.Find(1, "tm-shared-erp").has_value());

  SharedRuntimeReport dry = w.Run(Options(/*prune=*/true, /*dry_run=*/true));
  CHECK(dry.pruned.empty());
  CHECK(w.gateway.Find(1, "tm-shared-erp").has_value());

  SharedRuntimeReport pruned = w.Run(Options(/*prune=*/true));
  INFO(Dump(pruned));
  REQUIRE(pruned.pruned.size() == 1);
  CHECK(pruned.pruned[0].find("tm-shared-erp") != std::string::npos);
  CHECK_FALSE(w.gateway.Find(1, "tm-shared-erp").has_value());
  CHECK_FALSE(w.ledger.Get(SharedRuntimeLedgerKey(1, "erp")).has_value());
  CHECK(pruned.AllReady());
}

TEST_CASE("shared runtime: a move to another endpoint creates there, prune removes the old") {
  World w;
  REQUIRE(w.Run().AllReady());
  w.products[0].shared_runtime->endpoint = 2;
  SharedRuntimeReport moved = w.Run(Options(/*prune=*/true));
  INFO(Dump(moved));
  CHECK(moved.runtimes[0].applied_kinds == std::vector<std::string>{"CreateStack"});
  CHECK(w.gateway.Find(2, "tm-shared-erp").has_value());
  CHECK_FALSE(w.gateway.Find(1, "tm-shared-erp").has_value());
  CHECK(moved.pruned.size() == 1);
}

TEST_CASE("shared runtime: what is not ours is never touched") {
  World w;
  SUBCASE("a stack of that name without a marker") {
    w.gateway.AddStack(1, "tm-shared-erp", {{"FOO", "bar", false}}, "services: {x: {}}\n");
  }
  SUBCASE("a dedicated workspace named shared-erp holds the name") {
    w.gateway.AddStack(1, "tm-shared-erp", {{"TM_WORKSPACE", "shared-erp", false}},
                       "services: {x: {}}\n");
  }
  SharedRuntimeReport report = w.Run(Options(/*prune=*/true));
  INFO(Dump(report));
  REQUIRE(report.runtimes.size() == 1);
  CHECK_FALSE(report.runtimes[0].ready);
  CHECK(report.runtimes[0].reason == "StackConflict");
  CHECK(report.runtimes[0].failure_kind == FailureKind::kStalled);
  CHECK(report.runtimes[0].message.find("shared runtime of product erp") != std::string::npos);
  // Not pruned either, even with the product gone.
  w.products[0].shared_runtime.reset();
  SharedRuntimeReport after = w.Run(Options(/*prune=*/true, false, {1}));
  CHECK(after.pruned.empty());
  CHECK(w.gateway.Find(1, "tm-shared-erp").has_value());
}

TEST_CASE("shared runtime: an Env wiped by hand is repaired (the ledger proves the id ours)") {
  World w;
  REQUIRE(w.Run().AllReady());
  const auto stored = w.gateway.Find(1, "tm-shared-erp");
  REQUIRE(stored.has_value());
  w.gateway.SetEnv(stored->stack.id, std::nullopt);
  SharedRuntimeReport report = w.Run();
  INFO(Dump(report));
  CHECK(report.runtimes[0].ready);
  CHECK(report.runtimes[0].applied_kinds == std::vector<std::string>{"UpdateStack"});
}

TEST_CASE("shared runtime: without bindings.dir the runtime stalls, naming the product") {
  World w;
  w.config.bindings.reset();
  SharedRuntimeReport report = w.Run();
  REQUIRE(report.runtimes.size() == 1);
  CHECK(report.runtimes[0].reason == "BindingsNotConfigured");
  CHECK(report.runtimes[0].failure_kind == FailureKind::kStalled);
  CHECK(report.runtimes[0].message.find("product erp") != std::string::npos);
  CHECK(w.gateway.ApplyCalls() == 0);
  CHECK_FALSE(report.AllReady());
}

TEST_CASE("shared runtime: a failed list is transient and reported") {
  World w;
  w.gateway.FailCall(1);
  SharedRuntimeReport report = w.Run();
  REQUIRE(report.runtimes.size() == 1);
  CHECK_FALSE(report.runtimes[0].ready);
  CHECK(report.runtimes[0].failure_kind == FailureKind::kTransient);
  CHECK(w.Run().AllReady());
}

}  // namespace tmaster::controller

namespace tmaster::controller {
namespace {

// A create whose answer was lost after the backend stored the stack: this call's list (made
// before) did not show it, so the plan creates, and the backend refuses the name.
class StaleFirstList : public stacks::StackGateway {
 public:
  explicit StaleFirstList(stacks::StackGateway& real) : real_(real) {}
  Outcome<std::vector<stacks::ObservedStack>> List(int endpoint) override {
    if (lists_++ == 0) return std::vector<stacks::ObservedStack>{};
    return real_.List(endpoint);
  }
  Outcome<std::string> File(const stacks::ObservedStack& stack) override {
    return real_.File(stack);
  }
  Outcome<stacks::ApplyResult> Apply(const stacks::Action& action) override {
    return real_.Apply(action);
  }
  Outcome<stacks::EndpointInfo> Inspect(int endpoint) override { return real_.Inspect(endpoint); }

 private:
  stacks::StackGateway& real_;
  int lists_ = 0;
};

}  // namespace

TEST_CASE("shared runtime: a create refused because our own stack appeared is adopted") {
  World w;
  w.gateway.AddStack(1, "tm-shared-erp", {{"TM_PRODUCT", "erp", false}}, "services: {old: {}}\n");
  StaleFirstList stale(w.gateway);
  StacksContext context = w.Context();
  context.gateway = &stale;
  SharedRuntimeReport report = ConvergeSharedRuntimes(w.products, context);
  INFO(Dump(report));
  REQUIRE(report.runtimes.size() == 1);
  CHECK(report.runtimes[0].ready);
  CHECK(report.runtimes[0].applied_kinds == std::vector<std::string>{"UpdateStack"});
  const auto stored = w.gateway.Find(1, "tm-shared-erp");
  REQUIRE(stored.has_value());
  CHECK(stored->file.find(":/bindings:ro") != std::string::npos);
  CHECK(w.gateway.Stacks().size() == 1);
}

TEST_CASE("shared runtime: a create refused by a foreign stack stays a conflict") {
  World w;
  w.gateway.AddStack(1, "tm-shared-erp", {{"OTHER", "x", false}}, "services: {old: {}}\n");
  StaleFirstList stale(w.gateway);
  StacksContext context = w.Context();
  context.gateway = &stale;
  SharedRuntimeReport report = ConvergeSharedRuntimes(w.products, context);
  REQUIRE(report.runtimes.size() == 1);
  CHECK_FALSE(report.runtimes[0].ready);
  CHECK(report.runtimes[0].reason == "StackConflict");
  CHECK(w.gateway.Find(1, "tm-shared-erp")->file == "services: {old: {}}\n");
}

}  // namespace tmaster::controller
