#pragma once
// A thread of its own that calls one function now, then again every interval, until stopped:
// the loop of the cluster and endpoint monitors (controller/daemon/).

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace tmaster::controller {

/// Thread-safe. Start and Stop may race (the daemon's Stop and the end of its Run): the thread
/// is made once and joined once. A stop waits for the call in progress, never for an interval.
class PeriodicThread {
 public:
  PeriodicThread(std::chrono::milliseconds interval, std::function<void()> tick);
  ~PeriodicThread();
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

  void Start();
  void Stop();
  /// True once Stop was called: a long tick may end early.
  [[nodiscard]] bool Stopping() const;

 private:
  std::chrono::milliseconds interval_;
  std::function<void()> tick_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::mutex join_mutex_;  ///< held by Start and Stop
  std::thread thread_;
};

}  // namespace tmaster::controller
