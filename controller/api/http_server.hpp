#pragma once

// The controller's HTTP endpoint (docs/architecture.md#interfaces, issue 3 items 3 and 8): health,
// readiness, metrics, the read-only status API and the Git webhook. cpp-httplib stays inside
// http_server.cpp; this header is all a main needs.
//
// Routes (JSON unless said otherwise; unknown path 404 and wrong method 405, both JSON):
//   GET  /healthz                     200 `ok` (text/plain) while the process serves
//   GET  /readyz                      200 `ok`, or 503 with one problem per line (text/plain)
//   GET  /metrics                     Metrics::Render(), text/plain; version=0.0.4
//   GET  /api/v1/workspaces           {"items":[...]} (status_json.hpp); ?labelSelector=k=v,k!=v
//   GET  /api/v1/workspaces/{name}    the object, or 404 {"error":"workspace \"x\" not found"}
//   GET  /api/v1/events               ?workspace=NAME&limit=N (default 100, at most 1000; a
//                                     value above is clamped; not a positive integer: 400)
//   GET  /api/v1/sources              {"items":[...]}
//   POST /hooks/git                   HttpHandlers::webhook decides; {"verdict","message"} with
//                                     its status; every delivery is stored and counted
// A store failure answers 503 {"error":"store unavailable: <message>"}.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/outcome.hpp"
#include "controller/runtime/metrics.hpp"
#include "controller/store/store.hpp"
#include "controller/api/webhook.hpp"

namespace tmaster::controller {

/// What `GET /readyz` reports.
struct Readiness {
  bool ready = false;
  /// Human lines such as "store unreachable", "source upstream: FetchFailed".
  std::vector<std::string> problems;
};

struct HttpServerOptions {
  /// `host:port`, `[ipv6]:port`, or `:port` (every IPv4 interface). Port 0 picks a free port.
  std::string listen = "127.0.0.1:8080";
  /// Webhook bodies larger than this are answered 413 (verdict too_large) and never verified.
  std::size_t webhook_body_limit = kDefaultWebhookBodyLimit;
  /// Request-handling threads.
  int threads = 4;
};

struct HttpHandlers {
  /// `GET /readyz`. Unset: always ready.
  std::function<Readiness()> readiness;
  /// `POST /hooks/git`: verifies the delivery (VerifyWebhook) and, when accepted, triggers the
  /// fetch. Called on a server thread. Unset: every delivery is answered 401 bad_signature
  /// (no git source takes webhooks; a secret is mandatory).
  std::function<WebhookResult(const WebhookRequest&)> webhook;
};

/// Serves the routes above on its own threads. `store` and `metrics` must outlive the server.
class HttpServer {
 public:
  HttpServer(Store& store, Metrics& metrics, HttpHandlers handlers, HttpServerOptions options);
  /// Stop().
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds `options.listen` and starts serving on a thread of its own; returns once the socket
  /// accepts connections. Stalled `ListenFailed`, naming the address, when the address does not
  /// parse or cannot be bound (in use, not local). Call once.
  Outcome<Done> Start();
  /// The bound port (useful with port 0); 0 before a successful Start.
  [[nodiscard]] int port() const;
  /// Stops accepting, lets in-flight requests finish, joins the serving thread. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tmaster::controller
