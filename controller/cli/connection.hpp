#pragma once

// Where tenantctl finds its server and token (docs/api.md#tenantctl): each setting from its flag,
// else its environment variable, else the config file `$XDG_CONFIG_HOME/tenantctl/config`
// (`~/.config/tenantctl/config` without XDG_CONFIG_HOME), which is refused when group or others
// may access it. The token is never part of a message.

#include <map>
#include <string>

#include "common/outcome.hpp"
#include "controller/cli/args.hpp"

namespace tmaster::cli {

/// The process environment as tenantctl reads it: only the variables it uses (TENANTCTL_SERVER,
/// TENANTCTL_TOKEN, XDG_CONFIG_HOME, HOME). A map so that tests pass their own.
using Environment = std::map<std::string, std::string>;

/// The server used when no flag, variable or config line names one: the API's loopback default.
inline constexpr const char* kDefaultServer = "http://127.0.0.1:8080";

/// Everything needed to open a connection.
struct Connection {
  std::string server;  ///< `http://host:port` or `https://host:port`, optionally with a path prefix
  std::string token;   ///< empty: send no Authorization header (a loopback server without tokens)
  std::string certificate_authority;  ///< PEM file of the CAs to trust; empty: the system's
  bool insecure_skip_tls_verify = false;
};

/// The config file's path from the environment; empty when neither XDG_CONFIG_HOME nor HOME is set.
std::string ConfigPath(const Environment& env);

/// Resolves the connection. Stalled `InsecureConfig` when the config file (read only when it
/// exists) may be read, written or run by its group or others, naming the path and its mode;
/// Stalled `BadConfig` naming `path:line` for a line that is not `key: value` or names an
/// unknown key (server, token, certificateAuthority, insecureSkipTLSVerify), or an unreadable
/// file; Stalled `BadServer` for a server that is not an http or https URL.
Outcome<Connection> ResolveConnection(const ConnectionFlags& flags, const Environment& env);

}  // namespace tmaster::cli
