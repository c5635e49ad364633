#include "controller/bindings/binding.hpp"

#include "reconcilers/stacks/render.hpp"

namespace tmaster::bindings {

const Endpoint& AddressFor(const TenantFacts& facts, const std::optional<Endpoint>& via) {
  return via ? *via : facts.runtime_address;
}

Secret BindingUri(const TenantFacts& facts, const Endpoint& address) {
  // One encoder for every connection URI we hand out (dedicated stacks' DATABASE_URL too).
  return stacks::DatabaseUrl(
      {address.host, address.port, facts.database, facts.username, facts.password});
}

std::vector<FileEntry> RenderBinding(const TenantFacts& facts, const std::optional<Endpoint>& via) {
  const Endpoint& address = AddressFor(facts, via);
  std::string hosts;
  for (const std::string& host : facts.hosts) {
    if (!hosts.empty()) hosts += '\n';
    hosts += host;
  }
  return {
      {"type", "postgresql"},
      {"provider", "tenant-master"},
      {"host", address.host},
      {"port", std::to_string(address.port)},
      {"database", facts.database},
      {"username", facts.username},
      {"password", facts.password.Reveal()},
      {"uri", BindingUri(facts, address).Reveal()},
      {"workspace", facts.workspace},
      {"hosts", hosts},
      {"state", facts.suspended ? "suspended" : "active"},
  };
}

}  // namespace tmaster::bindings
