#pragma once

// Time and randomness as injected interfaces (docs/architecture.md#interfaces-adapters-and-fakes: inject time and randomness, so backoff,
// jitter and queue delays are tested without sleeping; Envoy `envoy/common/time.h`). The real
// implementations are here; the fakes are in tests/support/fake_clock.hpp.

#include <chrono>
#include <mutex>
#include <random>

namespace tmaster::controller {

/// Monotonic time. Fakes use the same time_point type, so the queue converts a fake deadline
/// into a real wait by difference (see WorkQueue::Get).
using TimePoint = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;

/// A monotonic clock. Implementations must be safe to call from several threads.
class Clock {
 public:
  virtual ~Clock() = default;
  /// The current time; never goes backwards.
  [[nodiscard]] virtual TimePoint Now() const = 0;
};

/// A source of uniform random numbers for jitter. Implementations must be safe to call from
/// several threads.
class Random {
 public:
  virtual ~Random() = default;
  /// A number in [0, 1).
  virtual double Uniform01() = 0;
};

/// The real clock: std::chrono::steady_clock.
class SteadyClock final : public Clock {
 public:
  [[nodiscard]] TimePoint Now() const override { return std::chrono::steady_clock::now(); }
};

/// The real randomness: std::mt19937_64 seeded once from std::random_device. Jitter needs no
/// cryptographic quality, only different values across replicas and restarts.
class MtRandom final : public Random {
 public:
  MtRandom() : engine_(std::random_device{}()) {}

  double Uniform01() override {
    const std::lock_guard lock(mutex_);
    return distribution_(engine_);
  }

 private:
  std::mutex mutex_;
  std::mt19937_64 engine_;
  std::uniform_real_distribution<double> distribution_{0.0, 1.0};
};

}  // namespace tmaster::controller
