#include "controller/runtime/periodic_thread.hpp"

#include <utility>

namespace tmaster::controller {

PeriodicThread::PeriodicThread(std::chrono::milliseconds interval, std::function<void()> tick)
    : interval_(interval), tick_(std::move(tick)) {}

PeriodicThread::~PeriodicThread() { Stop(); }

void PeriodicThread::Start() {
  const std::lock_guard joining(join_mutex_);
  const std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] {
    std::unique_lock held(mutex_);
    while (!stopping_) {
      held.unlock();
      tick_();  // outside the lock: it may wait on the network
      held.lock();
      wake_.wait_for(held, interval_, [this] { return stopping_; });
    }
  });
}

void PeriodicThread::Stop() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  const std::lock_guard joining(join_mutex_);
  if (thread_.joinable()) thread_.join();
}

bool PeriodicThread::Stopping() const {
  const std::lock_guard lock(mutex_);
  return stopping_;
}

}  // namespace tmaster::controller
