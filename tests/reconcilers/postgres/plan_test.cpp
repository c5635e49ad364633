// The plan table (one SUBCASE per row, docs/architecture.md#tests): every action and every drift of
// docs/architecture.md#postgresql-what-converged-means, planned against a hand-built observation.

#include <doctest/doctest.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "reconcilers/postgres/model.hpp"

namespace tmaster::postgres {
namespace {

migrations::Migration Mig(const std::string& file, const std::string& sql) {
  return {file.substr(0, 4), file, crypto::Sha256Hex(sql),
          std::make_shared<const std::string>(sql)};
}

const Secret kMasterKey("plan-test-master-key");

Secret PasswordOf(int rotation) {
  return DerivePassword(kMasterKey, "default", "user_acme", rotation);
}

// PBKDF2 is the slow part of a row; each distinct (password, salt) is computed once.
std::string Verifier(const std::string& password, const std::string& salt = "0123456789abcdef") {
  static std::map<std::string, std::string> cache;
  const std::string key = password + "\n" + salt;
  auto it = cache.find(key);
  if (it == cache.end()) {
    it = cache.emplace(key, MakeScramVerifier(Secret(password), salt, 4096)).first;
  }
  return it->second;
}

DesiredTenant Desired() {
  DesiredTenant d;
  d.workspace = "acme";
  d.product = "erp";
  d.cluster = "default";
  d.database = "tenant_acme";
  d.role = "user_acme";
  d.connection_limit = 20;
  d.password = PasswordOf(0);
  d.extensions = {"pg_trgm", "unaccent"};
  d.migrations = {Mig("0001_init.sql", "create table a();"),
                  Mig("0002_orders.sql", "create table orders();")};
  d.state_digest = "0123456789abcdef";
  d.marker_key = MarkerKey(kMasterKey);
  return d;
}

std::string RoleMarker(const std::string& workspace, const std::optional<std::string>& memo) {
  Marker marker{workspace, {}};
  if (memo) marker.fields["pw"] = *memo;
  return marker.Render();
}

// The database marker a pass of Desired() writes once the in-database steps reached `state`:
// the identity it converged with, signed with the key derived from the master key.
Marker UnsignedDatabaseMarker(const std::string& workspace, const std::string& state) {
  return Marker{workspace,
                {{"cluster", "default"},
                 {"product", "erp"},
                 {"owner", "user_acme"},
                 {"migration", "0002"},
                 {"state", state}}};
}
std::string DatabaseMarker(const std::string& workspace, const std::string& state) {
  return SignMarker(UnsignedDatabaseMarker(workspace, state), MarkerKey(kMasterKey)).Render();
}

// What the catalog shows once `d` is reached.
ObservedCluster Converged(const DesiredTenant& d) {
  ObservedCluster o;
  ObservedRole role;
  role.name = d.role;
  role.can_login = !d.suspend;
  role.connection_limit = d.connection_limit;
  role.verifier = Verifier(d.password.Reveal());
  role.comment = RoleMarker(d.workspace, PasswordMemo(d.password, *role.verifier));
  o.roles[d.role] = role;
  o.roles["postgres"] =
      ObservedRole{"postgres", true, true, true, true, true, true, -1, std::nullopt, "", 1};
  o.databases[d.database] = {d.database, d.role, "UTF8",
                             false,      false,  DatabaseMarker(d.workspace, d.state_digest)};
  return o;
}

template <class T>
const T& Nth(const Plan& plan, std::size_t i) {
  REQUIRE(i < plan.actions.size());
  REQUIRE(std::holds_alternative<T>(plan.actions[i]));
  return std::get<T>(plan.actions[i]);
}

std::vector<std::string> Kinds(const Plan& plan) {
  std::vector<std::string> kinds;
  for (const auto& action : plan.actions) kinds.push_back(KindOf(action));
  return kinds;
}

Marker ParsedMarker(const std::string& text) {
  const auto marker = Marker::Parse(text);
  REQUIRE(marker.has_value());
  return *marker;
}

void CheckFinalDatabaseMarker(const Plan& plan, const DesiredTenant& d,
                              const std::string& migration) {
  REQUIRE_FALSE(plan.actions.empty());
  const auto& last = Nth<SetDatabaseMarker>(plan, plan.actions.size() - 1);
  CHECK(last.database == d.database);
  const Marker marker = ParsedMarker(last.marker);
  CHECK(marker.workspace == d.workspace);
  CHECK(marker.fields.at("state") == d.state_digest);
  CHECK(marker.fields.at("migration") == migration);
  // The identity it converged with, and a signature the tenant cannot forge.
  CHECK(marker.fields.at("cluster") == d.cluster);
  CHECK(marker.fields.at("product") == d.product);
  CHECK(marker.fields.at("owner") == d.role);
  CHECK(marker.fields.contains("ext") == !d.extensions.empty());
  CHECK(MarkerSignatureValid(marker, d.marker_key));
  CHECK_FALSE(MarkerSignatureValid(marker, MarkerKey(Secret("another-master-key"))));
}

void CheckInDatabaseSteps(const Plan& plan, const DesiredTenant& d) {
  bool saw_extensions = false;
  bool saw_migrations = false;
  for (const auto& action : plan.actions) {
    if (const auto* e = std::get_if<EnsureExtensions>(&action)) {
      saw_extensions = true;
      CHECK(e->database == d.database);
      CHECK(e->extensions == d.extensions);
    }
    if (const auto* m = std::get_if<ApplyMigrations>(&action)) {
      saw_migrations = true;
      CHECK(m->database == d.database);
      CHECK(m->role == d.role);
      CHECK(m->password == d.password);
      REQUIRE(m->migrations.size() == d.migrations.size());
      for (std::size_t i = 0; i < d.migrations.size(); ++i) {
        CHECK(m->migrations[i].file == d.migrations[i].file);
      }
    }
  }
  CHECK(saw_extensions == !d.extensions.empty());
  // Without migrations the ledger is still read when the database already existed.
  if (!d.migrations.empty()) CHECK(saw_migrations);
  CheckFinalDatabaseMarker(plan, d, d.migrations.empty() ? "none" : d.migrations.back().version);
}

void CheckAlterRole(const Plan& plan, const DesiredTenant& d, bool login) {
  const auto& alter = Nth<AlterRole>(plan, 0);
  CHECK(alter.role == d.role);
  CHECK(alter.login == login);
  CHECK(alter.connection_limit == d.connection_limit);
}

struct Row {
  using Desire = std::function<void(DesiredTenant&)>;
  using Observe = std::function<void(ObservedCluster&, const DesiredTenant&)>;
  using Check = std::function<void(const Plan&, const DesiredTenant&)>;

  Row(const char* name_, Desire desire_, Observe observe_, std::vector<std::string> kinds_,
      std::string blocked_, Check check_, PlanOptions options_ = {})
      : name(name_),
        desire(std::move(desire_)),
        observe(std::move(observe_)),
        kinds(std::move(kinds_)),
        blocked(std::move(blocked_)),
        check(std::move(check_)),
        options(options_) {}

  const char* name;
  Desire desire;                   ///< how the spec differs from Desired()
  Observe observe;                 ///< how the catalog differs from Converged(Desired())
  std::vector<std::string> kinds;  ///< the expected actions, in order
  std::string blocked;             ///< the reason; empty when the plan is not blocked
  Check check;                     ///< details of the actions
  PlanOptions options;
};

void Keep(DesiredTenant&) {}
void Same(ObservedCluster&, const DesiredTenant&) {}
void NoCheck(const Plan&, const DesiredTenant&) {}

// The blocked plan's message contains each of `parts`.
Row::Check Says(std::vector<std::string> parts) {
  return [parts = std::move(parts)](const Plan& p, const DesiredTenant&) {
    REQUIRE(p.blocked.has_value());
    for (const auto& part : parts) {
      CAPTURE(part);
      CHECK(p.blocked->message.find(part) != std::string::npos);
    }
  };
}

// An adopting spec whose role and database were made by hand (no markers).
void Adopting(DesiredTenant& d) { d.adopt = true; }
void Unmarked(ObservedCluster& o, const DesiredTenant&) {
  o.roles.at("user_acme").comment = "";
  o.databases.at("tenant_acme").comment = "";
  o.databases.at("tenant_acme").owner = "postgres";
}
// Adopting an existing database named `name` (the role is ours).
Row::Desire AdoptingDatabase(std::string name) {
  return [name = std::move(name)](DesiredTenant& d) {
    d.adopt = true;
    d.database = name;
  };
}
Row::Observe HandMadeDatabase(std::string name) {
  return [name = std::move(name)](ObservedCluster& o, const DesiredTenant&) {
    o.databases.clear();
    o.databases[name] = {name, "postgres", "UTF8", true, true, ""};
  };
}

ObservedRole& Role(ObservedCluster& o) { return o.roles.at("user_acme"); }
ObservedDatabase& Db(ObservedCluster& o) { return o.databases.at("tenant_acme"); }

const std::vector<std::string> kInDb = {"EnsureExtensions", "ApplyMigrations", "SetDatabaseMarker"};

std::vector<std::string> Then(std::vector<std::string> head, const std::vector<std::string>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

std::vector<Row> Rows() {
  return {
      {"fresh: nothing observed", Keep,
       [](ObservedCluster& o, const DesiredTenant&) {
         o.roles.erase("user_acme");
         o.databases.clear();
       },
       Then({"CreateRole", "CreateDatabase"}, kInDb), "",
       [](const Plan& p, const DesiredTenant& d) {
         const auto& create = Nth<CreateRole>(p, 0);
         CHECK(create.role == "user_acme");
         CHECK(create.login);
         CHECK(create.connection_limit == 20);
         CHECK(create.password == d.password);
         CHECK(create.workspace == "acme");
         const auto& db = Nth<CreateDatabase>(p, 1);
         CHECK(db.database == "tenant_acme");
         CHECK(db.owner == "user_acme");
         const Marker marker = ParsedMarker(db.marker);
         CHECK(marker.workspace == "acme");
         CHECK_FALSE(marker.fields.contains("state"));  // not reached until the in-db steps ran
         CheckInDatabaseSteps(p, d);
       }},
      {"converged", Keep, Same, {}, "", NoCheck},
      {"converged, with sessions open",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).sessions = 4; },
       {},
       "",
       NoCheck},
      {"drift: login lost",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).can_login = false; },
       {"AlterRole"},
       "",
       [](const Plan& p, const DesiredTenant& d) { CheckAlterRole(p, d, true); }},
      {"drift: superuser granted",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).superuser = true; },
       {"AlterRole"},
       "",
       [](const Plan& p, const DesiredTenant& d) { CheckAlterRole(p, d, true); }},
      {"drift: createdb granted",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).create_db = true; },
       {"AlterRole"},
       "",
       NoCheck},
      {"drift: createrole granted",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).create_role = true; },
       {"AlterRole"},
       "",
       NoCheck},
      {"drift: replication granted",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).replication = true; },
       {"AlterRole"},
       "",
       NoCheck},
      {"drift: bypassrls granted",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).bypass_rls = true; },
       {"AlterRole"},
       "",
       NoCheck},
      {"drift: connection limit changed",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).connection_limit = 5; },
       {"AlterRole"},
       "",
       [](const Plan& p, const DesiredTenant& d) { CheckAlterRole(p, d, true); }},
      {"spec: connection limit changed",
       [](DesiredTenant& d) { d.connection_limit = -1; },
       Same,
       {"AlterRole"},
       "",
       [](const Plan& p, const DesiredTenant&) {
         CHECK(Nth<AlterRole>(p, 0).connection_limit == -1);
       }},
      {"drift: password changed (verifier of another password, stale memo kept)",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).verifier = Verifier("hunter2"); },
       {"SetRolePassword"},
       "",
       [](const Plan& p, const DesiredTenant& d) {
         const auto& set = Nth<SetRolePassword>(p, 0);
         CHECK(set.role == "user_acme");
         CHECK(set.password == d.password);
         CHECK(set.workspace == "acme");
       }},
      {"spec: password rotated",
       [](DesiredTenant& d) { d.password = PasswordOf(1); },
       Same,
       {"SetRolePassword"},
       "",
       [](const Plan& p, const DesiredTenant&) {
         CHECK(Nth<SetRolePassword>(p, 0).password == PasswordOf(1));
       }},
      {"memo missing but verifier matches: SetRoleMarker only",
       Keep,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Role(o).comment = RoleMarker(d.workspace, std::nullopt);
       },
       {"SetRoleMarker"},
       "",
       [](const Plan& p, const DesiredTenant& d) {
         const auto& mark = Nth<SetRoleMarker>(p, 0);
         CHECK(mark.role == "user_acme");
         const Marker marker = ParsedMarker(mark.marker);
         CHECK(marker.workspace == "acme");
         CHECK(marker.fields.at("pw") == PasswordMemo(d.password, Verifier(d.password.Reveal())));
       }},
      {"same password set again by hand (new salt): SetRoleMarker only",
       Keep,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Role(o).verifier = Verifier(d.password.Reveal(), "another-salt-16b");
       },
       {"SetRoleMarker"},
       "",
       [](const Plan& p, const DesiredTenant& d) {
         const Marker marker = ParsedMarker(Nth<SetRoleMarker>(p, 0).marker);
         CHECK(marker.fields.at("pw") ==
               PasswordMemo(d.password, Verifier(d.password.Reveal(), "another-salt-16b")));
       }},
      {"back after a Retain reclaim: LOGIN again, the marker loses reclaim and keeps pw",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) {
         Role(o).can_login = false;
         Marker marker = ParsedMarker(Role(o).comment);
         marker.fields["reclaim"] = "retained";
         Role(o).comment = marker.Render();
       },
       {"AlterRole", "SetRoleMarker"},
       "",
       [](const Plan& p, const DesiredTenant& d) {
         CheckAlterRole(p, d, true);
         const Marker marker = ParsedMarker(Nth<SetRoleMarker>(p, 1).marker);
         CHECK(marker.workspace == "acme");
         CHECK(marker.fields ==
               std::map<std::string, std::string>{
                   {"database", "tenant_acme"},
                   {"pw", PasswordMemo(d.password, Verifier(d.password.Reveal()))}});
       }},
      {"back after a Retain reclaim, suspended: logins stay closed, the marker is cleared",
       [](DesiredTenant& d) { d.suspend = true; },
       [](ObservedCluster& o, const DesiredTenant&) {
         Role(o).can_login = false;
         Marker marker = ParsedMarker(Role(o).comment);
         marker.fields["reclaim"] = "retained";
         Role(o).comment = marker.Render();
       },
       {"SetRoleMarker"},
       "",
       [](const Plan& p, const DesiredTenant&) {
         CHECK_FALSE(ParsedMarker(Nth<SetRoleMarker>(p, 0).marker).fields.contains("reclaim"));
       }},
      {"back after a Retain reclaim with a new password: SetRolePassword rewrites the marker",
       [](DesiredTenant& d) { d.password = PasswordOf(1); },
       [](ObservedCluster& o, const DesiredTenant&) {
         Marker marker = ParsedMarker(Role(o).comment);
         marker.fields["reclaim"] = "retained";
         Role(o).comment = marker.Render();
       },
       {"SetRolePassword"},
       "",
       NoCheck},
      {"back after a Retain reclaim, memo missing: one SetRoleMarker, without reclaim",
       Keep,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Role(o).comment = Marker{d.workspace, {{"reclaim", "retained"}}}.Render();
       },
       {"SetRoleMarker"},
       "",
       [](const Plan& p, const DesiredTenant& d) {
         const Marker marker = ParsedMarker(Nth<SetRoleMarker>(p, 0).marker);
         CHECK(marker.fields ==
               std::map<std::string, std::string>{
                   {"database", "tenant_acme"},
                   {"pw", PasswordMemo(d.password, Verifier(d.password.Reveal()))}});
       }},
      {"drift: md5 password",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) {
         Role(o).verifier = "md5" + crypto::Hex(crypto::Sha256("x")).substr(0, 32);
       },
       {"SetRolePassword"},
       "",
       NoCheck},
      {"drift: password removed",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).verifier.reset(); },
       {"SetRolePassword"},
       "",
       NoCheck},
      {"passwords not visible: no password drift detection",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) {
         o.passwords_visible = false;
         for (auto& [name, role] : o.roles) role.verifier.reset();
       },
       {},
       "",
       NoCheck},
      {"passwords not visible, stale memo: still nothing",
       [](DesiredTenant& d) { d.password = PasswordOf(7); },
       [](ObservedCluster& o, const DesiredTenant&) {
         o.passwords_visible = false;
         Role(o).verifier.reset();
       },
       {},
       "",
       NoCheck},
      {"drift: database owner changed",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Db(o).owner = "postgres"; },
       {"AlterDatabaseOwner"},
       "",
       [](const Plan& p, const DesiredTenant&) {
         const auto& alter = Nth<AlterDatabaseOwner>(p, 0);
         CHECK(alter.database == "tenant_acme");
         CHECK(alter.owner == "user_acme");
       }},
      {"drift: PUBLIC CONNECT granted",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Db(o).public_connect = true; },
       {"RevokePublicAccess"},
       "",
       NoCheck},
      {"drift: PUBLIC TEMPORARY granted",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Db(o).public_temporary = true; },
       {"RevokePublicAccess"},
       "",
       NoCheck},
      {"drift: database dropped, role kept", Keep,
       [](ObservedCluster& o, const DesiredTenant&) { o.databases.clear(); },
       Then({"CreateDatabase"}, kInDb), "",
       [](const Plan& p, const DesiredTenant& d) { CheckInDatabaseSteps(p, d); }},
      {"drift: role dropped, database kept (reassigned)",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) {
         o.roles.erase("user_acme");
         Db(o).owner = "postgres";
       },
       {"CreateRole", "AlterDatabaseOwner"},
       "",
       NoCheck},
      {"database marker state stale: in-database steps", Keep,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Db(o).comment = DatabaseMarker(d.workspace, "fedcba9876543210");
       },
       kInDb, "", [](const Plan& p, const DesiredTenant& d) { CheckInDatabaseSteps(p, d); }},
      {"database marker without state: in-database steps", Keep,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Db(o).comment = Marker{d.workspace, {}}.Render();
       },
       kInDb, "", NoCheck},
      {"spec: migration added",
       [](DesiredTenant& d) {
         d.migrations.push_back(Mig("0003_invoices.sql", "create table invoices();"));
         d.state_digest = "1111111111111111";
       },
       Same, kInDb, "",
       [](const Plan& p, const DesiredTenant& d) {
         CheckInDatabaseSteps(p, d);
         CheckFinalDatabaseMarker(p, d, "0003");
       }},
      // Issue 11, item 10: the product's last migration deleted. Its database still records it,
      // so the ledger is read (ApplyMigrations of nothing stalls MigrationMissing) before the
      // marker may say `migration=none`.
      {"spec: no extensions, no migrations left, stale state: the ledger is read, then the marker",
       [](DesiredTenant& d) {
         d.extensions.clear();
         d.migrations.clear();
         d.state_digest = "2222222222222222";
       },
       Same,
       {"ApplyMigrations", "SetDatabaseMarker"},
       "",
       [](const Plan& p, const DesiredTenant& d) {
         const auto& apply = Nth<ApplyMigrations>(p, 0);
         CHECK(apply.migrations.empty());
         CHECK(apply.role == d.role);
         CHECK_FALSE(apply.ignore_missing);
         CheckFinalDatabaseMarker(p, d, "none");
       }},
      {"spec: one migration of two deleted: ApplyMigrations of the one left",
       [](DesiredTenant& d) {
         d.migrations.pop_back();
         d.state_digest = "2323232323232323";
       },
       Same, kInDb, "",
       [](const Plan& p, const DesiredTenant& d) {
         CHECK(Nth<ApplyMigrations>(p, 1).migrations.size() == 1);
         CheckFinalDatabaseMarker(p, d, "0001");
       }},
      {"product ignoreMissingMigrations: carried to ApplyMigrations",
       [](DesiredTenant& d) {
         d.migrations.clear();
         d.ignore_missing_migrations = true;
         d.state_digest = "2424242424242424";
       },
       Same,
       {"EnsureExtensions", "ApplyMigrations", "SetDatabaseMarker"},
       "",
       [](const Plan& p, const DesiredTenant&) { CHECK(Nth<ApplyMigrations>(p, 1).ignore_missing); }},
      {"fresh, product without migrations: no ledger to read in a database made now",
       [](DesiredTenant& d) { d.migrations.clear(); },
       [](ObservedCluster& o, const DesiredTenant&) {
         o.roles.erase("user_acme");
         o.databases.clear();
       },
       {"CreateRole", "CreateDatabase", "EnsureExtensions", "SetDatabaseMarker"},
       "",
       [](const Plan& p, const DesiredTenant& d) {
         CHECK(Nth<EnsureExtensions>(p, 2).role == d.role);
         CHECK(Nth<CreateRole>(p, 0).marker_fields ==
               std::map<std::string, std::string>{{"database", "tenant_acme"}});
         // The claim records the identity and is signed, but has no state: not trusted yet.
         const Marker claim = ParsedMarker(Nth<CreateDatabase>(p, 1).marker);
         CHECK(claim.fields.at("owner") == "user_acme");
         CHECK(claim.fields.at("product") == "erp");
         CHECK(claim.fields.at("cluster") == "default");
         CHECK(MarkerSignatureValid(claim, d.marker_key));
       }},
      // Issue 11, item 8: the tenant owns its database and can COMMENT ON it.
      {"forged marker: the desired digest without a signature: in-database steps", Keep,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Db(o).comment = UnsignedDatabaseMarker(d.workspace, d.state_digest).Render();
       },
       kInDb, "", [](const Plan& p, const DesiredTenant& d) { CheckInDatabaseSteps(p, d); }},
      {"forged marker: a stale signed marker whose state= was rewritten to the desired digest",
       Keep,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Marker marker = ParsedMarker(DatabaseMarker(d.workspace, "fedcba9876543210"));
         marker.fields["state"] = d.state_digest;
         Db(o).comment = marker.Render();
       },
       kInDb, "", [](const Plan& p, const DesiredTenant& d) { CheckInDatabaseSteps(p, d); }},
      {"forged marker: signed with a key of another master key", Keep,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Db(o).comment = SignMarker(UnsignedDatabaseMarker(d.workspace, d.state_digest),
                                    MarkerKey(Secret("not-our-master-key")))
                             .Render();
       },
       kInDb, "", NoCheck},
      {"deep: in-database steps although the state matches", Keep, Same, kInDb, "",
       [](const Plan& p, const DesiredTenant& d) { CheckInDatabaseSteps(p, d); },
       PlanOptions{.deep = true}},
      {"suspend: NOLOGIN and sessions terminated, no in-database steps",
       [](DesiredTenant& d) {
         d.suspend = true;
         d.state_digest = "3333333333333333";
       },
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).sessions = 3; },
       {"AlterRole", "TerminateSessions"},
       "",
       [](const Plan& p, const DesiredTenant& d) {
         CheckAlterRole(p, d, false);
         CHECK(Nth<TerminateSessions>(p, 1).role == "user_acme");
       }},
      {"suspend without open sessions",
       [](DesiredTenant& d) { d.suspend = true; },
       Same,
       {"AlterRole"},
       "",
       [](const Plan& p, const DesiredTenant& d) { CheckAlterRole(p, d, false); }},
      {"suspended and converged, even deep",
       [](DesiredTenant& d) { d.suspend = true; },
       [](ObservedCluster& o, const DesiredTenant& d) {
         Role(o).can_login = false;
         Db(o).comment = DatabaseMarker(d.workspace, "stale");
       },
       {},
       "",
       NoCheck,
       PlanOptions{.deep = true}},
      {"suspended from the start",
       [](DesiredTenant& d) { d.suspend = true; },
       [](ObservedCluster& o, const DesiredTenant&) {
         o.roles.erase("user_acme");
         o.databases.clear();
       },
       {"CreateRole", "CreateDatabase"},
       "",
       [](const Plan& p, const DesiredTenant&) { CHECK_FALSE(Nth<CreateRole>(p, 0).login); }},
      {"resume: LOGIN restored",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).can_login = false; },
       {"AlterRole"},
       "",
       [](const Plan& p, const DesiredTenant& d) { CheckAlterRole(p, d, true); }},
      {"resume after the spec changed: LOGIN, then in-database steps",
       [](DesiredTenant& d) { d.state_digest = "4444444444444444"; },
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).can_login = false; },
       Then({"AlterRole"}, kInDb), "", NoCheck},
      {"adopt: unmarked role (same password) and database (default grants)",
       [](DesiredTenant& d) { d.adopt = true; },
       [](ObservedCluster& o, const DesiredTenant&) {
         Role(o).comment = "";
         Db(o).comment = "the old billing database";
         Db(o).public_connect = Db(o).public_temporary = true;
       },
       Then({"SetRoleMarker", "SetDatabaseMarker", "RevokePublicAccess"}, kInDb), "",
       [](const Plan& p, const DesiredTenant& d) {
         const Marker role = ParsedMarker(Nth<SetRoleMarker>(p, 0).marker);
         CHECK(role.workspace == "acme");
         CHECK(role.fields.at("pw") == PasswordMemo(d.password, Verifier(d.password.Reveal())));
         const Marker claim = ParsedMarker(Nth<SetDatabaseMarker>(p, 1).marker);
         CHECK(claim.workspace == "acme");
         CHECK_FALSE(claim.fields.contains("state"));
         CheckInDatabaseSteps(p, d);
       }},
      {"adopt: other password, other owner, other connection limit",
       [](DesiredTenant& d) { d.adopt = true; },
       [](ObservedCluster& o, const DesiredTenant&) {
         Role(o).comment = "";
         Role(o).connection_limit = 3;
         Role(o).verifier = Verifier("legacy");
         Db(o).comment = "";
         Db(o).owner = "postgres";
       },
       Then({"AlterRole", "SetRolePassword", "AlterDatabaseOwner", "SetDatabaseMarker"}, kInDb), "",
       [](const Plan& p, const DesiredTenant&) {
         CHECK(Nth<SetRolePassword>(p, 1).marker_fields ==
               std::map<std::string, std::string>{{"database", "tenant_acme"}});
       }},
      {"adopt within the cluster's adoptPattern",
       [](DesiredTenant& d) {
         d.adopt = true;
         d.adopt_policy.pattern = "*_acme";
       },
       [](ObservedCluster& o, const DesiredTenant&) {
         Role(o).comment = "";
         Db(o).comment = "";
       },
       Then({"SetRoleMarker", "SetDatabaseMarker"}, kInDb), "", NoCheck},
      {"adopt: role missing, unmarked database", [](DesiredTenant& d) { d.adopt = true; },
       [](ObservedCluster& o, const DesiredTenant&) {
         o.roles.erase("user_acme");
         Db(o).comment = "";
         Db(o).owner = "postgres";
       },
       Then({"CreateRole", "AlterDatabaseOwner", "SetDatabaseMarker"}, kInDb), "", NoCheck},
      {"adopt with passwords not visible: the unverifiable password is set",
       [](DesiredTenant& d) { d.adopt = true; },
       [](ObservedCluster& o, const DesiredTenant&) {
         o.passwords_visible = false;
         Role(o).verifier.reset();
         Role(o).comment = "";
       },
       {"SetRolePassword"},
       "",
       [](const Plan& p, const DesiredTenant& d) {
         const auto& set = Nth<SetRolePassword>(p, 0);
         CHECK(set.password == d.password);
         CHECK(set.workspace == "acme");
       }},
      {"adopt on a converged tenant changes nothing",
       [](DesiredTenant& d) { d.adopt = true; },
       Same,
       {},
       "",
       NoCheck},
      {"a role we made, marked for this workspace, later made superuser: reset, not refused",
       [](DesiredTenant& d) { d.adopt = true; },
       [](ObservedCluster& o, const DesiredTenant&) {
         Role(o).superuser = true;
         Role(o).create_role = true;
       },
       {"AlterRole"},
       "",
       NoCheck},
      {"blocked: unmarked role",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Role(o).comment = "created by hand"; },
       {},
       "RoleNotOwned",
       [](const Plan& p, const DesiredTenant&) {
         CHECK(p.blocked->message ==
               "role \"user_acme\" exists on cluster \"default\" without a tenant-master marker; "
               "set spec.database.adopt: true to take it over");
       }},
      {"unmarked database owned by our marked role: an interrupted create, claimed", Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Db(o).comment = ""; },
       Then({"SetDatabaseMarker"}, kInDb), "", NoCheck},
      {"blocked: unmarked database",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) {
         Db(o).comment = "";
         Db(o).owner = "postgres";
       },
       {},
       "DatabaseNotOwned",
       [](const Plan& p, const DesiredTenant&) {
         CHECK(p.blocked->message ==
               "database \"tenant_acme\" exists on cluster \"default\" without a tenant-master "
               "marker; set spec.database.adopt: true to take it over");
       }},
      {"blocked: malformed marker counts as no marker",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) {
         Role(o).comment = "tenant-master:workspace=";
       },
       {},
       "RoleNotOwned",
       NoCheck},
      {"blocked: role of another workspace, even with adopt",
       [](DesiredTenant& d) { d.adopt = true; },
       [](ObservedCluster& o, const DesiredTenant&) {
         Role(o).comment = RoleMarker("globex", std::nullopt);
       },
       {},
       "OwnedByOtherWorkspace",
       [](const Plan& p, const DesiredTenant&) {
         CHECK(p.blocked->message.find("role \"user_acme\"") != std::string::npos);
         CHECK(p.blocked->message.find("\"globex\"") != std::string::npos);
       }},
      {"blocked: database of another workspace, even with adopt",
       [](DesiredTenant& d) { d.adopt = true; },
       [](ObservedCluster& o, const DesiredTenant&) {
         Db(o).comment = DatabaseMarker("globex", "0123456789abcdef");
       },
       {},
       "OwnedByOtherWorkspace",
       [](const Plan& p, const DesiredTenant&) {
         CHECK(p.blocked->message.find("database \"tenant_acme\"") != std::string::npos);
         CHECK(p.blocked->message.find("\"globex\"") != std::string::npos);
       }},
      {"blocked: database encoding not UTF8",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { Db(o).encoding = "LATIN1"; },
       {},
       "DatabaseEncodingMismatch",
       [](const Plan& p, const DesiredTenant&) {
         CHECK(p.blocked->message.find("database \"tenant_acme\"") != std::string::npos);
         CHECK(p.blocked->message.find("LATIN1") != std::string::npos);
       }},
      {"blocked: encoding is reported before a missing marker",
       [](DesiredTenant& d) { d.adopt = true; },
       [](ObservedCluster& o, const DesiredTenant&) {
         Db(o).encoding = "SQL_ASCII";
         Db(o).comment = "";
       },
       {},
       "DatabaseEncodingMismatch",
       NoCheck},
      // Issue 11, item 4: adopt with limits. Each refusal plans nothing at all.
      {"adopt refused: a superuser",
       Adopting,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Unmarked(o, d);
         Role(o).superuser = true;
       },
       {},
       "AdoptRefused",
       Says({"role \"user_acme\" on cluster \"default\" is a superuser; tenant-master never "
             "adopts a privileged role (workspace \"acme\")"})},
      {"adopt refused: CREATEROLE",
       Adopting,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Unmarked(o, d);
         Role(o).create_role = true;
       },
       {},
       "AdoptRefused",
       Says({"role \"user_acme\"", "has CREATEROLE"})},
      {"adopt refused: REPLICATION",
       Adopting,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Unmarked(o, d);
         Role(o).replication = true;
       },
       {},
       "AdoptRefused",
       Says({"has REPLICATION"})},
      {"adopt refused: BYPASSRLS",
       Adopting,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Unmarked(o, d);
         Role(o).bypass_rls = true;
       },
       {},
       "AdoptRefused",
       Says({"has BYPASSRLS"})},
      {"adopt refused: a member of a privileged role",
       Adopting,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Unmarked(o, d);
         Role(o).privileged_member = true;
       },
       {},
       "AdoptRefused",
       Says({"is a member of a privileged role"})},
      {"adopt refused: the operator's own role",
       Adopting,
       [](ObservedCluster& o, const DesiredTenant& d) {
         Unmarked(o, d);
         o.operator_role = "user_acme";
       },
       {},
       "AdoptRefused",
       Says({"role \"user_acme\"", "is the operator's own role"})},
      {"refused without adopt: the operator's own role, even marked for this workspace",
       Keep,
       [](ObservedCluster& o, const DesiredTenant&) { o.operator_role = "user_acme"; },
       {},
       "AdoptRefused",
       Says({"is the operator's own role"})},
      {"adopt refused: database postgres",
       AdoptingDatabase("postgres"),
       HandMadeDatabase("postgres"),
       {},
       "AdoptRefused",
       Says({"database \"postgres\"", "maintenance database"})},
      {"adopt refused: database template1",
       AdoptingDatabase("template1"),
       HandMadeDatabase("template1"),
       {},
       "AdoptRefused",
       Says({"database \"template1\"", "template database"})},
      {"adopt refused: any template* database",
       AdoptingDatabase("template_erp"),
       HandMadeDatabase("template_erp"),
       {},
       "AdoptRefused",
       Says({"database \"template_erp\"", "named like a template database"})},
      {"adopt refused: the store database",
       AdoptingDatabase("tenant_master"),
       HandMadeDatabase("tenant_master"),
       {},
       "AdoptRefused",
       Says({"database \"tenant_master\"", "the operator's store database"})},
      {"adopt refused: the store database under the name the store's DSN gives",
       [](DesiredTenant& d) {
         d.adopt = true;
         d.database = "ops_store";
         d.adopt_policy.store_database = "ops_store";
       },
       HandMadeDatabase("ops_store"),
       {},
       "AdoptRefused",
       Says({"database \"ops_store\"", "store database"})},
      {"adopt refused: a role outside the cluster's adoptPattern",
       [](DesiredTenant& d) {
         d.adopt = true;
         d.adopt_policy.pattern = "legacy_*";
       },
       Unmarked,
       {},
       "AdoptRefused",
       Says({"role \"user_acme\"", "does not match the cluster's adoptPattern \"legacy_*\""})},
      {"adopt refused: a database outside the cluster's adoptPattern",
       [](DesiredTenant& d) {
         d.adopt = true;
         d.adopt_policy.pattern = "user_*";
       },
       Unmarked,
       {},
       "AdoptRefused",
       Says({"database \"tenant_acme\"", "adoptPattern \"user_*\""})},
      // Issue 11, item 9: identity is immutable once converged; the plan touches nothing.
      {"ImmutableField: spec.database.name renamed",
       [](DesiredTenant& d) { d.database = "tenant_acme_v2"; },
       Same,
       {},
       "ImmutableField",
       Says({"workspace \"acme\": spec.database.name was \"tenant_acme\" and is now "
             "\"tenant_acme_v2\"",
             "database \"tenant_acme\" on cluster \"default\" holds its data"})},
      {"ImmutableField: spec.database.name renamed to a database adopt could take",
       [](DesiredTenant& d) {
         d.database = "tenant_acme_v2";
         d.adopt = true;
       },
       [](ObservedCluster& o, const DesiredTenant&) {
         o.databases["tenant_acme_v2"] = {"tenant_acme_v2", "postgres", "UTF8", true, true, ""};
       },
       {},
       "ImmutableField",
       Says({"spec.database.name was \"tenant_acme\""})},
      {"ImmutableField: spec.database.owner changed",
       [](DesiredTenant& d) { d.role = "owner_acme"; },
       Same,
       {},
       "ImmutableField",
       Says({"spec.database.owner was \"user_acme\" and is now \"owner_acme\""})},
      {"ImmutableField: spec.product changed",
       [](DesiredTenant& d) { d.product = "crm"; },
       Same,
       {},
       "ImmutableField",
       Says({"spec.product was \"erp\" and is now \"crm\""})},
      {"ImmutableField: spec.database.cluster changed (a second name of the same server)",
       [](DesiredTenant& d) { d.cluster = "replica-name"; },
       Same,
       {},
       "ImmutableField",
       Says({"spec.database.cluster was \"default\" and is now \"replica-name\""})},
      {"ImmutableField: every changed field is named",
       [](DesiredTenant& d) {
         d.product = "crm";
         d.database = "tenant_crm";
         d.role = "user_crm";
       },
       Same,
       {},
       "ImmutableField",
       Says({"spec.product was \"erp\"", "spec.database.name was \"tenant_acme\"",
             "spec.database.owner was \"user_acme\""})},
      {"ImmutableField: an unsigned converged marker, the owner's role marker tells the change",
       [](DesiredTenant& d) { d.role = "owner_acme"; },
       [](ObservedCluster& o, const DesiredTenant& d) {
         Db(o).comment = Marker{d.workspace, {{"migration", "0002"}, {"state", "x"}}}.Render();
       },
       {},
       "ImmutableField",
       Says({"spec.database.owner was \"user_acme\" and is now \"owner_acme\""})},
      {"identity: never converged (a claim without state=): the owner may still change",
       [](DesiredTenant& d) { d.role = "owner_acme"; },
       [](ObservedCluster& o, const DesiredTenant& d) {
         Marker claim = UnsignedDatabaseMarker(d.workspace, "");
         claim.fields.erase("state");
         claim.fields.erase("migration");
         Db(o).comment = SignMarker(claim, d.marker_key).Render();
         o.roles.erase("user_acme");
       },
       Then({"CreateRole", "AlterDatabaseOwner"}, kInDb),
       "",
       NoCheck},
      {"identity: another tenant's database forged as this workspace's does not stall it",
       Keep,
       [](ObservedCluster& o, const DesiredTenant& d) {
         o.roles.erase("user_acme");
         o.databases.clear();
         // What globex's tenant can write on its own database: no valid signature.
         o.databases["tenant_globex"] = {"tenant_globex", "user_globex", "UTF8", false, false,
                                         UnsignedDatabaseMarker(d.workspace, d.state_digest)
                                             .Render()};
       },
       Then({"CreateRole", "CreateDatabase"}, kInDb),
       "",
       NoCheck},
  };
}

TEST_CASE("MakePlan: the plan table") {
  for (const Row& row : Rows()) {
    SUBCASE(row.name) {
      DesiredTenant desired = Desired();
      ObservedCluster observed = Converged(desired);
      row.desire(desired);
      row.observe(observed, desired);

      const Plan plan = MakePlan(desired, observed, row.options);

      CHECK(Kinds(plan) == row.kinds);
      if (row.blocked.empty()) {
        CHECK_FALSE(plan.blocked.has_value());
      } else {
        REQUIRE(plan.blocked.has_value());
        CHECK(plan.blocked->kind == FailureKind::kStalled);
        CHECK(plan.blocked->reason == row.blocked);
        CHECK(plan.actions.empty());
        CHECK_FALSE(plan.Empty());
      }
      row.check(plan, desired);
      for (const auto& action : plan.actions) {
        CHECK(Describe(action).find(desired.password.Reveal()) == std::string::npos);
      }
    }
  }
}

// What the in-database steps reached last time, as the pass that reached it marks the database.
std::string MarkerAfterInDatabaseSteps(const DesiredTenant& d) {
  ObservedCluster observed = Converged(d);
  Db(observed).comment = DatabaseMarker(d.workspace, "fedcba9876543210");
  const Plan plan = MakePlan(d, observed);
  REQUIRE_FALSE(plan.actions.empty());
  return Nth<SetDatabaseMarker>(plan, plan.actions.size() - 1).marker;
}

TEST_CASE("MakePlan: a new migration skips what the last in-database steps made") {
  const DesiredTenant before = Desired();
  REQUIRE_FALSE(before.extensions.empty());
  REQUIRE_FALSE(before.migrations.empty());
  const std::string reached = MarkerAfterInDatabaseSteps(before);
  DesiredTenant after = before;
  after.migrations.push_back(Mig("0003_invoices.sql", "create table invoices();"));
  after.state_digest = "1111111111111111";
  ObservedCluster observed = Converged(after);
  Db(observed).comment = reached;

  SUBCASE("same extensions, a migration ran before: one session, the tenant's") {
    const Plan plan = MakePlan(after, observed);
    CHECK(Kinds(plan) == std::vector<std::string>{"ApplyMigrations", "SetDatabaseMarker"});
    CHECK(Nth<ApplyMigrations>(plan, 0).ledger_ready);
    CheckFinalDatabaseMarker(plan, after, "0003");
  }
  SUBCASE("a deep pass checks both again") {
    const Plan plan = MakePlan(after, observed, PlanOptions{.deep = true});
    CHECK(Kinds(plan) == kInDb);
    CHECK_FALSE(Nth<ApplyMigrations>(plan, 1).ledger_ready);
  }
  SUBCASE("another extension: EnsureExtensions again") {
    after.extensions.push_back("zzz_new");
    const Plan plan = MakePlan(after, observed);
    CHECK(Kinds(plan) == kInDb);
    CHECK(Nth<ApplyMigrations>(plan, 1).ledger_ready);
  }
  SUBCASE("a marker the tenant edited (ext added, signature kept) is not trusted") {
    Marker forged = ParsedMarker(DatabaseMarker(after.workspace, "fedcba9876543210"));
    forged.fields["ext"] = ParsedMarker(reached).fields.at("ext");
    Db(observed).comment = forged.Render();
    const Plan plan = MakePlan(after, observed);
    CHECK(Kinds(plan) == kInDb);
    CHECK_FALSE(Nth<ApplyMigrations>(plan, 1).ledger_ready);
  }
  SUBCASE("marked for another role: blocked as an identity change, nothing skipped or run") {
    Marker other = ParsedMarker(reached);
    other.fields["owner"] = "user_other";
    Db(observed).comment = SignMarker(std::move(other), after.marker_key).Render();
    const Plan plan = MakePlan(after, observed);
    REQUIRE(plan.blocked.has_value());
    CHECK(plan.blocked->message.find("spec.database.owner") != std::string::npos);
    CHECK(plan.actions.empty());
  }
  SUBCASE("no migration ran before: the ledger may not exist") {
    DesiredTenant none = before;
    none.migrations.clear();
    none.state_digest = "4444444444444444";
    Db(observed).comment = MarkerAfterInDatabaseSteps(none);
    const Plan plan = MakePlan(after, observed);
    CHECK(Kinds(plan) == std::vector<std::string>{"ApplyMigrations", "SetDatabaseMarker"});
    CHECK_FALSE(Nth<ApplyMigrations>(plan, 0).ledger_ready);
  }
}

TEST_CASE("MakePlan: the password check takes the memo fast path") {
  // A verifier that is not SCRAM at all cannot be checked; with a memo that matches it the
  // plan must not even try, which is what keeps a no-op resync cheap.
  DesiredTenant desired = Desired();
  ObservedCluster observed = Converged(desired);
  auto& role = observed.roles.at("user_acme");
  role.verifier = "not-a-verifier";
  role.comment = RoleMarker("acme", PasswordMemo(desired.password, "not-a-verifier"));
  CHECK(MakePlan(desired, observed).Empty());

  role.comment = RoleMarker("acme", "0000");
  CHECK(Kinds(MakePlan(desired, observed)) == std::vector<std::string>{"SetRolePassword"});
}

TEST_CASE("MakePlan is a pure function of its inputs") {
  const DesiredTenant desired = Desired();
  ObservedCluster observed = Converged(desired);
  observed.databases.clear();
  const Plan a = MakePlan(desired, observed);
  const Plan b = MakePlan(desired, observed);
  REQUIRE(a.actions.size() == b.actions.size());
  for (std::size_t i = 0; i < a.actions.size(); ++i) {
    CHECK(Describe(a.actions[i]) == Describe(b.actions[i]));
  }
}

}  // namespace
}  // namespace tmaster::postgres
