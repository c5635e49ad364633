// The tests' FakeStore held to the PostgreSQL store's cases for revisions and rollouts
// (tests/support/rollout_store_cases.hpp).
#include <doctest/doctest.h>

#include "tests/support/fake_store.hpp"
#include "tests/support/rollout_store_cases.hpp"

TEST_CASE("rollouts: the fake store records revisions as the PostgreSQL store does") {
  tmaster::testing::FakeStore store;
  tmaster::testing::CheckRevisionCases(store);
}

TEST_CASE("rollouts: the fake store writes a rollout only over the version it was read at") {
  tmaster::testing::FakeStore store;
  tmaster::testing::CheckRolloutCases(store);
}

TEST_CASE("rollouts: the fake store prunes revisions as the PostgreSQL store does") {
  tmaster::testing::FakeStore store;
  tmaster::testing::CheckRevisionPruneCases(store);
}
