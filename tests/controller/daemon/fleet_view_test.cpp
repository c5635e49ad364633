// The workspace list answered from memory (controller/daemon/fleet_view.hpp): pages in name order,
// complete and without repeats across continue tokens, label and phase filters, never-validated
// workspaces, overrides in status, and a token it did not make.
#include <doctest/doctest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "controller/daemon/fleet_view.hpp"

namespace {

using namespace tmaster;
using namespace tmaster::controller;
namespace json = boost::json;

StoredWorkspace Row(const std::string& name, const std::string& tier) {
  StoredWorkspace row;
  row.name = name;
  row.source = "local";
  row.spec_json =
      R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace","metadata":{"name":")" + name +
      R"(","labels":{"tier":")" + tier + R"("}},"spec":{"product":"shop"}})";
  row.spec_digest = std::string(64, 'a');
  row.generation = 1;
  return row;
}

WorkspaceStatus StatusOf(const std::string& name, const std::string& phase) {
  WorkspaceStatus status;
  status.name = name;
  status.phase = phase;
  status.observed_generation = 1;
  status.conditions_json = "[]";
  return status;
}

std::vector<std::string> Names(const std::string& page) {
  std::vector<std::string> names;
  const json::value parsed = json::parse(page);
  for (const json::value& item : parsed.at("items").as_array()) {
    names.emplace_back(item.at("metadata").at("name").as_string().c_str());
  }
  return names;
}

/// 25 workspaces w00..w24; even ones tier=gold, every third one Stalled, the rest Ready.
void Fill(FleetView& view) {
  std::vector<StoredWorkspace> rows;
  std::vector<WorkspaceStatus> statuses;
  for (int i = 24; i >= 0; --i) {  // any order in: name order out
    const std::string name = std::string("w") + (i < 10 ? "0" : "") + std::to_string(i);
    rows.push_back(Row(name, i % 2 == 0 ? "gold" : "silver"));
    statuses.push_back(StatusOf(name, i % 3 == 0 ? "Stalled" : "Ready"));
  }
  view.Reset(rows, statuses);
}

}  // namespace

TEST_CASE("fleet view: pages in name order are complete and stable across continue tokens") {
  FleetView view;
  Fill(view);
  FleetQuery query;
  query.limit = 10;
  std::vector<std::string> all;
  std::vector<std::size_t> remaining;
  for (int pages = 0; pages < 10; ++pages) {
    Outcome<FleetPage> page = view.List(query);
    REQUIRE(page);
    const std::vector<std::string> names = Names(page->json);
    all.insert(all.end(), names.begin(), names.end());
    remaining.push_back(page->remaining);
    const json::value metadata = json::parse(page->json).at("metadata");
    if (page->continue_token.empty()) {
      CHECK(metadata.as_object().if_contains("continue") == nullptr);
      break;
    }
    CHECK(metadata.at("continue").as_string() == page->continue_token);
    CHECK(metadata.at("remainingItemCount").as_int64() ==
          static_cast<std::int64_t>(page->remaining));
    query.continue_token = page->continue_token;
  }
  REQUIRE(all.size() == 25);
  CHECK(std::set<std::string>(all.begin(), all.end()).size() == 25);
  CHECK(std::is_sorted(all.begin(), all.end()));
  CHECK(remaining == std::vector<std::size_t>{15, 5, 0});
}

TEST_CASE("fleet view: a workspace added behind the cursor is not repeated; one ahead is seen") {
  FleetView view;
  Fill(view);
  FleetQuery query;
  query.limit = 5;
  Outcome<FleetPage> first = view.List(query);
  REQUIRE(first);
  view.SpecChanged(Row("a-first", "gold"));  // before the cursor
  view.SpecChanged(Row("w99", "gold"));      // after it
  query.continue_token = first->continue_token;
  query.limit.reset();
  const std::vector<std::string> rest = Names(view.List(query)->json);
  CHECK(rest.front() == "w05");
  CHECK(rest.back() == "w99");
  CHECK(rest.size() == 21);
}

TEST_CASE("fleet view: label selector and phase filter, with remainingItemCount of matches") {
  FleetView view;
  Fill(view);
  FleetQuery query;
  query.selector = {{"tier", "gold", true}};
  query.phases = {"Stalled"};
  const std::vector<std::string> names = Names(view.List(query)->json);
  CHECK(names == std::vector<std::string>{"w00", "w06", "w12", "w18", "w24"});
  query.limit = 2;
  Outcome<FleetPage> page = view.List(query);
  REQUIRE(page);
  CHECK(Names(page->json) == std::vector<std::string>{"w00", "w06"});
  CHECK(page->remaining == 3);
  query.selector = {{"tier", "gold", false}};
  query.phases.clear();
  query.limit.reset();
  CHECK(Names(view.List(query)->json).size() == 12);
}

TEST_CASE(
    "fleet view: a status without a spec is a never-validated workspace; removal and deletion") {
  FleetView view;
  Fill(view);
  WorkspaceStatus stalled = StatusOf("broken", "Stalled");
  stalled.last_error = "request:3:5: spec.x: bad";
  view.StatusChanged(stalled);
  view.SetRejectedSource("broken", "local");
  const json::value object = json::parse(*view.Get("broken"));
  CHECK(object.at("status").at("phase").as_string() == "Stalled");
  CHECK(object.at("metadata").at("annotations").at("tenantmaster.io/source").as_string() ==
        "local");
  CHECK(view.Phase("broken") == "Stalled");
  view.Removed("broken");
  CHECK_FALSE(view.Get("broken"));
  StoredWorkspace deleting = Row("w01", "silver");
  deleting.deleting_since = "2026-12-03T10:00:00Z";
  view.SpecChanged(deleting);
  CHECK(view.Phase("w01") == "Deleting");
  FleetQuery query;
  query.phases = {"Deleting"};
  CHECK(Names(view.List(query)->json) == std::vector<std::string>{"w01"});
}

TEST_CASE("fleet view: an override shows in status; a token it did not make is refused") {
  Overrides overrides;
  overrides.Set({"w03", true, "token:abc (ops)", 1'800'000'000});
  FleetView view(&overrides);
  Fill(view);
  const json::value object = json::parse(*view.Get("w03"));
  CHECK(object.at("status").at("override").at("by").as_string() == "token:abc (ops)");
  CHECK(object.at("status").at("override").at("at").as_string() == "2027-01-15T08:00:00Z");
  overrides.Clear("w03");
  view.Refresh("w03");
  CHECK(json::parse(*view.Get("w03")).at("status").as_object().if_contains("override") == nullptr);
  // The list's item leaves the run history to the object (a page of 100 under 100 KB).
  CHECK(json::parse(*view.Get("w03")).at("status").as_object().contains("lastRuns"));
  CHECK(view.List({})->json.find("lastRuns") == std::string::npos);
  FleetQuery query;
  query.continue_token = "zz";
  Outcome<FleetPage> refused = view.List(query);
  REQUIRE_FALSE(refused);
  CHECK(refused.failure().reason == "BadContinue");
  CHECK(DecodeContinue(EncodeContinue("w05")) == std::optional<std::string>("w05"));
}

TEST_CASE("fleet view: a list item carries status.productRevision, as the object does") {
  // The dashboard's table and `tenantctl get workspaces` (REV) read it from the list.
  FleetView view;
  WorkspaceStatus moved = StatusOf("w01", "Ready");
  moved.product_revision = 7;
  view.Reset({Row("w01", "gold"), Row("w02", "gold")}, {moved, StatusOf("w02", "Ready")});
  const json::value page = json::parse(view.List({})->json);
  const json::array& items = page.at("items").as_array();
  REQUIRE(items.size() == 2);
  CHECK(items[0].at("status").at("productRevision") == 7);
  CHECK(items[1].at("status").at("productRevision") == 0);
  CHECK(json::parse(*view.Get("w01")).at("status").at("productRevision") == 7);
  // A pass that moved it on is a change of the listed object.
  const std::uint64_t before = view.ResourceVersion();
  moved.product_revision = 8;
  view.StatusChanged(moved);
  CHECK(view.ResourceVersion() == before + 1);
  const json::value after = json::parse(view.List({})->json);
  CHECK(after.at("items").as_array()[0].at("status").at("productRevision") == 8);
}

TEST_CASE("fleet view: a reload keeps unchanged renderings but renders again what changed, "
          "an override included") {
  Overrides overrides;
  FleetView view(&overrides);
  Fill(view);
  const std::string before = *view.Get("w04");
  // A standby's reload with nothing changed: the same rendering (not a new one).
  Fill(view);
  CHECK(*view.Get("w04") == before);
  // An override set on another replica and loaded here (no Refresh): the reload shows it.
  overrides.Set({"w04", true, "token:abc (ops)", 1'800'000'000});
  Fill(view);
  CHECK(json::parse(*view.Get("w04")).at("status").at("override").at("by") == "token:abc (ops)");
  overrides.Clear("w04");
  Fill(view);
  CHECK(*view.Get("w04") == before);
  // A changed status with the same spec is rendered again.
  std::vector<StoredWorkspace> rows{Row("w04", "gold")};
  std::vector<WorkspaceStatus> statuses{StatusOf("w04", "Degraded")};
  view.Reset(rows, statuses);
  CHECK(view.Phase("w04") == "Degraded");
  CHECK(json::parse(*view.Get("w04")).at("status").at("phase") == "Degraded");
  // And a changed spec with the same status.
  rows[0] = Row("w04", "silver");
  view.Reset(rows, statuses);
  CHECK(json::parse(*view.Get("w04")).at("metadata").at("labels").at("tier") == "silver");
  FleetQuery gold;
  gold.selector = *ParseLabelSelector("tier=gold");
  CHECK(view.List(gold)->items == 0);
}

TEST_CASE("fleet view: the summary counts by phase, product and mode, and its version moves") {
  FleetView view;
  Fill(view);  // 25 of product shop without a mode: 9 Stalled (0, 3, ..., 24), 16 Ready
  StoredWorkspace dedicated = Row("z-dedicated", "gold");
  dedicated.spec_json =
      R"({"metadata":{"name":"z-dedicated"},"spec":{"product":"erp","mode":"dedicated"}})";
  view.SpecChanged(dedicated);
  const FleetSummary summary = view.Summary();
  CHECK(summary.total == 26);
  CHECK(summary.by_phase.at("Stalled") == 9);
  CHECK(summary.by_phase.at("Ready") == 16);
  CHECK(summary.by_phase.at("Pending") == 1);  // z-dedicated has no status yet
  CHECK(summary.by_phase.at("Deleting") == 0);  // every phase is named
  CHECK(summary.by_product.at("shop") == 25);
  CHECK(summary.by_product.at("erp") == 1);
  CHECK(summary.by_mode.at("dedicated") == 1);
  CHECK(summary.by_mode.at("shared") == 0);

  const std::uint64_t before = view.ResourceVersion();
  view.StatusChanged(StatusOf("w01", "Degraded"));
  CHECK(view.ResourceVersion() > before);
  CHECK(view.Summary().by_phase.at("Degraded") == 1);
  const std::uint64_t after_status = view.ResourceVersion();
  view.Removed("no-such-workspace");
  CHECK(view.ResourceVersion() == after_status);
  view.Removed("w01");
  CHECK(view.ResourceVersion() > after_status);
  const json::value parsed = json::parse(FleetSummaryJson(view.Summary()));
  CHECK(parsed.at("total").as_int64() == 25);
  CHECK(parsed.at("byPhase").at("Degraded").as_int64() == 0);
  CHECK(parsed.at("byProduct").at("erp").as_int64() == 1);
}

namespace {

/// What a change listener was told, in call order.
struct Told {
  std::vector<std::uint64_t> versions;
  std::vector<std::vector<std::string>> names;
};

void Listen(FleetView& view, Told& told) {
  view.SetChangeListener(
      [&view, &told](std::uint64_t version, const std::vector<std::string>& names) {
        // Outside the view's lock: a reader here would throw (EDEADLK) or hang under the writer's.
        CHECK(view.ResourceVersion() == version);
        told.versions.push_back(version);
        told.names.push_back(names);
      });
}

using Names_ = std::vector<std::string>;

}  // namespace

TEST_CASE("fleet view: the change listener hears each write that changes a listed object") {
  Overrides overrides;
  FleetView view(&overrides);
  Fill(view);
  Told told;
  Listen(view, told);

  view.StatusChanged(StatusOf("w01", "Degraded"));
  view.SpecChanged(Row("w02", "bronze"));
  view.SpecChanged(Row("new", "gold"));
  overrides.Set({"w03", true, "token:abc (ops)", 1'800'000'000});
  view.Refresh("w03");
  view.SetRejectedSource("broken", "local");
  view.Removed("w04");
  REQUIRE(told.names.size() == 6);
  CHECK(told.names[0] == Names_{"w01"});
  CHECK(told.names[1] == Names_{"w02"});
  CHECK(told.names[2] == Names_{"new"});
  CHECK(told.names[3] == Names_{"w03"});
  CHECK(told.names[4] == Names_{"broken"});
  CHECK(told.names[5] == Names_{"w04"});
  CHECK(std::is_sorted(told.versions.begin(), told.versions.end()));
  CHECK(std::adjacent_find(told.versions.begin(), told.versions.end()) == told.versions.end());
  CHECK(told.versions.back() == view.ResourceVersion());

  // Writes that render the same text: no call, the version stays.
  const std::uint64_t version = view.ResourceVersion();
  view.StatusChanged(StatusOf("w01", "Degraded"));
  view.SpecChanged(Row("w02", "bronze"));
  view.Refresh("w03");
  view.Refresh("no-such-workspace");
  view.SetRejectedSource("broken", "local");
  view.Removed("w04");
  CHECK(told.names.size() == 6);
  CHECK(view.ResourceVersion() == version);

  // An empty listener: none.
  view.SetChangeListener({});
  view.StatusChanged(StatusOf("w01", "Ready"));
  CHECK(told.names.size() == 6);
  CHECK(view.ResourceVersion() == version + 1);
}

TEST_CASE("fleet view: a reload reports only the workspaces whose object differs") {
  FleetView view;
  Fill(view);
  Told told;
  Listen(view, told);
  const std::uint64_t version = view.ResourceVersion();
  Fill(view);  // the same rows and statuses again (a standby's periodic reload)
  CHECK(told.names.empty());
  CHECK(view.ResourceVersion() == version);

  std::vector<StoredWorkspace> rows;
  std::vector<WorkspaceStatus> statuses;
  for (int i = 0; i < 25; ++i) {
    const std::string name = std::string("w") + (i < 10 ? "0" : "") + std::to_string(i);
    if (name == "w07") continue;  // removed
    rows.push_back(Row(name, i % 2 == 0 ? "gold" : "silver"));
    WorkspaceStatus status = StatusOf(name, i % 3 == 0 ? "Stalled" : "Ready");
    if (name == "w10") status.phase = "Degraded";  // a new status
    if (name == "w11")
      status.last_runs_json =  // a run only the object shows
          R"([{"start":"2026-12-03T10:00:00Z","durationSeconds":2,"result":"Ready","reason":""}])";
    statuses.push_back(status);
  }
  rows.push_back(Row("w99", "gold"));  // added, never reconciled
  view.Reset(rows, statuses);
  REQUIRE(told.names.size() == 1);
  CHECK(told.names[0] == Names_{"w07", "w10", "w11", "w99"});
  CHECK(told.versions[0] == version + 1);
  CHECK(view.ResourceVersion() == version + 1);
  view.Reset(rows, statuses);
  CHECK(told.names.size() == 1);
}

namespace {

/// A varied fleet for the orders: every key present, missing and tied somewhere.
///   name  phase        product mode       last run end          Ready (lastTransitionTime)
///   a1    Ready        erp     shared     10:00:05              True  (09:00)
///   a2    Stalled      shop    dedicated  10:00:05              False (08:00) "disk full"
///   b1    Degraded     shop    shared     09:00:00              False (08:00) "slow"
///   b2    Weird        ""      ""         never                 none
///   c1    Pending      erp     dedicated  never                 none (never reconciled)
///   c2    Suspended    shop    shared     11:00:00              True  (07:00) + lastError
///   d1    Progressing  erp     shared     08:00:00              False (10:00) "waiting"
///   d2    Stalled      ""      ""         08:00:00              False (10:00) "bad manifest"
///   e1    Ready        shop    shared     10:00:05              True  (09:00)
///   e2    Deleting     erp     dedicated  never                 none
void FillVaried(FleetView& view) {
  struct Spec {
    const char* name;
    const char* phase;
    const char* product;
    const char* mode;
    const char* run_start;  // "" never ran
    const char* ready;      // "" no Ready condition
    const char* since;
    const char* message;
    const char* last_error;
  };
  const Spec specs[] = {
      {"a1", "Ready", "erp", "shared", "2026-12-03T10:00:00Z", "True", "2026-12-01T09:00:00Z",
       "all good", ""},
      {"a2", "Stalled", "shop", "dedicated", "2026-12-03T10:00:00Z", "False",
       "2026-12-01T08:00:00Z", "Disk Full on node", ""},
      {"b1", "Degraded", "shop", "shared", "2026-12-03T08:59:55Z", "False", "2026-12-01T08:00:00Z",
       "slow", ""},
      {"b2", "Weird", "", "", "", "", "", "", ""},
      {"c1", nullptr, "erp", "dedicated", "", "", "", "", ""},
      {"c2", "Suspended", "shop", "shared", "2026-12-03T10:59:55Z", "True", "2026-12-01T07:00:00Z",
       "fine", "Quota exceeded"},
      {"d1", "Progressing", "erp", "shared", "2026-12-03T07:59:55Z", "False",
       "2026-12-01T10:00:00Z", "waiting", ""},
      {"d2", "Stalled", "", "", "2026-12-03T07:59:55Z", "False", "2026-12-01T10:00:00Z",
       "bad manifest", ""},
      {"e1", "Ready", "shop", "shared", "2026-12-03T10:00:00Z", "True", "2026-12-01T09:00:00Z",
       "all good", ""},
      {"e2", "Ready", "erp", "dedicated", "", "", "", "", ""},
  };
  std::vector<StoredWorkspace> rows;
  std::vector<WorkspaceStatus> statuses;
  for (const Spec& s : specs) {
    StoredWorkspace row = Row(s.name, "gold");
    std::string spec = R"("subdomain":")" + std::string(s.name) + R"(-site")";
    if (*s.product != '\0') spec += R"(,"product":")" + std::string(s.product) + '"';
    if (*s.mode != '\0') spec += R"(,"mode":")" + std::string(s.mode) + '"';
    row.spec_json =
        R"({"metadata":{"name":")" + std::string(s.name) + R"("},"spec":{)" + spec + "}}";
    if (std::string(s.name) == "e2") row.deleting_since = "2026-12-03T12:00:00Z";
    rows.push_back(row);
    if (s.phase == nullptr) continue;
    WorkspaceStatus status = StatusOf(s.name, s.phase);
    if (*s.ready != '\0') {
      status.conditions_json = R"([{"type":"Ready","status":")" + std::string(s.ready) +
                               R"(","reason":"R","message":")" + s.message +
                               R"(","lastTransitionTime":")" + s.since + R"("}])";
    }
    if (*s.run_start != '\0') {
      status.last_runs_json = R"([{"start":")" + std::string(s.run_start) +
                              R"(","durationSeconds":5.5,"result":"Succeeded","reason":"R"}])";
    }
    status.last_error = s.last_error;
    statuses.push_back(status);
  }
  view.Reset(rows, statuses);
}

FleetQuery Ordered(const char* sort) {
  FleetQuery query;
  query.order = *ParseFleetOrder(sort);
  return query;
}

std::vector<std::string> All(const FleetView& view, FleetQuery query) {
  Outcome<FleetPage> page = view.List(query);
  REQUIRE(page);
  return Names(page->json);
}

}  // namespace

TEST_CASE("fleet view: each order sorts by its key, missing keys last, ties by name") {
  FleetView view;
  FillVaried(view);
  using V = std::vector<std::string>;
  CHECK(All(view, Ordered("name")) ==
        V{"a1", "a2", "b1", "b2", "c1", "c2", "d1", "d2", "e1", "e2"});
  CHECK(All(view, Ordered("-name")) ==
        V{"e2", "e1", "d2", "d1", "c2", "c1", "b2", "b1", "a2", "a1"});
  CHECK(All(view, Ordered("stuck")) ==
        V{"a2", "d2", "b1", "d1", "c1", "e2", "c2", "a1", "e1", "b2"});
  CHECK(All(view, Ordered("-stuck")) ==
        V{"a1", "e1", "c2", "e2", "c1", "d1", "b1", "a2", "d2", "b2"});
  CHECK(All(view, Ordered("phase")) ==
        V{"b1", "e2", "c1", "d1", "a1", "e1", "a2", "d2", "c2", "b2"});
  CHECK(All(view, Ordered("-phase")) ==
        V{"b2", "c2", "a2", "d2", "a1", "e1", "d1", "c1", "e2", "b1"});
  CHECK(All(view, Ordered("product")) ==
        V{"a1", "c1", "d1", "e2", "a2", "b1", "c2", "e1", "b2", "d2"});
  CHECK(All(view, Ordered("-product")) ==
        V{"a2", "b1", "c2", "e1", "a1", "c1", "d1", "e2", "b2", "d2"});
  CHECK(All(view, Ordered("mode")) ==
        V{"a2", "c1", "e2", "a1", "b1", "c2", "d1", "e1", "b2", "d2"});
  // Runs end at start + 5.5 s, rounded down: d1, d2 08:00:00; b1 09:00:00; a1, a2, e1 10:00:05;
  // c2 11:00:00; b2, c1, e2 never ran.
  CHECK(All(view, Ordered("lastReconcile")) ==
        V{"d1", "d2", "b1", "a1", "a2", "e1", "c2", "b2", "c1", "e2"});
  CHECK(All(view, Ordered("-lastReconcile")) ==
        V{"c2", "a1", "a2", "e1", "b1", "d1", "d2", "b2", "c1", "e2"});
  // Age: the earliest condition time (no creationTimestamp is stored): c2 07:00; a2, b1 08:00;
  // a1, e1 09:00; d1, d2 10:00; the rest have none.
  CHECK(All(view, Ordered("age")) == V{"c2", "a2", "b1", "a1", "e1", "d1", "d2", "b2", "c1", "e2"});
  CHECK(All(view, Ordered("-age")) ==
        V{"d1", "d2", "a1", "e1", "a2", "b1", "c2", "b2", "c1", "e2"});
  // The list's item keeps when the newest run ended, without the runs.
  const json::value first = json::parse(view.List(Ordered("-lastReconcile"))->json);
  CHECK(first.at("items").at(0).at("status").at("lastReconcileTime").as_string() ==
        "2026-12-03T11:00:00Z");
  CHECK_FALSE(first.at("items").at(0).at("status").as_object().contains("lastRuns"));
}

TEST_CASE("fleet view: pages are complete and without repeats in every order, both directions") {
  FleetView view;
  FillVaried(view);
  for (const char* key : {"name", "stuck", "phase", "product", "mode", "lastReconcile", "age"}) {
    for (const bool descending : {false, true}) {
      const std::string sort = std::string(descending ? "-" : "") + key;
      CAPTURE(sort);
      const std::vector<std::string> whole = All(view, Ordered(sort.c_str()));
      REQUIRE(whole.size() == 10);
      for (const std::size_t limit : {1U, 3U, 4U}) {
        CAPTURE(limit);
        FleetQuery query = Ordered(sort.c_str());
        query.limit = limit;
        std::vector<std::string> walked;
        for (int pages = 0; pages < 20; ++pages) {
          Outcome<FleetPage> page = view.List(query);
          REQUIRE(page);
          const std::vector<std::string> names = Names(page->json);
          walked.insert(walked.end(), names.begin(), names.end());
          CHECK(page->remaining == whole.size() - walked.size());
          if (page->continue_token.empty()) break;
          query.continue_token = page->continue_token;
        }
        CHECK(walked == whole);
      }
      // With a filter too: the stuck ones of product shop.
      FleetQuery filtered = Ordered(sort.c_str());
      filtered.product = "shop";
      const std::vector<std::string> shop = All(view, filtered);
      filtered.limit = 2;
      std::vector<std::string> walked;
      for (int pages = 0; pages < 10; ++pages) {
        Outcome<FleetPage> page = view.List(filtered);
        REQUIRE(page);
        const std::vector<std::string> names = Names(page->json);
        walked.insert(walked.end(), names.begin(), names.end());
        if (page->continue_token.empty()) break;
        filtered.continue_token = page->continue_token;
      }
      CHECK(walked == shop);
    }
  }
}

TEST_CASE("fleet view: a continue token is refused by another order; name tokens stay hex") {
  FleetView view;
  FillVaried(view);
  FleetQuery query = Ordered("stuck");
  query.limit = 2;
  const std::string stuck_token = view.List(query)->continue_token;
  REQUIRE_FALSE(stuck_token.empty());
  query = Ordered("-stuck");
  query.continue_token = stuck_token;
  Outcome<FleetPage> refused = view.List(query);
  REQUIRE_FALSE(refused);
  CHECK(refused.failure().reason == "BadContinue");
  CHECK(refused.failure().message.find("made for sort=stuck, not sort=-stuck") !=
        std::string::npos);
  query = Ordered("name");
  query.continue_token = stuck_token;
  REQUIRE_FALSE(view.List(query));
  CHECK(view.List(query).failure().message.find("sort=stuck, not sort=name") != std::string::npos);

  // The name order's token is the hex of the last name, as tenantctl has always had it.
  query = Ordered("name");
  query.limit = 2;
  const std::string name_token = view.List(query)->continue_token;
  CHECK(name_token == "6132");  // "a2"
  query = Ordered("age");
  query.continue_token = name_token;
  REQUIRE_FALSE(view.List(query));
  CHECK(view.List(query).failure().message.find("made for sort=name, not sort=age") !=
        std::string::npos);
  for (const char* garbage : {"s1.", "s1.7374.k.", "s1.7374756368.kzz.6132", "s1.7a7a.-.6132",
                              "s1.737475636b.k78.6132", "s1.737475636b.x31.6132", "nothex"}) {
    CAPTURE(garbage);
    query = Ordered("stuck");
    query.continue_token = garbage;
    Outcome<FleetPage> bad = view.List(query);
    REQUIRE_FALSE(bad);
    CHECK(bad.failure().reason == "BadContinue");
  }
}

TEST_CASE("fleet view: filters by product, mode, phases and text; text is case-insensitive") {
  FleetView view;
  FillVaried(view);
  using V = std::vector<std::string>;
  FleetQuery query;
  query.product = "erp";
  CHECK(All(view, query) == V{"a1", "c1", "d1", "e2"});
  query.mode = "dedicated";
  CHECK(All(view, query) == V{"c1", "e2"});
  query = {};
  query.phases = {"Stalled", "Degraded"};
  CHECK(All(view, query) == V{"a2", "b1", "d2"});
  query.phases = {"Deleting"};
  CHECK(All(view, query) == V{"e2"});
  query = {};
  query.text = "DISK full";  // the Ready condition's message while not True
  CHECK(All(view, query) == V{"a2"});
  query.text = "good";  // a Ready condition that is True: its message is not listed
  CHECK(All(view, query).empty());
  query.text = "quota";  // ... but the last error is
  CHECK(All(view, query) == V{"c2"});
  query.text = "C1-SITE";  // spec.subdomain
  CHECK(All(view, query) == V{"c1"});
  query.text = "sho";  // the product
  CHECK(All(view, query) == V{"a2", "b1", "c2", "e1"});
  query.text = "e";  // names, subdomains ("-site"), products, messages: everything
  CHECK(All(view, query).size() == 10);
  query.text = "b2";
  query.limit = 1;
  Outcome<FleetPage> page = view.List(query);
  REQUIRE(page);
  CHECK(Names(page->json) == V{"b2"});
  CHECK(page->remaining == 0);
}
