// MakeReclaimPlan (issue 3 item 6): what removing a workspace does to its database and role,
// planned against the in-memory FakePostgres, applied, and planned again (empty). End states are
// read from the fake, not from the plan. Also the way back: a retained workspace whose manifest
// returns converges again under the normal MakePlan.

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "manifests/types.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "reconcilers/postgres/model.hpp"
#include "tests/support/fake_postgres.hpp"

namespace tmaster::postgres {
namespace {

using manifests::ReclaimPolicy;
using testing::FakePostgres;

const Secret kMasterKey("reclaim-test-master-key");

manifests::Workspace Workspace(const std::string& name = "acme") {
  manifests::Workspace workspace;
  workspace.name = name;
  workspace.product = "erp";
  workspace.database.name = "tenant_" + name;
  workspace.database.owner = "user_" + name;
  workspace.database.connection_limit = 20;
  return workspace;
}

DesiredTenant Desired(const manifests::Workspace& workspace) {
  manifests::Product erp;
  erp.name = "erp";
  erp.extensions = {"pg_trgm"};
  const std::string sql = "create table items();";
  const std::vector<migrations::Migration> files = {
      {"0001", "0001_init.sql", crypto::Sha256Hex(sql), std::make_shared<const std::string>(sql)}};
  return BuildDesired(workspace, erp, files, kMasterKey);
}

ReclaimTarget Target(ReclaimPolicy policy, const std::string& name = "acme") {
  manifests::Workspace workspace = Workspace(name);
  workspace.database.reclaim_policy = policy;
  return BuildReclaimTarget(workspace);
}

// The same salts in every fake, so the fake's memoised PBKDF2 work is shared between cases.
FakePostgres::SaltSource CountingSalts() {
  return [n = 0]() mutable {
    std::string salt = "reclaim-salt-" + std::to_string(n++);
    salt.resize(16, '.');
    return salt;
  };
}

std::string Describe(const Plan& plan) {
  std::ostringstream out;
  if (plan.blocked) out << "blocked: " << plan.blocked->reason << ": " << plan.blocked->message;
  for (const auto& action : plan.actions) out << "\n  " << Describe(action);
  return out.str();
}

std::vector<std::string> Kinds(const Plan& plan) {
  std::vector<std::string> kinds;
  for (const auto& action : plan.actions) kinds.push_back(KindOf(action));
  return kinds;
}

ObservedCluster Observe(FakePostgres& pg) {
  auto observed = pg.Observe();
  REQUIRE(observed.ok());
  return *observed;
}

Plan ReclaimPlan(FakePostgres& pg, const ReclaimTarget& target) {
  return MakeReclaimPlan(target, Observe(pg));
}

// Applies `plan` until the first failure, which is returned.
std::optional<Failure> Apply(FakePostgres& pg, const Plan& plan) {
  REQUIRE_MESSAGE(!plan.blocked, Describe(plan));
  for (const auto& action : plan.actions) {
    auto result = pg.Apply(action);
    if (!result.ok()) return result.failure();
  }
  return std::nullopt;
}

void ApplyOk(FakePostgres& pg, const Plan& plan) {
  const auto failure = Apply(pg, plan);
  REQUIRE_MESSAGE(!failure, (failure ? failure->message : ""));
}

// The live workspace reconciled by the normal plan until its plan is empty.
void Converge(FakePostgres& pg, const DesiredTenant& desired) {
  for (int pass = 0; pass < 3; ++pass) {
    const Plan plan = MakePlan(desired, Observe(pg));
    if (plan.Empty()) return;
    ApplyOk(pg, plan);
  }
  FAIL("the live workspace did not converge: " << Describe(MakePlan(desired, Observe(pg))));
}

Marker RoleMarker(FakePostgres& pg, const std::string& role) {
  REQUIRE(pg.cluster().roles.contains(role));
  const auto marker = Marker::Parse(pg.cluster().roles.at(role).comment);
  REQUIRE(marker.has_value());
  return *marker;
}

bool MarkedRetained(const Marker& marker) {
  const auto it = marker.fields.find(std::string(kReclaimField));
  return it != marker.fields.end() && it->second == kReclaimRetained;
}

// A live, converged `acme` with two open sessions, and a neighbour `other` that reclaim must
// never touch.
struct World {
  FakePostgres pg{CountingSalts()};
  DesiredTenant acme = Desired(Workspace("acme"));
  DesiredTenant other = Desired(Workspace("other"));
  ObservedCluster other_before;

  World() {
    Converge(pg, acme);
    Converge(pg, other);
    pg.cluster().roles.at(acme.role).sessions = 2;
    pg.cluster().roles.at(other.role).sessions = 1;
    other_before = Observe(pg);
  }

  void CheckOtherUntouched() {
    const auto& roles = pg.cluster().roles;
    const auto& databases = pg.cluster().databases;
    REQUIRE(roles.contains(other.role));
    REQUIRE(databases.contains(other.database));
    const ObservedRole& role = roles.at(other.role);
    const ObservedRole& before = other_before.roles.at(other.role);
    CHECK(role.can_login == before.can_login);
    CHECK(role.sessions == before.sessions);
    CHECK(role.comment == before.comment);
    CHECK(databases.at(other.database).comment ==
          other_before.databases.at(other.database).comment);
    CHECK(MakePlan(other, Observe(pg)).Empty());
  }
};

// ---------------------------------------------------------------------------------------------

TEST_CASE("BuildReclaimTarget takes the names and the policy from the stored spec") {
  manifests::Workspace workspace = Workspace("shop-1");
  workspace.database.cluster = "eu";
  workspace.database.reclaim_policy = ReclaimPolicy::kDelete;
  const ReclaimTarget target = BuildReclaimTarget(workspace);
  CHECK(target.workspace == "shop-1");
  CHECK(target.cluster == "eu");
  CHECK(target.database == "tenant_shop-1");
  CHECK(target.role == "user_shop-1");
  CHECK(target.policy == ReclaimPolicy::kDelete);
  CHECK(BuildReclaimTarget(Workspace()).policy == ReclaimPolicy::kRetain);  // the default
}

TEST_CASE("reclaim Retain: role NOLOGIN, sessions ended, marker records it, data kept") {
  World world;
  FakePostgres& pg = world.pg;
  const DesiredTenant& acme = world.acme;
  const ObservedDatabase database_before = pg.cluster().databases.at(acme.database);
  const auto contents_before = pg.contents()[acme.database];
  const Marker marker_before = RoleMarker(pg, acme.role);
  REQUIRE(marker_before.fields.contains("pw"));

  const Plan plan = ReclaimPlan(pg, Target(ReclaimPolicy::kRetain));
  CHECK(Kinds(plan) == std::vector<std::string>{"AlterRole", "TerminateSessions", "SetRoleMarker"});
  ApplyOk(pg, plan);
  const Plan again = ReclaimPlan(pg, Target(ReclaimPolicy::kRetain));
  CHECK_MESSAGE(again.Empty(), Describe(again));

  const ObservedRole& role = pg.cluster().roles.at(acme.role);
  CHECK_FALSE(role.can_login);
  CHECK(role.sessions == 0);
  CHECK(role.connection_limit == acme.connection_limit);  // kept, for the way back
  const Marker marker = RoleMarker(pg, acme.role);
  CHECK(marker.workspace == "acme");
  CHECK(MarkedRetained(marker));
  CHECK(marker.fields.at("pw") == marker_before.fields.at("pw"));  // other fields kept
  CHECK(marker.fields.at("database") == "tenant_acme");
  CHECK(marker.fields.size() == 3);

  REQUIRE(pg.cluster().databases.contains(acme.database));
  const ObservedDatabase& database = pg.cluster().databases.at(acme.database);
  CHECK(database.owner == database_before.owner);
  CHECK(database.comment == database_before.comment);
  CHECK(pg.contents()[acme.database].applied.size() == contents_before.applied.size());
  CHECK(pg.contents()[acme.database].extensions == contents_before.extensions);
  world.CheckOtherUntouched();
}

TEST_CASE("reclaim Retain from partial states plans only what is missing") {
  World world;
  FakePostgres& pg = world.pg;
  ObservedRole& role = pg.cluster().roles.at(world.acme.role);
  const ReclaimTarget target = Target(ReclaimPolicy::kRetain);

  SUBCASE("already NOLOGIN, no sessions, not yet recorded") {
    role.can_login = false;
    role.sessions = 0;
    CHECK(Kinds(ReclaimPlan(pg, target)) == std::vector<std::string>{"SetRoleMarker"});
  }
  SUBCASE("recorded, then LOGIN given back by hand: closed again") {
    Marker marker = RoleMarker(pg, world.acme.role);
    marker.fields[std::string(kReclaimField)] = std::string(kReclaimRetained);
    role.comment = marker.Render();
    role.sessions = 0;
    CHECK(Kinds(ReclaimPlan(pg, target)) == std::vector<std::string>{"AlterRole"});
  }
  SUBCASE("recorded and NOLOGIN, but a session remains: it is ended") {
    Marker marker = RoleMarker(pg, world.acme.role);
    marker.fields[std::string(kReclaimField)] = std::string(kReclaimRetained);
    role.comment = marker.Render();
    role.can_login = false;
    CHECK(Kinds(ReclaimPlan(pg, target)) == std::vector<std::string>{"TerminateSessions"});
  }
  SUBCASE("the role is gone: nothing to close, the database is left alone") {
    pg.cluster().roles.erase(world.acme.role);
    const Plan plan = ReclaimPlan(pg, target);
    CHECK_MESSAGE(plan.Empty(), Describe(plan));
  }
  ApplyOk(pg, ReclaimPlan(pg, target));
  const Plan again = ReclaimPlan(pg, target);
  CHECK_MESSAGE(again.Empty(), Describe(again));
  CHECK(pg.cluster().databases.contains(world.acme.database));
}

TEST_CASE("reclaim Delete: database and role dropped, sessions ended, the neighbour untouched") {
  World world;
  FakePostgres& pg = world.pg;
  const ReclaimTarget target = Target(ReclaimPolicy::kDelete);

  const Plan plan = ReclaimPlan(pg, target);
  CHECK(Kinds(plan) == std::vector<std::string>{"DropDatabase", "TerminateSessions", "DropRole"});
  ApplyOk(pg, plan);
  const Plan again = ReclaimPlan(pg, target);
  CHECK_MESSAGE(again.Empty(), Describe(again));

  CHECK_FALSE(pg.cluster().databases.contains(world.acme.database));
  CHECK_FALSE(pg.cluster().roles.contains(world.acme.role));
  CHECK_FALSE(pg.contents().contains(world.acme.database));
  world.CheckOtherUntouched();
}

TEST_CASE("reclaim Delete from partial states") {
  World world;
  FakePostgres& pg = world.pg;
  const ReclaimTarget target = Target(ReclaimPolicy::kDelete);

  SUBCASE("the database already dropped: only the role goes") {
    pg.cluster().databases.erase(world.acme.database);
    pg.cluster().roles.at(world.acme.role).sessions = 0;
    CHECK(Kinds(ReclaimPlan(pg, target)) == std::vector<std::string>{"DropRole"});
  }
  SUBCASE("the role already dropped: only the database goes") {
    pg.cluster().roles.erase(world.acme.role);
    CHECK(Kinds(ReclaimPlan(pg, target)) == std::vector<std::string>{"DropDatabase"});
  }
  SUBCASE("a retained workspace later deleted: the retained role is ours all the same") {
    ApplyOk(pg, ReclaimPlan(pg, Target(ReclaimPolicy::kRetain)));
    CHECK(Kinds(ReclaimPlan(pg, target)) == std::vector<std::string>{"DropDatabase", "DropRole"});
  }
  ApplyOk(pg, ReclaimPlan(pg, target));
  CHECK(ReclaimPlan(pg, target).Empty());
  CHECK_FALSE(pg.cluster().databases.contains(world.acme.database));
  CHECK_FALSE(pg.cluster().roles.contains(world.acme.role));
  world.CheckOtherUntouched();
}

TEST_CASE("reclaim of a workspace whose objects are absent plans nothing") {
  FakePostgres pg{CountingSalts()};
  pg.AddRole("postgres", std::nullopt).superuser = true;
  for (const ReclaimPolicy policy : {ReclaimPolicy::kRetain, ReclaimPolicy::kDelete}) {
    CAPTURE(std::string(manifests::ToString(policy)));
    const Plan plan = ReclaimPlan(pg, Target(policy));
    CHECK_MESSAGE(plan.Empty(), Describe(plan));
  }
}

TEST_CASE("reclaim never touches an object that is not marked for the removed workspace") {
  World world;
  FakePostgres& pg = world.pg;
  ObservedDatabase& database = pg.cluster().databases.at(world.acme.database);
  ObservedRole& role = pg.cluster().roles.at(world.acme.role);
  std::string object;

  SUBCASE("database unmarked") {
    database.comment = "";
    object = "database \"tenant_acme\"";
  }
  SUBCASE("database with a comment that is not a marker") {
    database.comment = "billing, do not touch";
    object = "database \"tenant_acme\"";
  }
  SUBCASE("database marked for another workspace") {
    database.comment = Marker{"other", {}}.Render();
    object = "database \"tenant_acme\"";
  }
  SUBCASE("role unmarked") {
    role.comment = "";
    object = "role \"user_acme\"";
  }
  SUBCASE("role marked for another workspace") {
    role.comment = Marker{"other", {{"pw", "0123"}}}.Render();
    object = "role \"user_acme\"";
  }
  // A prefix of the name is not the name.
  SUBCASE("database marked for a workspace whose name extends the removed one's") {
    database.comment = Marker{"acme2", {}}.Render();
    object = "database \"tenant_acme\"";
  }
  for (const ReclaimPolicy policy : {ReclaimPolicy::kRetain, ReclaimPolicy::kDelete}) {
    CAPTURE(std::string(manifests::ToString(policy)));
    const Plan plan = ReclaimPlan(pg, Target(policy));
    REQUIRE(plan.blocked.has_value());
    CHECK(plan.blocked->kind == FailureKind::kStalled);
    CHECK(plan.blocked->reason == "NotOwned");
    CHECK_MESSAGE(plan.blocked->message.find(object) != std::string::npos, plan.blocked->message);
    CHECK(plan.blocked->message.find("\"acme\"") != std::string::npos);
    CHECK(plan.actions.empty());
  }
  CHECK(pg.cluster().databases.contains(world.acme.database));
  CHECK(pg.cluster().roles.at(world.acme.role).can_login);
}

// Issue 11, item 4: a marker proves little (anyone with CREATEROLE writes one), so reclaim never
// drops or locks the operator's own role or a privileged one, nor PostgreSQL's own database.
TEST_CASE("reclaim refuses the operator's role, a privileged role and postgres, even marked") {
  World world;
  FakePostgres& pg = world.pg;
  ObservedRole& role = pg.cluster().roles.at(world.acme.role);
  ReclaimTarget retain = Target(ReclaimPolicy::kRetain);
  ReclaimTarget remove = Target(ReclaimPolicy::kDelete);
  std::string why;
  SUBCASE("the operator's own role") {
    pg.cluster().operator_role = world.acme.role;
    why = "role \"user_acme\" on cluster \"default\" is the operator's own role";
  }
  SUBCASE("a superuser") {
    role.superuser = true;
    why = "is a superuser";
  }
  SUBCASE("CREATEROLE") {
    role.create_role = true;
    why = "has CREATEROLE";
  }
  SUBCASE("REPLICATION") {
    role.replication = true;
    why = "has REPLICATION";
  }
  SUBCASE("BYPASSRLS") {
    role.bypass_rls = true;
    why = "has BYPASSRLS";
  }
  SUBCASE("a member of a privileged role") {
    role.privileged_member = true;
    why = "is a member of a privileged role";
  }
  SUBCASE("database postgres, marked for the workspace") {
    ObservedDatabase postgres_db{"postgres", "postgres", "UTF8", true, true,
                                 Marker{"acme", {}}.Render()};
    pg.cluster().databases["postgres"] = postgres_db;
    retain.database = remove.database = "postgres";
    why = "database \"postgres\" on cluster \"default\" is PostgreSQL's own";
  }
  const ObservedCluster before = Observe(pg);
  for (const ReclaimTarget& target : {retain, remove}) {
    CAPTURE(std::string(manifests::ToString(target.policy)));
    const Plan plan = ReclaimPlan(pg, target);
    REQUIRE(plan.blocked.has_value());
    CHECK(plan.blocked->reason == "NotOwned");
    CHECK_MESSAGE(plan.blocked->message.find(why) != std::string::npos, plan.blocked->message);
    CHECK(plan.actions.empty());
  }
  CHECK(pg.cluster().roles.at(world.acme.role).can_login);
  CHECK(pg.cluster().databases.size() == before.databases.size());
}

TEST_CASE("reclaim converges whichever apply call fails first") {
  for (const ReclaimPolicy policy : {ReclaimPolicy::kRetain, ReclaimPolicy::kDelete}) {
    for (int failing = 1; failing <= 3; ++failing) {
      CAPTURE(std::string(manifests::ToString(policy)));
      CAPTURE(failing);
      World world;
      FakePostgres& pg = world.pg;
      const ReclaimTarget target = Target(policy);
      pg.FailApplyCall(pg.apply_calls() + failing);
      CHECK(Apply(pg, ReclaimPlan(pg, target)).has_value());
      ApplyOk(pg, ReclaimPlan(pg, target));
      CHECK(ReclaimPlan(pg, target).Empty());
      const bool role_left = pg.cluster().roles.contains(world.acme.role);
      CHECK(role_left == (policy == ReclaimPolicy::kRetain));
      CHECK(pg.cluster().databases.contains(world.acme.database) == role_left);
      if (role_left) CHECK_FALSE(pg.cluster().roles.at(world.acme.role).can_login);
    }
  }
}

TEST_CASE("a retained workspace whose manifest returns converges back under the normal plan") {
  World world;
  FakePostgres& pg = world.pg;
  bool suspended = false;
  SUBCASE("passwords visible") {}
  SUBCASE("pg_authid hidden from the operator") {
    pg.cluster().passwords_visible = false;
  }
  SUBCASE("the password rotated meanwhile") {
    manifests::Workspace rotated = Workspace("acme");
    rotated.database.password_rotation = 1;
    world.acme = Desired(rotated);
  }
  SUBCASE("it comes back suspended: the marker is cleared, logins stay closed") {
    manifests::Workspace asleep = Workspace("acme");
    asleep.suspend = true;
    world.acme = Desired(asleep);
    suspended = true;
  }
  ApplyOk(pg, ReclaimPlan(pg, Target(ReclaimPolicy::kRetain)));
  REQUIRE(MarkedRetained(RoleMarker(pg, world.acme.role)));

  const Plan back = MakePlan(world.acme, Observe(pg));
  REQUIRE_MESSAGE(!back.blocked, Describe(back));
  ApplyOk(pg, back);
  const Plan again = MakePlan(world.acme, Observe(pg));
  CHECK_MESSAGE(again.Empty(), Describe(again));

  const ObservedRole& role = pg.cluster().roles.at(world.acme.role);
  CHECK(role.can_login == !suspended);
  const Marker marker = RoleMarker(pg, world.acme.role);
  CHECK(marker.workspace == "acme");
  CHECK_FALSE(marker.fields.contains(std::string(kReclaimField)));
  if (pg.cluster().passwords_visible) CHECK(marker.fields.contains("pw"));
  CHECK(pg.cluster().databases.contains(world.acme.database));
  CHECK(pg.contents()[world.acme.database].applied.size() == 1);  // the data was kept
}

}  // namespace
}  // namespace tmaster::postgres
