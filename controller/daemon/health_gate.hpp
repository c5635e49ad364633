#pragma once
// The rollout's health gate (docs/rollouts.md, `rollout.healthCheck`): a dedicated workspace that
// reports the new revision Ready counts as ready in its wave only once its application answers
// 2xx on the product's health path, asked through `rollouts.healthBaseUrl` with the workspace's
// host in the Host header (default: `https://<host>` itself). Probes run on the gate's thread, a
// second apart, never on the driver's: a slow application cannot hold up other rollouts.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/outcome.hpp"

namespace tmaster::controller {

/// One GET. Thread-safe.
class HealthProber {
 public:
  virtual ~HealthProber() = default;
  /// `url` (scheme, host, port, path) with `Host: host`; the response's status, or why there was
  /// none (refused, timed out) in words fit for a status line.
  virtual Outcome<int> Get(const std::string& url, const std::string& host,
                           std::chrono::milliseconds timeout) = 0;
};

/// The HTTP(S) prober (cpp-httplib): no redirects followed, certificates verified.
std::unique_ptr<HealthProber> MakeHttpHealthProber();

/// What to ask: the URL (`rollouts.healthBaseUrl` or `https://<host>`, then the path) and the
/// Host header.
struct HealthTarget {
  std::string url;
  std::string host;
};
/// `base_url` (may be empty: `https://<host>`) joined with `path` for `host`.
HealthTarget HealthTargetFor(const std::string& base_url, const std::string& host,
                             const std::string& path);

/// Thread-safe.
class HealthGate {
 public:
  enum class Verdict { kWaiting, kPassed, kFailed };
  struct Result {
    Verdict verdict = Verdict::kWaiting;
    std::string reason;  ///< failed: the URL, the timeout and the last answer
  };

  /// `now` in milliseconds (tests fix it); empty: the steady clock. `interval`: between two
  /// probes of one key.
  HealthGate(HealthProber& prober, std::function<std::int64_t()> now_ms = {},
             std::chrono::milliseconds interval = std::chrono::seconds(1));
  ~HealthGate();
  HealthGate(const HealthGate&) = delete;
  HealthGate& operator=(const HealthGate&) = delete;

  /// The verdict on `key` (a workspace, revision and attempt): the first call starts probing
  /// `target` until a 2xx, or until `timeout` after that call, when it fails. Each later call
  /// answers from what the probes found; a decided key stays decided.
  Result Check(const std::string& key, const HealthTarget& target, std::chrono::seconds timeout);
  /// Forgets keys not asked about for `idle` (their workspace moved on).
  void Sweep(std::chrono::milliseconds idle);
  /// Probes what is due now, on the caller's thread (the gate's thread calls it; tests too).
  void ProbeDue();
  /// Start and Stop: from the term's thread only (Daemon::Begin and StopIntake), never racing.
  void Start();
  void Stop();

 private:
  struct Probe {
    HealthTarget target;
    std::int64_t deadline_ms = 0;
    std::int64_t next_ms = 0;
    std::int64_t asked_ms = 0;
    std::chrono::seconds timeout{0};
    std::string last;  ///< the last answer, for the failure's reason
    Result result;
  };
  std::int64_t Now() const;
  void Loop();

  HealthProber& prober_;
  std::function<std::int64_t()> now_ms_;
  std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::map<std::string, Probe> probes_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tmaster::controller
