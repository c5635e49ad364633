#include <fnmatch.h>

#include <algorithm>
#include <cstddef>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/crypto.hpp"
#include "common/text.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "reconcilers/postgres/model.hpp"

// MakePlan: the pure step between Observe and Apply. The order of the actions is part of what
// converged means (docs/architecture.md#postgresql-what-converged-means): role, its password,
// sessions, database, its marker, PUBLIC grants, then the in-database steps and finally the marker
// that records what they reached.
namespace tmaster::postgres {
namespace {

constexpr std::string_view kUtf8 = "UTF8";
constexpr std::string_view kWorkspacePrefix = "tenant-master:workspace=";

// Marker fields that record the identity the workspace converged with (docs/decisions.md).
const std::string kClusterField = "cluster";
const std::string kProductField = "product";
const std::string kOwnerField = "owner";
const std::string kDatabaseField = "database";  // on the role marker
const std::string kStateField = "state";
const std::string kMigrationField = "migration";
// The extensions the in-database steps last ensured (a digest of the sorted list): a new
// migration changes `state` but not this, and EnsureExtensions, a session of its own in the
// tenant database, is then skipped (docs/decisions.md, "What a migration pass skips").
const std::string kExtensionsField = "ext";
constexpr std::size_t kExtensionsDigestHexChars = 12;

// True when `comment` is a marker naming exactly `workspace`: a cheap test before parsing, so
// looking for a workspace's databases among thousands costs string compares.
bool MarksWorkspace(std::string_view comment, std::string_view workspace) {
  if (!comment.starts_with(kWorkspacePrefix)) return false;
  comment.remove_prefix(kWorkspacePrefix.size());
  return comment.starts_with(workspace) &&
         (comment.size() == workspace.size() || comment[workspace.size()] == ';');
}

// A marker whose facts can be trusted: it names this workspace, has reached `state=` (the
// in-database steps ran once) and carries our signature.
bool ConvergedMarker(const Marker& marker, const DesiredTenant& desired) {
  return marker.workspace == desired.workspace && marker.fields.contains(kStateField) &&
         MarkerSignatureValid(marker, desired.marker_key);
}

const std::string* Field(const Marker& marker, const std::string& key) {
  const auto it = marker.fields.find(key);
  return it == marker.fields.end() ? nullptr : &it->second;
}


// What the comment on an existing role or database says about who owns it.
struct Ownership {
  std::optional<Marker> marker;  ///< ours (for this workspace) or nullopt when unmarked
  bool other_workspace = false;
  std::string other;  ///< the other workspace's name
};

Ownership ReadOwnership(const std::string& comment, const std::string& workspace) {
  Ownership ownership;
  auto marker = Marker::Parse(comment);
  if (!marker) return ownership;
  if (marker->workspace != workspace) {
    ownership.other_workspace = true;
    ownership.other = marker->workspace;
    return ownership;
  }
  ownership.marker = std::move(marker);
  return ownership;
}

Failure OwnedByOther(std::string_view what, const std::string& name, const DesiredTenant& desired,
                     const std::string& other) {
  return Failure::Stalled("OwnedByOtherWorkspace",
                          std::string(what) + " " + Quoted(name) + " on cluster " +
                              Quoted(desired.cluster) + " is marked for workspace " +
                              Quoted(other) + ", not " + Quoted(desired.workspace) +
                              "; two workspaces cannot share it, even with spec.database.adopt");
}

Failure NotOwned(std::string_view what, std::string reason, const std::string& name,
                 const DesiredTenant& desired) {
  return Failure::Stalled(
      std::move(reason),
      std::string(what) + " " + Quoted(name) + " exists on cluster " + Quoted(desired.cluster) +
          " without a tenant-master marker; set spec.database.adopt: true to take it over");
}

Failure AdoptRefused(std::string_view what, const std::string& name, const DesiredTenant& desired,
                     const std::string& why, std::string_view never) {
  return Failure::Stalled("AdoptRefused", std::string(what) + " " + Quoted(name) + " on cluster " +
                                              Quoted(desired.cluster) + " " + why +
                                              "; tenant-master never " + std::string(never) +
                                              " (workspace " + Quoted(desired.workspace) + ")");
}

// Why an existing role must never become a tenant's; empty when nothing speaks against it.
std::string PrivilegeOf(const ObservedRole& role) {
  if (role.superuser) return "is a superuser";
  if (role.create_role) return "has CREATEROLE";
  if (role.replication) return "has REPLICATION";
  if (role.bypass_rls) return "has BYPASSRLS";
  if (role.privileged_member) return "is a member of a privileged role";
  return {};
}

// Databases that are never a tenant's, marked or not: PostgreSQL's own and the operator's store.
std::string ReservedDatabase(const std::string& name, const AdoptPolicy& policy) {
  if (name == "postgres") return "is PostgreSQL's maintenance database";
  if (name == "template0" || name == "template1") return "is a template database";
  if (!policy.store_database.empty() && name == policy.store_database) {
    return "is the operator's store database";
  }
  return {};
}

// What `adopt` must not take over, beyond the reserved names checked for every plan.
std::optional<Failure> RefuseAdoptRole(const DesiredTenant& desired, const ObservedRole& role) {
  if (std::string why = PrivilegeOf(role); !why.empty()) {
    return AdoptRefused("role", role.name, desired, why, "adopts a privileged role");
  }
  const AdoptPolicy& policy = desired.adopt_policy;
  if (!policy.pattern.empty() && fnmatch(policy.pattern.c_str(), role.name.c_str(), 0) != 0) {
    return AdoptRefused("role", role.name, desired,
                        "does not match the cluster's adoptPattern " + Quoted(policy.pattern),
                        "adopts a name outside it");
  }
  return std::nullopt;
}

std::optional<Failure> RefuseAdoptDatabase(const DesiredTenant& desired, const std::string& name) {
  if (name.starts_with("template")) {
    return AdoptRefused("database", name, desired, "is named like a template database",
                        "adopts a template*, postgres or store database");
  }
  const AdoptPolicy& policy = desired.adopt_policy;
  if (!policy.pattern.empty() && fnmatch(policy.pattern.c_str(), name.c_str(), 0) != 0) {
    return AdoptRefused("database", name, desired,
                        "does not match the cluster's adoptPattern " + Quoted(policy.pattern),
                        "adopts a name outside it");
  }
  return std::nullopt;
}

// Blocking reasons in order of how much `adopt` could help: a marker of another workspace and a
// wrong encoding cannot be fixed by adopting, so they are reported before a missing marker.
// The operator's own role and the reserved databases are refused even when marked: anyone with
// CREATEROLE (or owning the database) can write a marker.
std::optional<Failure> FindBlock(const DesiredTenant& desired, const ObservedCluster& observed) {
  const auto role = observed.roles.find(desired.role);
  const auto database = observed.databases.find(desired.database);
  std::optional<Ownership> role_owner;
  std::optional<Ownership> db_owner;
  if (role != observed.roles.end()) {
    role_owner = ReadOwnership(role->second.comment, desired.workspace);
    if (role_owner->other_workspace) {
      return OwnedByOther("role", desired.role, desired, role_owner->other);
    }
  }
  if (database != observed.databases.end()) {
    db_owner = ReadOwnership(database->second.comment, desired.workspace);
    if (db_owner->other_workspace) {
      return OwnedByOther("database", desired.database, desired, db_owner->other);
    }
    if (database->second.encoding != kUtf8) {
      return Failure::Stalled(
          "DatabaseEncodingMismatch",
          "database " + Quoted(desired.database) + " on cluster " + Quoted(desired.cluster) +
              " has encoding " + database->second.encoding +
              ", not UTF8; an encoding cannot be changed in place: recreate the database as "
              "UTF8 or choose another spec.database.name");
    }
  }
  if (!observed.operator_role.empty() && desired.role == observed.operator_role) {
    return AdoptRefused("role", desired.role, desired,
                        "is the operator's own role (its admin sessions log in as it)",
                        "takes over the role it runs as");
  }
  if (database != observed.databases.end()) {
    if (std::string why = ReservedDatabase(desired.database, desired.adopt_policy); !why.empty()) {
      return AdoptRefused("database", desired.database, desired, why,
                          "takes over a template*, postgres or store database");
    }
  }
  // A database owned by our own marked role is ours even without its marker: the operator
  // stopped between CREATE DATABASE and the COMMENT that follows it.
  const bool owned_by_our_role = role_owner && role_owner->marker &&
                                 database != observed.databases.end() &&
                                 database->second.owner == desired.role;
  const bool adopt_role = role_owner && !role_owner->marker;
  const bool adopt_database = db_owner && !db_owner->marker && !owned_by_our_role;
  if (!desired.adopt) {
    if (adopt_role) return NotOwned("role", "RoleNotOwned", desired.role, desired);
    if (adopt_database) {
      return NotOwned("database", "DatabaseNotOwned", desired.database, desired);
    }
    return std::nullopt;
  }
  // Limits of adopt (issue 11): only unmarked objects are adopted, so only they are checked; a
  // role we made that was given superuser later is ours and AlterRole takes it back.
  if (adopt_role) {
    if (auto refused = RefuseAdoptRole(desired, role->second)) return refused;
  }
  if (adopt_database) {
    if (auto refused = RefuseAdoptDatabase(desired, desired.database)) return refused;
  }
  return std::nullopt;
}

bool RoleAttributesDrift(const ObservedRole& role, const DesiredTenant& desired) {
  return role.can_login != !desired.suspend || role.superuser || role.create_db ||
         role.create_role || role.replication || role.bypass_rls ||
         role.connection_limit != desired.connection_limit;
}

// The role marker's fields besides `pw` (which the adapter computes from the verifier it sends):
// the database the role was made for. Written whenever the marker is, never planned on its own.
std::map<std::string, std::string> RoleMarkerFields(const DesiredTenant& desired) {
  return {{kDatabaseField, desired.database}};
}

void PlanPassword(const DesiredTenant& desired, const ObservedCluster& observed,
                  const ObservedRole& role, const std::optional<Marker>& marker,
                  std::vector<Action>& actions) {
  Marker claimed = marker.value_or(Marker{desired.workspace, {}});
  claimed.fields[kDatabaseField] = desired.database;
  const SetRolePassword set_password{desired.role, desired.password, desired.workspace,
                                     RoleMarkerFields(desired), desired.scram_salt};
  if (!observed.passwords_visible) {
    // Without pg_authid a drifted password cannot be told from a good one, so a role we marked
    // is trusted to keep the password we gave it. A role being adopted had someone else's
    // password: set ours, which also writes the marker.
    if (!marker) actions.emplace_back(set_password);
    return;
  }
  if (!role.verifier) {  // readable, but the role has no password at all
    actions.emplace_back(set_password);
    return;
  }
  const std::string memo = PasswordMemo(desired.password, *role.verifier);
  if (marker) {
    const auto pw = marker->fields.find("pw");
    if (pw != marker->fields.end() && pw->second == memo) return;  // verified before
  }
  if (ScramVerifierMatches(*role.verifier, desired.password)) {
    claimed.fields["pw"] = memo;
    actions.emplace_back(SetRoleMarker{desired.role, claimed.Render()});
    return;
  }
  actions.emplace_back(set_password);
}

bool WritesRoleMarker(const Action& action) {
  return std::holds_alternative<SetRoleMarker>(action) ||
         std::holds_alternative<SetRolePassword>(action);
}

void PlanRole(const DesiredTenant& desired, const ObservedCluster& observed,
              std::vector<Action>& actions) {
  const auto found = observed.roles.find(desired.role);
  if (found == observed.roles.end()) {
    actions.emplace_back(CreateRole{desired.role, !desired.suspend, desired.connection_limit,
                                    desired.password, desired.workspace,
                                    RoleMarkerFields(desired), desired.scram_salt});
    return;
  }
  const ObservedRole& role = found->second;
  if (RoleAttributesDrift(role, desired)) {
    actions.emplace_back(AlterRole{desired.role, !desired.suspend, desired.connection_limit});
  }
  // The workspace came back after a `Retain` reclaim: AlterRole above gave LOGIN back, and the
  // marker loses `reclaim` (PlanPassword's own marker writes start from the stripped marker).
  std::optional<Marker> marker = ReadOwnership(role.comment, desired.workspace).marker;
  const bool was_retained = marker && marker->fields.erase(std::string(kReclaimField)) > 0;
  const std::size_t before = actions.size();
  PlanPassword(desired, observed, role, marker, actions);
  const bool rewritten = std::any_of(actions.begin() + static_cast<std::ptrdiff_t>(before),
                                     actions.end(), WritesRoleMarker);
  if (was_retained && !rewritten) {
    marker->fields[kDatabaseField] = desired.database;
    actions.emplace_back(SetRoleMarker{desired.role, marker->Render()});
  }
  if (desired.suspend && role.sessions > 0) {
    actions.emplace_back(TerminateSessions{desired.role});
  }
}

// The claim a database gets when it is created or adopted: who it is for, under which identity.
// Signed like the final marker, though only a marker with `state=` is trusted for anything.
Marker ClaimMarker(const DesiredTenant& desired) {
  Marker marker{desired.workspace, {}};
  marker.fields[kClusterField] = desired.cluster;
  marker.fields[kProductField] = desired.product;
  marker.fields[kOwnerField] = desired.role;
  return marker;
}

std::string ExtensionsDigest(const std::vector<std::string>& extensions) {
  std::string text;
  for (const std::string& extension : extensions) text += extension + ',';
  return crypto::Sha256Hex(text).substr(0, kExtensionsDigestHexChars);
}

Marker FinalDatabaseMarker(const DesiredTenant& desired) {
  Marker marker = ClaimMarker(desired);
  marker.fields[kMigrationField] =
      desired.migrations.empty() ? std::string("none") : desired.migrations.back().version;
  marker.fields[kStateField] = desired.state_digest;
  if (!desired.extensions.empty()) {
    marker.fields[kExtensionsField] = ExtensionsDigest(desired.extensions);
  }
  return SignMarker(std::move(marker), desired.marker_key);
}

// The marker vouches that the in-database steps reached the desired digest only when it is
// signed: the tenant owns its database and can rewrite its comment (issue 11, item 8).
bool RecordsState(const std::optional<Marker>& marker, const DesiredTenant& desired) {
  if (!marker) return false;
  const auto state = marker->fields.find(kStateField);
  return state != marker->fields.end() && state->second == desired.state_digest &&
         MarkerSignatureValid(*marker, desired.marker_key);
}

// What an earlier run of the in-database steps left that a stale `state` does not undo: set
// only from our signed marker, written for this role, and never on a deep pass (which checks
// everything again). The tenant can neither drop the operator's extensions nor its ledger
// schema (both are the admin's), so once made they stay until someone with the admin's rights
// removes them, and a deep pass repairs that.
struct AlreadyDone {
  bool extensions = false;  ///< the same extension set was ensured
  bool ledger = false;      ///< a migration was applied, so the ledger exists with its grants
};

AlreadyDone DoneBefore(const DesiredTenant& desired, const std::optional<Marker>& marker,
                       const PlanOptions& options) {
  if (options.deep || !marker || !MarkerSignatureValid(*marker, desired.marker_key)) return {};
  const std::string* owner = Field(*marker, kOwnerField);
  if (owner == nullptr || *owner != desired.role) return {};
  AlreadyDone done;
  const std::string* extensions = Field(*marker, kExtensionsField);
  done.extensions = !desired.extensions.empty() && extensions != nullptr &&
                    *extensions == ExtensionsDigest(desired.extensions);
  const std::string* migration = Field(*marker, kMigrationField);
  done.ledger = Field(*marker, kStateField) != nullptr && migration != nullptr &&
                *migration != "none";
  return done;
}

// `existed`: the database was there before this plan, so its migration ledger may record
// versions the product no longer has. ApplyMigrations then runs even with no migration to apply:
// it reads the ledger and stalls `MigrationMissing` (unless the product ignores missing ones).
void PlanInDatabase(const DesiredTenant& desired, bool existed, AlreadyDone done,
                    std::vector<Action>& actions) {
  if (!desired.extensions.empty() && !done.extensions) {
    actions.emplace_back(EnsureExtensions{desired.database, desired.extensions, desired.role});
  }
  if (!desired.migrations.empty() || existed) {
    actions.emplace_back(ApplyMigrations{desired.database, desired.role, desired.password,
                                         desired.migrations, desired.ignore_missing_migrations,
                                         done.ledger});
  }
  actions.emplace_back(SetDatabaseMarker{desired.database, FinalDatabaseMarker(desired).Render()});
}

void PlanDatabase(const DesiredTenant& desired, const ObservedCluster& observed,
                  const PlanOptions& options, std::vector<Action>& actions) {
  const Marker claim = SignMarker(ClaimMarker(desired), desired.marker_key);
  const auto found = observed.databases.find(desired.database);
  bool in_database = options.deep;
  std::optional<Marker> marker;
  if (found == observed.databases.end()) {
    // CreateDatabase creates it closed to PUBLIC (the adapter revokes CONNECT and TEMPORARY in
    // the round trip right after CREATE DATABASE), so no RevokePublicAccess follows.
    actions.emplace_back(CreateDatabase{desired.database, desired.role, claim.Render()});
    in_database = true;
  } else {
    const ObservedDatabase& database = found->second;
    marker = ReadOwnership(database.comment, desired.workspace).marker;
    if (database.owner != desired.role) {
      actions.emplace_back(AlterDatabaseOwner{desired.database, desired.role});
    }
    // Claim an adopted database before anything in it can fail, so it is ours from now on.
    if (!marker) actions.emplace_back(SetDatabaseMarker{desired.database, claim.Render()});
    if (database.public_connect || database.public_temporary) {
      actions.emplace_back(RevokePublicAccess{desired.database});
    }
    in_database = in_database || !RecordsState(marker, desired);
  }
  // Suspended: the role cannot log in and migrations run as the role; they wait for resume,
  // which finds the state digest stale and runs them. What was done before is only asked here,
  // so a converged pass (the no-op resync) verifies no signature twice.
  if (in_database && !desired.suspend) {
    PlanInDatabase(desired, found != observed.databases.end(),
                   DoneBefore(desired, marker, options), actions);
  }
}

}  // namespace

std::optional<Failure> CheckIdentity(const DesiredTenant& desired, const ObservedCluster& own,
                                     std::span<const MarkedDatabase> elsewhere) {
  // Where the workspace converged: its own database first, then another database of its
  // cluster (a rename), then another cluster (a move).
  std::optional<MarkedDatabase> found;
  std::optional<Marker> own_marker;
  if (const auto db = own.databases.find(desired.database); db != own.databases.end()) {
    own_marker = Marker::Parse(db->second.comment);
    if (own_marker && ConvergedMarker(*own_marker, desired)) {
      found = MarkedDatabase{desired.cluster, desired.database, *own_marker};
    }
  }
  if (!found) {
    for (const auto& [name, database] : own.databases) {
      if (name == desired.database || !MarksWorkspace(database.comment, desired.workspace)) {
        continue;
      }
      auto marker = Marker::Parse(database.comment);
      if (marker && ConvergedMarker(*marker, desired) && !MarkerMoved(*marker)) {
        found = MarkedDatabase{desired.cluster, name, std::move(*marker)};
        break;
      }
    }
  }
  if (!found) {
    for (const MarkedDatabase& other : elsewhere) {
      // The same database seen through a second name of the same server says, in its marker,
      // that it lives on another cluster than the one it was observed on: not a move.
      const std::string* cluster = Field(other.marker, kClusterField);
      if (other.cluster == desired.cluster || cluster == nullptr || *cluster != other.cluster) {
        continue;
      }
      // The source a move kept (signed, so not a tenant's forgery): the data moved on.
      if (MarkerMoved(other.marker) && MarkerSignatureValid(other.marker, desired.marker_key)) {
        continue;
      }
      if (ConvergedMarker(other.marker, desired)) {
        found = other;
        break;
      }
    }
  }

  std::vector<std::string> changes;
  const auto compare = [&changes](std::string_view field, const std::string& was,
                                  const std::string& now) {
    if (was != now) {
      changes.push_back(std::string(field) + " was " + Quoted(was) + " and is now " + Quoted(now));
    }
  };
  std::string data_database = desired.database;
  std::string data_cluster = desired.cluster;
  bool owner_known = false;
  if (found) {
    const Marker& marker = found->marker;
    const std::string* cluster = Field(marker, kClusterField);
    data_database = found->database;
    data_cluster = cluster != nullptr ? *cluster : found->cluster;
    if (const std::string* product = Field(marker, kProductField)) {
      compare("spec.product", *product, desired.product);
    }
    compare("spec.database.cluster", data_cluster, desired.cluster);
    compare("spec.database.name", found->database, desired.database);
    if (const std::string* owner = Field(marker, kOwnerField)) {
      owner_known = true;
      compare("spec.database.owner", *owner, desired.role);
    }
  }
  // A marker without a signed owner (written before markers were signed): the role markers,
  // which a tenant cannot write, tell whose the tables are.
  const bool reached_state = found || (own_marker && own_marker->workspace == desired.workspace &&
                                       own_marker->fields.contains(kStateField));
  if (reached_state && !owner_known && !own.roles.contains(desired.role)) {
    for (const auto& [name, role] : own.roles) {
      if (MarksWorkspace(role.comment, desired.workspace)) {
        compare("spec.database.owner", name, desired.role);
        break;
      }
    }
  }
  if (changes.empty()) return std::nullopt;
  return Failure::Stalled(
      "ImmutableField",
      "workspace " + Quoted(desired.workspace) + ": " + Join(changes, "; ") +
          "; these fields are fixed once the workspace has converged: database " +
          Quoted(data_database) + " on cluster " + Quoted(data_cluster) +
          " holds its data and nothing was changed; put the old values back, or declare a new "
          "workspace and restore the data into it (README.md#changing-a-workspaces-identity)");
}

std::multimap<std::string, MarkedDatabase> IndexDatabaseMarkers(const std::string& cluster,
                                                                const ObservedCluster& observed) {
  std::multimap<std::string, MarkedDatabase> index;
  for (const auto& [name, database] : observed.databases) {
    auto marker = Marker::Parse(database.comment);
    if (!marker) continue;
    std::string workspace = marker->workspace;
    index.emplace(std::move(workspace), MarkedDatabase{cluster, name, std::move(*marker)});
  }
  return index;
}

Plan MakePlan(const DesiredTenant& desired, const ObservedCluster& observed,
              const PlanOptions& options) {
  Plan plan;
  // Identity first: a renamed database is usually absent, so nothing else would block.
  if (auto changed = CheckIdentity(desired, observed, options.elsewhere)) {
    plan.blocked = std::move(changed);
    return plan;
  }
  if (auto blocked = FindBlock(desired, observed)) {
    plan.blocked = std::move(blocked);
    return plan;
  }
  PlanRole(desired, observed, plan.actions);
  PlanDatabase(desired, observed, options, plan.actions);
  return plan;
}

}  // namespace tmaster::postgres
