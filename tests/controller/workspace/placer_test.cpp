// The controller's placement (controller/workspace/placer.hpp, docs/placement.md): chosen once,
// recorded in the store before it is used, and never changed by placement itself.
#include "controller/workspace/placer.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "controller/sources/desired_state.hpp"
#include "tests/support/fake_store.hpp"

namespace tmaster::controller {
namespace {

manifests::ClusterConfig Cluster(const std::string& name, std::optional<std::int64_t> capacity,
                                 std::map<std::string, std::string> labels = {}) {
  manifests::ClusterConfig c;
  c.name = name;
  c.capacity = capacity;
  c.labels = std::move(labels);
  return c;
}

manifests::Workspace Placed(const std::string& name,
                            std::map<std::string, std::string> selector = {}) {
  manifests::Workspace w;
  w.name = name;
  w.database.cluster.clear();
  w.database.cluster_placed = true;
  w.database.cluster_selector = std::move(selector);
  return w;
}

manifests::EndpointConfig Endpoint(int id, std::optional<std::int64_t> capacity,
                                   std::map<std::string, std::string> labels = {}) {
  manifests::EndpointConfig e;
  e.id = id;
  e.capacity = capacity;
  e.labels = std::move(labels);
  return e;
}

// A dedicated workspace on cluster "a"; endpoint 0: placed (spec.dedicated.endpoint omitted).
manifests::Workspace Dedicated(const std::string& name, int endpoint,
                               std::map<std::string, std::string> selector = {}) {
  manifests::Workspace w;
  w.name = name;
  w.database.cluster = "a";
  w.mode = manifests::Mode::kDedicated;
  manifests::DedicatedSpec d;
  d.endpoint = endpoint;
  d.endpoint_placed = endpoint == 0;
  d.endpoint_selector = std::move(selector);
  w.dedicated = d;
  return w;
}

struct World {
  testing::FakeStore store;
  DesiredState desired;
  std::map<std::string, ClusterReach> reach;
  std::map<int, std::vector<std::string>> runtimes;  ///< shared runtimes by endpoint

  std::unique_ptr<Placer> Make(std::vector<manifests::ClusterConfig> clusters,
                               std::vector<manifests::EndpointConfig> endpoints = {}) {
    auto placer = std::make_unique<Placer>(PlacerDeps{
        .store = &store,
        .desired = &desired,
        .clusters = std::move(clusters),
        .endpoints = std::move(endpoints),
        .reach = [this](const std::string& cluster) {
          const auto found = reach.find(cluster);
          return found == reach.end() ? ClusterReach{} : found->second;
        },
        .endpoint_reach = [](int endpoint) {
          return EndpointReach{.known = endpoint == 10, .reachable = true, .swarm = true,
                               .swarm_id = "c10", .reason = "", .checked_unix = 5};
        },
        .runtimes = [this] { return runtimes; },
        .now_unix = [] { return std::int64_t{1'800'000'000}; }});
    REQUIRE(placer->Load().ok());
    return placer;
  }
  // Declares `w` and asks where it is.
  Outcome<std::string> Place(Placer& placer, const manifests::Workspace& w,
                             const std::optional<WorkspaceIdentity>& identity = std::nullopt) {
    auto entry = std::make_shared<DesiredEntry>();
    entry->workspace = w;
    desired.Declare(w.name, entry);
    return placer.ClusterFor(w.name, w, identity);
  }
  // Declares and stores `w` (a stack endpoint is recorded on its row) and asks for its endpoint.
  Outcome<int> PlaceStack(Placer& placer, const manifests::Workspace& w,
                          std::optional<int> recorded = std::nullopt) {
    auto entry = std::make_shared<DesiredEntry>();
    entry->workspace = w;
    desired.Declare(w.name, entry);
    REQUIRE(store.UpsertSpec(w.name, "fleet", "r1", "{}").ok());
    return placer.EndpointFor(w.name, w, recorded);
  }
  std::optional<int> StoredEndpoint(const std::string& name) {
    auto row = store.Get(name);
    REQUIRE(row.ok());
    REQUIRE(row->has_value());
    return (*row)->stack_endpoint;
  }
};

}  // namespace

TEST_CASE("placer: new workspaces go where the most room is, and the choice is recorded") {
  World w;
  auto placer = w.Make({Cluster("a", 3), Cluster("b", 2)});
  CHECK(*w.Place(*placer, Placed("one")) == "a");    // 3 free against 2
  CHECK(*w.Place(*placer, Placed("two")) == "a");    // 2 against 2: by name
  CHECK(*w.Place(*placer, Placed("three")) == "b");  // 1 against 2
  CHECK(*w.Place(*placer, Placed("four")) == "a");   // 1 against 1
  CHECK(*w.Place(*placer, Placed("five")) == "b");
  const auto placements = w.store.Snapshot().placements;
  REQUIRE(placements.size() == 5);
  CHECK(placements.at("three").cluster == "b");
  CHECK(placements.at("three").placed_unix == 1'800'000'000);
  // Both full: the sixth waits, naming why.
  Outcome<std::string> sixth = w.Place(*placer, Placed("six"));
  REQUIRE_FALSE(sixth.ok());
  CHECK(sixth.failure().reason == "Unschedulable");
  CHECK(sixth.failure().message == "no cluster can take it: a: full (3/3); b: full (2/2)");
  CHECK(w.store.Snapshot().placements.count("six") == 0);
  // Asking again answers from the record, whatever the clusters hold now.
  CHECK(*placer->ClusterFor("three", Placed("three"), std::nullopt) == "b");
}

TEST_CASE("placer: sticky across a restart even when capacities and labels change") {
  World w;
  {
    auto placer = w.Make({Cluster("a", 10, {{"region", "eu"}}), Cluster("b", 1)});
    CHECK(*w.Place(*placer, Placed("acme", {{"region", "eu"}})) == "a");
  }
  // A new process with a config where a would never be chosen: acme stays on a.
  auto placer = w.Make({Cluster("a", 0, {{"region", "us"}}), Cluster("b", 100)});
  CHECK(*placer->ClusterFor("acme", Placed("acme", {{"region", "eu"}}), std::nullopt) == "a");
  CHECK(placer->PlacedOn("acme") == "a");
  // Another replica's earlier record wins over this one's choice.
  REQUIRE(w.store.RecordPlacement("late", "a", 1).ok());
  CHECK(*w.Place(*placer, Placed("late")) == "a");
}

TEST_CASE("placer: named, converged and retained workspaces count; a dropped one frees room") {
  World w;
  auto placer = w.Make({Cluster("a", 2), Cluster("b", 2)});
  manifests::Workspace named;
  named.name = "named";
  named.database.cluster = "a";
  CHECK(*w.Place(*placer, named) == "a");  // its manifest's cluster, not a placement
  CHECK(w.store.Snapshot().placements.count("named") == 0);
  // Converged by an older version on b (its identity), no placement yet: it stays on b and the
  // placement is recorded now, even though b is the fuller cluster.
  CHECK(*w.Place(*placer, Placed("old"), WorkspaceIdentity{"erp", "b", "tenant_old", "u"}) == "b");
  CHECK(w.store.Snapshot().placements.at("old").cluster == "b");
  CHECK(*w.Place(*placer, Placed("new1")) == "a");  // a: 1 used, b: 1 used -> a by name
  CHECK(*w.Place(*placer, Placed("new2")) == "b");
  // Retain: the workspace is gone but its database is not: still counted.
  w.desired.MarkDeleting("new2");
  CHECK_FALSE(w.Place(*placer, Placed("new3")).ok());
  // Delete: the room is free again.
  REQUIRE(placer->Forget("new2").ok());
  CHECK(w.store.Snapshot().placements.count("new2") == 0);
  CHECK(*w.Place(*placer, Placed("new3")) == "b");
  const std::vector<Placer::Usage> usage = placer->Usages();
  REQUIRE(usage.size() == 2);
  CHECK(usage[0].cluster == "a");
  CHECK(usage[0].used == 2);
  CHECK(usage[0].placed == 1);
  CHECK(usage[1].used == 2);
}

TEST_CASE("placer: a cluster that is down takes no new workspace and keeps its own") {
  World w;
  auto placer = w.Make({Cluster("a", 10), Cluster("b", 10)});
  CHECK(*w.Place(*placer, Placed("acme")) == "a");
  w.reach["a"] = {.known = true, .reachable = false, .reason = "connection refused", .server_version = "", .checked_unix = 0};
  CHECK(*placer->ClusterFor("acme", Placed("acme"), std::nullopt) == "a");  // not moved
  CHECK(*w.Place(*placer, Placed("beta")) == "b");
  w.reach["b"] = {.known = true, .reachable = false, .reason = "timeout", .server_version = "", .checked_unix = 0};
  Outcome<std::string> none = w.Place(*placer, Placed("gamma"));
  REQUIRE_FALSE(none.ok());
  CHECK(none.failure().kind == FailureKind::kTransient);
  CHECK(none.failure().message ==
        "no cluster can take it now: a: down (connection refused); b: down (timeout)");
}

TEST_CASE("placer: a store that fails records nothing and the pass is retried") {
  World w;
  auto placer = w.Make({Cluster("a", 10)});
  w.store.FailNext(1);  // the placement's write
  Outcome<std::string> failed = w.Place(*placer, Placed("acme"));
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.failure().kind == FailureKind::kTransient);
  CHECK(failed.failure().message.find("recording the placement of workspace acme") == 0);
  CHECK_FALSE(placer->PlacedOn("acme").has_value());
  CHECK(*w.Place(*placer, Placed("acme")) == "a");
}

TEST_CASE("placer: stacks go to the endpoint with the most room, recorded before they exist") {
  World w;
  auto placer = w.Make({Cluster("a", std::nullopt)},
                       {Endpoint(10, 2, {{"kind", "swarm"}}), Endpoint(2, 2), Endpoint(3, 1)});
  // 2 and 10 tie at 2 free: the lower id, not the first name ("10" < "2").
  CHECK(*w.PlaceStack(*placer, Dedicated("one", 0)) == 2);
  CHECK(w.StoredEndpoint("one") == 2);  // recorded as its stack endpoint, before any stack
  CHECK(*w.PlaceStack(*placer, Dedicated("two", 0)) == 10);
  // A workspace naming endpoint 3 takes its only room; it is not a placement.
  CHECK(*w.PlaceStack(*placer, Dedicated("named", 3)) == 3);
  CHECK(w.StoredEndpoint("named") == std::nullopt);
  CHECK(*w.PlaceStack(*placer, Dedicated("three", 0)) == 2);
  CHECK(*w.PlaceStack(*placer, Dedicated("four", 0, {{"kind", "swarm"}})) == 10);
  // Full everywhere: Unschedulable, naming each endpoint, nothing recorded.
  Outcome<int> five = w.PlaceStack(*placer, Dedicated("five", 0));
  REQUIRE_FALSE(five.ok());
  CHECK(five.failure().reason == "Unschedulable");
  CHECK(five.failure().kind == FailureKind::kStalled);
  CHECK(five.failure().message == "no endpoint can take it: 10: full (2/2); 2: full (2/2); 3: full (1/1)");
  CHECK(w.StoredEndpoint("five") == std::nullopt);
  // A workspace naming an endpoint outside stacks.endpoints: listed after the configured ones.
  CHECK(*w.PlaceStack(*placer, Dedicated("elsewhere", 7)) == 7);
  const std::vector<Placer::EndpointUsage> usage = placer->EndpointUsages();
  REQUIRE(usage.size() == 4);
  CHECK(usage[0].endpoint == 10);
  CHECK(usage[0].configured);
  CHECK(usage[0].used == 2);
  CHECK(usage[0].reach.swarm_id == "c10");  // the monitor's last check, as endpoint_reach says
  CHECK_FALSE(usage[1].reach.known);
  CHECK(usage[2].used == 1);
  CHECK(usage[3].endpoint == 7);
  CHECK_FALSE(usage[3].configured);
  CHECK_FALSE(usage[3].capacity.has_value());
  CHECK(usage[3].used == 1);
  CHECK(placer->KnownEndpoints() == std::vector<int>{10, 2, 3, 7});
  // A stack that went (switched to shared) frees its room.
  placer->StackOn("three", std::nullopt);
  CHECK(*w.PlaceStack(*placer, Dedicated("five", 0)) == 2);
}

TEST_CASE("placer: endpoints list the shared runtimes on them, outside their usage") {
  World w;
  w.runtimes = {{2, {"erp"}}, {9, {"crm", "shop"}}, {4, {}}};
  auto placer = w.Make({Cluster("a", std::nullopt)}, {Endpoint(2, 1), Endpoint(3, 1)});
  // The runtime takes no room: the one stack endpoint 2 can hold still goes there.
  CHECK(*w.PlaceStack(*placer, Dedicated("one", 0)) == 2);
  CHECK(*w.PlaceStack(*placer, Dedicated("elsewhere", 7)) == 7);
  const std::vector<Placer::EndpointUsage> usage = placer->EndpointUsages();
  REQUIRE(usage.size() == 4);  // configured 2 and 3, then 7 and 9 by id; 4 holds nothing
  CHECK(usage[0].endpoint == 2);
  CHECK(usage[0].used == 1);
  CHECK(usage[0].runtimes == std::vector<std::string>{"erp"});
  CHECK(usage[1].endpoint == 3);
  CHECK(usage[1].runtimes.empty());
  CHECK(usage[2].endpoint == 7);
  CHECK(usage[2].runtimes.empty());
  CHECK(usage[3].endpoint == 9);  // only a runtime is there: listed, so it is checked too
  CHECK_FALSE(usage[3].configured);
  CHECK(usage[3].used == 0);
  CHECK(usage[3].runtimes == std::vector<std::string>{"crm", "shop"});
  CHECK(placer->KnownEndpoints() == std::vector<int>{2, 3, 7, 9});
}

TEST_CASE("placer: a placed stack stays on its endpoint across a restart and config changes") {
  World w;
  {
    auto placer = w.Make({Cluster("a", std::nullopt)}, {Endpoint(1, 5), Endpoint(2, 5)});
    CHECK(*w.PlaceStack(*placer, Dedicated("acme", 0)) == 1);
  }
  // A new process where endpoint 1 has no room and another label: acme stays on 1.
  auto placer = w.Make({Cluster("a", std::nullopt)},
                       {Endpoint(1, 0, {{"zone", "x"}}), Endpoint(2, 100)});
  CHECK(*placer->EndpointFor("acme", Dedicated("acme", 0, {{"zone", "y"}}), std::nullopt) == 1);
  // A workspace that converged on endpoint 2 by name, its manifest now silent: it stays on 2.
  CHECK(*w.PlaceStack(*placer, Dedicated("older", 0), 2) == 2);
  // No endpoints configured: a placed stack is Unschedulable, saying where to configure them.
  auto bare = w.Make({Cluster("a", std::nullopt)});
  Outcome<int> none = w.PlaceStack(*bare, Dedicated("fresh", 0));
  REQUIRE_FALSE(none.ok());
  CHECK(none.failure().message.find("stacks.endpoints") != std::string::npos);
  // The store fails: nothing is placed, the next pass tries again.
  auto placer2 = w.Make({Cluster("a", std::nullopt)}, {Endpoint(1, 5)});
  REQUIRE(w.store.UpsertSpec("later", "fleet", "r1", "{}").ok());
  w.store.FailNext(1);
  Outcome<int> failed = placer2->EndpointFor("later", Dedicated("later", 0), std::nullopt);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.failure().kind == FailureKind::kTransient);
  CHECK(*placer2->EndpointFor("later", Dedicated("later", 0), std::nullopt) == 1);
}

TEST_CASE("placer: counts follow each new placement without recounting the fleet") {
  // Many placements in a row against one declared set: the counts stay exact (the cached
  // counts are bumped per placement; a wrong bump would unbalance the spread).
  World w;
  auto placer = w.Make({Cluster("a", 400), Cluster("b", 400), Cluster("c", 200)});
  for (int i = 0; i < 1000; ++i) {
    auto entry = std::make_shared<DesiredEntry>();
    entry->workspace = Placed("w" + std::to_string(i));
    w.desired.Declare(entry->workspace.name, entry);
  }
  std::map<std::string, int> spread;
  for (int i = 0; i < 1000; ++i) {
    const std::string name = "w" + std::to_string(i);
    Outcome<std::string> cluster = placer->ClusterFor(name, Placed(name), std::nullopt);
    REQUIRE(cluster.ok());
    ++spread[*cluster];
  }
  CHECK(spread == std::map<std::string, int>{{"a", 400}, {"b", 400}, {"c", 200}});
  const std::vector<Placer::Usage> usage = placer->Usages();
  CHECK(usage[0].used == 400);
  CHECK(usage[2].used == 200);
  CHECK(usage[2].placed == 200);
  CHECK_FALSE(placer->ClusterFor("extra", Placed("extra"), std::nullopt).ok());  // all full
}

}  // namespace tmaster::controller
