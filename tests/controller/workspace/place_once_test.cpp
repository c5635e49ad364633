// Placement without a store (`--once`, docs/placement.md#endpoints): a dedicated workspace
// without spec.dedicated.endpoint stays where its stack is; the others go where the most room is.
#include "controller/workspace/place_once.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

namespace tmaster::controller {
namespace {

using Lists = std::map<int, Outcome<std::vector<stacks::ObservedStack>>>;

manifests::Workspace Dedicated(const std::string& name, int endpoint,
                               std::map<std::string, std::string> selector = {}) {
  manifests::Workspace w;
  w.name = name;
  w.mode = manifests::Mode::kDedicated;
  manifests::DedicatedSpec d;
  d.endpoint = endpoint;
  d.endpoint_placed = endpoint == 0;
  d.endpoint_selector = std::move(selector);
  w.dedicated = d;
  return w;
}

stacks::ObservedStack Stack(const std::string& name, int endpoint, const std::string& workspace) {
  stacks::ObservedStack s;
  s.name = name;
  s.endpoint = endpoint;
  s.workspace = workspace;
  return s;
}

manifests::EndpointConfig Endpoint(int id, std::optional<std::int64_t> capacity,
                                   std::map<std::string, std::string> labels = {}) {
  manifests::EndpointConfig e;
  e.id = id;
  e.capacity = capacity;
  e.labels = std::move(labels);
  return e;
}

std::map<std::string, int> Where(const std::vector<manifests::Workspace>& workspaces) {
  std::map<std::string, int> out;
  for (const manifests::Workspace& w : workspaces) out[w.name] = w.dedicated->endpoint;
  return out;
}

}  // namespace

TEST_CASE("place once: a stack found on an endpoint keeps it; new ones go by room and labels") {
  const std::vector<manifests::EndpointConfig> endpoints{Endpoint(1, 2), Endpoint(2, 3),
                                                         Endpoint(3, 5, {{"kind", "swarm"}})};
  Lists lists;
  // Endpoint 2 holds old's stack, and a stranger's and a shared runtime's (not counted).
  lists.emplace(1, std::vector<stacks::ObservedStack>{});
  lists.emplace(2, std::vector<stacks::ObservedStack>{Stack("tm-old", 2, "old"),
                                                      Stack("wordpress", 2, ""),
                                                      Stack("tm-shared-erp", 2, "")});
  lists.emplace(3, std::vector<stacks::ObservedStack>{});
  std::vector<manifests::Workspace> fleet{Dedicated("old", 0), Dedicated("named", 1),
                                          Dedicated("a", 0), Dedicated("b", 0),
                                          Dedicated("s", 0, {{"kind", "swarm"}})};
  const std::map<std::string, Failure> failed = PlaceStacksFromObserved(fleet, lists, endpoints);
  CHECK(failed.empty());
  // old stays on 2 (where its stack is, though 3 has more room); named takes 1's first room;
  // a: 1 has 1 free, 2 has 2, 3 has 5 -> 3; b: 3 has 4 -> 3; s: only 3 matches.
  CHECK(Where(fleet) == std::map<std::string, int>{
                            {"old", 2}, {"named", 1}, {"a", 3}, {"b", 3}, {"s", 3}});

  // An endpoint that cannot be listed: nothing new is placed (its stack may be there), a found
  // one still is.
  Lists down;
  down.emplace(1, Failure::Transient("PortainerUnavailable", "endpoint 1: connection refused"));
  down.emplace(2, std::vector<stacks::ObservedStack>{Stack("tm-old", 2, "old")});
  down.emplace(3, std::vector<stacks::ObservedStack>{});
  std::vector<manifests::Workspace> again{Dedicated("old", 0), Dedicated("fresh", 0)};
  const std::map<std::string, Failure> waiting = PlaceStacksFromObserved(again, down, endpoints);
  REQUIRE(waiting.count("fresh") == 1);
  CHECK(waiting.at("fresh").kind == FailureKind::kTransient);
  CHECK(waiting.at("fresh").message.find("not placed while endpoint 1 cannot be listed") == 0);
  CHECK(Where(again) == std::map<std::string, int>{{"old", 2}});

  // Full: Unschedulable, naming each endpoint.
  Lists full;
  full.emplace(1, std::vector<stacks::ObservedStack>{Stack("tm-x", 1, "x")});
  std::vector<manifests::Workspace> more{Dedicated("y", 0)};
  const std::map<std::string, Failure> refused =
      PlaceStacksFromObserved(more, full, {Endpoint(1, 1)});
  REQUIRE(refused.count("y") == 1);
  CHECK(refused.at("y").reason == "Unschedulable");
  CHECK(refused.at("y").message == "no endpoint can take it: 1: full (1/1)");
  CHECK(more.empty());
}

}  // namespace tmaster::controller
