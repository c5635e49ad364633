// Convergence of the stack reconciler (docs/architecture.md#tests): from many start states, list →
// (file, only if asked) → plan → apply reaches the desired stack, and the pass after that is empty
// and costs one list call per endpoint, no file read and no write. Driven through the in-memory
// fake.

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "manifests/config.hpp"
#include "manifests/types.hpp"
#include "reconcilers/stacks/ledger.hpp"
#include "reconcilers/stacks/plan.hpp"
#include "reconcilers/stacks/render.hpp"
#include "tests/support/fake_stacks.hpp"

namespace tmaster::stacks {
namespace {

using testing::FakeStacks;

std::string ErpTemplate() {
  std::ifstream in(std::filesystem::path(TM_SOURCE_DIR) / "examples/fleet/stacks/erp.yml");
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct Spec {
  std::string version = "2.3.2";
  bool suspend = false;
  int endpoint = 1;
  std::string language = "es";
};

DesiredStack Build(const Spec& spec) {
  manifests::Product product;
  product.name = "erp";
  product.image = "ghcr.io/acme/erp";
  product.default_version = "2.3.1";
  product.stack_template = "erp.yml";
  manifests::Workspace w;
  w.name = "acme";
  w.product = "erp";
  w.mode = manifests::Mode::kDedicated;
  w.subdomain = "acme";
  w.suspend = spec.suspend;
  w.dedicated =
      manifests::DedicatedSpec{spec.endpoint, spec.version,
                               {{"LANGUAGE_CODE", spec.language}}, false};
  manifests::Config config;
  config.base_domain = "surgir.online";
  const DbConnection db{"pg", 5432, "tenant_acme", "user_acme", Secret("derived-password")};
  static const std::string text = ErpTemplate();
  auto stack = BuildDesiredStack(w, product, config, db, text);
  REQUIRE(stack.ok());
  return *stack;
}

struct World {
  FakeStacks gateway;
  StackLedger ledger;
  std::vector<int> endpoints{1};
};

// One reconcile of workspace `acme`, as the controller does it: one list per endpoint, the file
// only when NeedsFile says so, the plan, then each action, recording what was written.
Outcome<Plan> Pass(World& world, const std::optional<DesiredStack>& desired) {
  std::optional<ObservedStack> observed;
  for (int endpoint : world.endpoints) {
    auto list = world.gateway.List(endpoint);
    if (!list) return list.failure();
    const ObservedStack* found = FindStack(*list, endpoint, "tm-acme");
    if (found && (!observed || (desired && endpoint == desired->endpoint))) observed = *found;
  }
  const auto entry = world.ledger.Get("acme");
  std::optional<std::string> file;
  if (desired && observed && NeedsFile(*desired, *observed, entry)) {
    auto read = world.gateway.File(*observed);
    if (!read) return read.failure();
    file = *read;
  }
  Plan plan = MakePlan(desired, observed, entry, file);
  for (const auto& action : plan.actions) {
    auto result = world.gateway.Apply(action);
    if (!result) return result.failure();
    world.ledger.Record("acme", action, *result);
  }
  if (plan.actions.empty() && !plan.blocked && observed && file) {
    world.ledger.RecordObserved("acme", *observed, *file);
  }
  return plan;
}

// Passes until one is empty; returns how many passes changed something.
int Converge(World& world, const std::optional<DesiredStack>& desired, int max_passes = 4) {
  for (int pass = 0; pass < max_passes; ++pass) {
    auto plan = Pass(world, desired);
    if (!plan) continue;  // an injected failure: the next pass retries
    if (plan->blocked) FAIL(plan->blocked->message);
    if (plan->Empty()) return pass;
  }
  FAIL("no convergence within " << max_passes << " passes");
  return max_passes;
}

void CheckConverged(World& world, const std::optional<DesiredStack>& desired) {
  const auto stored = world.gateway.Find(desired ? desired->endpoint : 1, "tm-acme");
  if (!desired) {
    CHECK_FALSE(stored.has_value());
  } else if (!desired->active) {
    if (stored) CHECK(stored->stack.status == 2);
  } else {
    REQUIRE(stored.has_value());
    CHECK(stored->file == desired->file);
    CHECK(stored->stack.env == desired->env);
    CHECK(stored->stack.status == 1);
  }
  int ours = 0;
  for (const auto& [id, s] : world.gateway.Stacks()) ours += s.stack.name == "tm-acme" ? 1 : 0;
  CHECK(ours <= 1);
  // The no-op pass: one list per endpoint, nothing else.
  world.gateway.ResetCounts();
  auto plan = Pass(world, desired);
  REQUIRE(plan.ok());
  CHECK(plan->Empty());
  CHECK(world.gateway.ListCalls() == static_cast<int>(world.endpoints.size()));
  CHECK(world.gateway.FileCalls() == 0);
  CHECK(world.gateway.ApplyCalls() == 0);
}

}  // namespace

TEST_CASE("stack convergence: from each start state, one pass repairs and the next is a no-op") {
  const DesiredStack base = Build({});
  World world;

  SUBCASE("empty endpoint") {
    CHECK(Converge(world, base) == 1);
    CheckConverged(world, base);
  }
  SUBCASE("already converged") {
    Converge(world, base);
    CHECK(Converge(world, base) == 0);
    CheckConverged(world, base);
  }
  SUBCASE("file edited in Portainer") {
    Converge(world, base);
    world.gateway.EditFile(world.gateway.Find(1, "tm-acme")->stack.id, "services: {x: {}}\n");
    CHECK(Converge(world, base) == 1);
    CheckConverged(world, base);
  }
  SUBCASE("Env edited and Env wiped") {
    Converge(world, base);
    const StackId id = world.gateway.Find(1, "tm-acme")->stack.id;
    world.gateway.SetEnv(id, std::vector<EnvVar>{{"LANGUAGE_CODE", "en", false}});
    CHECK(Converge(world, base) == 1);
    CheckConverged(world, base);
    world.gateway.SetEnv(id, std::nullopt);
    CHECK(Converge(world, base) == 1);
    CheckConverged(world, base);
  }
  SUBCASE("stopped by hand") {
    Converge(world, base);
    world.gateway.SetStatus(world.gateway.Find(1, "tm-acme")->stack.id, 2);
    CHECK(Converge(world, base) == 1);
    CheckConverged(world, base);
  }
  SUBCASE("deleted by hand") {
    Converge(world, base);
    const StackId old_id = world.gateway.Find(1, "tm-acme")->stack.id;
    world.gateway.Remove(old_id);
    CHECK(Converge(world, base) == 1);
    CheckConverged(world, base);
    CHECK(world.gateway.Find(1, "tm-acme")->stack.id != old_id);
  }
  SUBCASE("ledger lost (a restart): one file read, then none") {
    Converge(world, base);
    world.ledger.Erase("acme");
    world.gateway.ResetCounts();
    CHECK(Converge(world, base) == 0);
    CHECK(world.gateway.FileCalls() == 1);
    CheckConverged(world, base);
  }
  SUBCASE("version bump rolls the image") {
    Converge(world, base);
    const DesiredStack bumped = Build({.version = "2.4.0"});
    CHECK(Converge(world, bumped) == 1);
    CheckConverged(world, bumped);
  }
  SUBCASE("suspend, then resume") {
    Converge(world, base);
    const DesiredStack suspended = Build({.suspend = true});
    CHECK(Converge(world, suspended) == 1);
    CheckConverged(world, suspended);
    CHECK(world.gateway.Find(1, "tm-acme")->stack.status == 2);
    CHECK(Converge(world, base) == 1);
    CheckConverged(world, base);
  }
  SUBCASE("suspended from the start: nothing is created until the resume") {
    const DesiredStack suspended = Build({.suspend = true});
    CHECK(Converge(world, suspended) == 0);
    CHECK(world.gateway.Stacks().empty());
    CHECK(Converge(world, base) == 1);
    CheckConverged(world, base);
  }
  SUBCASE("workspace removed") {
    Converge(world, base);
    CHECK(Converge(world, std::nullopt) == 1);
    CheckConverged(world, std::nullopt);
    CHECK(world.ledger.Get("acme") == std::nullopt);
  }
  SUBCASE("moved to another endpoint") {
    world.endpoints = {1, 2};
    Converge(world, base);
    const DesiredStack moved = Build({.endpoint = 2});
    CHECK(Converge(world, moved) == 1);
    CheckConverged(world, moved);
    CHECK_FALSE(world.gateway.Find(1, "tm-acme").has_value());
  }
}

TEST_CASE("stack convergence: a foreign stack holding the name stays blocked and untouched") {
  World world;
  const DesiredStack desired = Build({});
  const stacks::StackId id = world.gateway.AddStack(1, "tm-acme", {{"OWNER", "someone", false}},
                                        "services: {other: {}}\n");
  for (int pass = 0; pass < 3; ++pass) {
    auto plan = Pass(world, desired);
    REQUIRE(plan.ok());
    REQUIRE(plan->blocked);
    CHECK(plan->blocked->reason == "StackConflict");
  }
  CHECK(world.gateway.ApplyCalls() == 0);
  CHECK(world.gateway.FileCalls() == 0);
  CHECK(world.gateway.Stacks().at(id).file == "services: {other: {}}\n");
}

TEST_CASE("stack convergence: property over random drift and injected failures") {
  std::mt19937 random(20241126);
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(random); };
  World world;
  Spec spec;
  bool present = true;
  auto desired = [&]() -> std::optional<DesiredStack> {
    if (!present) return std::nullopt;
    return Build(spec);
  };
  Converge(world, desired());

  for (int step = 0; step < 300; ++step) {
    CAPTURE(step);
    const auto current = world.gateway.Find(1, "tm-acme");
    switch (pick(9)) {
      case 0:
        if (current) world.gateway.EditFile(current->stack.id, "services: {x: {}}\n");
        break;
      case 1:
        if (current) {
          auto env = current->stack.env;
          if (!env.empty())
            env[static_cast<std::size_t>(pick(static_cast<int>(env.size())))].value += "!";
          world.gateway.SetEnv(current->stack.id, env);
        }
        break;
      case 2:
        if (current) world.gateway.SetEnv(current->stack.id, std::nullopt);
        break;
      case 3:
        if (current) world.gateway.SetStatus(current->stack.id, 3 - current->stack.status);
        break;
      case 4:
        if (current) world.gateway.Remove(current->stack.id);
        break;
      case 5:
        spec.version = "2." + std::to_string(pick(5)) + ".0";
        break;
      case 6:
        spec.suspend = !spec.suspend;
        break;
      case 7:
        present = !present;
        break;
      default:
        spec.language = pick(2) == 0 ? "es" : "en";
        break;
    }
    if (pick(4) == 0) world.gateway.FailCall(1 + pick(3));
    const auto want = desired();
    Converge(world, want, 6);
    world.gateway.FailCall(1000000);  // disarm any failure still pending
    CheckConverged(world, want);
  }
}

}  // namespace tmaster::stacks
