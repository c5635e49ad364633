#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "common/secret.hpp"
#include "manifests/config.hpp"
#include "manifests/types.hpp"
#include "reconcilers/stacks/model.hpp"

namespace tmaster::stacks {

/// How a dedicated stack reaches its database. The caller fills host and port from the
/// cluster's DSN as seen from the endpoint, and `password` with the workspace's derived
/// password (postgres::DerivePassword); it only ever lands in the Env's DB_PASSWORD and
/// DATABASE_URL, both marked secret.
struct DbConnection {
  std::string host;
  int port = 5432;
  std::string database;
  std::string user;
  Secret password;
};

/// Everything the compose file and the non-secret Env are made of (docs/stacks.md).
struct RenderInputs {
  std::string workspace;      ///< TM_WORKSPACE; the router and service are `tm-<workspace>`
  std::string host;           ///< TM_HOST, `<subdomain>.<baseDomain>`
  std::string image;          ///< TM_IMAGE, the product's image without tag
  std::string version;        ///< TM_VERSION
  int port = 8000;            ///< TM_PORT, the container port Traefik routes to
  std::string edge_network;   ///< TM_EDGE_NETWORK, the external network Traefik watches
  std::string cert_resolver;  ///< TM_CERT_RESOLVER
  std::string template_name;  ///< the template's file name, for messages only
};

/// The stack name of a workspace: `tm-<workspace>`.
std::string StackName(std::string_view workspace);

/// True for the Env variables whose values are secrets (DB_PASSWORD, DATABASE_URL).
bool IsSecretEnvName(std::string_view name);

/// `postgresql://user:password@host:port/database` with user, password, database (and a
/// socket-path host) percent-encoded (RFC 3986 unreserved characters stay as they are).
Secret DatabaseUrl(const DbConnection& db);

/// The complete Env of a stack, sorted by name: TM_*, DB_*, DATABASE_URL
/// (docs/stacks.md#name-and-env) and `extra` (spec.dedicated.env). Stalled `InvalidStackEnv` when a
/// value holds a newline, carriage return or NUL (an env file cannot carry it), when a name is not
/// `[A-Za-z_][A-Za-z0-9_]*`, or when `extra` redefines one of the operator's names. Messages name
/// the variable, never its value.
Outcome<std::vector<EnvVar>> BuildStackEnv(const RenderInputs& inputs, const DbConnection& db,
                                           const std::map<std::string, std::string>& extra);

/// Pure: the product's compose template with the operator's structural additions, done on the
/// parsed YAML (never by text substitution, so no Env value can inject YAML):
///  - the routed service (`app` if present, else the first one) gets `image: <image>:<version>`
///    when it has none, the Traefik labels of router and service `tm-<workspace>` (labels
///    become a map; a key that interpolates to one of ours is replaced by ours), and membership
///    in the edge network (plus `default` when it had no networks);
///  - the top-level `networks:` declares the edge network `external: true`, `name: <edge>`
///    (an entry of the template whose name or key already means the edge network is reused).
/// `${VAR}` references are left for compose to interpolate from the Env; literal values we
/// insert have `$` doubled. Quoting, tags and flow style of the template survive; comments do
/// not. Stalled `InvalidStackTemplate` (naming `inputs.template_name`) when the text is not
/// YAML, not a mapping with a non-empty `services` mapping, or the routed service cannot join
/// a network.
Outcome<std::string> RenderStackFile(std::string_view template_text, const RenderInputs& inputs);

/// The inputs of one workspace: host `<subdomain>.<baseDomain>`, version spec.dedicated.version
/// (default: the product's defaultVersion), the config's edge network and cert resolver.
RenderInputs MakeRenderInputs(const manifests::Workspace& workspace,
                              const manifests::Product& product, const manifests::Config& config);

/// Pure: the desired stack of a dedicated workspace from its template's text. Stalled
/// `InvalidStackTemplate`, `InvalidStackEnv` as above; Stalled `NotDedicated` when the
/// workspace has no `spec.dedicated`.
Outcome<DesiredStack> BuildDesiredStack(const manifests::Workspace& workspace,
                                        const manifests::Product& product,
                                        const manifests::Config& config, const DbConnection& db,
                                        std::string_view template_text);

/// The default of `reconcile.maxTemplateSize`.
inline constexpr std::uintmax_t kDefaultMaxTemplateBytes = 256U * 1024U;

/// The text of the product's `stackTemplate` file, read confined beneath `product.root` (empty:
/// the template's own folder; common/confined.hpp). Stalled `InvalidStackTemplate` when the
/// product has none, it cannot be read, or it (or a symbolic link on the way) leads out of the
/// root; Stalled `StackTemplateTooLarge`, unread, when it is over `max_bytes`. Messages name the
/// file, never its content. A pass reads each product's template once.
Outcome<std::string> ReadStackTemplate(const manifests::Product& product,
                                       std::uintmax_t max_bytes = kDefaultMaxTemplateBytes);

/// As above, reading the product's `stackTemplate` file. Stalled `InvalidStackTemplate` when
/// the product has none or it cannot be read.
Outcome<DesiredStack> BuildDesiredStack(const manifests::Workspace& workspace,
                                        const manifests::Product& product,
                                        const manifests::Config& config, const DbConnection& db);

}  // namespace tmaster::stacks
