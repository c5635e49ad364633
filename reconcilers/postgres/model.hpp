#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/secret.hpp"
#include "manifests/types.hpp"
#include "reconcilers/migrations/migrations.hpp"

namespace tmaster::postgres {

/// The store database's name when the store's DSN does not name another.
inline constexpr std::string_view kDefaultStoreDatabase = "tenant_master";

/// What `spec.database.adopt` may take over on one cluster (docs/decisions.md, "Hardening I").
/// Whatever it says, a privileged role, the operator's own role and PostgreSQL's own databases
/// (`postgres`, `template*`) are never adopted.
struct AdoptPolicy {
  std::string store_database = std::string(kDefaultStoreDatabase);  ///< never adopted either
  /// The cluster's `adoptPattern`, a glob (fnmatch(3)): only names it matches may be adopted.
  /// Empty: any name that passes the other checks.
  std::string pattern;
};

/// What one workspace needs on its cluster (docs/architecture.md#postgresql-what-converged-means).
/// Built from the manifests by `BuildDesired` (desired.hpp); holds the derived password as a
/// Secret.
struct DesiredTenant {
  std::string workspace;
  std::string product;  ///< spec.product: recorded in the database marker (identity)
  std::string cluster;
  std::string database;
  std::string role;
  int connection_limit = -1;
  bool suspend = false;
  bool adopt = false;
  AdoptPolicy adopt_policy;  ///< the caller's, for the workspace's cluster
  Secret password;                      ///< derived from the master key, never stored
  /// The salt of the verifier sent for `password` (DeriveScramSalt, raw bytes).
  std::string scram_salt;
  /// Signs the database marker (`MarkerKey` in desired.hpp): a tenant owns its database and can
  /// rewrite its comment, but cannot forge this signature.
  Secret marker_key;
  bool ignore_missing_migrations = false;  ///< the product's `ignoreMissingMigrations`
  std::vector<std::string> extensions;  ///< product's + spec's, sorted, unique
  std::vector<migrations::Migration> migrations;
  /// Digest of the in-database facts (extensions + migration set). Recorded in the database
  /// marker once they are applied; when the observed marker carries the same digest the
  /// in-database steps are skipped (unless a deep pass asks for them).
  std::string state_digest;
};

struct ObservedRole {
  std::string name;
  bool can_login = false;
  bool superuser = false;
  bool create_db = false;
  bool create_role = false;
  bool replication = false;
  bool bypass_rls = false;
  int connection_limit = -1;
  std::optional<std::string> verifier;  ///< pg_authid.rolpassword; nullopt when not readable
  std::string comment;                  ///< shobj_description(oid, 'pg_authid')
  int sessions = 0;                     ///< rows in pg_stat_activity for this role
  /// A member (directly or through other roles) of a role that is superuser, CREATEROLE,
  /// REPLICATION or BYPASSRLS, or of a predefined role with server powers (pg_read_server_files,
  /// pg_write_server_files, pg_execute_server_program, pg_signal_backend, pg_read_all_data,
  /// pg_write_all_data, pg_monitor, pg_database_owner excluded). Such a role is never adopted.
  bool privileged_member = false;
};

struct ObservedDatabase {
  std::string name;
  std::string owner;
  std::string encoding;  ///< pg_encoding_to_char(encoding), e.g. `UTF8`
  bool public_connect = false;
  bool public_temporary = false;
  std::string comment;  ///< shobj_description(oid, 'pg_database')
};

/// One catalog query's view of a cluster.
struct ObservedCluster {
  std::map<std::string, ObservedRole> roles;
  std::map<std::string, ObservedDatabase> databases;
  bool passwords_visible = true;  ///< false when the operator's role cannot read pg_authid
  /// `current_user` of the operator's admin sessions: never adopted, never dropped.
  std::string operator_role;
};

/// The ownership marker kept in `COMMENT ON ROLE|DATABASE`: `tenant-master:workspace=<name>`,
/// then `;key=value` fields in key order. Databases: `cluster`, `product`, `owner` (the identity
/// the workspace converged with), `migration`, `state` and `sig`; roles: `database`, `pw`,
/// `reclaim`.
struct Marker {
  std::string workspace;
  std::map<std::string, std::string> fields;

  /// nullopt when the comment is not ours.
  static std::optional<Marker> Parse(std::string_view comment);
  [[nodiscard]] std::string Render() const;
};

/// `marker` with its `sig` field set: the first 32 hex of HMAC-SHA256(key, the marker rendered
/// without `sig`), i.e. over the workspace name and every other field in key order.
Marker SignMarker(Marker marker, const Secret& key);
/// True when `marker` carries a `sig` that `SignMarker` with `key` would write (compared in
/// constant time). A missing or wrong signature: the marker's facts are unknown.
bool MarkerSignatureValid(const Marker& marker, const Secret& key);

/// A database whose marker names a workspace, as seen on one cluster.
struct MarkedDatabase {
  std::string cluster;  ///< where it was observed
  std::string database;
  Marker marker;
};

/// The role marker's field `reclaim=retained`: the workspace's manifest was removed and its
/// `Retain` policy ran (role NOLOGIN, sessions ended, data kept). `MakePlan` removes it again
/// when the workspace comes back.
inline constexpr std::string_view kReclaimField = "reclaim";
inline constexpr std::string_view kReclaimRetained = "retained";

/// The database marker's field `moved=<cluster>` (signed): the workspace was moved to that
/// cluster and this database is the source a move kept, NOLOGIN, until `tenantctl move --prune`
/// (docs/moves.md). Such a database is not where the workspace lives: the identity check and
/// `--once` placement look past it.
inline constexpr std::string_view kMovedField = "moved";

/// True when `marker` carries `moved`.
inline bool MarkerMoved(const Marker& marker) {
  return marker.fields.contains(std::string(kMovedField));
}

/// `current` (a database marker of the workspace) with `moved=<to>`, signed again with `key`.
Marker MovedMarker(Marker current, const std::string& to, const Secret& key);

/// The role marker's `pw` field: a keyed memo that the role's stored verifier was checked against
/// (or made from) the derived password. HMAC(password, verifier), truncated; not reversible.
std::string PasswordMemo(const Secret& password, std::string_view verifier);

// --- Actions: values, not SQL. One adapter renders them (postgres_libpq.cpp). ---

struct CreateRole {
  std::string role;
  bool login = true;
  int connection_limit = -1;
  Secret password;
  std::string workspace;  ///< the adapter writes the marker with the password memo
  /// The role marker's other fields (`database`); the adapter adds `pw`.
  std::map<std::string, std::string> marker_fields = {};
  /// The verifier's salt (raw bytes); empty: libpq picks a random one.
  std::string salt = {};
};
/// Resets every attribute we own: LOGIN/NOLOGIN, NOSUPERUSER NOCREATEDB NOCREATEROLE
/// NOREPLICATION NOBYPASSRLS, CONNECTION LIMIT.
struct AlterRole {
  std::string role;
  bool login = true;
  int connection_limit = -1;
};
/// Sends a fresh SCRAM verifier and rewrites the role marker with its memo.
struct SetRolePassword {
  std::string role;
  Secret password;
  std::string workspace;
  /// The role marker's other fields (`database`); the adapter adds `pw`.
  std::map<std::string, std::string> marker_fields = {};
  /// The verifier's salt (raw bytes); empty: libpq picks a random one.
  std::string salt = {};
};
struct SetRoleMarker {
  std::string role;
  std::string marker;  ///< rendered Marker
};
struct TerminateSessions {
  std::string role;
};
/// `DROP ROLE IF EXISTS`. Planned only by `MakeReclaimPlan`, after the role's database is gone.
/// Nothing is reassigned or dropped on its behalf: if the role still owns objects (or holds
/// privileges) elsewhere, the drop fails Stalled `RoleStillOwnsObjects` naming them.
struct DropRole {
  std::string role;
};
/// CREATE DATABASE ... OWNER ... ENCODING 'UTF8' TEMPLATE template0, then at once the marker
/// and REVOKE CONNECT, TEMPORARY FROM PUBLIC: the database is born closed.
struct CreateDatabase {
  std::string database;
  std::string owner;
  std::string marker;  ///< rendered Marker, without the state digest
};
struct AlterDatabaseOwner {
  std::string database;
  std::string owner;
};
struct RevokePublicAccess {
  std::string database;
};
struct SetDatabaseMarker {
  std::string database;
  std::string marker;
};
/// `DROP DATABASE IF EXISTS ... WITH (FORCE)`: open sessions on it are terminated. Planned only
/// by `MakeReclaimPlan` (policy `Delete`).
struct DropDatabase {
  std::string database;
};
/// In-database: CREATE EXTENSION IF NOT EXISTS ... WITH SCHEMA extensions for each missing one,
/// as the admin with a pinned search_path; the schema `extensions` is the operator's and `role`
/// gets USAGE on it (postgres_libpq.hpp).
struct EnsureExtensions {
  std::string database;
  std::vector<std::string> extensions;
  std::string role = {};  ///< the tenant role; empty: the database's owner gets USAGE
};
/// In-database: take the advisory lock, verify applied checksums, run each pending migration in
/// its own transaction as `role`, record it with its checksum.
struct ApplyMigrations {
  std::string database;
  std::string role;
  Secret password;
  std::vector<migrations::Migration> migrations;
  /// The product's `ignoreMissingMigrations`: a version recorded in the database but absent from
  /// the product is skipped instead of stalling `MigrationMissing`.
  bool ignore_missing = false;
  /// Our signed marker says a migration ran here before, so the ledger schema and table exist,
  /// the admin's, with this role's grants: the admin's session that checks and makes them is
  /// skipped (`MakePlan` sets it; a deep pass never does).
  bool ledger_ready = false;
};

using Action =
    std::variant<CreateRole, AlterRole, SetRolePassword, SetRoleMarker, TerminateSessions,
                 CreateDatabase, AlterDatabaseOwner, RevokePublicAccess, SetDatabaseMarker,
                 EnsureExtensions, ApplyMigrations, DropDatabase, DropRole>;

/// One line for humans (dry run, events). Never contains a secret.
std::string Describe(const Action& action);
/// CamelCase kind, e.g. `CreateRole`; used as the drift metric's label.
std::string KindOf(const Action& action);
/// True for actions that need a connection to the tenant database.
bool IsInDatabase(const Action& action);

/// The result of planning one workspace: actions in order, or a reason it must not be touched.
struct Plan {
  std::vector<Action> actions;
  /// Set when the workspace is blocked: an unmarked database or role without `adopt`, one
  /// marked for another workspace, a database of the wrong encoding. Nothing is applied.
  std::optional<Failure> blocked;

  [[nodiscard]] bool Empty() const { return actions.empty() && !blocked; }
};

struct PlanOptions {
  bool deep = false;  ///< re-run the in-database steps even if the marker digest matches
  /// Databases marked for this workspace on the other clusters (`IndexDatabaseMarkers`), for the
  /// `spec.database.cluster` check. Borrowed; empty when the caller sees only one cluster.
  std::span<const MarkedDatabase> elsewhere = {};
};

/// Pure: no I/O, clock or logging. Applying the returned actions and observing again yields an
/// empty plan (tested as a property with the fake gateway). A role marked `reclaim=retained`
/// (the workspace was removed under `Retain` and has come back) gets LOGIN again and its marker
/// without that field.
///
/// Blocked, with no action, when `CheckIdentity` finds the workspace converged under another
/// identity, when `adopt` would take over what it must not (Stalled `AdoptRefused`: a
/// superuser, CREATEROLE, REPLICATION or BYPASSRLS role, a member of a privileged role, the
/// operator's own role, `postgres`, `template*`, the store database, a name outside the
/// cluster's `adoptPattern`), and in the cases `Plan::blocked` lists. A database marker whose
/// signature does not verify is unknown state: the in-database steps run (with the migration
/// ledger checked even when the product has no migration left) and the final marker is signed.
Plan MakePlan(const DesiredTenant& desired, const ObservedCluster& observed,
              const PlanOptions& options = {});

/// Pure. Stalled `ImmutableField` when the workspace has converged (a database carries its
/// validly signed marker with `state=`) with another `spec.database.name`, `spec.database.owner`,
/// `spec.product` or `spec.database.cluster` than `desired` names; the message names each old and
/// new value and the database that holds the data. Looked for: the desired database's marker, any
/// other database of `own` marked for the workspace (when the desired one is not converged),
/// `elsewhere` (databases marked for it on other clusters, whose marker says they live there),
/// and a role marked for the workspace under another name while the desired role is missing.
/// nullopt when nothing changed or the workspace never converged. `MakePlan` calls it first.
std::optional<Failure> CheckIdentity(const DesiredTenant& desired, const ObservedCluster& own,
                                     std::span<const MarkedDatabase> elsewhere = {});

/// Every database of `observed` that carries a marker, by the workspace it names; parsed once
/// per observation, so checking a workspace against the other clusters costs a lookup.
std::multimap<std::string, MarkedDatabase> IndexDatabaseMarkers(const std::string& cluster,
                                                                const ObservedCluster& observed);

/// What removing a workspace reclaims on its cluster: the names from the workspace's last
/// stored spec (see `BuildReclaimTarget` in desired.hpp) and its `spec.database.reclaimPolicy`.
struct ReclaimTarget {
  std::string workspace;
  std::string cluster;
  std::string database;
  std::string role;
  manifests::ReclaimPolicy policy = manifests::ReclaimPolicy::kRetain;
};

/// Pure, like `MakePlan`: the actions that reclaim a removed workspace's database and role.
///
/// Only objects whose marker names `target.workspace` are touched, and never, marked or not, the
/// operator's own role, a privileged role (superuser, CREATEROLE, REPLICATION, BYPASSRLS, member
/// of a privileged role) or `postgres`/`template*` (Stalled `NotOwned`, saying why): anyone with
/// CREATEROLE can write a marker. An absent object is fine (it
/// is already reclaimed, or was never made). An object that exists unmarked or marked for
/// another workspace blocks the plan (Stalled `NotOwned`, the message names the object) and
/// nothing is planned, whatever the policy.
///
/// - `Retain`: the database is not touched. The role gets NOLOGIN (`AlterRole`, keeping its
///   connection limit), its sessions are terminated, and its marker gains `reclaim=retained`
///   (other fields kept). Empty once the role is NOLOGIN, has no session and is so marked.
/// - `Delete`: `DropDatabase` (WITH FORCE) when the database exists, then `TerminateSessions`
///   when the role has sessions elsewhere (a dropped role's session would live on) and
///   `DropRole` when the role exists. Empty once both are gone.
Plan MakeReclaimPlan(const ReclaimTarget& target, const ObservedCluster& observed);

}  // namespace tmaster::postgres
