#pragma once

// FakeClock and FakeRandom: time that moves only when a test says so, and "random" numbers a test
// chooses (fakes stay small: docs/architecture.md#interfaces-adapters-and-fakes). Both are
// thread-safe, so a test may drive them while another thread waits in the queue.

#include <chrono>
#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

#include "controller/runtime/clock.hpp"

namespace tmaster::testing {

/// A clock that starts at an arbitrary fixed point and moves only on Advance.
class FakeClock final : public controller::Clock {
 public:
  [[nodiscard]] controller::TimePoint Now() const override {
    const std::lock_guard lock(mutex_);
    return now_;
  }

  /// Moves time forward by `delta` (never backwards: a monotonic clock).
  void Advance(controller::Duration delta) {
    const std::lock_guard lock(mutex_);
    if (delta > controller::Duration::zero()) now_ += delta;
  }

 private:
  mutable std::mutex mutex_;
  // Not the epoch: code that mistakes a zero time_point for "unset" would otherwise pass.
  controller::TimePoint now_ = controller::TimePoint{} + std::chrono::hours(1000);
};

/// Returns `Set` values in turn, cycling; 0.0 until anything is set.
class FakeRandom final : public controller::Random {
 public:
  /// Every following call returns `value` (must be in [0, 1)).
  void Set(double value) { Set(std::vector<double>{value}); }
  /// Following calls return `values` in order, then start again.
  void Set(std::vector<double> values) {
    const std::lock_guard lock(mutex_);
    values_ = std::move(values);
    next_ = 0;
  }

  double Uniform01() override {
    const std::lock_guard lock(mutex_);
    ++calls_;
    if (values_.empty()) return 0.0;
    const double value = values_[next_ % values_.size()];
    ++next_;
    return value;
  }

  /// How many numbers were drawn: lets a test prove jitter was actually applied.
  [[nodiscard]] std::size_t Calls() const {
    const std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<double> values_;
  std::size_t next_ = 0;
  std::size_t calls_ = 0;
};

}  // namespace tmaster::testing
