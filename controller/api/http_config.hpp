#pragma once

// The HTTP server's options from the operator config (`http.*`, README.md#config-reference):
// what the config leaves unset keeps HttpServerOptions' default.

#include "controller/api/http_server.hpp"
#include "manifests/config.hpp"

namespace tmaster::controller {

/// `http.listen`, the TLS files and the limits `http` sets, over HttpServerOptions' defaults (the
/// tokens are secrets: the main resolves `http.token`/`readToken` and sets them itself). The body bytes in
/// flight across connections are raised to `maxBodyBytes` when that is larger (one body must
/// always fit). The config loader has checked every range.
HttpServerOptions HttpServerOptionsFrom(const manifests::HttpConfig& http);

}  // namespace tmaster::controller
