#pragma once

// The Portainer CE API as the simulator answers it (docs/portainer-api.md):
// routing (gorilla/mux 404/405), authentication, every handler in Portainer's check order, the
// request log and counters, injected faults, and the `/__sim/` control plane. Transport-free:
// an ApiRequest in, an ApiResponse out, so the whole API is testable without sockets;
// http_server.hpp adapts it to cpp-httplib.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/secret.hpp"

namespace tmaster::tools::portainer_sim {

/// One part of a multipart/form-data body.
struct FormField {
  std::string name;
  std::string content;
  std::string filename;
};

struct ApiRequest {
  std::string method;     ///< upper-case, e.g. "GET"
  std::string path;       ///< percent-decoded path, without the query
  std::string raw_query;  ///< as received, for the request log
  std::vector<std::pair<std::string, std::string>> query;    ///< decoded, in order
  std::vector<std::pair<std::string, std::string>> headers;  ///< names as received
  std::string body;
  std::vector<FormField> form;  ///< multipart/form-data parts, when the body was one
  std::string remote_addr;
};

struct ApiResponse {
  int status = 200;
  std::string content_type;  ///< empty: no Content-Type (204, 405)
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct SimOptions {
  int endpoint_count = 1;
  std::string admin_user = "admin";
  /// Empty: `POST /api/auth` never succeeds (no password was configured).
  Secret admin_password;
  /// Raw API keys accepted for the admin (`ptr_...`); only their SHA-256 digests are kept.
  std::vector<Secret> api_keys;
};

/// Sleeps that shutdown can cut short: the delay/timeout faults and the deploy delay sleep
/// here, so SIGTERM never waits for them.
class Interrupter {
 public:
  /// Sleeps `duration`; returns false at once (or as soon as) Interrupt() was called.
  bool SleepFor(std::chrono::milliseconds duration);
  void Interrupt();

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool interrupted_ = false;
};

class Simulator {
 public:
  /// Unix seconds.
  using Clock = std::function<std::int64_t()>;
  /// Returns false when the sleep was interrupted.
  using Sleeper = std::function<bool(std::chrono::milliseconds)>;

  Simulator(SimOptions options, Clock clock, Sleeper sleeper);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  /// Answers one request. Thread-safe; may sleep (injected delay/timeout, deploy delay)
  /// without holding the state lock.
  ApiResponse Handle(const ApiRequest& request);

  /// The whole state as JSON text (what `GET /__sim/state` returns).
  std::string DumpState() const;

  /// Opaque; defined in simulator_impl.hpp (shared by the simulator's .cpp files only).
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tmaster::tools::portainer_sim
