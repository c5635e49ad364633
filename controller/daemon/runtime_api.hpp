#pragma once

// The daemon's side of `GET /api/v1/runtimes/{product}/tenants` (docs/bindings.md#runtime-api):
// the product's shared tenants as the publisher holds them, with the same facts as their
// bindings, to that product's runtime only (the HTTP server has checked the token). Each answer
// that carries credentials is recorded as an event naming the runtime, never a secret.

#include <functional>
#include <string>

#include "controller/api/http_server.hpp"
#include "controller/bindings/publisher.hpp"
#include "controller/store/store.hpp"

namespace tmaster::controller {

/// The `workspace` of the events of credential reads: `runtime:<product>` (not a workspace name).
std::string RuntimeEventsWorkspace(const std::string& product);

/// `{"kind":"RuntimeTenantList","product":...,"resourceVersion":"N","items":[{workspace, hosts,
/// state, type, provider, host, port, database, username, password, uri}...]}`, items sorted by
/// workspace, host and port the bindings' (the pooler's while it is on).
std::string RuntimeTenantsJson(const std::string& product, const bindings::TenantsView& view,
                               const bindings::SharedTenants& shared);

/// Answers one call: 503 when this replica is not the leader (`leading` false: its publisher may
/// be stale); with watch and a resourceVersion equal to the product's, waits until it changes or
/// the call's timeout (then 304, no credentials sent, no event); otherwise 200 with
/// RuntimeTenantsJson and an event `CredentialsRead` on RuntimeEventsWorkspace(product) in
/// `store` (nullptr: none).
RuntimeAnswer ServeRuntimeTenants(const bindings::SharedTenants& shared, const RuntimeCall& call,
                                  const std::function<bool()>& leading, Store* store);

}  // namespace tmaster::controller
