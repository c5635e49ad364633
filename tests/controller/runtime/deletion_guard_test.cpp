// The deletion guard's arithmetic: a pure set difference and the limits around it.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "controller/runtime/deletion_guard.hpp"

namespace {

using tmaster::controller::DecideDeletions;
using tmaster::controller::GuardDecision;
using Names = std::set<std::string>;
using List = std::vector<std::string>;

struct Row {
  const char* name;
  Names stored;
  Names parsed;
  int max;
  bool confirmed;
  bool allowed;
  List to_delete;
  List withheld;
};

}  // namespace

TEST_CASE("deletion guard: table") {
  const std::vector<Row> rows = {
      {"nothing to delete", {"a", "b"}, {"a", "b"}, 3, false, true, {}, {}},
      {"empty store, empty parse", {}, {}, 3, false, true, {}, {}},
      {"within the limit", {"a", "b", "c", "d"}, {"a", "b"}, 3, false, true, {"c", "d"}, {}},
      {"exactly the limit", {"a", "b", "c", "d"}, {"a"}, 3, false, true, {"b", "c", "d"}, {}},
      {"over the limit", {"a", "b", "c", "d", "e"}, {"a"}, 3, false, false, {},
       {"b", "c", "d", "e"}},
      {"over the limit, confirmed", {"a", "b", "c", "d", "e"}, {"a"}, 3, true, true,
       {"b", "c", "d", "e"}, {}},
      {"all gone, within the limit", {"a", "b"}, {}, 3, false, false, {}, {"a", "b"}},
      {"the only workspace gone", {"a"}, {}, 3, false, false, {}, {"a"}},
      {"all gone, replaced by new names", {"a", "b"}, {"c", "d"}, 3, false, false, {},
       {"a", "b"}},
      {"all gone, confirmed", {"a", "b"}, {}, 3, true, true, {"a", "b"}, {}},
      {"max 0 refuses one deletion", {"a", "b"}, {"a"}, 0, false, false, {}, {"b"}},
      {"max 0 with nothing to delete", {"a", "b"}, {"a", "b", "c"}, 0, false, true, {}, {}},
      {"max 0, confirmed", {"a", "b"}, {"a"}, 0, true, true, {"b"}, {}},
      {"negative max is max 0", {"a", "b"}, {"a"}, -1, false, false, {}, {"b"}},
      {"new names only", {"a"}, {"a", "b", "c"}, 3, false, true, {}, {}},
      {"new names while some go", {"a", "b", "c"}, {"a", "x", "y"}, 3, false, true, {"b", "c"},
       {}},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      const GuardDecision decision = DecideDeletions(row.stored, row.parsed, row.max,
                                                     row.confirmed);
      CAPTURE(decision.message);
      CHECK(decision.allowed == row.allowed);
      CHECK(decision.to_delete == row.to_delete);
      CHECK(decision.withheld == row.withheld);
      CHECK(decision.reason == (row.allowed ? "" : "DeletionGuard"));
      CHECK_FALSE(decision.message.empty());
      if (!row.allowed) {
        CHECK(decision.message.find("maxDeletionsPerSync " + std::to_string(row.max)) !=
              std::string::npos);
        CHECK(decision.message.find(row.withheld.front()) != std::string::npos);
        if (row.max <= 0) CHECK(decision.message.find("confirmation") != std::string::npos);
      }
    }
  }
}

TEST_CASE("deletion guard: a refusal names the count, the limit and a few names") {
  const Names stored = {"acme", "beta", "corp", "delta", "echo", "fox", "golf"};
  const GuardDecision decision = DecideDeletions(stored, {"golf"}, 3, false);
  CAPTURE(decision.message);
  REQUIRE_FALSE(decision.allowed);
  CHECK(decision.to_delete.empty());
  CHECK(decision.withheld.size() == 6);
  CHECK(decision.message.find("6 workspaces") != std::string::npos);
  CHECK(decision.message.find("maxDeletionsPerSync 3") != std::string::npos);
  CHECK(decision.message.find("acme, beta, corp and 3 more") != std::string::npos);
  CHECK(decision.message.find("delta") == std::string::npos);
}

TEST_CASE("deletion guard: the all-gone refusal says so") {
  const GuardDecision decision = DecideDeletions({"acme"}, {}, 3, false);
  CAPTURE(decision.message);
  CHECK_FALSE(decision.allowed);
  CHECK(decision.message.find("all 1 workspace") != std::string::npos);
  CHECK(decision.message.find("acme") != std::string::npos);
}
