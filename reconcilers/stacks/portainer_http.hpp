#pragma once

// The Portainer CE adapter of StackGateway (docs/portainer-api.md,
// docs/architecture.md#dedicated-stacks). cpp-httplib and Boost.JSON stay in portainer_http.cpp:
// this header includes neither.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/secret.hpp"
#include "reconcilers/stacks/gateway.hpp"

namespace tmaster::stacks {

/// How to reach Portainer.
struct PortainerOptions {
  /// `http://host[:port]` or `https://host[:port]`, optionally with a path prefix when Portainer
  /// sits behind a reverse proxy (`https://example.org/portainer`). No credentials in the URL.
  std::string url;
  /// An access token (`ptr_...`), sent only as `X-API-Key` (never `Authorization`, never in a
  /// query string). Leading/trailing whitespace is ignored (keys read from files end in `\n`).
  Secret api_key;
  std::chrono::milliseconds connect_timeout{3000};
  /// Also the write timeout. A create whose answer does not come in time is re-observed, never
  /// re-sent blindly.
  std::chrono::milliseconds read_timeout{10000};
  /// The whole of one HTTP request (connect, send, status, headers and body) ends by then,
  /// however the server paces its bytes (read_timeout bounds each read only): `PortainerTimeout`.
  std::chrono::milliseconds call_deadline{60000};
  /// A response body longer than this is not read on: `PortainerResponseTooLarge`. A List of
  /// thousands of stacks is a few MiB.
  std::size_t max_response_bytes = std::size_t{16} << 20;
  /// Attempts per operation for transient failures (network, timeouts, 5xx), >= 1.
  int max_attempts = 4;
  /// Delay before retry k (k = 1, 2, ...): `backoff_base * 2^(k-1)` (capped at 30 s) plus a
  /// random jitter of up to half that.
  std::chrono::milliseconds backoff_base{100};
  /// HTTPS only: skip the server certificate and host name check. For lab setups.
  bool insecure_skip_verify = false;
  /// HTTPS only: a PEM bundle of trusted CAs; empty = the system's default store.
  std::string ca_cert_file;
  /// Seed of the jitter; 0 = from std::random_device. Tests pin it.
  std::uint64_t jitter_seed = 0;
  /// How long an endpoint's kind (standalone, or swarm manager with its cluster's SwarmID) is
  /// kept once probed; 0 = probe before every list and create. Any failed call on the endpoint
  /// forgets it at once. The expiry is what notices a standalone engine that became a swarm
  /// manager (nothing fails there: compose keeps working on a manager).
  std::chrono::milliseconds endpoint_kind_ttl{std::chrono::minutes(10)};
};

/// HTTP requests sent, per route (every attempt counts, retries included), for the benchmark.
struct CallCounts {
  std::int64_t list = 0;     ///< GET /api/stacks?filters=...
  std::int64_t file = 0;     ///< GET /api/stacks/{id}/file
  std::int64_t create = 0;   ///< POST /api/stacks/create/{standalone|swarm}/string
  std::int64_t update = 0;   ///< PUT /api/stacks/{id}
  std::int64_t start = 0;    ///< POST /api/stacks/{id}/start
  std::int64_t stop = 0;     ///< POST /api/stacks/{id}/stop
  std::int64_t remove = 0;   ///< DELETE /api/stacks/{id}
  /// GET /api/endpoints/{id}/docker/swarm, and GET /api/endpoints/{id} when the engine could not
  /// answer the first: what kind of endpoint it is.
  std::int64_t probe = 0;
  std::int64_t retries = 0;  ///< backoff sleeps taken before a retry

  [[nodiscard]] std::int64_t Writes() const { return create + update + start + stop + remove; }
  [[nodiscard]] std::int64_t Total() const { return list + file + probe + Writes(); }
};

/// StackGateway over Portainer's HTTP API, plus its call counters. Thread-safe (one HTTP
/// connection per request; no keep-alive, no cookie jar, no redirects followed).
///
/// Endpoints of both kinds (docs/portainer-api.md, "Swarm endpoints"). Before its first list or
/// create on an endpoint the gateway asks Docker through Portainer's proxy
/// (`GET /api/endpoints/{id}/docker/swarm`): the swarm inspect object's `ID` makes it a swarm
/// manager of that cluster, Docker's 503 "not a swarm manager" a standalone engine. When the
/// engine cannot answer (the endpoint is down), Portainer's record of it
/// (`GET /api/endpoints/{id}`) decides instead: a non-Docker `Type` is Stalled
/// `EndpointUnsupported`; a last snapshot without Swarm counts as standalone for this call only
/// (kept nowhere); one with Swarm fails as the proxy did, since listing needs the cluster id.
/// The kind is kept per endpoint for `endpoint_kind_ttl`, and forgotten after any failed call on
/// that endpoint.
///
/// Per kind: standalone lists with `{"EndpointID":N}` and creates with
/// `/create/standalone/string`; swarm lists with `{"EndpointID":N,"SwarmID":"<cluster>"}` (the
/// compose stacks of N and the cluster's swarm stacks; those another endpoint holds are dropped)
/// and creates with `/create/swarm/string` and `SwarmID` in the body. Update, start, stop and
/// delete are the same for both: `endpointId` is always the stack's own `EndpointId`.
///
/// Outcomes (every message names the step, the stack and the endpoint; none contains the API
/// key or the value of a secret Env variable — DB_PASSWORD, DATABASE_URL — even when Portainer
/// echoes compose output):
///  - Transient, retried here with backoff up to `max_attempts` first: `PortainerUnreachable`
///    (connect error or timeout), `PortainerTimeout` (no answer within `read_timeout`, or no
///    complete answer within `call_deadline`),
///    `PortainerUnavailable` (502/503/504), `StackDeployFailed` (500 on create/update/start,
///    Portainer's message), `StackRemoveFailed` (500 on stop/delete), `PortainerServerError`
///    (other 5xx), `PortainerBadResponse` (a 2xx body that is not the documented JSON).
///  - Transient, not retried here: `StackNotFound` (the stack vanished since the list; the next
///    pass re-observes), `PortainerResponseTooLarge` (a body over `max_response_bytes`: cut off,
///    not fetched again at once).
///  - Stalled: `PortainerUnauthorized` (401, or no API key), `PortainerForbidden` (403),
///    `EndpointNotFound` (404 for the environment), `EndpointUnsupported` (a Kubernetes or ACI
///    environment: dedicated stacks need Docker), `PortainerBadRequest` (400, message and
///    details), `StackConflict` (the name is held on the endpoint by a stack without our marker,
///    or by a compose project or swarm service Portainer did not create), `PortainerConfigInvalid` (bad URL or
///    key, TLS set-up failure), `PortainerTlsFailed` (the server certificate does not verify),
///    `PortainerUnexpectedStatus` (any other status, e.g. a proxy's 404 page).
class PortainerGateway : public StackGateway {
 public:
  /// One `GET /api/stacks?filters=...` (plus the probe when the endpoint's kind is not known).
  /// ObservedStack: `type` is Portainer's (1 swarm, 2 compose), `Env: null` → empty,
  /// `workspace` = the TM_WORKSPACE value (our marker), DB_PASSWORD/DATABASE_URL marked secret,
  /// `update_date` = UpdateDate as Portainer keeps it (0 until the first update).
  Outcome<std::vector<ObservedStack>> List(int endpoint) override = 0;

  /// One `GET /api/stacks/{id}/file`.
  Outcome<std::string> File(const ObservedStack& stack) override = 0;

  /// ApplyResult: `id`; `update_date` by the same rule as List (UpdateDate, 0 for a
  /// never-updated stack), so the ledger entry written after the action matches what the next
  /// List shows until someone else writes the stack; `calls` = HTTP requests sent; `detail` one
  /// of `created`, `created, stopped`, `adopted`, `adopted, updated`, `updated`, `started`,
  /// `already running`, `already active`, `stopped`, `already inactive`, `deleted`,
  /// `already gone` (with `, adopted` / `, stopped` suffixes where both apply).
  ///
  /// CreateStack re-lists its endpoint before every POST: a stack of that normalized name whose
  /// marker is this workspace is adopted (its file and Env are compared and PUT whole if they
  /// differ; then started/stopped as `active` says), any other holder is Stalled `StackConflict`.
  /// A POST that failed transiently (timeout after Portainer stored the stack, 5xx, connection
  /// lost) is never repeated before that re-list. A 409 is re-listed the same way. With
  /// `active == false` the new stack is stopped right after it is created.
  Outcome<ApplyResult> Apply(const Action& action) override = 0;

  /// One `GET /api/endpoints/{id}/docker/swarm`, not retried: a swarm manager with its
  /// cluster's ID, or (Docker's 503 "not a swarm manager") a standalone engine; anything else
  /// fails as above (a down endpoint: Transient `PortainerUnavailable`). Portainer's snapshot
  /// of a down endpoint is not asked. The answer refreshes the kind kept for List and create;
  /// a failure forgets it.
  Outcome<EndpointInfo> Inspect(int endpoint) override = 0;

  /// The counters since construction or the last ResetCounts().
  [[nodiscard]] virtual CallCounts Counts() const = 0;
  virtual void ResetCounts() = 0;
};

/// How the gateway waits between retries; tests inject a recorder.
using SleepFunction = std::function<void(std::chrono::milliseconds)>;

/// std::this_thread::sleep_for.
void RealSleep(std::chrono::milliseconds delay);

/// The gateway. Never fails here: a bad URL or an empty key makes every call Stalled
/// `PortainerConfigInvalid` / `PortainerUnauthorized` with a message that says why.
std::unique_ptr<PortainerGateway> MakePortainerGateway(PortainerOptions options,
                                                       SleepFunction sleep = RealSleep);

}  // namespace tmaster::stacks
