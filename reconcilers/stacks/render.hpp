#pragma once

#include <cstdint>
#include <filesystem>
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
  /// The names of the stack's Env (BuildStackEnv), sorted: what `env_file: stack.env` is
  /// replaced with (`NAME: ${NAME}` entries). MakeRenderInputs fills them from the workspace.
  std::vector<std::string> env_names;
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
///    (an entry of the template whose name or key already means the edge network is reused);
///  - so that one file runs on a standalone engine and on a swarm manager alike (the plan never
///    knows the kind): the routed service's Traefik labels are also written under
///    `deploy.labels` (which compose ignores and Traefik's swarm provider reads), with
///    `traefik.swarm.network` beside `traefik.docker.network`; and every service's
///    `env_file: stack.env` (the string, or that entry of a list) is replaced by `environment:`
///    entries `NAME: ${NAME}` for each of `inputs.env_names` the service does not set itself
///    (`docker stack deploy` has no stack.env; both kinds interpolate `${NAME}` from the Env).
/// `${VAR}` references are left for compose to interpolate from the Env; literal values we
/// insert have `$` doubled. Quoting, tags and flow style of the template survive; comments do
/// not. Stalled `InvalidStackTemplate` (naming `inputs.template_name`) when the text is not
/// YAML, not a mapping with a non-empty `services` mapping, the routed service cannot join
/// a network, or `deploy` / `environment` of a service to change has the wrong shape.
Outcome<std::string> RenderStackFile(std::string_view template_text, const RenderInputs& inputs);

/// The inputs of one workspace: host `<subdomain>.<baseDomain>`, version spec.dedicated.version
/// (default: the product's defaultVersion), the config's edge network and cert resolver, the
/// Env's names (the operator's and spec.dedicated.env's).
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

// --- The product's shared runtime (Product.spec.sharedRuntime, docs/stacks.md#shared-runtime) ---

/// Where the runtime's container sees its product's bindings, and its SERVICE_BINDING_ROOT.
inline constexpr std::string_view kBindingsMountTarget = "/bindings";

/// Everything the shared runtime's compose file and Env are made of.
struct SharedRuntimeInputs {
  std::string product;        ///< TM_PRODUCT; stack, network alias and Traefik service name
                              ///< are `tm-shared-<product>`
  std::string image;          ///< TM_IMAGE
  std::string version;        ///< TM_VERSION: the product's defaultVersion
  int port = 8000;            ///< TM_PORT
  std::string edge_network;   ///< TM_EDGE_NETWORK
  std::string cert_resolver;  ///< TM_CERT_RESOLVER
  /// TM_BINDINGS_DIR: `<bindings.dir>/<product>` on the endpoint's host, mounted read-only at
  /// kBindingsMountTarget. Absolute.
  std::filesystem::path bindings;
  std::string template_name;  ///< for messages only
};

/// `tm-shared-<product>`: the stack's name, and its alias on the edge network (the Traefik
/// document routes the product's shared tenants to `http://tm-shared-<product>:<port>`).
std::string SharedRuntimeStackName(std::string_view product);

/// `shared-<product>`: DesiredStack::workspace of the shared runtime (the directory backend's
/// folder name). Not an Env marker: the stack carries no TM_WORKSPACE, so nothing that looks for
/// workspaces' stacks (orphans, pruning) ever counts it as one.
std::string SharedRuntimeStackKey(std::string_view product);

/// The product whose shared runtime `stack` is by our marker: named `tm-shared-<p>`, its Env's
/// TM_PRODUCT is `<p>` and it has no TM_WORKSPACE. Empty otherwise (foreign, or a dedicated
/// workspace's stack).
std::string SharedRuntimeMarkerOf(const ObservedStack& stack);

/// The complete Env of the shared runtime, sorted by name: SERVICE_BINDING_ROOT,
/// TM_BINDINGS_DIR, TM_CERT_RESOLVER, TM_EDGE_NETWORK, TM_IMAGE, TM_PORT, TM_PRODUCT,
/// TM_VERSION. No secret: each tenant's credentials are in its binding, never in the Env.
/// Stalled `InvalidStackEnv` when a value holds a line break or NUL (naming the variable).
Outcome<std::vector<EnvVar>> BuildSharedRuntimeEnv(const SharedRuntimeInputs& inputs);

/// Pure: the shared runtime's template with structural additions on the parsed YAML, as
/// RenderStackFile does (routed service, `image` when it has none, the edge network joined and
/// declared external), except that it gets no router labels (its routes come from the Traefik
/// document, docs/api.md#traefik-routes-for-shared-tenants) and `traefik.enable: "false"` (in
/// `labels` and `deploy.labels`) so a Docker or swarm provider that exposes services by default
/// does not route it either; on the routed service: `<bindings>:/bindings:ro` in `volumes`,
/// `SERVICE_BINDING_ROOT=/bindings` in `environment`, the alias `tm-shared-<product>` on the edge
/// network (its networks become a mapping); and, as RenderStackFile, every service's
/// `env_file: stack.env` becomes `NAME: ${NAME}` entries for the runtime's Env, so the file
/// deploys on a standalone engine and a swarm manager alike. Stalled `InvalidStackTemplate` as RenderStackFile, and when the template mounts
/// something else at /bindings or has volumes, environment or aliases of the wrong shape;
/// Stalled `InvalidBindingsDir` when `bindings` is not absolute or holds a `:`, a line break
/// or NUL (a compose volume entry cannot carry it).
Outcome<std::string> RenderSharedRuntimeFile(std::string_view template_text,
                                             const SharedRuntimeInputs& inputs);

/// The inputs of `product`'s shared runtime: version its defaultVersion, the config's edge
/// network and cert resolver, bindings `<bindings_dir>/<product>`.
SharedRuntimeInputs MakeSharedRuntimeInputs(const manifests::Product& product,
                                            const manifests::Config& config,
                                            const std::filesystem::path& bindings_dir);

/// Pure: the desired stack `tm-shared-<product>` on `spec.sharedRuntime.endpoint`, always
/// active. Stalled `NoSharedRuntime` when the product declares none, `InvalidStackVersion`
/// without defaultVersion, and the failures above.
Outcome<DesiredStack> BuildSharedRuntimeStack(const manifests::Product& product,
                                              const manifests::Config& config,
                                              const std::filesystem::path& bindings_dir,
                                              std::string_view template_text);

}  // namespace tmaster::stacks
