#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/text.hpp"
#include "reconcilers/postgres/model.hpp"

// MakeReclaimPlan: what removing a workspace does to its database and role
// (docs/architecture.md#postgresql-what-converged-means, issue 3 item 6). Pure, like MakePlan; the
// daemon observes, plans and applies it the same way.
namespace tmaster::postgres {
namespace {

// Reclaim never adopts: it drops or locks only what this workspace's marker names. Anything
// else under the same name is someone's data and a human must look at it.
std::optional<Failure> NotOurs(std::string_view what, const std::string& name,
                               const std::string& comment, const ReclaimTarget& target) {
  const auto marker = Marker::Parse(comment);
  if (marker && marker->workspace == target.workspace) return std::nullopt;
  const std::string whose = marker ? "is marked for workspace " + Quoted(marker->workspace)
                                   : std::string("has no tenant-master marker");
  return Failure::Stalled(
      "NotOwned", std::string(what) + " " + Quoted(name) + " on cluster " + Quoted(target.cluster) +
                      " " + whose + ", not " + Quoted(target.workspace) +
                      "; reclaiming removed workspace " + Quoted(target.workspace) + " (policy " +
                      ToString(target.policy) +
                      ") touches nothing until it is dropped, renamed or marked by hand");
}

// A marker can be written by anyone with CREATEROLE (roles) or owning the database: whatever it
// says, reclaim never drops or locks the operator's own role, a privileged role or PostgreSQL's
// own databases.
Failure Refused(std::string_view what, const std::string& name, const ReclaimTarget& target,
                const std::string& why) {
  return Failure::Stalled(
      "NotOwned", std::string(what) + " " + Quoted(name) + " on cluster " + Quoted(target.cluster) +
                      " " + why + "; reclaiming removed workspace " + Quoted(target.workspace) +
                      " never touches it, whatever its marker says");
}

std::optional<Failure> Untouchable(const ObservedRole& role, const ObservedCluster& observed,
                                   const ReclaimTarget& target) {
  std::string why;
  if (!observed.operator_role.empty() && role.name == observed.operator_role) {
    why = "is the operator's own role";
  } else if (role.superuser) {
    why = "is a superuser";
  } else if (role.create_role) {
    why = "has CREATEROLE";
  } else if (role.replication) {
    why = "has REPLICATION";
  } else if (role.bypass_rls) {
    why = "has BYPASSRLS";
  } else if (role.privileged_member) {
    why = "is a member of a privileged role";
  }
  if (why.empty()) return std::nullopt;
  return Refused("role", role.name, target, why);
}

std::optional<Failure> FindBlock(const ReclaimTarget& target, const ObservedCluster& observed) {
  if (const auto role = observed.roles.find(target.role); role != observed.roles.end()) {
    if (auto block = NotOurs("role", target.role, role->second.comment, target)) return block;
    if (auto block = Untouchable(role->second, observed, target)) return block;
  }
  const auto database = observed.databases.find(target.database);
  if (database != observed.databases.end()) {
    if (auto block = NotOurs("database", target.database, database->second.comment, target)) {
      return block;
    }
    if (target.database == "postgres" || target.database == "template0" ||
        target.database == "template1") {
      return Refused("database", target.database, target, "is PostgreSQL's own");
    }
  }
  return std::nullopt;
}

void PlanRetain(const ReclaimTarget& target, const ObservedCluster& observed,
                std::vector<Action>& actions) {
  const auto found = observed.roles.find(target.role);
  if (found == observed.roles.end()) return;  // nothing can log in; the database stays as is
  const ObservedRole& role = found->second;
  if (role.can_login) {
    actions.emplace_back(AlterRole{target.role, false, role.connection_limit});
  }
  if (role.sessions > 0) actions.emplace_back(TerminateSessions{target.role});
  // Recorded last, once the role is closed: a marker that says `retained` is true of the role.
  std::optional<Marker> parsed = Marker::Parse(role.comment);
  assert(parsed && "FindBlock lets only a role marked for this workspace through");
  Marker marker = parsed.value_or(Marker{target.workspace, {}});
  auto& reclaim = marker.fields[std::string(kReclaimField)];
  if (reclaim != kReclaimRetained) {
    reclaim = kReclaimRetained;
    actions.emplace_back(SetRoleMarker{target.role, marker.Render()});
  }
}

void PlanDelete(const ReclaimTarget& target, const ObservedCluster& observed,
                std::vector<Action>& actions) {
  // The database first: the role owns it, and DROP ROLE refuses while it does.
  if (observed.databases.contains(target.database)) {
    actions.emplace_back(DropDatabase{target.database});
  }
  const auto role = observed.roles.find(target.role);
  if (role == observed.roles.end()) return;
  // WITH (FORCE) ends the sessions in the tenant database; one in another database (`postgres`
  // often lets PUBLIC connect) would outlive its dropped role.
  if (role->second.sessions > 0) actions.emplace_back(TerminateSessions{target.role});
  actions.emplace_back(DropRole{target.role});
}

}  // namespace

Plan MakeReclaimPlan(const ReclaimTarget& target, const ObservedCluster& observed) {
  Plan plan;
  if (auto blocked = FindBlock(target, observed)) {
    plan.blocked = std::move(blocked);
    return plan;
  }
  switch (target.policy) {
    case manifests::ReclaimPolicy::kRetain: PlanRetain(target, observed, plan.actions); break;
    case manifests::ReclaimPolicy::kDelete: PlanDelete(target, observed, plan.actions); break;
  }
  return plan;
}

}  // namespace tmaster::postgres
