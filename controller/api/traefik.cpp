#include "controller/api/traefik.hpp"

#include <boost/json.hpp>

#include "common/crypto.hpp"

namespace tmaster::controller {
namespace {

namespace json = boost::json;

const json::value* Find(const json::value& value, std::string_view key) {
  const json::object* object = value.if_object();
  if (object == nullptr) return nullptr;
  return object->if_contains(key);
}

std::string StringAt(const json::value& value, std::string_view key) {
  const json::value* found = Find(value, key);
  if (found == nullptr || !found->is_string()) return "";
  return std::string(found->get_string());
}

bool BoolAt(const json::value& value, std::string_view key) {
  const json::value* found = Find(value, key);
  return found != nullptr && found->is_bool() && found->get_bool();
}

// A DNS name of labels [a-z0-9-] joined by dots: what the validator already guarantees of a
// subdomain and of baseDomain. Checked again here because the rule is Traefik's own language:
// a backtick in it would end the Host() string.
bool IsHostName(std::string_view name) {
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return name.find("..") == std::string_view::npos;
}

json::object Server(const std::string& url) {
  json::object server;
  server["url"] = url;
  json::array servers;
  servers.emplace_back(std::move(server));
  json::object balancer;
  balancer["servers"] = std::move(servers);
  balancer["passHostHeader"] = true;
  json::object service;
  service["loadBalancer"] = std::move(balancer);
  return service;
}

// Boost.JSON objects keep insertion order; the maps below are std::map so that the document is
// in name order whatever order the workspaces came in.
json::object Ordered(const std::map<std::string, json::object>& entries) {
  json::object out;
  for (const auto& [name, value] : entries) out[name] = value;
  return out;
}

}  // namespace

RoutedWorkspace RoutedWorkspaceFrom(const StoredWorkspace& workspace,
                                    const WorkspaceStatus* status) {
  RoutedWorkspace routed;
  routed.name = workspace.name;
  if (status != nullptr) routed.phase = status->phase;
  json::error_code error;
  const json::value document = json::parse(workspace.spec_json, error);
  if (error) return routed;
  const json::value* spec = Find(document, "spec");
  if (spec == nullptr) return routed;
  routed.product = StringAt(*spec, "product");
  routed.subdomain = StringAt(*spec, "subdomain");
  routed.shared = StringAt(*spec, "mode") == "shared";
  routed.suspended = BoolAt(*spec, "suspend") || routed.phase == "Suspended";
  return routed;
}

std::string SharedServiceUrl(const TraefikRouting& routing,
                             const std::map<std::string, int>& shared_runtimes,
                             const std::string& product) {
  if (const auto url = routing.shared_services.find(product);
      url != routing.shared_services.end()) {
    return url->second;
  }
  const auto runtime = shared_runtimes.find(product);
  if (runtime == shared_runtimes.end() || !IsHostName(product)) return "";
  return "http://tm-shared-" + product + ":" + std::to_string(runtime->second);
}

std::string TraefikDynamicConfigJson(const std::vector<RoutedWorkspace>& workspaces,
                                     const TraefikRouting& routing) {
  const std::map<std::string, int> shared_runtimes =
      routing.shared_runtimes ? routing.shared_runtimes() : std::map<std::string, int>{};
  std::map<std::string, json::object> routers;
  std::map<std::string, json::object> services;
  std::map<std::string, json::object> middlewares;
  for (const RoutedWorkspace& workspace : workspaces) {
    if (!workspace.shared || !IsHostName(workspace.subdomain) ||
        !IsHostName(routing.base_domain)) {
      continue;
    }
    const std::string shared = SharedServiceUrl(routing, shared_runtimes, workspace.product);
    if (shared.empty()) continue;
    std::string service;
    if (workspace.suspended) {
      if (routing.suspended_service.empty()) continue;
      service = "tm-suspended";
      services[service] = Server(routing.suspended_service);
    } else if (workspace.phase == "Ready") {
      service = "tm-shared-" + workspace.product;
      services[service] = Server(shared);
    } else {
      continue;
    }
    const std::string middleware = "tm-workspace-" + workspace.name;
    json::object headers;
    headers["X-Tenant-Master-Workspace"] = workspace.name;
    json::object header_middleware;
    header_middleware["customRequestHeaders"] = std::move(headers);
    json::object middleware_object;
    middleware_object["headers"] = std::move(header_middleware);
    middlewares[middleware] = std::move(middleware_object);

    json::object router;
    router["rule"] = "Host(`" + workspace.subdomain + "." + routing.base_domain + "`)";
    router["entryPoints"] = json::array{json::value(routing.entry_point)};
    router["service"] = service;
    router["middlewares"] = json::array{json::value(middleware)};
    json::object tls;
    if (!routing.cert_resolver.empty()) tls["certResolver"] = routing.cert_resolver;
    router["tls"] = std::move(tls);
    routers["tm-" + workspace.name] = std::move(router);
  }
  json::object http;
  http["routers"] = Ordered(routers);
  http["services"] = Ordered(services);
  http["middlewares"] = Ordered(middlewares);
  json::object root;
  root["http"] = std::move(http);
  return json::serialize(root);
}

std::string StrongEtag(std::string_view body) {
  return "\"" + crypto::Sha256Hex(body).substr(0, 32) + "\"";
}

bool IfNoneMatchHits(std::string_view if_none_match, std::string_view etag) {
  const auto opaque = [](std::string_view tag) {
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
    return tag;
  };
  std::size_t pos = 0;
  while (pos <= if_none_match.size()) {
    const std::size_t comma = if_none_match.find(',', pos);
    const std::string_view item = opaque(if_none_match.substr(
        pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos));
    if (item == "*" || (!item.empty() && item == opaque(etag))) return true;
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return false;
}

}  // namespace tmaster::controller
