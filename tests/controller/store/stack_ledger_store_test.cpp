// The daemon's stack ledger kept in the store (controller/workspace/stack_ledger_store.hpp),
// against the fake store: loaded per backend, written through, a failed write only logged.

#include "controller/workspace/stack_ledger_store.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "tests/support/fake_store.hpp"

namespace tmaster::controller {
namespace {

bool Same(const std::optional<stacks::LedgerEntry>& a, const stacks::LedgerEntry& b) {
  return a && a->id == b.id && a->update_date == b.update_date && a->file_digest == b.file_digest;
}

stacks::DesiredStack Stack(std::string workspace, std::string file) {
  stacks::DesiredStack d;
  d.name = "tm-" + workspace;
  d.workspace = std::move(workspace);
  d.endpoint = 1;
  d.file = std::move(file);
  return d;
}

}  // namespace

TEST_CASE("stack ledger store: the backend key names the Portainer URL or the folder") {
  manifests::StacksConfig portainer;
  portainer.backend = "portainer";
  portainer.portainer.url = "https://portainer.example.test";
  CHECK(StackBackendKey(portainer) == "portainer https://portainer.example.test");
  manifests::StacksConfig directory;
  directory.directory = "/srv/deployments";
  CHECK(StackBackendKey(directory) == "directory /srv/deployments");
}

TEST_CASE("stack ledger store: changes are written through and load back into a new ledger") {
  testing::FakeStore store;
  const std::string backend = "portainer https://a.example.test";
  stacks::StackLedger ledger;
  ledger.SetObserver(StackLedgerWriter(store, backend));

  const stacks::DesiredStack one = Stack("one", "services: {one: {}}");
  const stacks::DesiredStack two = Stack("two", "services: {two: {}}");
  ledger.Record("one", stacks::CreateStack{one}, {5'000'000'001, 100, 1, ""});
  ledger.Record("two", stacks::CreateStack{two}, {6, 200, 1, ""});
  ledger.Record("two", stacks::DeleteStack{6, 1, "tm-two"}, {6, 0, 1, ""});
  const auto rows = store.Snapshot().stack_ledger;
  REQUIRE(rows.size() == 1);
  CHECK(rows.at("one") == StackLedgerRow{.workspace = "one",
                                         .backend = backend,
                                         .stack_id = 5'000'000'001,
                                         .update_date = 100,
                                         .file_digest = crypto::Sha256Hex(one.file)});

  // A restart: a new ledger, loaded from the store; rows of another backend are not loaded.
  REQUIRE(store
              .PutStackLedger({.workspace = "elsewhere",
                               .backend = "portainer https://b.example.test",
                               .stack_id = 6,
                               .update_date = 1,
                               .file_digest = crypto::Sha256Hex("x")})
              .ok());
  stacks::StackLedger restarted;
  restarted.Put("from-file", {3, 30, crypto::Sha256Hex("f")});
  Outcome<std::size_t> loaded = LoadStackLedger(store, backend, restarted);
  REQUIRE(loaded.ok());
  CHECK(*loaded == 1);
  CHECK(Same(restarted.Get("one"), {5'000'000'001, 100, crypto::Sha256Hex(one.file)}));
  CHECK_FALSE(restarted.Get("two").has_value());
  CHECK_FALSE(restarted.Get("elsewhere").has_value());
  CHECK(Same(restarted.Get("from-file"), {3, 30, crypto::Sha256Hex("f")}));
  // Loading wrote nothing back.
  CHECK(store.Calls("PutStackLedger") == 3);
}

TEST_CASE("stack ledger store: a failed write keeps the ledger in memory and fails nothing") {
  testing::FakeStore store;
  stacks::StackLedger ledger;
  ledger.SetObserver(StackLedgerWriter(store, "directory /d"));
  store.SetDown(true);
  ledger.Record("one", stacks::CreateStack{Stack("one", "f")}, {1, 10, 1, ""});
  CHECK(Same(ledger.Get("one"), {1, 10, crypto::Sha256Hex("f")}));
  CHECK(store.Calls("PutStackLedger") == 1);
  stacks::StackLedger other;
  CHECK_FALSE(LoadStackLedger(store, "directory /d", other).ok());
  store.SetDown(false);
  CHECK(store.Snapshot().stack_ledger.empty());
  // The next change is written again (the row holds the newest entry).
  ledger.Record("one", stacks::UpdateStack{1, Stack("one", "g"), {"file"}}, {1, 20, 1, ""});
  CHECK(store.Snapshot().stack_ledger.at("one").update_date == 20);
}

}  // namespace tmaster::controller
