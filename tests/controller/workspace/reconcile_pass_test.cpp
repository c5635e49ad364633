// The reconcile pass over the examples, against the in-memory gateway: converge, then nothing.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>

#include "controller/workspace/backup_hooks.hpp"
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

namespace {

manifests::Workspace& Workspace(manifests::Fleet& fleet, const std::string& name) {
  const auto it = std::find_if(fleet.workspaces.begin(), fleet.workspaces.end(),
                               [&](const auto& w) { return w.name == name; });
  REQUIRE(it != fleet.workspaces.end());
  return *it;
}

// Every workspace of `fleet` names `cluster`, as a manifest with spec.database.cluster would.
void NameCluster(manifests::Fleet& fleet, const std::string& cluster) {
  for (manifests::Workspace& w : fleet.workspaces) {
    w.database.cluster = cluster;
    w.database.cluster_placed = false;
  }
}

bool Listed(const controller::PassReport& report, const std::string& kind,
            const std::string& name) {
  return std::any_of(report.orphans.begin(), report.orphans.end(),
                     [&](const auto& o) { return o.kind == kind && o.name == name; });
}

}  // namespace

// Issue 11, item 9: objects marked for a workspace that now names others are orphans too.
TEST_CASE("pass: objects marked for a declared workspace that no longer names them are orphans") {
  manifests::Fleet fleet = ExampleFleet();
  testing::FakePostgres fake;
  const controller::Gateways gateways{{"default", &fake}};
  REQUIRE(controller::RunPass(fleet, gateways, kMasterKey, {}).AllReady());
  // Left behind by an edit made before markers were signed (so nothing stalls): a database and
  // a role still marked for acme, which names tenant_acme and user_acme.
  fake.AddDatabase("tenant_acme_old", "user_acme_old", "tenant-master:workspace=acme;state=x");
  fake.AddRole("user_acme_old", std::nullopt, "tenant-master:workspace=acme;pw=0");

  const controller::PassReport report = controller::RunPass(fleet, gateways, kMasterKey, {});
  CHECK(report.AllReady());
  CHECK(Listed(report, "database", "tenant_acme_old"));
  CHECK(Listed(report, "role", "user_acme_old"));
  CHECK_FALSE(Listed(report, "database", "tenant_acme"));
  CHECK_FALSE(Listed(report, "role", "user_acme"));
  std::ostringstream printed;
  controller::PrintReport(printed, fleet.diagnostics, report, false);
  CHECK(printed.str().find("orphan: database \"tenant_acme_old\" on cluster \"default\" is marked "
                           "for workspace \"acme\", which now names database \"tenant_acme\" on "
                           "cluster \"default\"; left untouched") != std::string::npos);
  CHECK(fake.cluster().databases.count("tenant_acme_old") == 1);
}

// Issue 11, item 9: a rename stalls; the old database is named by the stall, not as an orphan.
TEST_CASE("pass: a renamed database stalls ImmutableField and creates nothing") {
  manifests::Fleet fleet = ExampleFleet();
  testing::FakePostgres fake;
  const controller::Gateways gateways{{"default", &fake}};
  REQUIRE(controller::RunPass(fleet, gateways, kMasterKey, {}).AllReady());
  const int calls = fake.apply_calls();
  Workspace(fleet, "acme").database.name = "tenant_acme_v2";

  const controller::PassReport report = controller::RunPass(fleet, gateways, kMasterKey, {});
  const controller::WorkspaceResult& acme = Find(report, "acme");
  CHECK(acme.phase == Phase::kStalled);
  CHECK(acme.reason == "ImmutableField");
  CHECK(acme.message.find("spec.database.name was \"tenant_acme\" and is now "
                          "\"tenant_acme_v2\"") != std::string::npos);
  CHECK(acme.plan.empty());
  CHECK(fake.apply_calls() == calls);
  CHECK(fake.cluster().databases.count("tenant_acme_v2") == 0);
  CHECK_FALSE(Listed(report, "database", "tenant_acme"));
}

// Issue 11, item 9: spec.database.cluster; the pass sees every cluster.
TEST_CASE("pass: a workspace moved to another cluster stalls ImmutableField there") {
  manifests::Fleet fleet = ExampleFleet();
  NameCluster(fleet, "default");
  testing::FakePostgres home;
  testing::FakePostgres eu;
  const controller::Gateways gateways{{"default", &home}, {"eu", &eu}};
  REQUIRE(controller::RunPass(fleet, gateways, kMasterKey, {}).AllReady());
  CHECK(eu.apply_calls() == 0);
  Workspace(fleet, "acme").database.cluster = "eu";
  Workspace(fleet, "acme").database.cluster_placed = false;  // its manifest names it now

  const controller::PassReport report = controller::RunPass(fleet, gateways, kMasterKey, {});
  const controller::WorkspaceResult& acme = Find(report, "acme");
  CHECK(acme.reason == "ImmutableField");
  CHECK(acme.message.find("spec.database.cluster was \"default\" and is now \"eu\"") !=
        std::string::npos);
  CHECK(acme.message.find("database \"tenant_acme\" on cluster \"default\" holds its data") !=
        std::string::npos);
  CHECK(eu.apply_calls() == 0);
  CHECK(eu.cluster().roles.empty());
  CHECK(eu.cluster().databases.empty());
  // The others are untouched by it, and nothing is listed as an orphan meanwhile.
  CHECK(Find(report, "kitagli").ready);
  CHECK(report.orphans.empty());
}

// Two config entries for one server: the same databases seen twice are neither moves nor orphans,
// and a move between the two names is still an identity change.
TEST_CASE("pass: a second cluster name for the same server") {
  manifests::Fleet fleet = ExampleFleet();
  NameCluster(fleet, "default");
  testing::FakePostgres server;
  const controller::Gateways gateways{{"default", &server}, {"alias", &server}};
  REQUIRE(controller::RunPass(fleet, gateways, kMasterKey, {}).AllReady());
  const controller::PassReport again = controller::RunPass(fleet, gateways, kMasterKey, {});
  CHECK(again.AllReady());
  CHECK(again.orphans.empty());

  Workspace(fleet, "acme").database.cluster = "alias";
  Workspace(fleet, "acme").database.cluster_placed = false;  // its manifest names it now
  const controller::PassReport moved = controller::RunPass(fleet, gateways, kMasterKey, {});
  CHECK(Find(moved, "acme").reason == "ImmutableField");
  CHECK(Find(moved, "acme").message.find("spec.database.cluster was \"default\" and is now "
                                         "\"alias\"") != std::string::npos);
}

TEST_CASE("pass: AdoptPolicyFor takes the cluster's adoptPattern") {
  manifests::Config config;
  manifests::ClusterConfig home;
  home.name = "default";
  home.adopt_pattern = "legacy_*";
  manifests::ClusterConfig eu;
  eu.name = "eu";
  config.clusters = {home, eu};
  CHECK(controller::AdoptPolicyFor(&config, "default", "tenant_master").pattern == "legacy_*");
  CHECK(controller::AdoptPolicyFor(&config, "eu", "tenant_master").pattern.empty());
  CHECK(controller::AdoptPolicyFor(nullptr, "default", "tenant_master").store_database ==
        "tenant_master");
  CHECK(controller::AdoptPolicyFor(&config, "default", "ops_store").store_database == "ops_store");
}

namespace {

// A BackupHooks that records what it was asked, answering with a fixed id or a failure.
class RecordingHooks final : public controller::BackupHooks {
 public:
  Outcome<controller::TakenBackup> BeforeMigrations(
      const controller::BackupSubject& subject) override {
    subjects.push_back(subject);
    if (fail) return Failure::Transient("BackupDumpFailed", "pg_dump: could not connect");
    return controller::TakenBackup{"acme-20261203T000000Z-abcd", reused};
  }
  Outcome<std::string> BeforeDrop(const controller::BackupSubject&) override {
    return std::string();
  }
  void Deleted(const std::string&) override {}
  std::vector<controller::Condition> Conditions(const std::string&) const override { return {}; }
  std::vector<controller::BackupSubject> subjects;
  bool fail = false;
  bool reused = false;
};

// acme converged by a pass; then its product gains migration `version` (failing or not).
struct PreMigrationFixture {
  manifests::Fleet fleet = ExampleFleet();
  testing::FakePostgres fake;
  Outcome<std::vector<migrations::Migration>> migrations = std::vector<migrations::Migration>{};
  const manifests::Workspace* acme = nullptr;
  const manifests::Product* product = nullptr;

  PreMigrationFixture() {
    NameCluster(fleet, "default");  // acme's inputs are built here, without the pass's placement
    REQUIRE(controller::RunPass(fleet, {{"default", &fake}}, kMasterKey, {}).AllReady());
    const auto it = std::find_if(fleet.workspaces.begin(), fleet.workspaces.end(),
                                 [](const auto& w) { return w.name == "acme"; });
    REQUIRE(it != fleet.workspaces.end());
    acme = &*it;
    product = fleet.FindProduct(acme->product);
    REQUIRE(product != nullptr);
    migrations = migrations::LoadDirectory(product->root, product->migrations, 1 << 20);
    REQUIRE(migrations);
  }

  void AddMigration(const std::string& file) {
    migrations::Migration next;
    next.version = "9999";
    next.file = file;
    next.sql = std::make_shared<const std::string>("SELECT 1;");
    next.checksum = std::string(64, 'a');
    migrations->push_back(next);
  }

  controller::WorkspaceResult Reconcile(controller::BackupHooks* hooks) {
    const Outcome<postgres::ObservedCluster> observed = fake.Observe();
    controller::WorkspaceInputs inputs;
    inputs.workspace = acme;
    inputs.product = product;
    inputs.migrations = &migrations;
    inputs.gateway = &fake;
    inputs.observed = &observed;
    inputs.backups = hooks;
    inputs.generation = 3;
    return controller::ReconcileWorkspace(inputs, kMasterKey, {.workers = 1}, nullptr);
  }
};

}  // namespace

TEST_CASE("pass: a database that existed is backed up before new migrations, and only then") {
  PreMigrationFixture f;
  RecordingHooks hooks;
  // Nothing new to apply: no backup.
  controller::WorkspaceResult same = f.Reconcile(&hooks);
  CHECK(same.ready);
  CHECK(hooks.subjects.empty());

  f.AddMigration("9999_new.sql");
  const controller::WorkspaceResult result = f.Reconcile(&hooks);
  CAPTURE(result.message);
  CHECK(result.ready);
  REQUIRE(hooks.subjects.size() == 1);
  CHECK(hooks.subjects[0].workspace == "acme");
  CHECK(hooks.subjects[0].database == "tenant_acme");
  CHECK(hooks.subjects[0].generation == 3);
  CHECK_FALSE(hooks.subjects[0].applied_migration.empty());  // the marker's newest
  CHECK(hooks.subjects[0].applied_migration != "9999");
  const auto line = std::find_if(result.applied.begin(), result.applied.end(), [](const auto& l) {
    return l.find("before its migrations: acme-20261203T000000Z-abcd") != std::string::npos;
  });
  CHECK(line != result.applied.end());
  // Converged now: the marker records 9999, so the next run takes no backup.
  CHECK(f.Reconcile(&hooks).ready);
  CHECK(hooks.subjects.size() == 1);
}

TEST_CASE("pass: a failed migration names the backup taken before it; a failed backup holds it") {
  SUBCASE("the migration fails") {
    PreMigrationFixture f;
    RecordingHooks hooks;
    f.AddMigration("9999_broken.sql");
    f.fake.FailMigration("9999_broken.sql");
    const controller::WorkspaceResult result = f.Reconcile(&hooks);
    CHECK_FALSE(result.ready);
    CHECK(result.failed_condition == "MigrationsApplied");
    CHECK(result.message.find("(backup before the migration: acme-20261203T000000Z-abcd)") !=
          std::string::npos);
    const auto reported = [](const controller::WorkspaceResult& r) {
      return std::count(r.applied_kinds.begin(), r.applied_kinds.end(), "BackupBeforeMigration");
    };
    CHECK(reported(result) == 1);
    // The retry reuses that backup: still named by the failure, not reported again.
    hooks.reused = true;
    const controller::WorkspaceResult retried = f.Reconcile(&hooks);
    CHECK_FALSE(retried.ready);
    CHECK(retried.message.find("(backup before the migration: acme-20261203T000000Z-abcd)") !=
          std::string::npos);
    CHECK(reported(retried) == 0);
  }
  SUBCASE("the backup fails: the migration waits") {
    PreMigrationFixture f;
    RecordingHooks hooks;
    hooks.fail = true;
    f.AddMigration("9999_new.sql");
    const int applies = f.fake.apply_calls();
    const controller::WorkspaceResult result = f.Reconcile(&hooks);
    CHECK_FALSE(result.ready);
    CHECK(result.reason == "PreMigrationBackupFailed");
    CHECK(result.phase == Phase::kDegraded);
    CHECK(result.message.find("could not connect") != std::string::npos);
    // The actions before ApplyMigrations (extensions, if any) ran; ApplyMigrations did not.
    const int after = f.fake.apply_calls();
    hooks.fail = false;
    CHECK(f.Reconcile(&hooks).ready);
    CHECK(f.fake.apply_calls() > after);
    CHECK(after >= applies);
  }
}

// docs/placement.md: without a store, a pass places workspaces without spec.database.cluster by
// the clusters' signed markers (sticky) and their room.
TEST_CASE("pass: placed workspaces spread over the clusters, stay where their marker is, and "
          "wait while a cluster cannot be read") {
  const manifests::Fleet fleet = ExampleFleet();
  testing::FakePostgres a;
  testing::FakePostgres b;
  const controller::Gateways gateways{{"a", &a}, {"b", &b}};
  const controller::PassReport first = controller::RunPass(fleet, gateways, kMasterKey, {});
  REQUIRE(first.AllReady());
  std::map<std::string, std::string> where;
  for (const controller::WorkspaceResult& w : first.workspaces) where[w.name] = w.cluster;
  REQUIRE(where.size() == fleet.workspaces.size());
  std::size_t on_a = 0;
  for (const auto& [name, cluster] : where) on_a += cluster == "a" ? 1U : 0U;
  // Unlimited clusters: the least used takes the next, so both get some.
  CHECK(on_a >= fleet.workspaces.size() / 2);
  CHECK(on_a < fleet.workspaces.size());
  CHECK(a.cluster().databases.size() + b.cluster().databases.size() == fleet.workspaces.size());

  // Again, with a new empty cluster that would take everything new: each is found by its
  // marker where it is; nothing applied.
  const auto writes = a.apply_calls() + b.apply_calls();
  testing::FakePostgres empty;
  const controller::PassReport again =
      controller::RunPass(fleet, {{"a", &a}, {"b", &b}, {"0-new", &empty}}, kMasterKey, {});
  CHECK(again.AllReady());
  for (const controller::WorkspaceResult& w : again.workspaces) CHECK(w.cluster == where[w.name]);
  CHECK(a.apply_calls() + b.apply_calls() == writes);
  CHECK(empty.apply_calls() == 0);

  // b down: a's workspaces are fine; the others are not placed anew on a (they may live on b).
  b.FailObserve(Failure::Transient("ConnectionFailed", "cluster \"b\": connection refused"));
  const controller::PassReport down = controller::RunPass(fleet, gateways, kMasterKey, {});
  for (const controller::WorkspaceResult& w : down.workspaces) {
    if (where[w.name] == "a") {
      CHECK_MESSAGE(w.ready, w.reason << ": " << w.message);
    } else {
      CHECK(w.phase == Phase::kDegraded);
      CHECK(w.reason == "ConnectionFailed");
      CHECK(w.message.find("not placed while cluster \"b\" cannot be read") != std::string::npos);
    }
  }
  CHECK(a.apply_calls() + b.apply_calls() == writes);
  CHECK(a.cluster().databases.size() == on_a);
}

// An attacker with a tenant's login owns that tenant's database and may COMMENT ON it: a marker
// claiming another workspace, unsigned or signed with another key, must not decide where that
// workspace is placed (docs/placement.md, "Without a store").
TEST_CASE("pass: a forged database marker does not attract a placed workspace") {
  const manifests::Fleet fleet = ExampleFleet();
  testing::FakePostgres a;
  testing::FakePostgres b;
  // On b, the attacker's database claims "acme" with a marker in the operator's format, signed
  // with a key that is not the operator's.
  postgres::Marker forged;
  forged.workspace = "acme";
  forged.fields = {{"cluster", "b"}, {"owner", "user_evil"}, {"product", "erp"}};
  forged = postgres::SignMarker(forged, Secret("not-the-operators-key-0123456789abcdef"));
  b.AddDatabase("tenant_evil", "user_evil", forged.Render());
  b.AddDatabase("tenant_evil2", "user_evil", "tenant-master:workspace=acme");
  const controller::PassReport report =
      controller::RunPass(fleet, {{"a", &a}, {"b", &b}}, kMasterKey, {});
  // acme goes where the rule puts it (a: the least used, since the forged databases are not
  // counted as ours), not where the forged marker says.
  CHECK(Find(report, "acme").cluster == "a");
  CHECK(a.cluster().databases.count("tenant_acme") == 1);
  CHECK(b.cluster().databases.count("tenant_acme") == 0);
}
