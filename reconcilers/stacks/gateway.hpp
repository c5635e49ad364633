#pragma once

#include <string>
#include <vector>

#include "common/outcome.hpp"
#include "reconcilers/stacks/model.hpp"

namespace tmaster::stacks {

/// What an endpoint is, as its engine says now (`tenantctl get endpoints`).
struct EndpointInfo {
  bool swarm = false;    ///< a swarm manager; false: a standalone engine
  std::string swarm_id;  ///< the swarm cluster's ID (Docker's swarm inspect `ID`); swarm only
};

/// Where dedicated stacks run. Implementations: the Portainer HTTP adapter
/// (portainer_http.hpp), the directory backend (directory_backend.hpp) and the tests' fake.
/// Thread-safe.
class StackGateway {
 public:
  virtual ~StackGateway() = default;

  /// Every stack of `endpoint`, with one call (Portainer: `GET /api/stacks?filters=
  /// {"EndpointID":N,"SwarmID":...}`). Transient on network errors and 5xx; Stalled
  /// `PortainerUnauthorized` on 401/403.
  virtual Outcome<std::vector<ObservedStack>> List(int endpoint) = 0;

  /// The stored compose file of one stack (`GET /api/stacks/{id}/file`). Called only when the
  /// plan needs it.
  virtual Outcome<std::string> File(const ObservedStack& stack) = 0;

  /// Carries out one action. A create first re-lists the endpoint (a previous attempt may have
  /// succeeded after a timeout) and adopts a stack of that name only if it carries our marker;
  /// a 409 is re-listed the same way; a foreign holder is Stalled `StackConflict`.
  virtual Outcome<ApplyResult> Apply(const Action& action) = 0;

  /// What `endpoint` is now, with one light call and no retry (the endpoint monitor asks again
  /// later; Portainer: `GET /api/endpoints/{id}/docker/swarm`). A failure means the endpoint
  /// cannot be used now: its engine does not answer (Transient), it is unknown or refused
  /// (Stalled, as List); the message names the endpoint and never a secret.
  virtual Outcome<EndpointInfo> Inspect(int endpoint) = 0;
};

}  // namespace tmaster::stacks
