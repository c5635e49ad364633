// The tests' FakeStore keeps the backup catalog as the PostgreSQL store does
// (controller/store/store.hpp, docs/backups.md#the-catalog): the cases of
// tests/controller/store/store_itest.cpp's "backup catalog" tests, run against the fake, so code
// tested with the fake (the backup runner, retention, the routes) sees the same rules: the
// record checked first, the list ordered by workspace then newest first (created, then id), a
// verification only of an entry that is not a failed attempt, entries outliving their workspace.
#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/crypto.hpp"
#include "controller/store/store.hpp"
#include "tests/support/fake_store.hpp"

namespace {

using tmaster::Done;
using tmaster::Outcome;
using tmaster::controller::StoredBackup;
using tmaster::testing::FakeStore;

template <class T>
T Must(Outcome<T> outcome) {
  REQUIRE_MESSAGE(outcome.ok(), (outcome.ok() ? std::string() : outcome.failure().message));
  return std::move(*outcome);
}

// The same entry as store_itest.cpp's CatalogBackup.
StoredBackup CatalogBackup(const std::string& id, const std::string& workspace,
                           std::int64_t created) {
  StoredBackup backup;
  backup.id = id;
  backup.workspace = workspace;
  backup.kind = "scheduled";
  backup.file = workspace + "/" + id + ".dump";
  backup.size_bytes = 123456789012;
  backup.sha256 = tmaster::crypto::Sha256Hex(id);
  backup.duration_ms = 4321;
  backup.server_version = "16.4";
  backup.generation = 7;
  backup.applied_migration = "0003_orders";
  backup.key_id = "0123456789abcdef";
  backup.table_rows_json = R"({"public.orders":12,"public.customers":3})";
  backup.created_unix = created;
  return backup;
}

constexpr std::int64_t kCatalogT = 1'800'000'000;

}  // namespace

TEST_CASE("fake catalog: put, find, list by workspace then newest first, the larger id first") {
  FakeStore store;
  REQUIRE(Must(store.ListBackups(std::nullopt)).empty());
  const StoredBackup a1 = CatalogBackup("acme-1", "acme", kCatalogT);
  const StoredBackup a2 = CatalogBackup("acme-2", "acme", kCatalogT + 86400);
  const StoredBackup a3 = CatalogBackup("acme-3", "acme", kCatalogT + 86400);  // same second
  StoredBackup b1 = CatalogBackup("beta-1", "beta", kCatalogT + 10);
  b1.kind = "pre-migration";
  b1.key_id = "";
  // The id order (a map's) differs from the list's: "Beta" sorts before "acme" by bytes.
  StoredBackup upper = CatalogBackup("0-first-by-id", "Beta", kCatalogT - 5);
  for (const StoredBackup& backup : {a1, b1, a3, a2, upper}) REQUIRE(store.PutBackup(backup).ok());

  CHECK(Must(store.FindBackup("acme-2")) == std::optional<StoredBackup>(a2));
  CHECK_FALSE(Must(store.FindBackup("nope")).has_value());

  const auto acme = Must(store.ListBackups(std::string("acme")));
  REQUIRE(acme.size() == 3);
  CHECK(acme[0].id == "acme-3");  // the same second as acme-2: the larger id is the newer
  CHECK(acme[1].id == "acme-2");
  CHECK(acme[2] == a1);
  const auto all = Must(store.ListBackups(std::nullopt));
  REQUIRE(all.size() == 5);
  CHECK(all[0] == upper);  // workspace "Beta" < "acme" < "beta" (COLLATE "C")
  CHECK(all[1].id == "acme-3");
  CHECK(all[4] == b1);
  CHECK(Must(store.ListBackups(std::string("gamma"))).empty());
}

TEST_CASE("fake catalog: put replaces, a verification is recorded, delete removes once") {
  FakeStore store;
  StoredBackup backup = CatalogBackup("acme-1", "acme", kCatalogT);
  REQUIRE(store.PutBackup(backup).ok());
  backup.size_bytes = 42;
  REQUIRE(store.PutBackup(backup).ok());
  CHECK(Must(store.FindBackup("acme-1"))->size_bytes == 42);
  CHECK(Must(store.ListBackups(std::nullopt)).size() == 1);

  CHECK(Must(store.UpdateBackupVerification("acme-1", "verifyFailed",
                                            "table public.orders: 11 rows, 12 at dump time",
                                            kCatalogT + 3600)));
  StoredBackup found = *Must(store.FindBackup("acme-1"));
  CHECK(found.state == "verifyFailed");
  CHECK(found.reason == "table public.orders: 11 rows, 12 at dump time");
  CHECK(found.verified_unix == std::optional<std::int64_t>(kCatalogT + 3600));
  CHECK(Must(store.UpdateBackupVerification("acme-1", "verified", "", kCatalogT + 7200)));
  found = *Must(store.FindBackup("acme-1"));
  CHECK(found.state == "verified");
  CHECK(found.reason.empty());
  CHECK(found.verified_unix == std::optional<std::int64_t>(kCatalogT + 7200));
  CHECK_FALSE(Must(store.UpdateBackupVerification("nope", "verified", "", kCatalogT)));

  const Outcome<bool> bad_state = store.UpdateBackupVerification("acme-1", "ok", "", kCatalogT);
  REQUIRE_FALSE(bad_state.ok());
  CHECK(bad_state.failure().reason == "InvalidValue");
  CHECK(bad_state.failure().message ==
        "backup \"acme-1\": a verification's state must be verified or verifyFailed, not \"ok\"");
  CHECK(Must(store.FindBackup("acme-1"))->state == "verified");

  // A failed attempt has nothing to verify.
  StoredBackup failed = CatalogBackup("acme-2", "acme", kCatalogT + 1);
  failed.state = "failed";
  failed.sha256 = "";
  failed.reason = "pg_dump exited with status 1";
  REQUIRE(store.PutBackup(failed).ok());
  CHECK_FALSE(Must(store.UpdateBackupVerification("acme-2", "verified", "", kCatalogT)));
  CHECK(Must(store.FindBackup("acme-2")) == std::optional<StoredBackup>(failed));

  CHECK(Must(store.DeleteBackup("acme-1")));
  CHECK_FALSE(Must(store.DeleteBackup("acme-1")));
  CHECK_FALSE(Must(store.FindBackup("acme-1")).has_value());
  CHECK(store.Snapshot().backups.size() == 1);
}

TEST_CASE("fake catalog: entries outlive their workspace") {
  FakeStore store;
  REQUIRE(store.UpsertSpec("gone", "fleet", "r1", R"({"product":"erp"})").ok());
  StoredBackup final_backup = CatalogBackup("gone-final", "gone", kCatalogT);
  final_backup.kind = "final";
  REQUIRE(store.PutBackup(final_backup).ok());
  REQUIRE(Must(store.Remove("gone")));
  CHECK(Must(store.ListBackups(std::string("gone"))) == std::vector<StoredBackup>{final_backup});
}

TEST_CASE("fake catalog: a row no backup could have is refused, naming the backup and field") {
  FakeStore store;
  struct Row {
    const char* what;
    void (*spoil)(StoredBackup&);
    const char* message;
  };
  const Row rows[] = {
      {"id with a slash", [](StoredBackup& b) { b.id = "../etc"; },
       "backup \"../etc\": id must be 1-200 characters"},
      {"empty id", [](StoredBackup& b) { b.id = ""; }, "backup \"\": id must be"},
      {"id starting with a dot", [](StoredBackup& b) { b.id = ".hidden"; }, "id must be"},
      {"long id", [](StoredBackup& b) { b.id = std::string(201, 'a'); }, "id must be"},
      {"kind", [](StoredBackup& b) { b.kind = "weekly"; }, "kind must be scheduled, manual"},
      {"state", [](StoredBackup& b) { b.state = "done"; }, "state must be ok, verified"},
      {"digest", [](StoredBackup& b) { b.sha256 = std::string(64, 'G'); },
       "sha256 must be 64 lower-case hex digits"},
      {"no digest", [](StoredBackup& b) { b.sha256 = ""; }, "sha256 must be"},
      {"size", [](StoredBackup& b) { b.size_bytes = -1; }, "must not be negative"},
      {"workspace", [](StoredBackup& b) { b.workspace = ""; }, "workspace is empty"},
      {"file", [](StoredBackup& b) { b.file = ""; }, "file is empty"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.what);
    StoredBackup backup = CatalogBackup("acme-1", "acme", kCatalogT);
    row.spoil(backup);
    const Outcome<Done> put = store.PutBackup(backup);
    REQUIRE_FALSE(put.ok());
    CHECK(put.failure().reason == "InvalidValue");
    CHECK(put.failure().message.find(row.message) != std::string::npos);
  }
  CHECK(Must(store.ListBackups(std::nullopt)).empty());
}

TEST_CASE("fake catalog: an injected failure reaches the catalog's calls too") {
  FakeStore store;
  store.FailNext();
  const Outcome<Done> put = store.PutBackup(CatalogBackup("acme-1", "acme", kCatalogT));
  REQUIRE_FALSE(put.ok());
  CHECK(put.failure().reason == "StoreUnavailable");
  CHECK(store.Snapshot().backups.empty());
  REQUIRE(store.PutBackup(CatalogBackup("acme-1", "acme", kCatalogT)).ok());
  CHECK(store.Snapshot().backups.size() == 1);
}
