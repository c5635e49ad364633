#pragma once
// Observations shared between workers (docs/architecture.md#observation): one catalog query per
// cluster and one stack list per endpoint serve every workspace that asks within a short window,
// and concurrent askers wait for the one refresh in flight instead of starting their own
// (single flight).

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>

#include "controller/runtime/clock.hpp"

namespace tmaster::controller {

/// Snapshots of T by Key. Thread-safe. The observer may throw; the exception reaches the caller
/// that ran it, and waiting callers retry the observation themselves.
template <class Key, class T>
class SnapshotCache {
 public:
  /// A snapshot of `key` whose observation started no earlier than `fresh_after`: the cached
  /// one when it qualifies, otherwise the one being taken now by another caller, otherwise a
  /// new one taken by calling `observe()` on this thread. The time a snapshot was taken is the
  /// clock's time when its observation started, so a change made during an observation is
  /// never taken as covered by it.
  template <class Observe>
  std::shared_ptr<const T> Get(const Key& key, TimePoint fresh_after, const Clock& clock,
                               Observe observe) {
    std::unique_lock lock(mutex_);
    Slot& slot = slots_[key];
    while (true) {
      if (slot.value != nullptr && slot.taken >= fresh_after) return slot.value;
      if (!slot.refreshing) break;
      refreshed_.wait(lock);
    }
    slot.refreshing = true;
    const TimePoint started = clock.Now();
    lock.unlock();
    std::shared_ptr<const T> value;
    try {
      value = std::make_shared<const T>(observe());
    } catch (...) {
      lock.lock();
      slot.refreshing = false;
      refreshed_.notify_all();
      throw;
    }
    lock.lock();
    slot.value = value;
    slot.taken = started;
    slot.refreshing = false;
    ++observations_;
    refreshed_.notify_all();
    return value;
  }

  /// How many observations completed (for tests and the "one query" bound).
  [[nodiscard]] std::size_t Observations() const {
    const std::lock_guard lock(mutex_);
    return observations_;
  }

  /// Forgets every snapshot (a new leadership term starts from fresh observations).
  void Clear() {
    const std::lock_guard lock(mutex_);
    for (auto it = slots_.begin(); it != slots_.end();) {
      it = it->second.refreshing ? std::next(it) : slots_.erase(it);
    }
  }

 private:
  struct Slot {
    std::shared_ptr<const T> value;
    TimePoint taken{};
    bool refreshing = false;
  };

  mutable std::mutex mutex_;
  std::condition_variable refreshed_;
  std::map<Key, Slot> slots_;
  std::size_t observations_ = 0;
};

}  // namespace tmaster::controller
