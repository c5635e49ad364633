// The sync (controller/sources/sync.hpp), phase by phase, against the in-memory store: what it
// saves, what it queues, what it refuses to delete, and that a sync cut short by the store
// leaves nothing the next sync cannot finish.
#include "controller/sources/sync.hpp"

#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <string>
#include <vector>

#include "controller/sources/product_registry.hpp"
#include "manifests/loader.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/fake_store.hpp"
#include "tests/support/shop_fleet.hpp"

namespace {

using namespace tmaster;
using namespace tmaster::controller;

constexpr const char* kProduct = testing::kShopProduct;

std::string Workspace(const std::string& name, const std::string& extra = "") {
  return "---\napiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: " + name +
         "}\nspec:\n  product: shop\n  mode: shared\n" + extra;
}

manifests::Fleet Parse(const std::string& text) {
  manifests::LoadOptions options;
  return manifests::LoadText(text, "fleet.yaml", ".", options);
}

manifests::Fleet Fleet(const std::vector<std::string>& names) {
  std::string text = kProduct;
  for (const std::string& name : names) text += Workspace(name);
  return Parse(text);
}

struct Harness {
  Harness() { spdlog::set_level(spdlog::level::off); }
  Sync Make(int max_deletions = 3) {
    return Sync({.store = &store, .desired = &desired, .events = &events},
                {.max_deletions_per_sync = max_deletions});
  }
  /// Sync::Apply, queueing what it asks to queue.
  Outcome<SyncVerdict> Apply(Sync& sync, const std::string& source, const std::string& revision,
                             const manifests::Fleet& fleet) {
    std::vector<std::string> to_queue;
    Outcome<SyncVerdict> verdict = sync.Apply(source, revision, fleet, to_queue);
    queued.insert(queued.end(), to_queue.begin(), to_queue.end());
    return verdict;
  }
  Outcome<SyncVerdict> Apply(Sync&& sync, const std::string& source, const std::string& revision,
                             const manifests::Fleet& fleet) {
    return Apply(sync, source, revision, fleet);
  }
  std::vector<std::string> TakeQueued() { return std::exchange(queued, {}); }
  testing::FakeStore store;
  DesiredState desired;
  EventRecorder events{store};
  std::vector<std::string> queued;
};

}  // namespace

TEST_CASE("sync: declared workspaces are saved once and queued when they change") {
  Harness h;
  Sync sync = h.Make();
  REQUIRE(h.Apply(sync, "local", "", Fleet({"a", "b"}))->ready);
  CHECK(h.TakeQueued() == std::vector<std::string>{"a", "b"});
  CHECK(h.store.Snapshot().workspaces.at("a").generation == 1);
  h.store.ResetCalls();

  SUBCASE("the same read again saves and queues nothing") {
    REQUIRE(h.Apply(sync, "local", "", Fleet({"a", "b"}))->ready);
    CHECK(h.TakeQueued().empty());
    CHECK(h.store.Calls("UpsertSpec") == 0);
  }
  SUBCASE("a changed spec gets a new generation and is queued alone") {
    std::string text = std::string(kProduct) +
                       Workspace("a", "  database: {connectionLimit: 7}\n") + Workspace("b");
    REQUIRE(h.Apply(sync, "local", "", Parse(text))->ready);
    CHECK(h.TakeQueued() == std::vector<std::string>{"a"});
    CHECK(h.store.Snapshot().workspaces.at("a").generation == 2);
    CHECK(h.store.Snapshot().workspaces.at("b").generation == 1);
  }
  SUBCASE("a workspace another source declares is left to it") {
    REQUIRE(h.Apply(sync, "other", "", Fleet({"a"}))->ready);
    CHECK(h.desired.Declared("a")->source == "local");
    CHECK(h.store.Calls("UpsertSpec") == 0);
  }
}

TEST_CASE("sync: a new term saves nothing that did not change") {
  Harness h;
  REQUIRE(h.Apply(h.Make(), "local", "rev1", Fleet({"a"}))->ready);
  // A restart: the store's rows are all the new term knows.
  h.desired.Clear();
  h.desired.BeginTerm(*h.store.ListWorkspaces(std::nullopt));
  h.TakeQueued();
  h.store.ResetCalls();
  REQUIRE(h.Apply(h.Make(), "local", "rev2", Fleet({"a"}))->ready);
  CHECK(h.store.Calls("UpsertSpec") == 0);
  CHECK(h.TakeQueued() == std::vector<std::string>{"a"});  // a new leader looks at it once
  CHECK(h.desired.Declared("a")->revision == "rev1");      // the revision that last changed it
}

TEST_CASE("sync: an invalid document keeps its last valid spec and deletes nothing") {
  Harness h;
  Sync sync = h.Make();
  REQUIRE(h.Apply(sync, "local", "", Fleet({"a", "b"}))->ready);
  h.TakeQueued();
  // "a" loses its product field; "b" is gone from the read.
  const std::string text = std::string(kProduct) +
                           "---\napiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\n"
                           "metadata: {name: a}\nspec: {mode: shared}\n";
  Outcome<SyncVerdict> verdict = h.Apply(sync, "local", "", Parse(text));
  REQUIRE(verdict);
  CHECK_FALSE(verdict->ready);
  CHECK(verdict->reason == "InvalidManifests");
  CHECK(verdict->message.find("nothing deleted") != std::string::npos);
  CHECK(h.TakeQueued() == std::vector<std::string>{"a"});  // its status must say why
  const DesiredState::View a = h.desired.Lookup("a");
  CHECK(a.declared == nullptr);
  REQUIRE(a.rejected.has_value());
  CHECK(a.rejected->reason == "InvalidManifest");
  CHECK(h.store.Snapshot().workspaces.at("a").generation == 1);  // last valid spec kept
  CHECK_FALSE(h.store.Snapshot().workspaces.at("b").deleting_since.has_value());
  CHECK(h.store.Calls("MarkDeleting") == 0);
}

TEST_CASE("sync: deletions run only within the guard") {
  Harness h;
  Sync sync = h.Make(/*max_deletions=*/2);
  REQUIRE(h.Apply(sync, "local", "r1", Fleet({"a", "b", "c", "d"}))->ready);
  h.TakeQueued();
  SUBCASE("more than the limit at once deletes nothing") {
    Outcome<SyncVerdict> verdict = h.Apply(sync, "local", "r2", Fleet({"a"}));
    REQUIRE(verdict);
    CHECK(verdict->reason == "DeletionGuard");
    CHECK(h.desired.DeletingCount() == 0);
    CHECK(h.TakeQueued().empty());
  }
  SUBCASE("within the limit: marked, queued, announced") {
    Outcome<SyncVerdict> verdict = h.Apply(sync, "local", "r2", Fleet({"a", "b"}));
    REQUIRE(verdict);
    CHECK(verdict->ready);
    CHECK(h.TakeQueued() == std::vector<std::string>{"c", "d"});
    CHECK(h.desired.Deleting("c"));
    CHECK(h.store.Snapshot().workspaces.at("d").deleting_since.has_value());
    CHECK(h.store.Snapshot().events.back().reason == "Deleting");
    SUBCASE("a manifest that returns cancels its deletion") {
      REQUIRE(h.Apply(sync, "local", "r3", Fleet({"a", "b", "c"}))->ready);
      CHECK_FALSE(h.desired.Deleting("c"));
      CHECK(h.desired.Declared("c") != nullptr);
      CHECK_FALSE(h.store.Snapshot().workspaces.at("c").deleting_since.has_value());
      CHECK(h.store.Snapshot().events.back().reason == "DeletionCancelled");
    }
  }
}

TEST_CASE("sync: a store failure halfway leaves nothing the next sync cannot finish") {
  Harness h;
  Sync sync = h.Make();
  REQUIRE(h.Apply(sync, "local", "", Fleet({"a"}))->ready);
  h.TakeQueued();
  // "a" is unchanged (no store call); saving "b" is the next call, and it fails.
  h.store.FailNext(1);
  Outcome<SyncVerdict> failed = h.Apply(sync, "local", "", Fleet({"a", "b"}));
  REQUIRE_FALSE(failed);
  CHECK(failed.failure().message.find("saving workspace b") != std::string::npos);
  CHECK(h.desired.Declared("b") == nullptr);
  CHECK(h.store.Calls("MarkDeleting") == 0);
  // The next sync finishes: "b" is saved and queued.
  REQUIRE(h.Apply(sync, "local", "", Fleet({"a", "b"}))->ready);
  CHECK(h.TakeQueued() == std::vector<std::string>{"b"});
  CHECK(h.store.Snapshot().workspaces.count("b") == 1);
}

TEST_CASE("sync: a workspace re-declared after its deletion finished is saved again") {
  Harness h;
  Sync sync = h.Make();
  REQUIRE(h.Apply(sync, "local", "", Fleet({"a", "b"}))->ready);
  REQUIRE(h.Apply(sync, "local", "", Fleet({"a"}))->ready);
  REQUIRE(h.desired.Deleting("b"));
  // The reclaim finished: the row is gone.
  REQUIRE(*h.store.Remove("b"));
  h.desired.FinishDeleting("b");
  h.TakeQueued();
  REQUIRE(h.Apply(sync, "local", "", Fleet({"a", "b"}))->ready);
  CHECK(h.TakeQueued() == std::vector<std::string>{"b"});
  REQUIRE(h.store.Snapshot().workspaces.count("b") == 1);
  CHECK(h.store.Snapshot().workspaces.at("b").generation == 1);
}

TEST_CASE("sync: products are loaded once per read and their digest follows their content") {
  const manifests::Fleet fleet = Fleet({"a"});
  const Sync::Products first = Sync::LoadProducts(fleet, {});
  const Sync::Products again = Sync::LoadProducts(fleet, {});
  REQUIRE(first.count("shop") == 1);
  CHECK(first.at("shop")->digest == again.at("shop")->digest);
  const manifests::Fleet changed =
      Parse(std::string(kProduct).replace(std::string(kProduct).find("1.0.0"), 5, "1.1.0") +
            Workspace("a"));
  CHECK(Sync::LoadProducts(changed, {}).at("shop")->digest != first.at("shop")->digest);
}

TEST_CASE("sync: each product's revision is recorded and numbered; only what it hands a "
          "workspace makes a new one") {
  Harness h;
  ProductRegistry registry;
  Sync sync({.store = &h.store, .desired = &h.desired, .events = &h.events, .products = &registry},
            {});
  const auto revision_of = [&registry] {
    return registry.All().at("shop").entry->revision;
  };
  REQUIRE(h.Apply(sync, "local", "r1", Fleet({"a"})).ok());
  CHECK(revision_of() == 1);
  const std::string first_digest = registry.All().at("shop").entry->revision_digest;
  CHECK(first_digest.size() == 64);
  // The same product read again, with another workspace: the same revision.
  REQUIRE(h.Apply(sync, "local", "r2", Fleet({"a", "b"})).ok());
  CHECK(revision_of() == 1);
  // A new default version: revision 2, recorded with what it hands a workspace.
  const std::string product = std::string(kProduct);
  const manifests::Fleet newer =
      Parse(std::string(product).replace(product.find("1.0.0"), 5, "1.1.0") + Workspace("a"));
  REQUIRE(h.Apply(sync, "local", "r3", newer).ok());
  CHECK(revision_of() == 2);
  auto stored = h.store.ListRevisions("shop");
  REQUIRE(stored.ok());
  REQUIRE(stored->size() == 2);
  CHECK((*stored)[0].digest == first_digest);
  CHECK((*stored)[1].spec_json.find(R"("version":"1.1.0")") != std::string::npos);
  // Back to the first: its number again, nothing new stored.
  REQUIRE(h.Apply(sync, "local", "r4", Fleet({"a"})).ok());
  CHECK(revision_of() == 1);
  CHECK(h.store.ListRevisions("shop")->size() == 2);
  // An unchanged product costs no store call; a new Sync (a restart) reads the numbers back.
  const std::size_t calls = h.store.Calls("RecordRevision");
  REQUIRE(h.Apply(sync, "local", "r5", Fleet({"a"})).ok());
  CHECK(h.store.Calls("RecordRevision") == calls);
  Sync restarted({.store = &h.store, .desired = &h.desired, .events = &h.events,
                  .products = &registry},
                 {});
  REQUIRE(h.Apply(restarted, "local", "r6", newer).ok());
  CHECK(revision_of() == 2);
  // A store that cannot record it leaves the number unknown, and the sync goes on.
  Sync failing({.store = &h.store, .desired = &h.desired, .events = &h.events,
                .products = &registry},
               {});
  h.store.FailNext(1);
  REQUIRE(h.Apply(failing, "local", "r7", Fleet({"a"})).ok());
  CHECK(revision_of() == 0);
}

TEST_CASE("sync: a shared runtime's template moves the registry's version, not the workspaces' digest") {
  testing::TempDir dir;
  manifests::Fleet fleet = Fleet({"a"});
  manifests::Product& product = fleet.products.at(0);
  product.root = dir.path();
  product.shared_runtime =
      manifests::SharedRuntimeSpec{dir.Write("erp-shared.yml", "services: {app: {image: a}}\n"), 1};
  const Sync::Products first = Sync::LoadProducts(fleet, {});
  CHECK_FALSE(first.at("shop")->runtime_digest.empty());
  dir.Write("erp-shared.yml", "services: {app: {image: b}}\n");
  const Sync::Products edited = Sync::LoadProducts(fleet, {});
  CHECK(edited.at("shop")->digest == first.at("shop")->digest);  // no workspace re-queued
  CHECK(edited.at("shop")->runtime_digest != first.at("shop")->runtime_digest);
  ProductRegistry registry;
  registry.Replace("local", first);
  const std::uint64_t version = registry.Version();
  registry.Replace("local", Sync::LoadProducts(fleet, {}));
  CHECK(registry.Version() != version);
}

TEST_CASE("sync: under a rollout policy a new revision alone queues nobody (the rollout hands it "
          "out); other product changes, or no policy, queue every workspace") {
  Harness h;
  Sync sync = h.Make();
  const auto fleet = [&](const std::string& version, const std::string& port, bool policy) {
    std::string product = "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata: "
                          "{name: shop}\nspec:\n  image: example/shop\n  defaultVersion: \"" +
                          version + "\"\n  modes: [shared]\n  port: " + port + "\n";
    if (policy) product += "  rollout:\n    waves: [{percent: 50}, {percent: 100}]\n";
    return Parse(product + Workspace("a") + Workspace("b"));
  };
  REQUIRE(h.Apply(sync, "local", "", fleet("1.0.0", "8000", true))->ready);
  CHECK(h.TakeQueued() == std::vector<std::string>{"a", "b"});
  // A new version: a new revision, which the rollout hands out.
  REQUIRE(h.Apply(sync, "local", "", fleet("1.1.0", "8000", true))->ready);
  CHECK(h.TakeQueued().empty());
  // Another field a pass reads (the port): everyone looks again.
  REQUIRE(h.Apply(sync, "local", "", fleet("1.1.0", "8080", true))->ready);
  CHECK(h.TakeQueued() == std::vector<std::string>{"a", "b"});
  // Both at once: everyone.
  REQUIRE(h.Apply(sync, "local", "", fleet("1.2.0", "8000", true))->ready);
  CHECK(h.TakeQueued() == std::vector<std::string>{"a", "b"});
  // Without a policy a new version reaches everyone at once, as before.
  REQUIRE(h.Apply(sync, "local", "", fleet("1.2.0", "8000", false))->ready);
  h.TakeQueued();
  REQUIRE(h.Apply(sync, "local", "", fleet("1.3.0", "8000", false))->ready);
  CHECK(h.TakeQueued() == std::vector<std::string>{"a", "b"});
}
