// The reconcile pass over the examples, against the in-memory gateway: converge, then nothing.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>

#include "controller/workspace/reconcile_pass.hpp"
#include "controller/cmd/report.hpp"
#include "manifests/loader.hpp"
#include "tests/support/fake_postgres.hpp"

#include <sstream>

namespace {

using namespace tmaster;
using controller::Phase;

manifests::Fleet ExampleFleet() {
  manifests::LoadOptions options;
  options.known_clusters = std::set<std::string>{"default"};
  return manifests::LoadPaths({std::string(TM_SOURCE_DIR) + "/examples/fleet"}, options);
}

const controller::WorkspaceResult& Find(const controller::PassReport& report,
                                        const std::string& name) {
  const auto it = std::find_if(report.workspaces.begin(), report.workspaces.end(),
                               [&](const auto& w) { return w.name == name; });
  REQUIRE(it != report.workspaces.end());
  return *it;
}

const Secret kMasterKey("0123456789abcdef0123456789abcdef-pass-test");

}  // namespace

TEST_CASE("pass: the examples converge, and a second pass applies nothing") {
  const manifests::Fleet fleet = ExampleFleet();
  REQUIRE_FALSE(fleet.HasErrors());
  testing::FakePostgres fake;
  const controller::Gateways gateways{{"default", &fake}};

  const controller::PassReport first = controller::RunPass(fleet, gateways, kMasterKey, {});
  CHECK(first.observe_queries == 1);
  REQUIRE(first.workspaces.size() == fleet.workspaces.size());
  for (const auto& w : first.workspaces) {
    CAPTURE(w.name);
    CAPTURE(w.message);
    CHECK(w.ready);
    CHECK(w.reason == (w.phase == Phase::kSuspended ? "Suspended" : "Reconciled"));
    CHECK_FALSE(w.applied.empty());
  }
  CHECK(Find(first, "lavanderia-express").phase == Phase::kSuspended);
  CHECK(Find(first, "acme").phase == Phase::kReady);
  CHECK(first.AllReady());
  const int applied_after_first = fake.apply_calls();
  CHECK(applied_after_first > 0);

  const controller::PassReport second = controller::RunPass(fleet, gateways, kMasterKey, {});
  for (const auto& w : second.workspaces) {
    CAPTURE(w.name);
    CHECK(w.ready);
    CHECK(w.reason == (w.phase == Phase::kSuspended ? "Suspended" : "UpToDate"));
    CHECK(w.plan.empty());
  }
  CHECK(fake.apply_calls() == applied_after_first);
  CHECK(second.orphans.empty());
}

TEST_CASE("pass: a dry run plans every workspace and changes nothing") {
  const manifests::Fleet fleet = ExampleFleet();
  testing::FakePostgres fake;
  const controller::PassReport report =
      controller::RunPass(fleet, {{"default", &fake}}, kMasterKey, {.dry_run = true});
  CHECK(fake.apply_calls() == 0);
  for (const auto& w : report.workspaces) {
    CAPTURE(w.name);
    CHECK(w.reason == "DryRun");
    CHECK_FALSE(w.plan.empty());
  }
  std::ostringstream printed;
  controller::PrintReport(printed, fleet.diagnostics, report, true);
  CHECK(printed.str().find("    + create role \"user_acme\"") != std::string::npos);
  CHECK(printed.str().find(kMasterKey.Reveal()) == std::string::npos);
}

TEST_CASE("pass: one failing workspace does not stop the others, and the next pass finishes it") {
  const manifests::Fleet fleet = ExampleFleet();
  testing::FakePostgres fake;
  fake.FailApplyCall(3);
  const controller::Gateways gateways{{"default", &fake}};
  const controller::PassReport first =
      controller::RunPass(fleet, gateways, kMasterKey, {.workers = 1});
  const auto failed = std::count_if(first.workspaces.begin(), first.workspaces.end(),
                                    [](const auto& w) { return !w.ready; });
  CHECK(failed == 1);
  for (const auto& w : first.workspaces) {
    if (w.ready) continue;
    CHECK(w.phase == Phase::kDegraded);
    CHECK(w.reason == "ConnectionFailure");
    CHECK(w.message.find("after 2 of") != std::string::npos);
  }
  CHECK_FALSE(first.AllReady());
  const controller::PassReport second =
      controller::RunPass(fleet, gateways, kMasterKey, {.workers = 1});
  CHECK(second.AllReady());
}

TEST_CASE("pass: an unreachable cluster degrades its workspaces; orphans are listed, untouched") {
  const manifests::Fleet fleet = ExampleFleet();
  testing::FakePostgres fake;
  fake.FailObserve(Failure::Transient("ConnectionFailed", "cluster \"default\": connection refused"));
  const controller::PassReport down = controller::RunPass(fleet, {{"default", &fake}}, kMasterKey, {});
  for (const auto& w : down.workspaces) {
    CHECK(w.phase == Phase::kDegraded);
    CHECK(w.reason == "ConnectionFailed");
  }
  fake.FailObserve(std::nullopt);

  postgres::ObservedDatabase orphan;
  orphan.name = "tenant_gone";
  orphan.owner = "user_gone";
  orphan.encoding = "UTF8";
  orphan.comment = "tenant-master:workspace=gone";
  fake.cluster().databases[orphan.name] = orphan;
  const controller::PassReport report = controller::RunPass(fleet, {{"default", &fake}}, kMasterKey, {});
  REQUIRE(report.orphans.size() == 1);
  CHECK(report.orphans[0].name == "tenant_gone");
  CHECK(report.orphans[0].workspace == "gone");
  CHECK(fake.cluster().databases.count("tenant_gone") == 1);
}
