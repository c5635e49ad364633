#pragma once
// Paces one source (docs/architecture.md#sources): read, sync, write the source's status, wait
// for a change or the poll interval; after a failure, retry with a backoff from 1 s doubling
// to the source's cap. Runs on a thread of its own for one leadership term.

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "controller/runtime/clock.hpp"
#include "controller/runtime/metrics.hpp"
#include "controller/sources/source.hpp"
#include "controller/sources/sync.hpp"
#include "controller/store/store.hpp"

namespace tmaster::controller {

struct SourceHealth {
  bool synced_once = false;  ///< a read was attempted this term
  bool healthy = false;      ///< the last attempt was a clean, applied read
  std::string problem;       ///< `Reason: message` when not healthy
};

class SourceRunner {
 public:
  /// Everything must outlive the runner. `enqueue` queues a workspace name for the workers.
  SourceRunner(Source& source, Sync& sync, Store& store, Metrics& metrics, Random& random,
               std::function<void(const std::string&)> enqueue);
  ~SourceRunner();
  SourceRunner(const SourceRunner&) = delete;
  SourceRunner& operator=(const SourceRunner&) = delete;

  /// Starts the loop on its own thread.
  void Start();
  /// Interrupts the source and joins the thread. Idempotent.
  void Stop();
  /// One read and sync; false when it must be retried soon (read failed, store down).
  bool SyncOnce();
  /// Reads now (an accepted webhook).
  void Wake() { source_.Wake(); }

  [[nodiscard]] Source& source() { return source_; }
  [[nodiscard]] SourceHealth Health() const;

 private:
  void Loop();
  void PutStatus(bool ready, const std::string& reason, const std::string& message, bool synced);

  Source& source_;
  Sync& sync_;
  Store& store_;
  Metrics& metrics_;
  Random& random_;
  std::function<void(const std::string&)> enqueue_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  mutable std::mutex mutex_;
  SourceHealth health_;              ///< guarded by mutex_
  std::int64_t last_sync_unix_ = 0;  ///< last clean sync this term; guarded by mutex_
  std::string applied_revision_;     ///< this thread only
};

}  // namespace tmaster::controller
