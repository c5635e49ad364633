#pragma once

// Traefik's HTTP-provider dynamic configuration for shared tenants (issue 13 item 4,
// docs/api.md#traefik-routes-for-shared-tenants): `GET /api/v1/traefik` answers it, Traefik
// polls it. Pure: the HTTP server and tests call these; Boost.JSON stays in traefik.cpp.
// Dedicated stacks are not here: they carry their own Docker labels (docs/stacks.md).

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "controller/store/store.hpp"

namespace tmaster::controller {

/// The routing part of the config (`routing.*`, `baseDomain`, `stacks.certResolver`).
struct TraefikRouting {
  std::string base_domain;
  std::string cert_resolver = "le";
  std::string entry_point = "websecure";
  /// product -> URL of its shared runtime (`routing.sharedServices`).
  std::map<std::string, std::string> shared_services;
  /// Where suspended shared workspaces go (`routing.suspendedService`); empty: no router.
  std::string suspended_service;
  /// product -> port of each product that declares `spec.sharedRuntime`, asked once per
  /// document (products change with the sources); unset: none. Such a product without a
  /// `shared_services` entry is served at `http://tm-shared-<product>:<port>`, its runtime
  /// stack's alias on the edge network (docs/stacks.md#shared-runtime).
  std::function<std::map<std::string, int>()> shared_runtimes;
};

/// The URL of `product`'s shared runtime: its `routing.sharedServices` entry, else
/// `http://tm-shared-<product>:<port>` when `shared_runtimes` (the result of
/// TraefikRouting::shared_runtimes) names it; empty when neither does.
std::string SharedServiceUrl(const TraefikRouting& routing,
                             const std::map<std::string, int>& shared_runtimes,
                             const std::string& product);

/// What routing needs of one workspace.
struct RoutedWorkspace {
  std::string name;
  std::string product;
  std::string subdomain;
  bool shared = false;
  bool suspended = false;  ///< spec.suspend, or an override
  std::string phase;       ///< the status phase; "" when never reconciled
};

/// Reads a RoutedWorkspace from a stored spec (controller/store/spec_json.hpp's shape) and its
/// status (nullptr: never reconciled). A spec that does not parse gives a workspace that is
/// neither shared nor routed.
RoutedWorkspace RoutedWorkspaceFrom(const StoredWorkspace& workspace, const WorkspaceStatus* status);

/// The dynamic configuration, as JSON (Traefik's HTTP provider reads JSON or YAML):
/// `{"http":{"routers":{...},"services":{...},"middlewares":{...}}}`. One router `tm-<name>` per
/// shared workspace that is Ready, with rule ``Host(`<subdomain>.<baseDomain>`)``, the entry
/// point, `tls.certResolver`, the service `tm-shared-<product>` and a middleware
/// `tm-workspace-<name>` that sets `X-Tenant-Master-Workspace: <name>` (the shared runtime's
/// way to tell tenants apart without trusting the client's Host); a suspended one routes to
/// `tm-suspended` when `suspended_service` is set and has no router otherwise; a product without
/// a shared service (SharedServiceUrl empty) has no routers. Every map is in name order, so an unchanged fleet gives the
/// same bytes (and the same ETag).
std::string TraefikDynamicConfigJson(const std::vector<RoutedWorkspace>& workspaces,
                                     const TraefikRouting& routing);

/// A strong ETag for `body`: `"` + the first 32 hex digits of its SHA-256 + `"`.
std::string StrongEtag(std::string_view body);

/// True when an `If-None-Match` header value names `etag` (a list of tags, or `*`; weak tags
/// compare by their opaque part, as RFC 9110 says for If-None-Match).
bool IfNoneMatchHits(std::string_view if_none_match, std::string_view etag);

}  // namespace tmaster::controller
