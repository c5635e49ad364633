#pragma once
// The controller's placement of workspaces without `spec.database.cluster` (docs/placement.md):
// the first pass of such a workspace asks for its cluster; a new one is placed
// (reconcilers/placement/placement.hpp) against what every cluster holds now and the choice is
// recorded in the store before anything is created; from then on the recorded cluster is its
// answer, whatever the capacities, labels or reachability say later. A dedicated workspace
// without `spec.dedicated.endpoint` gets its stack's endpoint the same way, among the config's
// `stacks.endpoints`, recorded as its stored stack endpoint (docs/placement.md#endpoints).
// Thread-safe: placements are decided one at a time, so two new workspaces never both take a
// place's last room. What each place holds is counted once per change of the declared set and
// kept up to date by each new placement (a cold fleet of N is placed in O(N log N), not O(N^2)).

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/outcome.hpp"
#include "controller/store/store.hpp"
#include "manifests/config.hpp"
#include "manifests/types.hpp"

namespace tmaster::controller {

class DesiredState;

/// Whether a cluster answers (its last check), for placement and `tenantctl get clusters`.
struct ClusterReach {
  bool known = false;  ///< false until the first check
  bool reachable = true;
  std::string reason;          ///< why not, when unreachable
  std::string server_version;  ///< e.g. 15.10, when reachable
  std::int64_t checked_unix = 0;
};

/// What a Portainer endpoint is and whether its engine answers (its last check), for
/// `tenantctl get endpoints`. Placement does not read it (docs/placement.md#endpoints).
struct EndpointReach {
  bool known = false;  ///< false until the first check
  bool reachable = true;
  bool swarm = false;          ///< a swarm manager, when reachable
  std::string swarm_id;        ///< its cluster's ID, when swarm
  std::string reason;          ///< why not, when unreachable
  std::int64_t checked_unix = 0;
};

struct PlacerDeps {
  Store* store = nullptr;
  const DesiredState* desired = nullptr;
  std::vector<manifests::ClusterConfig> clusters;
  std::vector<manifests::EndpointConfig> endpoints;  ///< `stacks.endpoints`
  /// The last check of a cluster; empty: every cluster counts as reachable.
  std::function<ClusterReach(const std::string&)> reach;
  /// The last check of an endpoint; empty: none known.
  std::function<EndpointReach(int)> endpoint_reach;
  /// The products whose shared runtime (`spec.sharedRuntime.endpoint`) is on each endpoint, names
  /// sorted; empty: none. Shown with the endpoints, never counted against their capacity.
  std::function<std::map<int, std::vector<std::string>>()> runtimes;
  /// Seconds since the epoch (tests fix it); empty: the system clock.
  std::function<std::int64_t()> now_unix;
};

class Placer {
 public:
  explicit Placer(PlacerDeps deps);

  /// Reads the recorded placements, the identities of converged workspaces (one placed by an
  /// older version keeps the cluster it converged on) and the stored stack endpoints. Called at
  /// the start of each term.
  Status Load();

  /// The cluster of `workspace`: the one its spec names; else the recorded placement; else the
  /// cluster its recorded `identity` names (recorded now as its placement); else a new placement,
  /// recorded before it is returned. Stalled `Unschedulable` when no cluster can take it (each
  /// one named with why not); a store failure is Transient.
  Outcome<std::string> ClusterFor(const std::string& name, const manifests::Workspace& workspace,
                                  const std::optional<WorkspaceIdentity>& identity);
  /// The endpoint of dedicated `workspace`'s stack: the one its spec names; else its stored
  /// stack endpoint (`recorded`, or one recorded since); else a new placement among the
  /// configured endpoints, recorded in the store (Store::RecordStackEndpoint) before it is
  /// returned, so the stack is created only where the record says. Stalled `Unschedulable`
  /// when no endpoint can take it; a store failure is Transient.
  Outcome<int> EndpointFor(const std::string& name, const manifests::Workspace& workspace,
                           std::optional<int> recorded);
  /// The stored stack endpoint of `name` changed (its stack moved, or went with a switch to
  /// shared or the workspace's removal): what each endpoint holds follows.
  void StackOn(const std::string& name, std::optional<int> endpoint);
  /// The recorded placement, if any.
  [[nodiscard]] std::optional<std::string> PlacedOn(const std::string& name) const;
  /// Forgets the placement (its database was dropped): its room is free again.
  Status Forget(const std::string& name);
  /// A move switched `name` to `cluster` (the store already says so: Store::SwitchPlacement);
  /// from now on that is its answer (docs/moves.md).
  void Moved(const std::string& name, const std::string& cluster);

  struct Usage {
    std::string cluster;
    std::optional<std::int64_t> capacity;
    std::map<std::string, std::string> labels;
    std::int64_t used = 0;    ///< workspaces on it: declared, placed, or kept after removal
    std::int64_t placed = 0;  ///< of which placed by the operator
    ClusterReach reach;
  };
  /// Each configured cluster, in config order.
  [[nodiscard]] std::vector<Usage> Usages() const;

  struct EndpointUsage {
    int endpoint = 0;
    bool configured = false;  ///< in `stacks.endpoints`: stacks may be placed on it
    std::optional<std::int64_t> capacity;
    std::map<std::string, std::string> labels;
    std::int64_t used = 0;  ///< stacks on it: declared there, placed, or not yet removed
    std::vector<std::string> runtimes;  ///< products whose shared runtime is on it (not in used)
    EndpointReach reach;
  };
  /// Each configured endpoint (`stacks.endpoints`) in config order, then, by id, each other
  /// endpoint a stack is on (named by a workspace's spec, or its stored stack endpoint) or a
  /// product's shared runtime is on.
  [[nodiscard]] std::vector<EndpointUsage> EndpointUsages() const;
  /// The ids of EndpointUsages(), without asking for their reach (the endpoint monitor's list).
  [[nodiscard]] std::vector<int> KnownEndpoints() const;

 private:
  /// What each place holds, derived from the declared set at `version`.
  struct Counts {
    bool valid = false;
    std::uint64_t version = 0;
    std::map<std::string, std::int64_t> clusters;  ///< workspaces on each cluster
    std::map<std::string, std::int64_t> placed;    ///< of which placed by the operator
    std::map<int, std::int64_t> endpoints;         ///< stacks on each endpoint
  };

  std::int64_t Now() const;
  /// EndpointUsages() without the reach.
  std::vector<EndpointUsage> CountEndpoints() const;
  /// Under mutex_: the counts now (recounted when the declared set changed since).
  const Counts& Counted() const;
  /// Under mutex_.
  Outcome<std::string> Record(const std::string& name, const std::string& cluster);

  PlacerDeps deps_;
  mutable std::mutex mutex_;
  std::map<std::string, std::string> placed_;      ///< recorded placements
  std::map<std::string, std::string> identities_;  ///< converged workspaces' clusters, by name
  std::map<std::string, int> stacks_;              ///< stored stack endpoints, by workspace
  mutable Counts counts_;
};

}  // namespace tmaster::controller
