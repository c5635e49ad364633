#pragma once

// What a shared tenant's runtime is told (docs/bindings.md): the facts of one shared workspace
// and their Service Binding rendering, `<bindings.dir>/<product>/<workspace>/<key>`.

#include <optional>
#include <string>
#include <vector>

#include "common/secret.hpp"
#include "controller/bindings/safe_dir.hpp"

namespace tmaster::bindings {

/// A host and port something listens on.
struct Endpoint {
  std::string host;
  int port = 5432;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

/// Everything published about one shared tenant, gathered after its database converged.
struct TenantFacts {
  std::string product;
  std::string workspace;
  std::string cluster;
  /// Its cluster as the product's runtime reaches it (`stacksHost`/`stacksPort`, else the
  /// DSN's), and as the pooler reaches it (the DSN's host and port).
  Endpoint runtime_address;
  Endpoint server_address;
  std::string database;
  std::string username;
  Secret password;
  /// The role's SCRAM verifier exactly as the server stores it: PgBouncer's auth_file must hold
  /// the same one for SCRAM pass-through (docs/bindings.md#pgbouncer).
  std::string verifier;
  std::vector<std::string> hosts;  ///< its public host names
  bool suspended = false;
};

/// The key files of a binding, in the order written: type, provider, host, port, database,
/// username, password, uri, workspace, hosts, state. `via` (the pooler's listen address), when
/// set, replaces the cluster's address in host, port and uri.
std::vector<FileEntry> RenderBinding(const TenantFacts& facts, const std::optional<Endpoint>& via);

/// `postgresql://<username>:<password>@<host>:<port>/<database>`: username, password and
/// database percent-encoded, an IPv6 host in brackets.
Secret BindingUri(const TenantFacts& facts, const Endpoint& address);

/// What the runtime connects to: `via` when set, else the cluster as the runtime reaches it.
const Endpoint& AddressFor(const TenantFacts& facts, const std::optional<Endpoint>& via);

}  // namespace tmaster::bindings
