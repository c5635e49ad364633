#include "controller/daemon/runtime_api.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

namespace tmaster::controller {
namespace json = boost::json;

std::string RuntimeEventsWorkspace(const std::string& product) { return "runtime:" + product; }

std::string RuntimeTenantsJson(const std::string& product, const bindings::TenantsView& view,
                               const bindings::SharedTenants& shared) {
  json::array items;
  items.reserve(view.items.size());
  for (const bindings::TenantFacts& facts : view.items) {
    const bindings::Endpoint& address = shared.AddressOf(facts);
    json::array hosts;
    for (const std::string& host : facts.hosts) hosts.emplace_back(host);
    json::object item;
    item["workspace"] = facts.workspace;
    item["hosts"] = std::move(hosts);
    item["state"] = facts.suspended ? "suspended" : "active";
    item["type"] = "postgresql";
    item["provider"] = "tenant-master";
    item["host"] = address.host;
    item["port"] = address.port;
    item["database"] = facts.database;
    item["username"] = facts.username;
    item["password"] = facts.password.Reveal();
    item["uri"] = bindings::BindingUri(facts, address).Reveal();
    items.emplace_back(std::move(item));
  }
  json::object out;
  out["apiVersion"] = "tenantmaster.io/v1alpha1";
  out["kind"] = "RuntimeTenantList";
  out["product"] = product;
  out["resourceVersion"] = std::to_string(view.resource_version);
  out["items"] = std::move(items);
  return json::serialize(out);
}

RuntimeAnswer ServeRuntimeTenants(const bindings::SharedTenants& shared, const RuntimeCall& call,
                                  const std::function<bool()>& leading, Store* store) {
  RuntimeAnswer answer;
  if (leading && !leading()) {
    answer.status = 503;
    answer.message = "this replica is a standby: ask the leader (its publication is the current one)";
    return answer;
  }
  if (call.watch && call.resource_version) {
    const auto deadline = std::chrono::steady_clock::now() + call.timeout;
    if (!shared.WaitForChange(call.product, *call.resource_version, deadline)) {
      answer.status = 304;
      return answer;
    }
  }
  const bindings::TenantsView view = shared.Tenants(call.product);
  answer.body = RuntimeTenantsJson(call.product, view, shared);
  if (store != nullptr) {
    Event event;
    event.workspace = RuntimeEventsWorkspace(call.product);
    event.type = "Normal";
    event.reason = "CredentialsRead";
    event.message = call.who + " read the credentials of " + std::to_string(view.items.size()) +
                    (view.items.size() == 1 ? " tenant" : " tenants") + " of product " +
                    call.product + " (resourceVersion " + std::to_string(view.resource_version) +
                    ")" + (call.remote.empty() ? std::string() : " from " + call.remote);
    if (Outcome<std::int64_t> appended = store->AppendEvent(event); !appended) {
      spdlog::warn("runtime API: could not record the credential read: {}",
                   appended.failure().message);
    }
  }
  return answer;
}

}  // namespace tmaster::controller
