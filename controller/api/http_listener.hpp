#pragma once

// The HTTP/1.1 transport under HttpServer (docs/decisions.md, "Hardening II (issue 9)"):
// Boost.Beast on one Boost.Asio I/O thread, with a deadline for each whole phase of a request,
// caps on header bytes, body bytes and connections, and the handlers that may block on worker
// threads so that a slow client or a slow store never delays the probes. Beast and Asio stay in
// http_listener.cpp; the routes (http_server.cpp) see only the plain values below.

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/outcome.hpp"
#include "controller/api/http_server.hpp"

namespace tmaster::controller::http {

/// One request as the routes see it.
struct Request {
  std::string method;  ///< as sent ("GET", "HEAD", "POST", ...)
  /// The peer's IP address as text ("127.0.0.1", "::1"), for per-address limits; empty if the
  /// socket could not tell.
  std::string remote_address;
  std::string path;    ///< percent-decoded, without the query
  /// The query, percent-decoded ('+' is a space), in the order sent; a name without '=' has an
  /// empty value.
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names and values as sent
  std::string body;
  /// The body was over `HttpServerOptions::webhook_body_limit`: `body` is empty and was never
  /// read; the answer closes the connection.
  bool body_too_large = false;

  /// The first value of query parameter `name`, or nullptr.
  [[nodiscard]] const std::string* Param(std::string_view name) const;
};

/// Bytes queued on a streamed answer's connection and not yet written (the kernel's send buffer
/// aside, which the listener makes small for a stream): beyond, the client is not reading and its
/// connection is closed (Rejection::kStreamOverflow) rather than held in memory.
inline constexpr std::size_t kStreamOutputLimit = 64 * 1024;

/// What the connection of a streamed answer (Response::stream) offers the code that feeds it.
/// Thread-safe; it holds the connection weakly, so keeping it keeps no connection open.
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  /// Queues `bytes` to be written after what is queued (on the I/O thread, as one chunk);
  /// never blocks. false once the connection is closed or closing; when the bytes queued would
  /// pass kStreamOutputLimit the connection is closed instead (false).
  virtual bool Send(std::shared_ptr<const std::string> bytes) = 0;
  /// Ends the answer (the last chunk) and closes the connection once what is queued is written.
  /// Idempotent.
  virtual void End() = 0;
};

/// An answer whose body is written as it comes for as long as the connection lasts (the live
/// stream's Server-Sent Events, docs/api.md). The listener writes the head (the Response's
/// status, Content-Type and headers, no Content-Length; `Transfer-Encoding: chunked` to an
/// HTTP/1.1 client, a body ended by the close to an HTTP/1.0 one; `Connection: close`), then
/// what the sink is sent, each Send as one chunk, with write_timeout for each write. The
/// connection reads and drops what the client sends and closes when the client does, when
/// End is called, on a write that fails or passes its deadline, and on Listener::Stop. The
/// StreamBody is destroyed when the connection closes (what its function holds goes with it).
struct StreamBody {
  /// Called once on the I/O thread, after the head is queued. Must not block.
  std::function<void(std::shared_ptr<StreamSink> sink)> open;
};

/// One answer. `Content-Length` and `Connection` are the listener's; a HEAD request gets the
/// head of the answer its GET would get.
struct Response {
  int status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra, e.g. Allow
  /// Set: the answer is a stream (StreamBody) and `body` is not sent. A HEAD request gets the
  /// head only, as for any answer.
  std::shared_ptr<StreamBody> stream;
};

/// Where a request runs, chosen from its method and path as soon as its header is in.
enum class Lane {
  kInline,  ///< on the I/O thread: must never block (health, metrics)
  kProbe,   ///< on a thread of its own (readiness: may ask the store, but never waits for the API)
  kWorker,  ///< on the worker pool (the store, the webhook); pool and queue full: 503 busy
  /// On a pool of its own (kWatchThreads): a long poll that may wait up to half a minute for a
  /// change, never holding a worker; pool and queue full: 503 busy.
  kWatch,
};

/// Long polls served at once (Lane::kWatch); as many more may wait in its queue.
inline constexpr int kWatchThreads = 16;

/// A request or connection the listener refuses or cuts itself (label values of
/// tenant_master_http_rejected_total{reason}; see ToString).
enum class Rejection {
  kHeaderTooLarge,      ///< 431
  kBodyTooLarge,        ///< a body over webhook_body_limit (413 from the route)
  kBusy,                ///< 503 "server busy": workers, readiness queue or body budget full
  kTooManyConnections,  ///< 503 and closed at accept: max_connections reached
  kTimeout,             ///< closed: the header, body or answer passed its deadline
  kBadRequest,          ///< 400: the request does not parse
  /// Closed: a streamed answer's client does not read (kStreamOutputLimit queued).
  kStreamOverflow,
};

/// "header_too_large", "body_too_large", "busy", "too_many_connections", "timeout",
/// "bad_request", "stream_overflow".
const char* ToString(Rejection rejection);

struct Routes {
  std::function<Lane(std::string_view method, std::string_view path)> lane;
  /// Asked on the I/O thread once a request is read, before its lane: an answer returned is
  /// sent at once and the handler never sees the request (the connection stays open). Must not
  /// block. Unset: every request goes on.
  std::function<std::optional<Response>(const Request&)> admit;
  /// Told of each refusal or cut of the listener's own. Any thread; must not block. May be unset.
  std::function<void(Rejection)> rejected;
  /// Told the number of open connections each time it changes, in order (under the listener's
  /// lock). Any thread; must not block. May be unset.
  std::function<void(std::size_t open)> connections;
  /// Answers one request; called on the thread its lane says. An exception becomes a 500.
  std::function<Response(const Request&)> handle;
  /// The answer the listener gives itself: 400 unparsable, 431 header too large, 503 busy or too
  /// many connections, 500 a handler threw.
  std::function<Response(int status, std::string_view message)> error;
};

/// Serves `routes` on `options.listen` with the limits of `options` (see HttpServerOptions).
class Listener {
 public:
  Listener(HttpServerOptions options, Routes routes);
  /// Stop().
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  /// Binds and starts the I/O thread and the workers. Stalled `ListenFailed` naming the address
  /// when it does not parse or cannot be bound. Call once.
  Outcome<Done> Start();
  /// The bound port; 0 before a successful Start.
  [[nodiscard]] int port() const;
  /// Closes the listening socket and every connection waiting for a request, lets the requests
  /// in flight be answered (then closes their connections), joins every thread. Idempotent.
  void Stop();

  struct State;  // http_listener.cpp; public only so that the connections there can name it

 private:
  std::shared_ptr<State> state_;
};

}  // namespace tmaster::controller::http
