// The convergence property (docs/architecture.md#invariants, docs/architecture.md#tests): from any
// starting state, observing, planning and applying once reaches the desired state, and planning
// again gives an empty plan. Checked with the in-memory FakePostgres for several desired states ×
// starting states, and with a failure injected at every step of the way.

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "common/scrub.hpp"
#include "manifests/types.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "reconcilers/postgres/model.hpp"
#include "tests/support/fake_postgres.hpp"

namespace tmaster::postgres {
namespace {

using testing::FakePostgres;

migrations::Migration Mig(const std::string& file, const std::string& sql) {
  return {file.substr(0, 4), file, crypto::Sha256Hex(sql),
          std::make_shared<const std::string>(sql)};
}

const Secret kMasterKey("convergence-test-master-key");

// What BuildDesired is made from; scenarios change it to model a spec or product edit.
struct Inputs {
  manifests::Workspace workspace;
  manifests::Product product;
  std::vector<migrations::Migration> migrations;

  [[nodiscard]] DesiredTenant Desired() const {
    return BuildDesired(workspace, product, migrations, kMasterKey);
  }
};

struct Variant {
  const char* name;
  Inputs inputs;
};

std::vector<Variant> Variants() {
  manifests::Workspace full;
  full.name = "acme";
  full.product = "erp";
  full.database.name = "tenant_acme";
  full.database.owner = "user_acme";
  full.database.connection_limit = 20;
  full.database.extensions = {"unaccent"};
  manifests::Product erp;
  erp.name = "erp";
  erp.extensions = {"pg_trgm"};
  const std::vector<migrations::Migration> erp_migrations = {
      Mig("0001_init.sql", "create table items();"),
      Mig("0002_orders.sql", "create table orders();")};

  manifests::Workspace bare;
  bare.name = "shop-2";
  bare.product = "landing";
  bare.database.name = "tenant_shop_2";
  bare.database.owner = "user_shop_2";
  manifests::Product landing;
  landing.name = "landing";

  manifests::Workspace suspended = full;
  suspended.suspend = true;
  manifests::Workspace adopting = full;
  adopting.database.adopt = true;
  manifests::Workspace rotated = full;
  rotated.database.password_rotation = 2;

  return {
      {"full", {full, erp, erp_migrations}},
      {"bare (no extensions, no migrations, no limit)", {bare, landing, {}}},
      {"suspended", {suspended, erp, erp_migrations}},
      {"adopt", {adopting, erp, erp_migrations}},
      {"rotated password", {rotated, erp, erp_migrations}},
  };
}

std::string Describe(const Plan& plan) {
  std::ostringstream out;
  if (plan.blocked) out << "blocked: " << plan.blocked->reason << ": " << plan.blocked->message;
  for (const auto& action : plan.actions) out << "\n  " << Describe(action);
  return out.str();
}

Plan PlanFor(FakePostgres& pg, const DesiredTenant& desired, PlanOptions options = {}) {
  const auto observed = pg.Observe();
  REQUIRE(observed.ok());
  return MakePlan(desired, *observed, options);
}

// Observe, plan, apply every action; the first failure stops the run and is returned.
std::optional<Failure> Reconcile(FakePostgres& pg, const DesiredTenant& desired,
                                 PlanOptions options = {}) {
  const Plan plan = PlanFor(pg, desired, options);
  REQUIRE_MESSAGE(!plan.blocked, Describe(plan));
  for (const auto& action : plan.actions) {
    auto result = pg.Apply(action);
    if (!result.ok()) return result.failure();
  }
  return std::nullopt;
}

void ReconcileOk(FakePostgres& pg, const DesiredTenant& desired, PlanOptions options = {}) {
  const auto failure = Reconcile(pg, desired, options);
  REQUIRE_MESSAGE(!failure, (failure ? failure->message : ""));
}

// Salts for the fakes of the property tests: distinct within a fake, the same sequence in every
// fake, so the fake's memoised PBKDF2 work is shared by the hundreds of runs below.
FakePostgres::SaltSource CountingSalts() {
  return [n = 0]() mutable {
    std::string salt = "fake-salt-" + std::to_string(n++);
    salt.resize(16, '.');
    return salt;
  };
}

// A verifier set by hand (ALTER ROLE ... PASSWORD from psql), with a salt of its own.
std::string HandSetVerifier(const Secret& password) {
  static std::map<std::string, std::string> cache;
  auto [it, inserted] = cache.emplace(password.Reveal(), std::string());
  if (inserted) it->second = MakeScramVerifier(password, "set-by-hand-salt", 4096);
  return it->second;
}

// ScramVerifierMatches, remembered: the same verifier is checked in many runs.
bool Verifies(const std::string& verifier, const Secret& password) {
  static std::map<std::string, bool> cache;
  const std::string key = verifier + '\n' + password.Reveal();
  const auto [it, inserted] = cache.emplace(key, false);
  if (inserted) it->second = ScramVerifierMatches(verifier, password);
  return it->second;
}

// The end state, read from the fake, not from the plan: every rule of
// docs/architecture.md#postgresql-what-converged-means.
void CheckConverged(FakePostgres& pg, const DesiredTenant& d) {
  const Plan again = PlanFor(pg, d);
  CHECK_MESSAGE(again.Empty(), "plan after apply:" << Describe(again));

  const auto& cluster = pg.cluster();
  REQUIRE(cluster.roles.contains(d.role));
  const ObservedRole& role = cluster.roles.at(d.role);
  CHECK(role.can_login == !d.suspend);
  CHECK_FALSE(role.superuser);
  CHECK_FALSE(role.create_db);
  CHECK_FALSE(role.create_role);
  CHECK_FALSE(role.replication);
  CHECK_FALSE(role.bypass_rls);
  CHECK(role.connection_limit == d.connection_limit);
  REQUIRE(role.verifier.has_value());
  CHECK(Verifies(*role.verifier, d.password));
  const auto role_marker = Marker::Parse(role.comment);
  REQUIRE(role_marker.has_value());
  CHECK(role_marker->workspace == d.workspace);
  CHECK(role_marker->fields.at("database") == d.database);
  if (d.suspend) CHECK(role.sessions == 0);

  REQUIRE(cluster.databases.contains(d.database));
  const ObservedDatabase& db = cluster.databases.at(d.database);
  CHECK(db.owner == d.role);
  CHECK(db.encoding == "UTF8");
  CHECK_FALSE(db.public_connect);
  CHECK_FALSE(db.public_temporary);
  const auto db_marker = Marker::Parse(db.comment);
  REQUIRE(db_marker.has_value());
  CHECK(db_marker->workspace == d.workspace);

  if (d.suspend) return;  // in-database steps wait for resume
  CHECK(db_marker->fields.at("state") == d.state_digest);
  CHECK(MarkerSignatureValid(*db_marker, d.marker_key));
  const auto& contents = pg.contents()[d.database];
  for (const auto& extension : d.extensions) CHECK(contents.extensions.contains(extension));
  REQUIRE(contents.applied.size() == d.migrations.size());
  for (std::size_t i = 0; i < d.migrations.size(); ++i) {
    CHECK(contents.applied[i].file == d.migrations[i].file);
    CHECK(contents.applied[i].checksum == d.migrations[i].checksum);
  }
}

// The operator's own connection role, which owns whatever it reassigns.
void AddAdmin(FakePostgres& pg) {
  static const std::string verifier =
      MakeScramVerifier(Secret("admin-password"), "admin-salt-16byt", 4096);
  auto& admin = pg.AddRole("postgres", std::nullopt);
  admin.verifier = verifier;
  admin.superuser = admin.create_db = admin.create_role = true;
  admin.sessions = 1;
}

// A starting state: sets up the fake (and may change the inputs, as an edited spec would).
struct Start {
  const char* name;
  std::function<void(FakePostgres&, Inputs&)> setup;
};

// Reaches the desired state first, then lets `drift` change it by hand.
Start Drift(const char* name, std::function<void(FakePostgres&, Inputs&)> drift) {
  return {name, [drift = std::move(drift)](FakePostgres& pg, Inputs& in) {
            ReconcileOk(pg, in.Desired());
            drift(pg, in);
          }};
}

ObservedRole& RoleOf(FakePostgres& pg, const Inputs& in) {
  return pg.cluster().roles.at(in.workspace.database.owner);
}
ObservedDatabase& DbOf(FakePostgres& pg, const Inputs& in) {
  return pg.cluster().databases.at(in.workspace.database.name);
}

std::vector<Start> Starts() {
  return {
      {"fresh", [](FakePostgres&, Inputs&) {}},
      Drift("converged", [](FakePostgres&, Inputs&) {}),
      Drift("login flipped",
            [](FakePostgres& pg, Inputs& in) {
              RoleOf(pg, in).can_login = !RoleOf(pg, in).can_login;
            }),
      Drift("superuser granted",
            [](FakePostgres& pg, Inputs& in) { RoleOf(pg, in).superuser = true; }),
      Drift("createdb granted",
            [](FakePostgres& pg, Inputs& in) { RoleOf(pg, in).create_db = true; }),
      Drift("createrole and replication granted",
            [](FakePostgres& pg, Inputs& in) {
              RoleOf(pg, in).create_role = true;
              RoleOf(pg, in).replication = true;
            }),
      Drift("bypassrls granted",
            [](FakePostgres& pg, Inputs& in) { RoleOf(pg, in).bypass_rls = true; }),
      Drift("connection limit changed",
            [](FakePostgres& pg, Inputs& in) { RoleOf(pg, in).connection_limit = 1; }),
      Drift("password changed by hand",
            [](FakePostgres& pg, Inputs& in) {
              RoleOf(pg, in).verifier = HandSetVerifier(Secret("hunter2"));
            }),
      Drift("same password set again by hand",
            [](FakePostgres& pg, Inputs& in) {
              RoleOf(pg, in).verifier = HandSetVerifier(in.Desired().password);
            }),
      Drift("password removed",
            [](FakePostgres& pg, Inputs& in) { RoleOf(pg, in).verifier.reset(); }),
      Drift("role marker memo stripped",
            [](FakePostgres& pg, Inputs& in) {
              RoleOf(pg, in).comment = Marker{in.workspace.name, {}}.Render();
            }),
      Drift("database owner changed",
            [](FakePostgres& pg, Inputs& in) { DbOf(pg, in).owner = "postgres"; }),
      Drift("PUBLIC CONNECT granted",
            [](FakePostgres& pg, Inputs& in) { DbOf(pg, in).public_connect = true; }),
      Drift("PUBLIC TEMPORARY granted",
            [](FakePostgres& pg, Inputs& in) { DbOf(pg, in).public_temporary = true; }),
      Drift("database dropped",
            [](FakePostgres& pg, Inputs& in) {
              pg.cluster().databases.erase(in.workspace.database.name);
              pg.contents().erase(in.workspace.database.name);
            }),
      Drift("role dropped (database reassigned first)",
            [](FakePostgres& pg, Inputs& in) {
              DbOf(pg, in).owner = "postgres";
              pg.cluster().roles.erase(in.workspace.database.owner);
            }),
      Drift("database marker state lost",
            [](FakePostgres& pg, Inputs& in) {
              DbOf(pg, in).comment = Marker{in.workspace.name, {}}.Render();
            }),
      Drift("sessions open", [](FakePostgres& pg, Inputs& in) { RoleOf(pg, in).sessions = 5; }),
      Drift("spec: suspend toggled with sessions open",
            [](FakePostgres& pg, Inputs& in) {
              RoleOf(pg, in).sessions = 2;
              in.workspace.suspend = !in.workspace.suspend;
            }),
      Drift("spec: migration added",
            [](FakePostgres&, Inputs& in) {
              in.migrations.push_back(Mig("0003_invoices.sql", "create table invoices();"));
            }),
      Drift(
          "spec: extension added",
          [](FakePostgres&, Inputs& in) { in.workspace.database.extensions.push_back("citext"); }),
      Drift("spec: password rotated",
            [](FakePostgres&, Inputs& in) { ++in.workspace.database.password_rotation; }),
      Drift("spec: connection limit changed",
            [](FakePostgres&, Inputs& in) { in.workspace.database.connection_limit = 7; }),
      Drift("everything at once",
            [](FakePostgres& pg, Inputs& in) {
              auto& role = RoleOf(pg, in);
              role.superuser = true;
              role.can_login = !role.can_login;
              role.verifier = HandSetVerifier(Secret("x"));
              role.sessions = 3;
              auto& db = DbOf(pg, in);
              db.owner = "postgres";
              db.public_connect = db.public_temporary = true;
              db.comment = Marker{in.workspace.name, {}}.Render();
              in.migrations.push_back(Mig("0009_more.sql", "create table more();"));
            }),
      {"adopted: unmarked role with the derived password, unmarked database",
       [](FakePostgres& pg, Inputs& in) {
         in.workspace.database.adopt = true;
         const DesiredTenant d = in.Desired();
         pg.AddRole(d.role, d.password.Reveal());
         pg.AddDatabase(d.database, d.role, "legacy billing");
       }},
      {"adopted: unmarked CREATEDB role with another password, database owned by postgres",
       [](FakePostgres& pg, Inputs& in) {
         in.workspace.database.adopt = true;
         const DesiredTenant d = in.Desired();
         pg.AddRole(d.role, "legacy-password").create_db = true;
         pg.AddDatabase(d.database, "postgres");
       }},
      Drift("database marker forged by the tenant (desired state, no signature)",
            [](FakePostgres& pg, Inputs& in) {
              Marker marker = *Marker::Parse(DbOf(pg, in).comment);
              marker.fields.erase("sig");
              DbOf(pg, in).comment = marker.Render();
            }),
      {"operator cannot read pg_authid, fresh",
       [](FakePostgres& pg, Inputs&) { pg.cluster().passwords_visible = false; }},
      {"operator cannot read pg_authid, adopted role with another password",
       [](FakePostgres& pg, Inputs& in) {
         pg.cluster().passwords_visible = false;
         in.workspace.database.adopt = true;
         const DesiredTenant d = in.Desired();
         pg.AddRole(d.role, "legacy-password");
         pg.AddDatabase(d.database, d.role);
       }},
      {"adopted: only the database exists",
       [](FakePostgres& pg, Inputs& in) {
         in.workspace.database.adopt = true;
         pg.AddDatabase(in.Desired().database, "postgres");
       }},
      {"adopted: role only, with open sessions",
       [](FakePostgres& pg, Inputs& in) {
         in.workspace.database.adopt = true;
         pg.AddRole(in.Desired().role, "legacy-password").sessions = 2;
       }},
  };
}

TEST_CASE("convergence: desired states × starting states reach an empty plan in one pass") {
  for (const Variant& variant : Variants()) {
    for (const Start& start : Starts()) {
      const std::string name = std::string(variant.name) + " / " + start.name;
      SUBCASE(name.c_str()) {
        FakePostgres pg(CountingSalts());
        AddAdmin(pg);
        Inputs inputs = variant.inputs;
        start.setup(pg, inputs);
        const DesiredTenant desired = inputs.Desired();

        ReconcileOk(pg, desired);
        CheckConverged(pg, desired);

        // And it stays converged: one more pass sends nothing.
        const int calls = pg.apply_calls();
        ReconcileOk(pg, desired);
        CHECK(pg.apply_calls() == calls);
      }
    }
  }
}

const char* PointName(FakePostgres::FaultPoint point) {
  switch (point) {
    case FakePostgres::FaultPoint::kBefore: return "before the action";
    case FakePostgres::FaultPoint::kMidway: return "midway through the action";
    case FakePostgres::FaultPoint::kAfter: return "after the action, its answer lost";
  }
  return "?";
}

TEST_CASE("convergence: a failure at any action, then another pass, converges") {
  for (const Variant& variant : Variants()) {
    for (const Start& start : Starts()) {
      const std::string name = std::string(variant.name) + " / " + start.name;
      SUBCASE(name.c_str()) {
        // How many actions the pass under test has, found on a twin of the fake.
        FakePostgres probe(CountingSalts());
        AddAdmin(probe);
        Inputs probe_inputs = variant.inputs;
        start.setup(probe, probe_inputs);
        const std::size_t steps = PlanFor(probe, probe_inputs.Desired()).actions.size();

        for (const auto point :
             {FakePostgres::FaultPoint::kBefore, FakePostgres::FaultPoint::kMidway,
              FakePostgres::FaultPoint::kAfter}) {
          for (std::size_t k = 1; k <= steps; ++k) {
            const std::string at = PointName(point);
            CAPTURE(k);
            CAPTURE(at);
            FakePostgres pg(CountingSalts());
            AddAdmin(pg);
            Inputs inputs = variant.inputs;
            start.setup(pg, inputs);
            const DesiredTenant desired = inputs.Desired();
            pg.FailApplyCall(pg.apply_calls() + static_cast<int>(k),
                             Failure::Transient("ConnectionFailure", "injected: connection lost"),
                             point);

            const auto failure = Reconcile(pg, desired);
            REQUIRE(failure.has_value());
            CHECK(failure->reason == "ConnectionFailure");

            ReconcileOk(pg, desired);
            CheckConverged(pg, desired);
          }
        }
      }
    }
  }
}

DesiredTenant FullDesired() { return Variants().front().inputs.Desired(); }

TEST_CASE("convergence: a database left unmarked and open by a cut is finished by the next pass") {
  FakePostgres pg(CountingSalts());
  AddAdmin(pg);
  const DesiredTenant desired = FullDesired();
  const Plan plan = PlanFor(pg, desired);
  REQUIRE(plan.actions.size() >= 2);
  REQUIRE(KindOf(plan.actions[0]) == "CreateRole");
  REQUIRE(KindOf(plan.actions[1]) == "CreateDatabase");
  pg.FailApplyCall(pg.apply_calls() + 2, Failure::Transient("ConnectionFailure", "cut"),
                   FakePostgres::FaultPoint::kMidway);
  const auto failure = Reconcile(pg, desired);
  REQUIRE(failure.has_value());

  // The state the cut leaves: what the planner has to recognise as its own.
  const ObservedDatabase& db = pg.cluster().databases.at(desired.database);
  CHECK(db.owner == desired.role);
  CHECK(db.comment.empty());
  CHECK(db.public_connect);
  CHECK(db.public_temporary);
  const Plan next = PlanFor(pg, desired);
  CHECK_FALSE(next.blocked.has_value());
  std::vector<std::string> kinds;
  for (const auto& action : next.actions) kinds.push_back(KindOf(action));
  CAPTURE(Describe(next));
  CHECK(std::find(kinds.begin(), kinds.end(), "CreateDatabase") == kinds.end());
  CHECK(std::find(kinds.begin(), kinds.end(), "RevokePublicAccess") != kinds.end());

  ReconcileOk(pg, desired);
  CheckConverged(pg, desired);
}

TEST_CASE("convergence: suspend, then resume, runs what changed meanwhile") {
  FakePostgres pg;
  Inputs inputs = Variants().front().inputs;
  ReconcileOk(pg, inputs.Desired());
  pg.cluster().roles.at("user_acme").sessions = 4;

  inputs.workspace.suspend = true;
  inputs.migrations.push_back(Mig("0003_invoices.sql", "create table invoices();"));
  ReconcileOk(pg, inputs.Desired());
  CheckConverged(pg, inputs.Desired());
  CHECK(pg.contents()["tenant_acme"].applied.size() == 2);  // waits for resume

  inputs.workspace.suspend = false;
  const Plan resume = PlanFor(pg, inputs.Desired());
  REQUIRE_FALSE(resume.actions.empty());
  CHECK(KindOf(resume.actions.front()) == "AlterRole");
  ReconcileOk(pg, inputs.Desired());
  CheckConverged(pg, inputs.Desired());
  CHECK(pg.contents()["tenant_acme"].applied.size() == 3);
}

TEST_CASE("convergence: in-database drift is invisible to the catalog; a deep pass repairs it") {
  FakePostgres pg;
  const DesiredTenant desired = FullDesired();
  ReconcileOk(pg, desired);
  pg.contents()["tenant_acme"].extensions.erase("pg_trgm");

  CHECK(PlanFor(pg, desired).Empty());  // the marker says the state was reached
  const Plan deep = PlanFor(pg, desired, {.deep = true});
  CHECK_FALSE(deep.Empty());
  ReconcileOk(pg, desired, {.deep = true});
  CHECK(pg.contents()["tenant_acme"].extensions.contains("pg_trgm"));
  CheckConverged(pg, desired);
  // A deep pass on a converged tenant re-applies nothing.
  ReconcileOk(pg, desired, {.deep = true});
  CHECK(pg.contents()["tenant_acme"].applied.size() == 2);
}

TEST_CASE("convergence: a failing migration keeps the earlier ones and the stale marker") {
  FakePostgres pg;
  pg.FailMigration("0002_orders.sql");
  const DesiredTenant desired = FullDesired();
  const auto failure = Reconcile(pg, desired);
  REQUIRE(failure.has_value());
  CHECK(failure->kind == FailureKind::kStalled);
  CHECK(failure->message.find("0002_orders.sql") != std::string::npos);
  CHECK(pg.contents()["tenant_acme"].applied.size() == 1);
  // The state was not recorded, so the next pass tries again rather than calling it done.
  const Plan again = PlanFor(pg, desired);
  bool retries = false;
  for (const auto& action : again.actions) retries |= KindOf(action) == "ApplyMigrations";
  CHECK(retries);
}

TEST_CASE("convergence: an applied migration that changed stalls, and is not re-run") {
  FakePostgres pg;
  Inputs inputs = Variants().front().inputs;
  ReconcileOk(pg, inputs.Desired());
  inputs.migrations[0] = Mig("0001_init.sql", "create table items(id int);");
  const auto failure = Reconcile(pg, inputs.Desired());
  REQUIRE(failure.has_value());
  CHECK(failure->reason == "MigrationChecksumMismatch");
  CHECK(failure->message.find("0001_init.sql") != std::string::npos);
  CHECK(failure->message.find("\"tenant_acme\"") != std::string::npos);
  CHECK(pg.contents()["tenant_acme"].applied.size() == 2);
}

TEST_CASE("convergence: blocked tenants are left alone") {
  for (const bool adopt : {false, true}) {
    CAPTURE(adopt);
    FakePostgres pg;
    Inputs inputs = Variants().front().inputs;
    inputs.workspace.database.adopt = adopt;
    const DesiredTenant desired = inputs.Desired();
    pg.AddRole(desired.role, "theirs", "tenant-master:workspace=globex");
    pg.AddDatabase(desired.database, desired.role, "tenant-master:workspace=globex");
    const Plan plan = PlanFor(pg, desired);
    REQUIRE(plan.blocked.has_value());
    CHECK(plan.blocked->reason == "OwnedByOtherWorkspace");
    CHECK(plan.actions.empty());
  }
  FakePostgres pg;
  const DesiredTenant desired = FullDesired();
  pg.AddDatabase(desired.database, "postgres");
  const Plan plan = PlanFor(pg, desired);
  REQUIRE(plan.blocked.has_value());
  CHECK(plan.blocked->reason == "DatabaseNotOwned");
}

// Issue 11, item 8: a tenant rewrites its database's marker to claim the desired state while the
// database lacks what it says; the next pass looks inside.
TEST_CASE("convergence: a forged database marker is unknown state; the pass looks inside") {
  FakePostgres pg;
  Inputs inputs = Variants().front().inputs;
  ReconcileOk(pg, inputs.Desired());
  // The product gains a migration; the tenant, who owns the database, writes the new digest.
  inputs.migrations.push_back(Mig("0003_invoices.sql", "create table invoices();"));
  const DesiredTenant desired = inputs.Desired();
  ObservedDatabase& db = pg.cluster().databases.at("tenant_acme");
  Marker forged = *Marker::Parse(db.comment);
  forged.fields["state"] = desired.state_digest;
  forged.fields["migration"] = "0003";
  SUBCASE("signature left as it was") { db.comment = forged.Render(); }
  SUBCASE("signature removed") {
    forged.fields.erase("sig");
    db.comment = forged.Render();
  }
  ReconcileOk(pg, desired);
  CHECK(pg.contents()["tenant_acme"].applied.size() == 3);
  CheckConverged(pg, desired);
}

// Issue 11, item 10: a migration applied and then deleted from the product.
TEST_CASE("convergence: a deleted applied migration stalls MigrationMissing, pass after pass") {
  FakePostgres pg;
  Inputs inputs = Variants().front().inputs;  // 0001 and 0002
  std::string missing;
  SUBCASE("the only migration deleted") {
    inputs.migrations.pop_back();
    ReconcileOk(pg, inputs.Desired());
    inputs.migrations.clear();
    missing = "0001_init.sql";
  }
  SUBCASE("one of two deleted") {
    ReconcileOk(pg, inputs.Desired());
    inputs.migrations.pop_back();
    missing = "0002_orders.sql";
  }
  SUBCASE("the only migration deleted, the product without extensions either") {
    inputs.migrations.pop_back();
    inputs.product.extensions.clear();
    inputs.workspace.database.extensions.clear();
    ReconcileOk(pg, inputs.Desired());
    inputs.migrations.clear();
    missing = "0001_init.sql";
  }
  const std::string marker_before = pg.cluster().databases.at("tenant_acme").comment;
  for (int pass = 0; pass < 2; ++pass) {
    CAPTURE(pass);
    const auto failure = Reconcile(pg, inputs.Desired());
    REQUIRE(failure.has_value());
    CHECK(failure->reason == "MigrationMissing");
    CHECK(failure->kind == FailureKind::kStalled);
    CHECK(failure->message.find(missing) != std::string::npos);
    // The marker still records the old state: nothing calls the workspace converged.
    CHECK(pg.cluster().databases.at("tenant_acme").comment == marker_before);
  }
}

TEST_CASE("convergence: with ignoreMissingMigrations a deleted migration is skipped") {
  FakePostgres pg;
  Inputs inputs = Variants().front().inputs;
  ReconcileOk(pg, inputs.Desired());
  inputs.migrations.clear();
  inputs.product.ignore_missing_migrations = true;
  const DesiredTenant desired = inputs.Desired();
  CHECK(desired.ignore_missing_migrations);
  ReconcileOk(pg, desired);
  CHECK(PlanFor(pg, desired).Empty());
  CHECK(pg.contents()["tenant_acme"].applied.size() == 2);  // the records stay
  CHECK(Marker::Parse(pg.cluster().databases.at("tenant_acme").comment)->fields.at("migration") ==
        "none");
}

// Issue 11, item 9: identity edits after convergence touch nothing, whatever else is planned.
TEST_CASE("convergence: an identity edit on a converged workspace stalls and changes nothing") {
  FakePostgres pg;
  AddAdmin(pg);
  Inputs inputs = Variants().front().inputs;
  ReconcileOk(pg, inputs.Desired());
  // What the tenant database holds stands for its rows.
  pg.contents()["tenant_acme"].applied.push_back({"9999", "9999_rows.sql", "rows"});
  std::string field;
  SUBCASE("spec.database.name") {
    inputs.workspace.database.name = "tenant_acme_v2";
    field = "spec.database.name";
  }
  SUBCASE("spec.database.owner") {
    inputs.workspace.database.owner = "owner_acme";
    field = "spec.database.owner";
  }
  SUBCASE("spec.product") {
    inputs.workspace.product = "crm";
    field = "spec.product";
  }
  SUBCASE("spec.database.name, with adopt and a database of that name") {
    inputs.workspace.database.name = "tenant_acme_v2";
    inputs.workspace.database.adopt = true;
    pg.AddDatabase("tenant_acme_v2", "postgres");
    field = "spec.database.name";
  }
  const ObservedCluster before = *pg.Observe();
  const Plan plan = PlanFor(pg, inputs.Desired());
  REQUIRE(plan.blocked.has_value());
  CHECK(plan.blocked->reason == "ImmutableField");
  CHECK(plan.blocked->message.find(field + " was ") != std::string::npos);
  CHECK(plan.actions.empty());
  const ObservedCluster after = *pg.Observe();
  CHECK(after.roles.size() == before.roles.size());
  CHECK(after.databases.size() == before.databases.size());
  CHECK(after.roles.contains("user_acme"));
  CHECK_FALSE(after.roles.contains("owner_acme"));
  CHECK(pg.contents()["tenant_acme"].applied.size() == 3);
}

// Issue 10, part 2 (docs/moves.md): the source a move kept carries a signed `moved` field; the
// identity check looks past it.
TEST_CASE("convergence: a database a move kept (signed moved marker) is not where the workspace "
          "lives") {
  FakePostgres source;
  AddAdmin(source);
  Inputs inputs = Variants().front().inputs;
  inputs.workspace.database.cluster = "c1";
  ReconcileOk(source, inputs.Desired());
  inputs.workspace.database.cluster = "c2";
  const DesiredTenant moved = inputs.Desired();
  FakePostgres target;
  AddAdmin(target);
  const auto elsewhere_of = [&] {
    std::vector<MarkedDatabase> elsewhere;
    for (auto& [name, marked] : IndexDatabaseMarkers("c1", *source.Observe())) {
      elsewhere.push_back(marked);
    }
    return elsewhere;
  };
  // Before the move is marked: the data is on c1, so naming c2 stalls.
  std::vector<MarkedDatabase> elsewhere = elsewhere_of();
  REQUIRE(elsewhere.size() == 1);
  Plan plan = PlanFor(target, moved, {.deep = false, .elsewhere = elsewhere});
  REQUIRE(plan.blocked.has_value());
  CHECK(plan.blocked->reason == "ImmutableField");

  const std::string comment = source.cluster().databases.at(moved.database).comment;
  std::optional<Marker> marker = Marker::Parse(comment);
  REQUIRE(marker.has_value());
  {
    const Marker kept = MovedMarker(*marker, "c2", MarkerKey(kMasterKey));
    CHECK(MarkerMoved(kept));
    REQUIRE(source.Apply(SetDatabaseMarker{moved.database, kept.Render()}).ok());
    elsewhere = elsewhere_of();
    plan = PlanFor(target, moved, {.deep = false, .elsewhere = elsewhere});
    CHECK_FALSE(plan.blocked.has_value());
    CHECK_FALSE(plan.actions.empty());
  }
}

TEST_CASE("FakePostgres behaves like the server where the plan relies on it") {
  FakePostgres pg;
  const DesiredTenant desired = FullDesired();
  // CreateDatabase, like the adapter, leaves the new database closed to PUBLIC.
  REQUIRE(pg.Apply(CreateRole{desired.role, true, -1, desired.password, desired.workspace}).ok());
  REQUIRE(pg.Apply(CreateDatabase{desired.database, desired.role, "tenant-master:workspace=acme"})
              .ok());
  CHECK_FALSE(pg.cluster().databases.at(desired.database).public_connect);
  CHECK_FALSE(pg.cluster().databases.at(desired.database).public_temporary);
  // Creating twice fails, as it does on the server.
  CHECK_FALSE(pg.Apply(CreateDatabase{desired.database, desired.role, ""}).ok());
  // The created role's marker carries the memo of its real SCRAM verifier.
  const ObservedRole& role = pg.cluster().roles.at(desired.role);
  REQUIRE(role.verifier.has_value());
  CHECK(role.verifier->starts_with("SCRAM-SHA-256$4096:"));
  CHECK(Marker::Parse(role.comment)->fields.at("pw") ==
        PasswordMemo(desired.password, *role.verifier));
  // Migrations run as the role: not while it cannot log in.
  REQUIRE(pg.Apply(AlterRole{desired.role, false, -1}).ok());
  CHECK_FALSE(pg.Apply(ApplyMigrations{desired.database, desired.role, desired.password,
                                       desired.migrations})
                  .ok());
  // A failure injected at call N changes nothing and is counted.
  const int calls = pg.apply_calls();
  pg.FailApplyCall(calls + 1);
  pg.cluster().databases.at(desired.database).public_connect = true;  // granted by hand
  CHECK_FALSE(pg.Apply(RevokePublicAccess{desired.database}).ok());
  CHECK(pg.cluster().databases.at(desired.database).public_connect);
  CHECK(pg.Apply(RevokePublicAccess{desired.database}).ok());
  CHECK_FALSE(pg.cluster().databases.at(desired.database).public_connect);
  CHECK(pg.apply_calls() == calls + 2);
  // Midway through a migration run: the first pending migration committed, the rest not.
  pg.FailApplyCall(pg.apply_calls() + 2, Failure::Transient("ConnectionFailure", "cut"),
                   FakePostgres::FaultPoint::kMidway);
  REQUIRE(pg.Apply(AlterRole{desired.role, true, -1}).ok());
  CHECK_FALSE(pg.Apply(ApplyMigrations{desired.database, desired.role, desired.password,
                                       desired.migrations})
                  .ok());
  CHECK(pg.contents()[desired.database].applied.size() == 1);
  // After: done, but reported failed (the answer was lost).
  pg.FailApplyCall(pg.apply_calls() + 1, Failure::Transient("ConnectionFailure", "lost"),
                   FakePostgres::FaultPoint::kAfter);
  CHECK_FALSE(pg.Apply(AlterRole{desired.role, false, 3}).ok());
  CHECK(pg.cluster().roles.at(desired.role).connection_limit == 3);
  // Unavailable extensions fail.
  pg.SetAvailableExtensions({"pg_trgm"});
  CHECK_FALSE(pg.Apply(EnsureExtensions{desired.database, {"pg_trgm", "postgis"}}).ok());
  CHECK(pg.contents()[desired.database].extensions.empty());
}

}  // namespace
}  // namespace tmaster::postgres

namespace tmaster::postgres {
namespace {

// Issue 11: the derived tenant password is one of the secrets every outgoing message is
// scrubbed of.
TEST_CASE("BuildDesired registers the derived password with the process's scrubber") {
  const DesiredTenant desired = FullDesired();
  const std::string echoed = "password authentication failed: " + desired.password.Reveal();
  CHECK(ScrubProcessSecrets(echoed).find(desired.password.Reveal()) == std::string::npos);
}

}  // namespace
}  // namespace tmaster::postgres
