#pragma once

// The controller's HTTP endpoint (docs/architecture.md#interfaces, docs/api.md): health,
// readiness, metrics, the status API, the managed tokens and the Git webhook. The routes are the
// table of http_server.cpp (method, path pattern, who may call it, handler); the transport
// (Boost.Beast, http_listener.cpp) holds under slow and hostile clients with the limits of
// HttpServerOptions (docs/decisions.md, "Hardening II (issue 9)"). This header is all a main
// needs.
//
// Authentication (docs/api.md#authentication; controller/api/auth.hpp): every /api/v1 route needs
// `Authorization: Bearer <token>` (401 with `WWW-Authenticate: Bearer` without one or with a wrong
// one; 403 for a viewer on a route that needs an admin); /healthz, /readyz, /metrics and
// POST /hooks/git are open. Without any token configured the server serves only on a loopback
// address (Start refuses another) and every request without a token is the admin `anonymous`.
//
// Routes (JSON unless said otherwise; unknown path 404 and wrong method 405 with Allow):
//   GET  /healthz                     200 `ok` (text/plain) while the process serves
//   GET  /readyz                      200 `ok`, or 503 with one problem per line (text/plain)
//   GET  /metrics                     Metrics::Render(), text/plain; version=0.0.4
//   GET  /                            the dashboard (issue 14; controller/api/dashboard/): its
//                                     page with a valid session cookie, else only its login form
//   GET  /assets/{file}               the dashboard's embedded CSS and JavaScript, strong ETag
//   POST /login                       form or JSON {name, secret}: opens a session (Set-Cookie;
//                                     303 to / for a form, 200 with the session for JSON); 401
//                                     without saying which part was wrong; 429 with Retry-After
//                                     while throttled (login_rate_limit on the I/O thread, then
//                                     the store's counters per address and per user)
//   POST /logout                      ends the session (CSRF-checked: X-CSRF-Token or the form's
//                                     `csrf`) and clears the cookie
//   GET  /api/v1/session              who is calling: principal, role, and for a session its
//                                     csrfToken and expiresAt
//   GET  /api/v1/workspaces           {"items":[...]} (status_json.hpp); ?labelSelector=k=v,k!=v
//   GET  /api/v1/workspaces/{name}    the object, or 404
//   GET  /api/v1/events               ?workspace=NAME&limit=N (default 100, at most 1000; a
//                                     value above is clamped; not a positive integer: 400)
//   GET  /api/v1/sources              {"items":[...]}
//   GET  /api/v1/deliveries           ?limit=N (1..200, default 20): the last webhook deliveries,
//                                     newest first, {"items":[{id, provider, verdict, branch,
//                                     revision, receivedAt}]}
//   GET  /api/v1/stream               Server-Sent Events of HttpHandlers::events
//                                     (controller/api/event_stream.hpp): served from the I/O
//                                     thread once authenticated (a worker only checks the
//                                     credential); 503 beyond the hub's max_streams or without a
//                                     hub. A stream's session or token is checked again at each
//                                     keepalive: logged out, expired or revoked, the stream ends.
//   POST /api/v1/tokens               admin: {role, ttl, description} -> 201 with the token
//   GET  /api/v1/tokens               admin: {"items":[...]}, never a token or its digest
//   DELETE /api/v1/tokens/{id}        admin: revokes; 200 with the token's row, or 404
//   GET  /api/v1/runtimes/{product}/tenants  that product's runtime token only (403 for every
//                                     other token): HttpHandlers::runtime_tenants answers, on the
//                                     watch lane (docs/bindings.md#runtime-api)
//   POST /hooks/git                   HttpHandlers::webhook decides; {"verdict","message"} (and
//                                     "error" when refused) with its status; every delivery is
//                                     stored and counted. Beyond webhook_rate_limit from one
//                                     address (IPv6: one /64): 429 with Retry-After, neither
//                                     handled nor stored, counted as verdict "rate_limited"
// Every error is {"error": CODE, "message": TEXT, "details"?} (status_json.hpp ErrorJson,
// docs/api.md#errors). A store failure answers 503. The transport's own answers (400 a request
// that does not parse, 413 a body over webhook_body_limit on another route, 431 a header over
// header_limit, 503 "server busy" or "too many connections") have the same shape; all but 503
// busy close the connection. Each is counted in tenant_master_http_rejected_total{reason}
// (controller/runtime/metrics.hpp), with the connections cut for a deadline, and
// tenant_master_http_open_connections follows the connections open.
//
// Sessions (controller/api/sessions.hpp): a request without `Authorization` but with the session
// cookie is the session's principal on every /api/v1 route, like a bearer token of its role
// (401 when the session is not valid); a request so authenticated whose method is not GET or HEAD
// must carry `X-CSRF-Token` equal to the session's (403 otherwise). Bearer requests need no CSRF
// token. Every answer of the routes carries Content-Security-Policy: default-src 'self',
// X-Frame-Options: DENY, Referrer-Policy: no-referrer and X-Content-Type-Options: nosniff.
//
// Every write records an event naming who did it (Principal::Describe); the token routes' events
// are on the workspace name kTokenEventsWorkspace.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/outcome.hpp"
#include "common/secret.hpp"
#include "controller/api/event_stream.hpp"
#include "controller/api/rate_limit.hpp"
#include "controller/api/sessions.hpp"
#include "controller/api/users.hpp"
#include "controller/runtime/metrics.hpp"
#include "controller/store/store.hpp"
#include "controller/api/traefik.hpp"
#include "controller/api/webhook.hpp"
#include "controller/api/workspace_call.hpp"

namespace tmaster::controller {

/// What `GET /readyz` reports.
struct Readiness {
  bool ready = false;
  /// Human lines such as "store unreachable", "source upstream: FetchFailed".
  std::vector<std::string> problems;
};

/// How the server holds under slow or hostile clients (docs/decisions.md, "Hardening II"). Every
/// limit is per connection unless said otherwise; the defaults suit a controller's endpoint behind
/// a load balancer or a kubelet. Aggregate order: the first three fields are the historic ones.
struct HttpServerOptions {
  /// `host:port`, `[ipv6]:port`, or `:port` (every IPv4 interface). Port 0 picks a free port.
  std::string listen = "127.0.0.1:8080";
  /// Request bodies larger than this are answered 413 without being read (the webhook's verdict
  /// too_large, recorded and counted; `{"error":...}` on other routes) and the connection closed.
  std::size_t webhook_body_limit = kDefaultWebhookBodyLimit;
  /// Worker threads for the routes that call the store or the webhook handler. The probes never
  /// wait for them: /healthz and /metrics are answered on the I/O thread, /readyz on a thread of
  /// its own.
  int threads = 4;
  /// Requests waiting for a worker beyond this are answered 503 `{"error":"server busy"}`.
  std::size_t max_queued_requests = 64;
  /// Request bodies being read or handled, summed over every connection, in bytes. A request
  /// whose announced size (chunked: webhook_body_limit) would pass it is answered 503 "server
  /// busy" without being read: 512 connections cannot hold 512 bodies of 1 MiB.
  std::size_t max_body_bytes_in_flight = 32 * 1024 * 1024;
  /// Open connections beyond this are answered 503 and closed at once (probes get through again
  /// as soon as others close).
  std::size_t max_connections = 512;
  /// Request line plus header fields, in bytes; beyond: 431 and the connection closed. It also
  /// bounds the number of fields (a field takes at least 4 bytes: at most 4,096 of them).
  std::size_t header_limit = 16 * 1024;
  /// The whole request line and header, from its first byte (not per read); beyond: closed.
  std::chrono::milliseconds header_timeout{10'000};
  /// The whole body, once the header is in; beyond: closed.
  std::chrono::milliseconds body_timeout{30'000};
  /// Writing one answer; beyond: closed.
  std::chrono::milliseconds write_timeout{10'000};
  /// A kept-alive connection waiting for its next request's first byte; beyond: closed. Also how
  /// long a new connection may stay silent.
  std::chrono::milliseconds idle_timeout{5'000};
  /// Answers on one connection before it is closed (`Connection: close` on the last).
  int max_requests_per_connection = 100;
  /// `POST /hooks/git` per client address, checked on the I/O thread before the delivery is
  /// queued, verified or stored. The default (10 per second, bursts of 50) is far above what a Git
  /// host sends from one address (GitHub delivers from a handful of them).
  RateLimit webhook_rate_limit{};
  /// The bearer tokens of the environment (docs/api.md#authentication), resolved by the main:
  /// `http.tokenEnv`/`tokenFile` (admin) and `http.readTokenEnv`/`readTokenFile` (viewer). Both
  /// empty: no authentication, and Start refuses a `listen` that is not loopback.
  Secret admin_token{};
  Secret read_token{};
  /// `routing.tokenEnv`/`tokenFile`: may read `GET /api/v1/traefik` and nothing else.
  Secret traefik_token{};
  /// `runtimes.<product>.tokenEnv`/`tokenFile` by product: each may read
  /// `GET /api/v1/runtimes/<product>/tenants` and nothing else; no other token may read it.
  std::map<std::string, Secret> runtime_tokens{};
  /// PEM files of the certificate (chain) and its key: both set, the server speaks only TLS 1.2+
  /// (a TLS handshake must end within header_timeout). They are read again when their
  /// modification time or size changes, checked at most every tls_reload_interval on a new
  /// connection; a pair that does not load keeps the previous one (logged). Start fails when the
  /// first pair does not load.
  std::string tls_cert_file{};
  std::string tls_key_file{};
  std::chrono::milliseconds tls_reload_interval{2'000};
  /// What `GET /api/v1/traefik` routes (docs/api.md#traefik-routes-for-shared-tenants): the
  /// main fills it from `baseDomain`, `stacks.certResolver` and `routing.*`.
  TraefikRouting routing{};
  /// The dashboard's users (`http.usersFile`, loaded by the main with Users::Load); nullptr: only
  /// the admin, read and managed tokens log in. Must outlive the server.
  const Users* users = nullptr;
  /// `POST /login` per client address, checked on the I/O thread before the store is asked: a
  /// flood costs neither a worker nor a password hash. The store's counters (sessions.hpp) lock a
  /// user or an address after repeated failures whatever this allows.
  RateLimit login_rate_limit{.per_second = 1, .burst = 20};
  /// The sessions' lifetime and the store's login limits.
  SessionOptions sessions{};
  /// What `GET /api/v1/version` answers.
  std::string version = "dev";
};

/// The `workspace` of the events of the token routes (not a valid workspace name, so it names no
/// workspace): `GET /api/v1/events?workspace=api:tokens`.
inline constexpr const char* kTokenEventsWorkspace = "api:tokens";

/// `GET /api/v1/runtimes/{product}/tenants[?watch=1&resourceVersion=N&timeoutSeconds=S]`
/// (docs/bindings.md#runtime-api), as the handler gets it: the caller is already known to be that
/// product's runtime.
struct RuntimeCall {
  std::string product;
  bool watch = false;
  /// `resourceVersion`: with watch, the answer waits while the product's version still equals it.
  std::optional<std::uint64_t> resource_version;
  /// How long a watch may wait: `timeoutSeconds` (1..30), default 30.
  std::chrono::seconds timeout{30};
  std::string who;     ///< Principal::Describe(), for the event of the read
  std::string remote;  ///< the client's address
};

/// The answer: `status` 200 with `body` (JSON), 304 when a watch timed out with nothing changed,
/// or an error (`status` and `message`, answered in the API's error shape).
struct RuntimeAnswer {
  int status = 200;
  std::string body;
  std::string message;
};

struct HttpHandlers {
  /// `GET /readyz`. Called on the server's readiness thread, one call at a time: it may block
  /// (the daemon's asks the store), delaying only other /readyz requests. Unset: always ready.
  std::function<Readiness()> readiness;
  /// `POST /hooks/git`: verifies the delivery (VerifyWebhook) and, when accepted, triggers the
  /// fetch. Called on a worker thread. Unset: every delivery is answered 401 bad_signature
  /// (no git source takes webhooks; a secret is mandatory).
  std::function<WebhookResult(const WebhookRequest&)> webhook;
  /// The workspace API (docs/api.md#routes): lists, objects, apply, delete, reconcile, suspend,
  /// resume, plan, products. Called on a worker thread. Unset: the list and the object are read
  /// from the store, and the other routes answer 503.
  std::function<WorkspaceAnswer(const WorkspaceCall&)> workspaces;
  /// The runtime API (docs/bindings.md#runtime-api). Called on a thread of the watch pool; may
  /// block up to the call's timeout. Unset: 503 (no shared tenants are published).
  std::function<RuntimeAnswer(const RuntimeCall&)> runtime_tenants;
  /// `GET /api/v1/stream`'s hub (the daemon's: Daemon::Events()); the server also tells it of
  /// each webhook delivery it records. Must outlive the server. nullptr: the route answers 503.
  EventHub* events = nullptr;
};

/// Serves the routes above on its own threads. `store` and `metrics` must outlive the server.
class HttpServer {
 public:
  HttpServer(Store& store, Metrics& metrics, HttpHandlers handlers, HttpServerOptions options);
  /// Stop().
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds `options.listen` and starts serving on threads of its own (one for I/O, one for
  /// /readyz, `options.threads` workers); returns once the socket accepts connections. Stalled
  /// `ListenFailed`, naming the address, when the address does not parse or cannot be bound (in
  /// use, not local), or is not loopback while no token is configured; Stalled `TlsFailed` when
  /// the TLS certificate and key do not load. Without a token, logs that it serves local clients
  /// only, without authentication. Call once.
  Outcome<Done> Start();
  /// The bound port (useful with port 0); 0 before a successful Start.
  [[nodiscard]] int port() const;
  /// Stops accepting, closes the connections waiting for a request, lets the requests in flight
  /// be answered (a handler is never interrupted), joins every thread. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tmaster::controller
