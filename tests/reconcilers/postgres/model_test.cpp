// Markers, and how actions are named and described.

#include "reconcilers/postgres/model.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "reconcilers/postgres/desired.hpp"

namespace tmaster::postgres {
namespace {

TEST_CASE("Marker: parse and render") {
  SUBCASE("a role marker") {
    const auto marker = Marker::Parse("tenant-master:workspace=acme;pw=0123abcd");
    REQUIRE(marker.has_value());
    CHECK(marker->workspace == "acme");
    CHECK(marker->fields == std::map<std::string, std::string>{{"pw", "0123abcd"}});
  }
  SUBCASE("a database marker") {
    const auto marker =
        Marker::Parse("tenant-master:workspace=acme;migration=0002;state=00ff00ff00ff00ff");
    REQUIRE(marker.has_value());
    CHECK(marker->workspace == "acme");
    CHECK(marker->fields.at("migration") == "0002");
    CHECK(marker->fields.at("state") == "00ff00ff00ff00ff");
  }
  SUBCASE("the bare marker (docs/architecture.md#postgresql-what-converged-means)") {
    const auto marker = Marker::Parse("tenant-master:workspace=shop-1");
    REQUIRE(marker.has_value());
    CHECK(marker->workspace == "shop-1");
    CHECK(marker->fields.empty());
  }
  SUBCASE("comments that are not ours") {
    CHECK_FALSE(Marker::Parse("").has_value());
    CHECK_FALSE(Marker::Parse("billing database, do not touch").has_value());
    CHECK_FALSE(Marker::Parse(" tenant-master:workspace=acme").has_value());
    CHECK_FALSE(Marker::Parse("tenant-master:workspaces=acme").has_value());
    CHECK_FALSE(Marker::Parse("Tenant-Master:workspace=acme").has_value());
    CHECK_FALSE(Marker::Parse("tenant-master:workspace=").has_value());
    CHECK_FALSE(Marker::Parse("tenant-master:workspace=;pw=1").has_value());
  }
  SUBCASE("unreadable fields are dropped, the owner is kept") {
    const auto marker = Marker::Parse("tenant-master:workspace=acme;junk;=x;state=1;");
    REQUIRE(marker.has_value());
    CHECK(marker->workspace == "acme");
    CHECK(marker->fields == std::map<std::string, std::string>{{"state", "1"}});
  }
  SUBCASE("render is stable whatever the insertion order, and round-trips") {
    Marker a{"acme", {}};
    a.fields["state"] = "abc";
    a.fields["migration"] = "0007";
    Marker b{"acme", {}};
    b.fields["migration"] = "0007";
    b.fields["state"] = "abc";
    CHECK(a.Render() == "tenant-master:workspace=acme;migration=0007;state=abc");
    CHECK(a.Render() == b.Render());
    const auto back = Marker::Parse(a.Render());
    REQUIRE(back.has_value());
    CHECK(back->workspace == a.workspace);
    CHECK(back->fields == a.fields);
    CHECK(Marker{"acme", {}}.Render() == "tenant-master:workspace=acme");
  }
}

migrations::Migration Mig(const std::string& file) {
  return {file.substr(0, 4), file, crypto::Sha256Hex(file),
          std::make_shared<const std::string>("select 1;")};
}

std::vector<Action> EveryAction(const Secret& password) {
  const std::string role_marker =
      Marker{"acme", {{"pw", PasswordMemo(password, "SCRAM-SHA-256$x")}}}.Render();
  return {
      CreateRole{"user_acme", true, 20, password, "acme"},
      AlterRole{"user_acme", false, 5},
      SetRolePassword{"user_acme", password, "acme"},
      SetRoleMarker{"user_acme", role_marker},
      TerminateSessions{"user_acme"},
      CreateDatabase{"tenant_acme", "user_acme", "tenant-master:workspace=acme"},
      AlterDatabaseOwner{"tenant_acme", "user_acme"},
      RevokePublicAccess{"tenant_acme"},
      SetDatabaseMarker{"tenant_acme",
                        "tenant-master:workspace=acme;migration=0002;state=0123456789abcdef"},
      EnsureExtensions{"tenant_acme", {"pg_trgm", "unaccent"}},
      ApplyMigrations{
          "tenant_acme", "user_acme", password, {Mig("0001_init.sql"), Mig("0002_orders.sql")}},
      DropDatabase{"tenant_acme"},
      DropRole{"user_acme"},
  };
}

TEST_CASE("Describe: one line per action, naming the objects, never a secret") {
  const Secret password = DerivePassword(Secret("describe-key"), "default", "user_acme", 0);
  const auto actions = EveryAction(password);
  REQUIRE(actions.size() == std::variant_size_v<Action>);
  std::set<std::size_t> kinds;
  for (const auto& action : actions) {
    kinds.insert(action.index());
    const std::string line = Describe(action);
    CAPTURE(line);
    CHECK(line.find(password.Reveal()) == std::string::npos);
    CHECK(line.find('\n') == std::string::npos);
    // The memo is not a secret, but it means nothing to a reader of a plan.
    CHECK(line.find(PasswordMemo(password, "SCRAM-SHA-256$x")) == std::string::npos);
    const bool names_object = line.find("\"user_acme\"") != std::string::npos ||
                              line.find("\"tenant_acme\"") != std::string::npos;
    CHECK(names_object);
  }
  CHECK(kinds.size() == std::variant_size_v<Action>);

  CHECK(Describe(actions[0]) ==
        "create role \"user_acme\" (LOGIN, CONNECTION LIMIT 20, password: derived)");
  CHECK(Describe(actions[1]) ==
        "alter role \"user_acme\" (NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
        "NOBYPASSRLS, CONNECTION LIMIT 5)");
  CHECK(Describe(actions[3]) ==
        "mark role \"user_acme\" as owned by workspace \"acme\" (password verified)");
  CHECK(Describe(actions[8]) ==
        "mark database \"tenant_acme\" as owned by workspace \"acme\" (migration 0002, state "
        "0123456789abcdef)");
  CHECK(Describe(actions[9]) == "ensure extensions in database \"tenant_acme\": pg_trgm, unaccent");
  CHECK(Describe(actions[10]) ==
        "apply 2 migrations to database \"tenant_acme\" as \"user_acme\": 0001_init.sql, "
        "0002_orders.sql");
  CHECK(Describe(ApplyMigrations{"d", "r", password, {Mig("0001_init.sql")}}) ==
        "apply 1 migration to database \"d\" as \"r\": 0001_init.sql");
  CHECK(Describe(actions[11]) == "drop database \"tenant_acme\" (WITH FORCE: open sessions end)");
  CHECK(Describe(actions[12]) == "drop role \"user_acme\"");
  CHECK(Describe(SetRoleMarker{"user_acme", "tenant-master:workspace=acme;reclaim=retained"}) ==
        "mark role \"user_acme\" as owned by workspace \"acme\" (retained after removal)");
}

TEST_CASE("KindOf names each alternative; IsInDatabase picks the in-database ones") {
  const auto actions = EveryAction(Secret("pw"));
  const std::vector<std::string> expected = {
      "CreateRole",        "AlterRole",        "SetRolePassword",    "SetRoleMarker",
      "TerminateSessions", "CreateDatabase",   "AlterDatabaseOwner", "RevokePublicAccess",
      "SetDatabaseMarker", "EnsureExtensions", "ApplyMigrations",    "DropDatabase",
      "DropRole"};
  REQUIRE(actions.size() == expected.size());
  for (std::size_t i = 0; i < actions.size(); ++i) {
    CAPTURE(i);
    CHECK(KindOf(actions[i]) == expected[i]);
    const bool in_db = expected[i] == "EnsureExtensions" || expected[i] == "ApplyMigrations";
    CHECK(IsInDatabase(actions[i]) == in_db);
  }
}

TEST_CASE("Plan::Empty") {
  Plan plan;
  CHECK(plan.Empty());
  plan.blocked = Failure::Stalled("RoleNotOwned", "x");
  CHECK_FALSE(plan.Empty());
  plan.blocked.reset();
  plan.actions.emplace_back(TerminateSessions{"r"});
  CHECK_FALSE(plan.Empty());
}

}  // namespace
}  // namespace tmaster::postgres
