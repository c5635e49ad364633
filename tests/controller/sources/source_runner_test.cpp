// The source runner (controller/sources/source_runner.hpp) with a fake source: a failed read is
// never "no manifests", an unchanged revision is not parsed again, and the source's status says
// what happened.
#include "controller/sources/source_runner.hpp"

#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <string>

#include "common/scrub.hpp"
#include "manifests/loader.hpp"
#include "tests/support/fake_clock.hpp"
#include "tests/support/fake_source.hpp"
#include "tests/support/fake_store.hpp"
#include "tests/support/shop_fleet.hpp"

namespace {

using namespace tmaster;
using namespace tmaster::controller;

SourceRead Read(const std::string& revision, const std::vector<std::string>& workspaces) {
  std::string text = testing::kShopProduct;
  for (const std::string& name : workspaces) {
    text += "---\napiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: " + name +
            "}\nspec: {product: shop, mode: shared}\n";
  }
  SourceRead read;
  read.revision = revision;
  read.fleet = manifests::LoadText(text, "fleet.yaml", ".", {});
  return read;
}

struct Harness {
  Harness() { spdlog::set_level(spdlog::level::off); }
  testing::FakeStore store;
  DesiredState desired;
  EventRecorder events{store};
  std::vector<std::string> queued;
  Sync sync{{.store = &store, .desired = &desired, .events = &events},
            {.max_deletions_per_sync = 3}};
  Metrics metrics;
  testing::FakeRandom random;
  testing::ScriptedSource source;
  SourceRunner runner{source,  sync,   store,
                      metrics, random, [this](const std::string& name) { queued.push_back(name); }};
};

}  // namespace

TEST_CASE("source runner: a failed fetch deletes nothing and says so") {
  Harness h;
  h.source.Script({Read("c1", {"a", "b"}),
                   Failure::Transient("FetchFailed", "git fetch: could not resolve host"),
                   Read("c2", {"a"})});
  REQUIRE(h.runner.SyncOnce());
  CHECK(h.runner.Health().healthy);
  CHECK(h.store.Snapshot().sources.at("upstream").revision == "c1");

  CHECK_FALSE(h.runner.SyncOnce());  // the fetch failed
  const SourceHealth health = h.runner.Health();
  CHECK_FALSE(health.healthy);
  CHECK(health.problem == "FetchFailed: git fetch: could not resolve host");
  const testing::FakeStore::State state = h.store.Snapshot();
  CHECK(state.sources.at("upstream").reason == "FetchFailed");
  CHECK(state.workspaces.size() == 2);
  CHECK(h.store.Calls("MarkDeleting") == 0);
  CHECK(h.desired.DeletingCount() == 0);

  // A good read at a new revision: the removal is a real one now.
  REQUIRE(h.runner.SyncOnce());
  CHECK(h.desired.Deleting("b"));
  // An unhealthy source was asked to re-read regardless of the revision it had.
  CHECK(h.source.AskedWith() == std::vector<std::string>{"", "c1", ""});
}

TEST_CASE("source runner: the same revision on a healthy source is not applied again") {
  Harness h;
  h.source.Script({Read("c1", {"a"}), Read("c1", {"a"})});
  REQUIRE(h.runner.SyncOnce());
  h.store.ResetCalls();
  h.queued.clear();
  REQUIRE(h.runner.SyncOnce());
  CHECK(h.source.AskedWith().back() == "c1");
  CHECK(h.store.TotalCalls() == 0);  // no status write, no listing: nothing new
  CHECK(h.queued.empty());
}

TEST_CASE("source runner: a store failure is a failed sync, retried, never a deletion") {
  Harness h;
  h.source.Script({Read("c1", {"a", "b"}), Read("c2", {"a"})});
  REQUIRE(h.runner.SyncOnce());
  h.store.SetDown(true);
  CHECK_FALSE(h.runner.SyncOnce());
  h.store.SetDown(false);
  CHECK_FALSE(h.runner.Health().healthy);
  CHECK_FALSE(h.desired.Deleting("b"));
}

TEST_CASE("source runner: a source's status is stored without a registered secret") {
  Harness h;
  const std::string token = "ghp_source-runner-test-token-0123456789";
  RegisterProcessSecret(token);
  h.source.Script({Failure::Transient(
      "FetchFailed", "git fetch https://bot:" + token + "@git.example/fleet.git: 403")});
  CHECK_FALSE(h.runner.SyncOnce());
  const std::string stored = h.store.Snapshot().sources.at("upstream").message;
  CHECK(stored.find(token) == std::string::npos);
  CHECK(stored.find("<redacted>") != std::string::npos);
}
