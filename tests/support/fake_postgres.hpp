#pragma once

// FakePostgres: an in-memory PostgresGateway for the pure tests (fakes stay small:
// docs/architecture.md#interfaces-adapters-and-fakes). It keeps the one thing the catalog query
// would return (an ObservedCluster) plus what only a connection to a tenant database sees
// (extensions, recorded migrations), and Apply changes them the way the real server would: CREATE
// ROLE stores a real SCRAM verifier with a random salt, CREATE DATABASE grants CONNECT and
// TEMPORARY to PUBLIC, a migration runs only as a role that can log in with the right password, and
// so on. Tests change the state directly to simulate drift, and can make the N-th Apply call fail:
// before it changes anything, midway (where the adapter's round trips split it), or after it
// changed everything but its answer was lost.

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/crypto.hpp"
#include "common/outcome.hpp"
#include "reconcilers/migrations/migrations.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "reconcilers/postgres/gateway.hpp"
#include "reconcilers/postgres/model.hpp"

namespace tmaster::testing {

class FakePostgres : public postgres::PostgresGateway {
 public:
  /// PostgreSQL's default for `scram_iterations`.
  static constexpr int kScramIterations = 4096;
  /// Where the salts of new verifiers come from: 16 random bytes unless a test injects a
  /// predictable source (verifiers are memoised across instances, so a repeatable sequence of
  /// salts makes property tests with hundreds of runs cheap).
  using SaltSource = std::function<std::string()>;

  FakePostgres() : FakePostgres([] { return crypto::RandomBytes(16); }) {}
  explicit FakePostgres(SaltSource salts) : salts_(std::move(salts)) {}

  /// What a connection to one tenant database would see.
  struct Contents {
    std::set<std::string> extensions;
    std::vector<migrations::AppliedMigration> applied;
  };

  // --- the gateway ---

  Outcome<postgres::ObservedCluster> Observe() override {
    std::lock_guard lock(mutex_);
    ++observe_calls_;
    if (fail_observe_) return *fail_observe_;
    postgres::ObservedCluster observed = cluster_;
    // An operator role that cannot read pg_authid sees no verifiers (the catalog keeps them).
    if (!observed.passwords_visible) {
      for (auto& [name, role] : observed.roles) role.verifier.reset();
    }
    return observed;
  }

  Outcome<postgres::ApplyResult> Apply(const postgres::Action& action) override {
    std::lock_guard lock(mutex_);
    ++apply_calls_;
    const auto fault = faults_.find(apply_calls_);
    if (fault == faults_.end()) return std::visit([this](const auto& a) { return Do(a); }, action);
    switch (fault->second.point) {
      case FaultPoint::kBefore: return fault->second.failure;
      case FaultPoint::kMidway:
        if (const auto* create = std::get_if<postgres::CreateDatabase>(&action)) {
          if (Result created = CreateUnmarked(*create); !created) return created;
          return fault->second.failure;
        }
        if (const auto* migrate = std::get_if<postgres::ApplyMigrations>(&action)) {
          if (Result applied = Migrate(*migrate, 1); !applied) return applied;
          return fault->second.failure;
        }
        [[fallthrough]];  // one transaction: it committed or it did not
      case FaultPoint::kAfter:
        if (Result done = std::visit([this](const auto& a) { return Do(a); }, action); !done) {
          return done;
        }
        return fault->second.failure;
    }
    return fault->second.failure;
  }

  // --- knobs and inspection; not synchronised: use them while no worker runs ---

  /// The server's state; change it to simulate drift made by hand. Set `passwords_visible` to
  /// false to observe as an operator role that cannot read pg_authid.
  postgres::ObservedCluster& cluster() { return cluster_; }
  /// In-database state per database.
  std::map<std::string, Contents>& contents() { return contents_; }

  /// Where an injected failure strikes within its action.
  enum class FaultPoint {
    kBefore,  ///< nothing changed: the action never reached the server
    /// Cut where the adapter splits the action into round trips: CreateDatabase has created the
    /// database (owned by its owner, still open to PUBLIC) but not written its marker;
    /// ApplyMigrations has committed the first pending migration only. The other actions are
    /// one transaction each (CreateRole sends the role, its password and its marker together),
    /// so for them this is kAfter.
    kMidway,
    kAfter,  ///< everything committed, then the connection dropped before the answer
  };

  /// Makes the `n`-th Apply call (1-based, counted since construction) fail with `failure`, at
  /// `point` of its action.
  void FailApplyCall(int n,
                     Failure failure = Failure::Transient("ConnectionFailure",
                                                          "injected: server closed the connection"),
                     FaultPoint point = FaultPoint::kBefore) {
    faults_[n] = {std::move(failure), point};
  }
  void FailObserve(std::optional<Failure> failure) { fail_observe_ = std::move(failure); }
  /// Migration files whose SQL fails (as a syntax error would): the ones before it stay applied.
  void FailMigration(std::string file) { failing_migrations_.insert(std::move(file)); }
  /// When non-empty, only these extensions can be created (the server's available extensions).
  void SetAvailableExtensions(std::set<std::string> names) { available_ = std::move(names); }

  [[nodiscard]] int apply_calls() const { return apply_calls_; }
  [[nodiscard]] int observe_calls() const { return observe_calls_; }

  /// A role made by hand (not by us): LOGIN, a SCRAM verifier of `password` (none when
  /// nullopt), no marker unless `comment` is one.
  postgres::ObservedRole& AddRole(const std::string& name,
                                  const std::optional<std::string>& password,
                                  std::string comment = {}) {
    postgres::ObservedRole role;
    role.name = name;
    role.can_login = true;
    if (password) role.verifier = NewVerifier(Secret(*password));
    role.comment = std::move(comment);
    return cluster_.roles[name] = std::move(role);
  }
  /// A database made by hand: PostgreSQL's default grants to PUBLIC, no marker.
  postgres::ObservedDatabase& AddDatabase(const std::string& name, const std::string& owner,
                                          std::string comment = {}) {
    contents_[name] = {};
    return cluster_.databases[name] = {name, owner, "UTF8", true, true, std::move(comment)};
  }

 private:
  using Result = Outcome<postgres::ApplyResult>;

  struct Fault {
    Failure failure;
    FaultPoint point = FaultPoint::kBefore;
  };

  static Failure Missing(const std::string& what, const std::string& name,
                         const std::string& step) {
    return Failure::Stalled("UndefinedObject",
                            step + ": " + what + " \"" + name + "\" does not exist");
  }
  static postgres::ApplyResult Done(int statements, std::string detail = {}) {
    return {statements, std::move(detail)};
  }

  postgres::ObservedRole* FindRole(const std::string& name) {
    const auto it = cluster_.roles.find(name);
    return it == cluster_.roles.end() ? nullptr : &it->second;
  }
  postgres::ObservedDatabase* FindDatabase(const std::string& name) {
    const auto it = cluster_.databases.find(name);
    return it == cluster_.databases.end() ? nullptr : &it->second;
  }

  // What the adapter does for CreateRole and SetRolePassword: a fresh salt, and the marker (the
  // action's fields) with the memo of the new verifier.
  void SetPassword(postgres::ObservedRole& role, const Secret& password,
                   const std::string& workspace,
                   const std::map<std::string, std::string>& marker_fields) {
    role.verifier = NewVerifier(password);
    postgres::Marker marker{workspace, marker_fields};
    marker.fields["pw"] = postgres::PasswordMemo(password, *role.verifier);
    role.comment = marker.Render();
  }

  // PBKDF2 dominates the tests' run time, so both directions are memoised process-wide.
  static std::string Key(const std::string& a, const std::string& b) {
    return std::to_string(a.size()) + ':' + a + b;
  }
  std::string NewVerifier(const Secret& password) {
    static std::mutex mutex;
    static std::map<std::string, std::string> made;
    const std::string salt = salts_();
    std::lock_guard lock(mutex);
    auto [it, inserted] = made.emplace(Key(password.Reveal(), salt), std::string());
    if (inserted) it->second = postgres::MakeScramVerifier(password, salt, kScramIterations);
    return it->second;
  }
  static bool Verifies(const std::string& verifier, const Secret& password) {
    static std::mutex mutex;
    static std::map<std::string, bool> checked;
    std::lock_guard lock(mutex);
    const auto [it, inserted] = checked.emplace(Key(verifier, password.Reveal()), false);
    if (inserted) it->second = postgres::ScramVerifierMatches(verifier, password);
    return it->second;
  }

  Result Do(const postgres::CreateRole& a) {
    if (FindRole(a.role)) {
      return Failure::Stalled("DuplicateObject",
                              "create role: role \"" + a.role + "\" already exists");
    }
    postgres::ObservedRole role;
    role.name = a.role;
    role.can_login = a.login;
    role.connection_limit = a.connection_limit;
    SetPassword(role, a.password, a.workspace, a.marker_fields);
    cluster_.roles[a.role] = std::move(role);
    return Done(2);
  }
  Result Do(const postgres::AlterRole& a) {
    auto* role = FindRole(a.role);
    if (!role) return Missing("role", a.role, "alter role");
    role->can_login = a.login;
    role->superuser = role->create_db = role->create_role = false;
    role->replication = role->bypass_rls = false;
    role->connection_limit = a.connection_limit;
    return Done(1);
  }
  Result Do(const postgres::SetRolePassword& a) {
    auto* role = FindRole(a.role);
    if (!role) return Missing("role", a.role, "set password");
    SetPassword(*role, a.password, a.workspace, a.marker_fields);
    return Done(2);
  }
  Result Do(const postgres::SetRoleMarker& a) {
    auto* role = FindRole(a.role);
    if (!role) return Missing("role", a.role, "comment on role");
    role->comment = a.marker;
    return Done(1);
  }
  Result Do(const postgres::TerminateSessions& a) {
    if (auto* role = FindRole(a.role)) role->sessions = 0;
    return Done(1);
  }
  Result Do(const postgres::CreateDatabase& a) {
    if (Result created = CreateUnmarked(a); !created) return created;
    // Like the adapter: created, then marked and closed to PUBLIC in a second round trip.
    auto& database = cluster_.databases.at(a.database);
    database.public_connect = database.public_temporary = false;
    database.comment = a.marker;
    return Done(2);
  }
  // The adapter's first round trip of CreateDatabase: PostgreSQL's defaults, no marker yet.
  Result CreateUnmarked(const postgres::CreateDatabase& a) {
    if (FindDatabase(a.database)) {
      return Failure::Stalled("DuplicateDatabase",
                              "create database: database \"" + a.database + "\" already exists");
    }
    if (!FindRole(a.owner)) return Missing("role", a.owner, "create database");
    cluster_.databases[a.database] = {a.database, a.owner, "UTF8", true, true, ""};
    contents_[a.database] = {};
    return Done(1);
  }
  Result Do(const postgres::AlterDatabaseOwner& a) {
    auto* database = FindDatabase(a.database);
    if (!database) return Missing("database", a.database, "alter database owner");
    if (!FindRole(a.owner)) return Missing("role", a.owner, "alter database owner");
    database->owner = a.owner;
    return Done(1);
  }
  Result Do(const postgres::RevokePublicAccess& a) {
    auto* database = FindDatabase(a.database);
    if (!database) return Missing("database", a.database, "revoke from PUBLIC");
    database->public_connect = database->public_temporary = false;
    return Done(1);
  }
  Result Do(const postgres::SetDatabaseMarker& a) {
    auto* database = FindDatabase(a.database);
    if (!database) return Missing("database", a.database, "comment on database");
    database->comment = a.marker;
    return Done(1);
  }
  Result Do(const postgres::EnsureExtensions& a) {
    if (!FindDatabase(a.database)) return Missing("database", a.database, "create extension");
    for (const auto& name : a.extensions) {
      if (!available_.empty() && !available_.contains(name)) {
        return Failure::Stalled("ExtensionUnavailable", "create extension in database \"" +
                                                            a.database + "\": extension \"" + name +
                                                            "\" is not available");
      }
    }
    auto& installed = contents_[a.database].extensions;
    int created = 0;
    for (const auto& name : a.extensions) created += installed.insert(name).second ? 1 : 0;
    return Done(created);
  }
  Result Do(const postgres::ApplyMigrations& a) { return Migrate(a, a.migrations.size()); }
  // Each migration commits on its own (the adapter runs each in its own transaction): at most
  // `limit` pending ones are applied.
  Result Migrate(const postgres::ApplyMigrations& a, std::size_t limit) {
    if (!FindDatabase(a.database)) return Missing("database", a.database, "apply migrations");
    // Migrations run in a session of the tenant role, so it must be able to log in.
    const auto* role = FindRole(a.role);
    if (!role || !role->can_login || !role->verifier || !Verifies(*role->verifier, a.password)) {
      return Failure::Stalled("InvalidAuthorization", "apply migrations to database \"" +
                                                          a.database + "\": role \"" + a.role +
                                                          "\" cannot log in");
    }
    auto& applied = contents_[a.database].applied;
    auto pending = migrations::Pending(a.migrations, applied, a.database, a.ignore_missing);
    if (!pending) return pending.failure();
    std::string detail;
    std::size_t ran = 0;
    for (const auto& migration : *pending) {
      if (ran++ == limit) break;
      if (failing_migrations_.contains(migration.file)) {
        return Failure::Stalled("MigrationFailed", "migration " + migration.file +
                                                       " failed in database \"" + a.database +
                                                       "\": syntax error");
      }
      applied.push_back({migration.version, migration.file, migration.checksum});
      detail += detail.empty() ? "applied " : ", ";
      detail += migration.file;
    }
    return Done(static_cast<int>(std::min(pending->size(), limit)) + 1,
                detail.empty() ? std::string("nothing pending") : detail);
  }

  // IF EXISTS, like the adapter: an absent object is no failure.
  Result Do(const postgres::DropDatabase& a) {
    cluster_.databases.erase(a.database);
    contents_.erase(a.database);
    return Done(1);
  }
  Result Do(const postgres::DropRole& a) {
    // PostgreSQL refuses (2BP01) while the role owns a database; the adapter reports it so.
    for (const auto& [name, database] : cluster_.databases) {
      if (database.owner == a.role) {
        return Failure::Stalled("RoleStillOwnsObjects",
                                "drop role \"" + a.role + "\": owner of database \"" + name + "\"");
      }
    }
    cluster_.roles.erase(a.role);
    return Done(1);
  }

  std::mutex mutex_;
  postgres::ObservedCluster cluster_;
  std::map<std::string, Contents> contents_;
  std::map<int, Fault> faults_;
  std::optional<Failure> fail_observe_;
  std::set<std::string> failing_migrations_;
  std::set<std::string> available_;
  SaltSource salts_;
  int apply_calls_ = 0;
  int observe_calls_ = 0;
};

}  // namespace tmaster::testing
