// Traefik's dynamic configuration for shared tenants, checked field by field against the
// structure of Traefik's HTTP provider (routers: rule, entryPoints, service, middlewares,
// tls.certResolver; services: loadBalancer.servers[].url; middlewares: headers).
#include "controller/api/traefik.hpp"

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace {

namespace json = boost::json;
using tmaster::controller::IfNoneMatchHits;
using tmaster::controller::RoutedWorkspace;
using tmaster::controller::RoutedWorkspaceFrom;
using tmaster::controller::StoredWorkspace;
using tmaster::controller::StrongEtag;
using tmaster::controller::TraefikDynamicConfigJson;
using tmaster::controller::TraefikRouting;
using tmaster::controller::WorkspaceStatus;

TraefikRouting Routing() {
  TraefikRouting routing;
  routing.base_domain = "surgir.online";
  routing.cert_resolver = "le";
  routing.shared_services = {{"erp", "http://erp-shared:8000"}, {"shop", "http://shop:9000"}};
  return routing;
}

RoutedWorkspace Shared(std::string name, std::string product, std::string phase) {
  RoutedWorkspace w;
  w.name = name;
  w.subdomain = name;
  w.product = std::move(product);
  w.shared = true;
  w.phase = std::move(phase);
  return w;
}

json::object Http(const std::string& body) {
  const json::value root = json::parse(body);
  REQUIRE(root.as_object().size() == 1);
  return root.at("http").as_object();
}

TEST_CASE("traefik: a router per shared, ready workspace, to its product's shared service") {
  RoutedWorkspace dedicated = Shared("solo", "erp", "Ready");
  dedicated.shared = false;
  RoutedWorkspace suspended = Shared("paused", "erp", "Suspended");
  suspended.suspended = true;
  const std::vector<RoutedWorkspace> fleet = {
      Shared("zeta", "shop", "Ready"), Shared("acme", "erp", "Ready"),
      Shared("broken", "erp", "Degraded"), dedicated, suspended,
      Shared("orphan", "landing", "Ready")};  // no shared service for landing
  const json::object http = Http(TraefikDynamicConfigJson(fleet, Routing()));

  const json::object& routers = http.at("routers").as_object();
  std::vector<std::string> names;
  for (const auto& entry : routers) names.emplace_back(entry.key());
  CHECK(names == std::vector<std::string>{"tm-acme", "tm-zeta"});  // name order, ready only

  const json::object& acme = routers.at("tm-acme").as_object();
  CHECK(acme.at("rule").as_string() == "Host(`acme.surgir.online`)");
  REQUIRE(acme.at("entryPoints").as_array().size() == 1);
  CHECK(acme.at("entryPoints").as_array()[0].as_string() == "websecure");
  CHECK(acme.at("service").as_string() == "tm-shared-erp");
  CHECK(acme.at("tls").at("certResolver").as_string() == "le");
  REQUIRE(acme.at("middlewares").as_array().size() == 1);
  CHECK(acme.at("middlewares").as_array()[0].as_string() == "tm-workspace-acme");
  CHECK(routers.at("tm-zeta").at("service").as_string() == "tm-shared-shop");

  const json::object& services = http.at("services").as_object();
  CHECK(services.size() == 2);
  const json::array& servers =
      services.at("tm-shared-erp").at("loadBalancer").at("servers").as_array();
  REQUIRE(servers.size() == 1);
  CHECK(servers[0].at("url").as_string() == "http://erp-shared:8000");
  CHECK(services.at("tm-shared-erp").at("loadBalancer").at("passHostHeader").as_bool());

  const json::object& middlewares = http.at("middlewares").as_object();
  CHECK(middlewares.at("tm-workspace-acme")
            .at("headers")
            .at("customRequestHeaders")
            .at("X-Tenant-Master-Workspace")
            .as_string() == "acme");
  CHECK(middlewares.size() == 2);
}

TEST_CASE("traefik: a suspended workspace goes to the suspended service when there is one") {
  RoutedWorkspace paused = Shared("paused", "erp", "Suspended");
  paused.suspended = true;
  TraefikRouting routing = Routing();
  CHECK(Http(TraefikDynamicConfigJson({paused}, routing)).at("routers").as_object().empty());

  routing.suspended_service = "http://maintenance:8080";
  const json::object http = Http(TraefikDynamicConfigJson({paused}, routing));
  CHECK(http.at("routers").at("tm-paused").at("service").as_string() == "tm-suspended");
  CHECK(http.at("routers").at("tm-paused").at("rule").as_string() ==
        "Host(`paused.surgir.online`)");
  CHECK(http.at("services")
            .at("tm-suspended")
            .at("loadBalancer")
            .at("servers")
            .as_array()[0]
            .at("url")
            .as_string() == "http://maintenance:8080");
  CHECK(http.at("services").as_object().size() == 1);
}

TEST_CASE("traefik: a host that is not a DNS name never reaches a rule") {
  RoutedWorkspace evil = Shared("evil", "erp", "Ready");
  evil.subdomain = "x`) || Host(`bank.example";
  CHECK(Http(TraefikDynamicConfigJson({evil}, Routing())).at("routers").as_object().empty());
  TraefikRouting routing = Routing();
  routing.base_domain = "a..b";
  CHECK(Http(TraefikDynamicConfigJson({Shared("acme", "erp", "Ready")}, routing))
            .at("routers")
            .as_object()
            .empty());
}

TEST_CASE("traefik: the same fleet in any order gives the same bytes and ETag") {
  const std::vector<RoutedWorkspace> a = {Shared("b", "erp", "Ready"), Shared("a", "shop", "Ready")};
  const std::vector<RoutedWorkspace> b = {Shared("a", "shop", "Ready"), Shared("b", "erp", "Ready")};
  const std::string first = TraefikDynamicConfigJson(a, Routing());
  CHECK(first == TraefikDynamicConfigJson(b, Routing()));
  CHECK(StrongEtag(first) == StrongEtag(TraefikDynamicConfigJson(b, Routing())));
  CHECK(StrongEtag(first) != StrongEtag(TraefikDynamicConfigJson({a[0]}, Routing())));
  CHECK(StrongEtag(first).size() == 34);
  CHECK(StrongEtag(first).front() == '"');
}

TEST_CASE("traefik: If-None-Match") {
  const std::string etag = "\"abc\"";
  CHECK(IfNoneMatchHits("\"abc\"", etag));
  CHECK(IfNoneMatchHits("W/\"abc\"", etag));
  CHECK(IfNoneMatchHits("\"x\", \"abc\"", etag));
  CHECK(IfNoneMatchHits("*", etag));
  CHECK_FALSE(IfNoneMatchHits("\"abcd\"", etag));
  CHECK_FALSE(IfNoneMatchHits("", etag));
  CHECK_FALSE(IfNoneMatchHits("abc", etag));
}

TEST_CASE("traefik: a workspace's routing facts come from its stored spec and status") {
  StoredWorkspace stored;
  stored.name = "acme";
  stored.spec_json =
      R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace","metadata":{"name":"acme"},)"
      R"("spec":{"product":"erp","mode":"shared","subdomain":"acme-shop","suspend":false}})";
  WorkspaceStatus status;
  status.phase = "Ready";
  RoutedWorkspace routed = RoutedWorkspaceFrom(stored, &status);
  CHECK(routed.name == "acme");
  CHECK(routed.product == "erp");
  CHECK(routed.subdomain == "acme-shop");
  CHECK(routed.shared);
  CHECK_FALSE(routed.suspended);
  CHECK(routed.phase == "Ready");

  stored.spec_json = R"({"spec":{"product":"erp","mode":"dedicated","suspend":true}})";
  routed = RoutedWorkspaceFrom(stored, nullptr);
  CHECK_FALSE(routed.shared);
  CHECK(routed.suspended);
  CHECK(routed.phase.empty());

  stored.spec_json = "not json";
  routed = RoutedWorkspaceFrom(stored, nullptr);
  CHECK_FALSE(routed.shared);
}

}  // namespace

TEST_CASE("traefik: a product with a shared runtime and no sharedServices entry routes to it") {
  TraefikRouting routing = Routing();
  routing.shared_runtimes = [] {
    return std::map<std::string, int>{{"landing", 8080}, {"erp", 9999}};
  };
  const std::vector<RoutedWorkspace> fleet = {Shared("acme", "erp", "Ready"),
                                              Shared("feria", "landing", "Ready"),
                                              Shared("other", "blog", "Ready")};
  const json::object http = Http(TraefikDynamicConfigJson(fleet, routing));
  const json::object& services = http.at("services").as_object();
  const auto url = [&](const char* service) {
    return std::string(services.at(service)
                           .at("loadBalancer")
                           .at("servers")
                           .as_array()
                           .at(0)
                           .at("url")
                           .as_string());
  };
  // The runtime stack's alias on the edge network, at the product's port.
  CHECK(url("tm-shared-landing") == "http://tm-shared-landing:8080");
  CHECK(http.at("routers").at("tm-feria").at("service").as_string() == "tm-shared-landing");
  // An explicit sharedServices entry wins.
  CHECK(url("tm-shared-erp") == "http://erp-shared:8000");
  // A product with neither has no router.
  CHECK_FALSE(http.at("routers").as_object().contains("tm-other"));
  // Without the provider, the runtime's product has no router either (as before).
  const json::object plain = Http(TraefikDynamicConfigJson(fleet, Routing()));
  CHECK_FALSE(plain.at("routers").as_object().contains("tm-feria"));
}
