#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

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

// Blocking reasons in order of how much `adopt` could help: a marker of another workspace and a
// wrong encoding cannot be fixed by adopting, so they are reported before a missing marker.
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
  if (desired.adopt) return std::nullopt;
  if (role_owner && !role_owner->marker) {
    return NotOwned("role", "RoleNotOwned", desired.role, desired);
  }
  // A database owned by our own marked role is ours even without its marker: the operator
  // stopped between CREATE DATABASE and the COMMENT that follows it.
  const bool owned_by_our_role = role_owner && role_owner->marker &&
                                 database != observed.databases.end() &&
                                 database->second.owner == desired.role;
  if (db_owner && !db_owner->marker && !owned_by_our_role) {
    return NotOwned("database", "DatabaseNotOwned", desired.database, desired);
  }
  return std::nullopt;
}

bool RoleAttributesDrift(const ObservedRole& role, const DesiredTenant& desired) {
  return role.can_login != !desired.suspend || role.superuser || role.create_db ||
         role.create_role || role.replication || role.bypass_rls ||
         role.connection_limit != desired.connection_limit;
}

void PlanPassword(const DesiredTenant& desired, const ObservedCluster& observed,
                  const ObservedRole& role, const std::optional<Marker>& marker,
                  std::vector<Action>& actions) {
  Marker claimed = marker.value_or(Marker{desired.workspace, {}});
  if (!observed.passwords_visible) {
    // Without pg_authid a drifted password cannot be told from a good one, so a role we marked
    // is trusted to keep the password we gave it. A role being adopted had someone else's
    // password: set ours, which also writes the marker.
    if (!marker) {
      actions.emplace_back(SetRolePassword{desired.role, desired.password, desired.workspace});
    }
    return;
  }
  if (!role.verifier) {  // readable, but the role has no password at all
    actions.emplace_back(SetRolePassword{desired.role, desired.password, desired.workspace});
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
  actions.emplace_back(SetRolePassword{desired.role, desired.password, desired.workspace});
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
                                    desired.password, desired.workspace});
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
    actions.emplace_back(SetRoleMarker{desired.role, marker->Render()});
  }
  if (desired.suspend && role.sessions > 0) {
    actions.emplace_back(TerminateSessions{desired.role});
  }
}

Marker FinalDatabaseMarker(const DesiredTenant& desired) {
  Marker marker{desired.workspace, {}};
  marker.fields["migration"] =
      desired.migrations.empty() ? std::string("none") : desired.migrations.back().version;
  marker.fields["state"] = desired.state_digest;
  return marker;
}

bool RecordsState(const std::optional<Marker>& marker, const std::string& digest) {
  if (!marker) return false;
  const auto state = marker->fields.find("state");
  return state != marker->fields.end() && state->second == digest;
}

void PlanInDatabase(const DesiredTenant& desired, std::vector<Action>& actions) {
  if (!desired.extensions.empty()) {
    actions.emplace_back(EnsureExtensions{desired.database, desired.extensions});
  }
  if (!desired.migrations.empty()) {
    actions.emplace_back(
        ApplyMigrations{desired.database, desired.role, desired.password, desired.migrations});
  }
  actions.emplace_back(SetDatabaseMarker{desired.database, FinalDatabaseMarker(desired).Render()});
}

void PlanDatabase(const DesiredTenant& desired, const ObservedCluster& observed,
                  const PlanOptions& options, std::vector<Action>& actions) {
  const Marker claim{desired.workspace, {}};
  const auto found = observed.databases.find(desired.database);
  bool in_database = options.deep;
  if (found == observed.databases.end()) {
    // CreateDatabase creates it closed to PUBLIC (the adapter revokes CONNECT and TEMPORARY in
    // the round trip right after CREATE DATABASE), so no RevokePublicAccess follows.
    actions.emplace_back(CreateDatabase{desired.database, desired.role, claim.Render()});
    in_database = true;
  } else {
    const ObservedDatabase& database = found->second;
    const auto marker = ReadOwnership(database.comment, desired.workspace).marker;
    if (database.owner != desired.role) {
      actions.emplace_back(AlterDatabaseOwner{desired.database, desired.role});
    }
    // Claim an adopted database before anything in it can fail, so it is ours from now on.
    if (!marker) actions.emplace_back(SetDatabaseMarker{desired.database, claim.Render()});
    if (database.public_connect || database.public_temporary) {
      actions.emplace_back(RevokePublicAccess{desired.database});
    }
    in_database = in_database || !RecordsState(marker, desired.state_digest);
  }
  // Suspended: the role cannot log in and migrations run as the role; they wait for resume,
  // which finds the state digest stale and runs them.
  if (in_database && !desired.suspend) PlanInDatabase(desired, actions);
}

}  // namespace

Plan MakePlan(const DesiredTenant& desired, const ObservedCluster& observed,
              const PlanOptions& options) {
  Plan plan;
  if (auto blocked = FindBlock(desired, observed)) {
    plan.blocked = std::move(blocked);
    return plan;
  }
  PlanRole(desired, observed, plan.actions);
  PlanDatabase(desired, observed, options, plan.actions);
  return plan;
}

}  // namespace tmaster::postgres
