// The cases both stores are held to for product revisions and rollouts (schema v10,
// docs/rollouts.md): run against the PostgreSQL store (tests/controller/store/store_itest.cpp)
// and the tests' FakeStore (tests/controller/rollouts/fake_rollout_store_test.cpp). `store` must
// hold no revision or rollout of products "erp" and "shop".
#pragma once

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "controller/store/store.hpp"

namespace tmaster::testing {

inline void CheckRevisionCases(controller::Store& store) {
  const std::string d1 = crypto::Sha256Hex("erp revision one");
  const std::string d2 = crypto::Sha256Hex("erp revision two");
  CHECK(store.ListRevisions("erp")->empty());

  auto first = store.RecordRevision("erp", d1, R"({"version":"1.0"})", 1'800'000'000);
  REQUIRE(first.ok());
  CHECK(first->number == 1);
  CHECK(first->digest == d1);
  CHECK(first->spec_json == R"({"version":"1.0"})");
  CHECK(first->created_unix == 1'800'000'000);

  // A digest seen before is that revision, whatever else the call says.
  auto again = store.RecordRevision("erp", d1, R"({"version":"other"})", 1'800'000'500);
  REQUIRE(again.ok());
  CHECK(*again == *first);

  auto second = store.RecordRevision("erp", d2, R"({"version":"2.0"})", 1'800'000'100);
  REQUIRE(second.ok());
  CHECK(second->number == 2);
  // Numbers are per product.
  auto shop = store.RecordRevision("shop", d2, "{}", 1'800'000'200);
  REQUIRE(shop.ok());
  CHECK(shop->number == 1);

  auto listed = store.ListRevisions("erp");
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 2);
  CHECK((*listed)[0] == *first);
  CHECK((*listed)[1] == *second);
  CHECK(store.ListRevisions("nope")->empty());

  auto bad = store.RecordRevision("erp", "ABC", "{}", 1);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.failure().reason == "InvalidValue");
  CHECK(bad.failure().message.find("64 lower-case hex") != std::string::npos);
  CHECK_FALSE(store.RecordRevision("", d1, "{}", 1).ok());
}

/// `store` must hold no revision of products "crm" and "ops".
inline void CheckRevisionPruneCases(controller::Store& store) {
  const auto record = [&](const std::string& product, int n) {
    auto recorded =
        store.RecordRevision(product, crypto::Sha256Hex(product + " " + std::to_string(n)),
                             "{\"n\":" + std::to_string(n) + "}", 1'800'000'000 + n);
    REQUIRE(recorded.ok());
    return recorded->number;
  };
  const auto numbers = [&](const std::string& product) {
    std::vector<int> out;
    const auto listed = store.ListRevisions(product);
    REQUIRE(listed.ok());
    for (const auto& revision : *listed) out.push_back(revision.number);
    return out;
  };
  for (int n = 1; n <= 8; ++n) CHECK(record("crm", n) == n);
  record("ops", 1);
  record("ops", 2);

  // The 3 newest stay (6, 7, 8), and 2 and 4, kept; 9 is no revision of crm.
  auto pruned = store.PruneRevisions("crm", 3, {2, 4, 9});
  REQUIRE(pruned.ok());
  CHECK(*pruned == 3);  // 1, 3, 5
  CHECK(numbers("crm") == std::vector<int>{2, 4, 6, 7, 8});
  CHECK(numbers("ops") == std::vector<int>{1, 2});  // another product's are untouched
  // Nothing more to prune: 0, and nothing changes.
  CHECK(*store.PruneRevisions("crm", 3, {2, 4}) == 0);
  // The next revision is numbered after the newest; a pruned digest is a new revision.
  CHECK(record("crm", 9) == 9);
  CHECK(record("crm", 1) == 10);
  // History 1 without keeps: only the newest stays, whatever else was there.
  CHECK(*store.PruneRevisions("crm", 1, {}) == 6);  // 2, 4, 6, 7, 8, 9
  CHECK(numbers("crm") == std::vector<int>{10});
  CHECK(*store.PruneRevisions("nope", 1, {}) == 0);

  auto bad = store.PruneRevisions("crm", 0, {});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.failure().reason == "InvalidValue");
  CHECK_FALSE(store.PruneRevisions("", 5, {}).ok());
  CHECK(numbers("crm") == std::vector<int>{10});
}

inline void CheckRolloutCases(controller::Store& store) {
  CHECK_FALSE(store.GetRollout("erp")->has_value());
  // The first write expects nothing stored.
  auto wrote = store.PutRollout("erp", 0, R"({"phase":"Progressing"})", 1'800'000'000);
  REQUIRE(wrote.ok());
  CHECK(*wrote == std::optional<std::int64_t>(1));
  // A second "first" write (another leader's) is refused, nothing changed.
  auto twice = store.PutRollout("erp", 0, R"({"phase":"other"})", 1'800'000'001);
  REQUIRE(twice.ok());
  CHECK_FALSE(twice->has_value());

  auto read = store.GetRollout("erp");
  REQUIRE(read.ok());
  REQUIRE(read->has_value());
  CHECK((*read)->version == 1);
  CHECK((*read)->state_json == R"({"phase":"Progressing"})");
  CHECK((*read)->updated_unix == 1'800'000'000);

  // Over the version read: written; over a stale one: refused.
  auto next = store.PutRollout("erp", 1, R"({"phase":"Paused"})", 1'800'000'010);
  REQUIRE(next.ok());
  CHECK(*next == std::optional<std::int64_t>(2));
  auto stale = store.PutRollout("erp", 1, R"({"phase":"Halted"})", 1'800'000'011);
  REQUIRE(stale.ok());
  CHECK_FALSE(stale->has_value());
  CHECK((*store.GetRollout("erp"))->state_json == R"({"phase":"Paused"})");

  REQUIRE(store.PutRollout("shop", 0, "{}", 1'800'000'020).ok());
  auto all = store.ListRollouts();
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].product == "erp");
  CHECK((*all)[0].version == 2);
  CHECK((*all)[1].product == "shop");

  CHECK_FALSE(store.PutRollout("", 0, "{}", 1).ok());
  CHECK_FALSE(store.PutRollout("erp", -1, "{}", 1).ok());
}

}  // namespace tmaster::testing
