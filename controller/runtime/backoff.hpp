#pragma once

// Per-name exponential backoff with jitter (docs/architecture.md#the-work-queue), as client-go's
// ItemExponentialFailureRateLimiter plus Envoy's jitter (`backoff_strategy.h`).

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "controller/runtime/clock.hpp"

namespace tmaster::controller {

struct BackoffOptions {
  Duration base = std::chrono::milliseconds(100);  ///< the delay after the first failure
  Duration max = std::chrono::minutes(5);          ///< the cap of the un-jittered delay
  double jitter = 0.1;  ///< each delay is multiplied by (1 + jitter * Uniform01())
};

/// Failure counts by name and the delay each next retry should wait. Not thread-safe: the
/// WorkQueue that owns one serialises every call under its own mutex.
class Backoff {
 public:
  /// `random` must outlive the Backoff.
  explicit Backoff(Random& random, BackoffOptions options = {});

  /// Records one more failure of `name` and returns how long to wait before retrying it:
  /// base * 2^(failures before this one), capped at `max`, then multiplied by
  /// (1 + jitter * Uniform01()). The jitter is applied after the cap on purpose, so names that
  /// all sit at the cap still spread out instead of retrying together; a delay can therefore
  /// reach max * (1 + jitter).
  Duration When(const std::string& name);

  /// Forgets `name`'s failures: its next When starts again at `base`. Unknown names are a no-op.
  void Forget(const std::string& name);

  /// How many failures of `name` were recorded since the last Forget (0 for an unknown name).
  [[nodiscard]] std::uint32_t Failures(const std::string& name) const;

  /// The un-jittered delay after `failures` earlier failures: base * 2^failures, capped at max.
  [[nodiscard]] Duration Exponential(std::uint32_t failures) const;

 private:
  Random& random_;
  BackoffOptions options_;
  std::unordered_map<std::string, std::uint32_t> failures_;
};

/// `delay` multiplied by (1 + fraction * Uniform01()): a delay in [delay, delay * (1 + fraction)).
Duration Jittered(Duration delay, double fraction, Random& random);

}  // namespace tmaster::controller
