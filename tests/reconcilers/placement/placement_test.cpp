// The pure placement choice (reconcilers/placement/placement.hpp, docs/placement.md).
#include "reconcilers/placement/placement.hpp"

#include <doctest/doctest.h>

namespace tmaster::placement {
namespace {

Candidate Of(const std::string& name, std::optional<std::int64_t> capacity, std::int64_t used,
             std::map<std::string, std::string> labels = {}) {
  Candidate c;
  c.name = name;
  c.capacity = capacity;
  c.used = used;
  c.labels = std::move(labels);
  return c;
}

}  // namespace

TEST_CASE("placement: the most free capacity wins, ties by name") {
  CHECK(*Choose({Of("a", 10, 8), Of("b", 10, 3), Of("c", 20, 12)}, {}, "cluster") == "c");
  CHECK(*Choose({Of("b", 10, 3), Of("a", 10, 3)}, {}, "cluster") == "a");
  // Free room, not the share used: 7 free of 10 beats 6 free of 100.
  CHECK(*Choose({Of("big", 100, 94), Of("small", 10, 3)}, {}, "cluster") == "small");
}

TEST_CASE("placement: a cluster without a limit ranks first; among those the least used") {
  CHECK(*Choose({Of("limited", 1000, 0), Of("open", std::nullopt, 50)}, {}, "cluster") == "open");
  CHECK(*Choose({Of("x", std::nullopt, 5), Of("y", std::nullopt, 4)}, {}, "cluster") == "y");
  CHECK(*Choose({Of("y", std::nullopt, 4), Of("x", std::nullopt, 4)}, {}, "cluster") == "x");
}

TEST_CASE("placement: the selector filters by labels") {
  const std::vector<Candidate> all = {Of("eu-1", 10, 9, {{"region", "eu"}}),
                                      Of("us-1", 10, 0, {{"region", "us"}}),
                                      Of("eu-2", 10, 5, {{"region", "eu"}, {"tier", "gold"}})};
  CHECK(*Choose(all, {{"region", "eu"}}, "cluster") == "eu-2");
  CHECK(*Choose(all, {{"region", "eu"}, {"tier", "gold"}}, "cluster") == "eu-2");
  CHECK(*Choose(all, {}, "cluster") == "us-1");
  CHECK(Matches({{"a", "1"}, {"b", "2"}}, {{"a", "1"}}));
  CHECK_FALSE(Matches({{"a", "1"}}, {{"a", "2"}}));
  CHECK_FALSE(Matches({}, {{"a", "1"}}));
}

TEST_CASE("placement: full, down and unmatched clusters take nothing; Unschedulable names each") {
  Candidate down = Of("eu-3", 10, 0, {{"region", "eu"}});
  down.reachable = false;
  down.down_reason = "ConnectionFailed";
  const std::vector<Candidate> all = {Of("eu-1", 2, 2, {{"region", "eu"}}), down,
                                      Of("us-1", 10, 0, {{"region", "us"}})};
  Outcome<std::string> none = Choose(all, {{"region", "eu"}}, "cluster");
  REQUIRE_FALSE(none.ok());
  CHECK(none.failure().kind == FailureKind::kTransient);  // eu-3 may come back
  CHECK(none.failure().reason == "Unschedulable");
  CHECK(none.failure().message ==
        "no cluster can take it now: eu-1: full (2/2); eu-3: down (ConnectionFailed); us-1: "
        "labels do not match region=eu");
  // Nothing down: only a person can help.
  Outcome<std::string> full = Choose({all[0], all[2]}, {{"region", "eu"}}, "cluster");
  CHECK(full.failure().kind == FailureKind::kStalled);
  CHECK(full.failure().message ==
        "no cluster can take it: eu-1: full (2/2); us-1: labels do not match region=eu");
  // A capacity of 0 takes nothing; with nothing configured, it says so.
  CHECK_FALSE(Choose({Of("zero", 0, 0)}, {}, "cluster").ok());
  CHECK(Choose({}, {}, "endpoint").failure().message == "no endpoint is configured");
  // The one with room still wins over full and down ones.
  CHECK(*Choose({Of("eu-1", 2, 2), down, Of("eu-4", 3, 2)}, {}, "cluster") == "eu-4");
}

}  // namespace tmaster::placement
